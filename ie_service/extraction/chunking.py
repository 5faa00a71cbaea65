"""Split long text into sentence-aligned chunks that fit a token budget.

Cost is linear in the text (issue 20): each character is tokenized a bounded number of
times (the whole text once, blocks of sentences once, a piece that is still too long a few
times while it is halved, every final chunk once to verify it). The old greedy packing
tokenized the growing merged string after every sentence: ``"x\\n" * 55000`` took about a
minute, on the event loop.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|(?<=[。！？；])|\n+")
BLOCK_SHARE = 8  # sentences are tokenized in blocks of about budget / 8 characters


@dataclass(frozen=True)
class Chunk:
    text: str
    offset: int  # where ``text`` starts in the original

    @property
    def end(self) -> int:
        return self.offset + len(self.text)


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


def min_chunks(tokens: int, budget: int) -> int:
    """The fewest chunks a text of ``tokens`` tokens can take (admission checks it before
    chunking)."""
    return max(1, -(-tokens // max(budget, 1)))


def _split_long(piece: Chunk, n: int, budget: int, count: Callable[[str], int]) -> list[tuple[Chunk, int]]:
    """Cut a piece of ``n`` > ``budget`` tokens at character positions, each part counted
    and halved again while it is over the budget (characters that are several tokens each,
    like emoji, are denser than the average: ``"a"*60000 + "😀"*6000``)."""
    out: list[tuple[Chunk, int]] = []
    size = max(1, int(len(piece.text) * budget / max(n, 1) * 0.9))
    todo = [Chunk(piece.text[i:i + size], piece.offset + i) for i in range(0, len(piece.text), size)]
    todo.reverse()
    while todo:
        part = todo.pop()
        m = count(part.text)
        if m <= budget or len(part.text) == 1:
            out.append((part, m))
            continue
        half = len(part.text) // 2
        todo += [Chunk(part.text[half:], part.offset + half), Chunk(part.text[:half], part.offset)]
    return out


def _blocks(units: list[Chunk], chars: int) -> list[list[Chunk]]:
    """Consecutive sentences grouped to about ``chars`` characters (a token is at least one
    character, so a block is a small share of the budget: packing loses little)."""
    out: list[list[Chunk]] = []
    for unit in units:
        if out and out[-1][-1].end - out[-1][0].offset + len(unit.text) <= chars:
            out[-1].append(unit)
        else:
            out.append([unit])
    return out


def _pieces(text: str, budget: int, count: Callable[[str], int]) -> list[tuple[Chunk, int]]:
    """Sentence-aligned pieces of at most ``budget`` tokens each, with their counts."""
    pieces: list[tuple[Chunk, int]] = []
    for block in _blocks(sentences(text), max(16, budget // BLOCK_SHARE)):
        whole = Chunk(text[block[0].offset:block[-1].end], block[0].offset)
        n = count(whole.text)
        if n <= budget:
            pieces.append((whole, n))
            continue
        for unit in block:
            m = n if len(block) == 1 else count(unit.text)
            pieces += [(unit, m)] if m <= budget else _split_long(unit, m, budget, count)
    return pieces


def _pack(text: str, pieces: list[tuple[Chunk, int]], budget: int) -> list[list[tuple[Chunk, int]]]:
    """Greedy packing by the sum of the pieces' counts (plus the gap between them, at most a
    token per byte)."""
    groups: list[list[tuple[Chunk, int]]] = []
    total = 0
    for piece, n in pieces:
        if groups:
            gap = len(text[groups[-1][-1][0].end:piece.offset].encode("utf-8"))
            if total + gap + n <= budget:
                groups[-1].append((piece, n))
                total += gap + n
                continue
        groups.append([(piece, n)])
        total = n
    return groups


def chunk_text(text: str, budget: int, count: Callable[[str], int]) -> list[Chunk]:
    """Packing of whole sentences into chunks of at most ``budget`` tokens, each verified
    by counting it. A text that fits is one chunk, unchanged."""
    if count(text) <= budget:
        return [Chunk(text, 0)]
    chunks: list[Chunk] = []
    todo = _pack(text, _pieces(text, budget, count), budget)
    todo.reverse()
    while todo:
        group = todo.pop()
        chunk = Chunk(text[group[0][0].offset:group[-1][0].end], group[0][0].offset)
        if len(group) == 1 or count(chunk.text) <= budget:
            chunks.append(chunk)
            continue
        # tokens merged across a boundary differently than the sum said: split the group
        half = len(group) // 2
        todo += [group[half:], group[:half]]
    return chunks
