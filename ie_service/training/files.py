"""What ``train data`` writes, and the renderer it writes prompts with (shared by the
built-in path, ``data``, and the user-file path, ``user_examples``)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path


def renderer(model: str | None, prompt_format: str) -> Callable[..., str]:
    """The prompt format the engine would use for ``model`` (the same choice as serving)."""
    from transformers import AutoTokenizer

    from ..models.embedded import ensure_embedded_model
    from ..models.prompt_formats import choose_format, folder_format

    path = model or str(ensure_embedded_model())
    tokenizer = AutoTokenizer.from_pretrained(path)
    return choose_format(prompt_format, path, tokenizer, folder_format(path))[0].render


def write_examples(rows: list[dict], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    with out.open("wb") as raw:
        if out.suffix == ".gz":  # no name or time stamp in the header: same input, same bytes
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f:
                f.write(text)
        else:
            raw.write(text)


def meta_path(out: Path) -> Path:
    return out.with_name(out.name.split(".")[0] + ".meta.json")
