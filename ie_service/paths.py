"""Where the project's data files live."""

from __future__ import annotations

import os
from pathlib import Path


def prompts_dir() -> Path:
    """``$IE_SERVICE_PROMPTS`` or the ``prompts/`` folder beside the package."""
    env = os.environ.get("IE_SERVICE_PROMPTS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "prompts"
