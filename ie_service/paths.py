"""Where the project's data files live (all of them package data, so a wheel has them)."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def prompts_dir() -> Path:
    """``$IE_SERVICE_PROMPTS`` or the ``prompts/`` folder inside the package."""
    env = os.environ.get("IE_SERVICE_PROMPTS")
    return Path(env) if env else PACKAGE_DIR / "prompts"


def bundled_data_dir() -> Path:
    """The evaluation sets shipped inside the package (``ie_service/data``, with their licenses)."""
    return PACKAGE_DIR / "data"
