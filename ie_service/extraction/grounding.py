"""Locate model-produced strings in the input text (character offsets, end exclusive)."""

from __future__ import annotations

import re

MAX_PATTERN_CHARS = 300


def locate(span: str, text: str, start: int = 0) -> tuple[int, int] | None:
    """Find ``span`` in ``text`` at or after ``start``: exactly, then ignoring case, then
    ignoring whitespace differences ("U.S ." vs "U.S."; tokenised corpora). None if absent."""
    span = span.strip()
    if not span or len(span) > MAX_PATTERN_CHARS:
        return None
    i = text.find(span, start)
    if i >= 0:
        return i, i + len(span)
    i = text.lower().find(span.lower(), start)
    if i >= 0 and len(text.lower()) == len(text):  # lower() kept offsets aligned
        return i, i + len(span)
    chars = [re.escape(c) for c in span if not c.isspace()]
    if not chars:
        return None
    m = re.compile(r"\s*".join(chars), re.IGNORECASE).search(text, start)
    return (m.start(), m.end()) if m else None
