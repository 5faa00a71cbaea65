"""Split long text into sentence-aligned chunks that fit a token budget."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|(?<=[。！？；])|\n+")


@dataclass(frozen=True)
class Chunk:
    text: str
    offset: int  # where ``text`` starts in the original


def sentences(text: str) -> list[Chunk]:
    """Sentences with their offsets (whitespace between them dropped)."""
    out, pos = [], 0
    for m in _SENTENCE_END.finditer(text):
        if m.end() == 0:
            continue
        piece = text[pos:m.start()]
        if piece.strip():
            out.append(Chunk(piece, pos))
        pos = m.end()
    if text[pos:].strip():
        out.append(Chunk(text[pos:], pos))
    return out


def _split_long(sentence: Chunk, budget: int, count: Callable[[str], int]) -> list[Chunk]:
    """Cut one over-long sentence at character positions proportional to its tokens."""
    n = count(sentence.text)
    size = max(1, int(len(sentence.text) * budget / max(n, 1) * 0.9))
    pieces = []
    for i in range(0, len(sentence.text), size):
        pieces.append(Chunk(sentence.text[i:i + size], sentence.offset + i))
    return pieces


def chunk_text(text: str, budget: int, count: Callable[[str], int]) -> list[Chunk]:
    """Greedy packing of whole sentences into chunks of at most ``budget`` tokens.
    A text that fits is one chunk, unchanged."""
    if count(text) <= budget:
        return [Chunk(text, 0)]
    units: list[Chunk] = []
    for s in sentences(text):
        units += [s] if count(s.text) <= budget else _split_long(s, budget, count)
    chunks: list[Chunk] = []
    current: Chunk | None = None
    for unit in units:
        if current is not None:
            merged = text[current.offset:unit.offset + len(unit.text)]
            if count(merged) <= budget:
                current = Chunk(merged, current.offset)
                continue
            chunks.append(current)
        current = unit
    if current is not None:
        chunks.append(current)
    return chunks
