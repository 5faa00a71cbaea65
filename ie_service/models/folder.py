"""Reading a model folder's files (no torch, no vllm): ``config.json`` checked to be a model
config, the weight files' headers, the tokenizer's files, the README's title."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from ..errors import UserInputError

TokenizerKind = Literal["sentencepiece-only", "tokenizer.json", "both", "none"]


class NotAModelFolder(UserInputError, ValueError):
    """The path is not a model folder (no config.json): perhaps a hub id."""


class BrokenModelFolder(NotAModelFolder):
    """A model folder whose files cannot be what they claim: a ``config.json`` that is not a
    model config, a safetensors file that is not one. Never taken for a hub id."""


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object file's content; None when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def read_config(folder: Path) -> dict[str, Any]:
    """``config.json`` of a model folder, checked to be a model config: a JSON object naming
    ``model_type`` or ``architectures``. Raises :class:`NotAModelFolder` when there is none,
    :class:`BrokenModelFolder` when it is not a model config."""
    path = folder / "config.json"
    if not path.is_file():
        raise NotAModelFolder(f"{folder}: no config.json (not a Hugging Face model folder)")
    try:
        config = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        why = "nested too deeply" if isinstance(exc, RecursionError) else type(exc).__name__
        raise BrokenModelFolder(f"{path}: not readable JSON ({why})") from None
    if not isinstance(config, dict):
        raise BrokenModelFolder(f"{path}: expected a JSON object (a model config), got {type(config).__name__}")
    text = text_config(config)
    if not (text.get("model_type") or text.get("architectures") or config.get("architectures")):
        raise BrokenModelFolder(f"{path}: not a model config (no model_type or architectures)")
    return config


SAFETENSORS_HEADER_LIMIT = 100 * 1024**2  # safetensors' own limit on the header


def check_weight_files(folder: str | Path) -> None:
    """Each ``*.safetensors`` file of a model folder starts as a safetensors file does (see
    :func:`check_safetensors_header`): what ``inspect-model`` and ``serve``'s preflight check
    before anything loads the weights."""
    for path in sorted(Path(folder).glob("*.safetensors")):
        check_safetensors_header(path)


def check_safetensors_header(path: Path) -> None:
    """The file starts as a safetensors file does: an 8-byte little-endian header length
    that fits the file (and safetensors' limit), then a JSON object. Reads the header only
    (no torch); raises :class:`BrokenModelFolder` naming the file."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise BrokenModelFolder(f"{path}: not a safetensors file ({size} bytes, too short for a header)")
        n = int.from_bytes(head, "little")
        if n < 2 or n > size - 8 or n > SAFETENSORS_HEADER_LIMIT:
            raise BrokenModelFolder(f"{path}: not a safetensors file, or truncated (header of {n} bytes "
                                    f"in a file of {size})")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BrokenModelFolder(f"{path}: not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise BrokenModelFolder(f"{path}: not a safetensors file (its header is not a JSON object)")


def text_config(config: dict[str, Any]) -> dict[str, Any]:
    """The language model's own config (``text_config`` of a multimodal folder, else the whole)."""
    inner = config.get("text_config")
    return inner if isinstance(inner, dict) else config


def tokenizer_kind(folder: Path) -> TokenizerKind:
    sp, fast = (folder / "tokenizer.model").is_file(), (folder / "tokenizer.json").is_file()
    return "both" if sp and fast else "sentencepiece-only" if sp else "tokenizer.json" if fast else "none"


def special_tokens(folder: Path) -> list[str]:
    """Added and special tokens the tokenizer files declare (in file order, once each)."""
    found: list[str] = []

    def add(value: Any) -> None:
        if isinstance(value, dict):
            value = value.get("content")
        if isinstance(value, str) and value and value not in found:
            found.append(value)

    tok_config = read_json(folder / "tokenizer_config.json") or {}
    for entry in (tok_config.get("added_tokens_decoder") or {}).values():
        add(entry)
    for key in ("bos_token", "eos_token", "unk_token", "pad_token"):
        add(tok_config.get(key))
    for value in tok_config.get("additional_special_tokens") or []:
        add(value)
    for name in (read_json(folder / "added_tokens.json") or {}):
        add(name)
    for key, value in (read_json(folder / "special_tokens_map.json") or {}).items():
        for item in value if isinstance(value, list) else [value]:
            add(item)
    tokenizer_json = folder / "tokenizer.json"
    if tokenizer_json.is_file() and tokenizer_json.stat().st_size < 64 * 1024**2:
        for entry in (read_json(tokenizer_json) or {}).get("added_tokens") or []:
            add(entry)
    return found


def has_chat_template(folder: Path) -> bool:
    tok_config = read_json(folder / "tokenizer_config.json") or {}
    if tok_config.get("chat_template"):
        return True
    return (folder / "chat_template.jinja").is_file() or bool(
        (read_json(folder / "chat_template.json") or {}).get("chat_template"))



def readme_title(folder: Path) -> str | None:
    try:
        with (folder / "README.md").open(encoding="utf-8", errors="replace") as f:
            head = f.read(8192)
    except OSError:
        return None
    for line in head.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return None

