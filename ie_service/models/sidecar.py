"""``ie_service.json`` beside the weights: the prompt format ``auto`` picks and who said so
(written by the weight tools or by hand), and the answer shape the model was trained to write
(``full``: every label a key, OneKE's; ``compact``: only labels with something)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .folder import read_json

SIDECAR = "ie_service.json"
ANSWER_SHAPES = ("full", "compact")  # extraction.constraints.ANSWER_SHAPES (no import: models/ stays light)
DEFAULT_ANSWER_SHAPE = "full"


def write_sidecar(folder: str | Path, prompt_format: str, source: str) -> Path:
    """Write ``ie_service.json`` (the prompt format ``auto`` will pick, and who said so),
    keeping an ``answer_shape`` already there."""
    path = Path(folder) / SIDECAR
    data = {"prompt_format": prompt_format, "source": source}
    if (shape := (read_json(path) or {}).get("answer_shape")) is not None:
        data["answer_shape"] = shape
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def answer_shape_of(folder: str | Path) -> tuple[str, str | None]:
    """(shape, warning): ``ie_service.json``'s ``answer_shape``, else ``full``; an unknown
    value is warned about and read as ``full``."""
    shape = (read_json(Path(folder) / SIDECAR) or {}).get("answer_shape", DEFAULT_ANSWER_SHAPE)
    if shape in ANSWER_SHAPES:
        return shape, None
    return DEFAULT_ANSWER_SHAPE, (f"{SIDECAR} answer_shape {shape!r} is not one of {list(ANSWER_SHAPES)}: "
                                  f"read as {DEFAULT_ANSWER_SHAPE!r}")


def adapter_answer_shape(adapter: str | Path) -> str | None:
    """The answer shape a LoRA adapter was trained on: its ``manifest.json`` (in the folder,
    or the ``train fit`` folder above ``adapter/``) or its ``ie_service.json``; None when
    neither says (an adapter from before answer shapes: ``full``)."""
    folder = Path(adapter)
    for path in (folder / "manifest.json", folder.parent / "manifest.json", folder / SIDECAR):
        shape = (read_json(path) or {}).get("answer_shape")
        if shape in ANSWER_SHAPES:
            return shape
    return None


def set_answer_shape(folder: str | Path, shape: str) -> Path:
    """Declare ``shape`` in the folder's ``ie_service.json`` (other keys kept)."""
    if shape not in ANSWER_SHAPES:
        raise ValueError(f"unknown answer shape {shape!r}; one of {list(ANSWER_SHAPES)}")
    path = Path(folder) / SIDECAR
    data = read_json(path) or {}
    data["answer_shape"] = shape
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def read_sidecar(folder: str | Path) -> dict[str, Any] | None:
    return read_json(Path(folder) / SIDECAR)

