"""``ie-service train``: the adapter's training commands (registered here; see
``ie_service.training``)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Adds the ``train`` command; nothing yet (the training package fills it in)."""
