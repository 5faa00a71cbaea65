"""Find a JSON (or Python-literal) value inside arbitrary model output. Never raises."""

from __future__ import annotations

import ast
import json
import re
from typing import Any

MAX_STARTS = 64  # candidate opening brackets tried before giving up
MAX_CHARS = 50_000
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)
_CLOSE = {"{": "}", "[": "]"}


def _balanced_end(text: str, start: int) -> int | None:
    """Index after the bracket closing ``text[start]``, honouring quoted strings."""
    stack: list[str] = []
    quote: str | None = None
    escaped = False
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
            continue
        if ch in "\"'":
            quote = ch
        elif ch in _CLOSE:
            stack.append(_CLOSE[ch])
        elif ch in "}]":
            if not stack or stack.pop() != ch:
                return None
            if not stack:
                return i + 1
    return None


def _loads(candidate: str) -> Any | None:
    try:
        return json.loads(candidate)
    except (ValueError, RecursionError):
        pass
    try:  # single-quoted lists/dicts, as KnowLM's prompts ask for
        value = ast.literal_eval(candidate)
    except Exception:  # literal_eval raises many kinds on junk; junk is expected here
        return None
    return value if isinstance(value, (dict, list)) else None


def find_json(text: str) -> dict | list | None:
    """The first object or list in ``text``: the whole string, a fenced block, or the first
    balanced ``{...}``/``[...]`` that parses (JSON first, then Python literal)."""
    if not isinstance(text, str):
        return None
    text = text[:MAX_CHARS]
    stripped = text.strip()
    whole = _loads(stripped) if stripped[:1] in ("{", "[") else None
    if isinstance(whole, (dict, list)):
        return whole
    for block in _FENCE.findall(text):
        value = _loads(block.strip())
        if value is not None:
            return value
    tried = 0
    for match in re.finditer(r"[\[{]", text):
        if tried >= MAX_STARTS:
            break
        tried += 1
        end = _balanced_end(text, match.start())
        if end is None:
            continue
        value = _loads(text[match.start():end])
        if value is not None:
            return value
    return None
