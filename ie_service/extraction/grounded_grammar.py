"""Grounded decoding: a grammar whose span values can only be runs of the chunk's own text.

The chunk is cut into *units*: each CJK character is one unit, a run of other word
characters (letters, digits, ``_``) is one, every other non-space character is one
(punctuation, symbols, emoji). A span is a contiguous run of units with the text's own
whitespace between them, starting and ending on a unit (never on whitespace).

The set of such runs is the set of substrings of the symbol sequence ``u1 w1 u2 w2 ...``
(units and the whitespace runs between them) that start and end with a unit. A suffix
automaton over that sequence accepts exactly its substrings with at most ``2n`` states
and ``3n`` transitions; every state's strings end with the same symbol, so "ends on a
unit" is a property of the state. Each state becomes one EBNF rule whose alternatives
emit a symbol's JSON-escaped text and go on to the next state.

The record structure (labels, bounded lists, EE roles) is written by each task in the
same EBNF, referring to the rule ``span`` (a quoted span) — see ``Task.answer_grammar`` —
in the model's answer shape (``constraints``: ``full`` or ``compact``,
:func:`answer_object_rules`).
Answers use compact separators (``,`` and ``:``), as vLLM's JSON-schema grammars and the
adapter's training answers do.

Pure Python, no vllm: the grammar text goes to vLLM as ``StructuredOutputsParams(grammar=)``
and xgrammar caches what it compiled by that text (the text is cached here per chunk
and label group, so batch and retry traffic compile nothing again).
"""

from __future__ import annotations

import re
from functools import lru_cache

from .chunking import Chunk, chunk_text

# Chunks longer than this keep free-string spans: grammar compilation grows with the
# chunk (measured in benchmarks/bench_grounded_compile.py, see docs/pending/grounded.md).
MAX_GROUNDED_CHARS = 2000

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff"
UNIT = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|\S")
SPAN_RULE = "span"


def units(text: str) -> list[tuple[int, int]]:
    """(start, end) of every unit of ``text``."""
    return [m.span() for m in UNIT.finditer(text)]


def symbols(text: str) -> list[tuple[str, bool]]:
    """The symbol sequence: (text, is_unit) for units and the whitespace runs between them."""
    out: list[tuple[str, bool]] = []
    prev = None
    for start, end in units(text):
        if prev is not None and start > prev:
            out.append((text[prev:start], False))
        out.append((text[start:end], True))
        prev = end
    return out


def json_escape(s: str) -> str:
    """The body of a JSON string literal for ``s`` (without quotes), one fixed spelling:
    ``\\"``, ``\\\\``, control characters and lone surrogates as ``\\uXXXX``, everything
    else (non-BMP included) as is."""
    out = []
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif o < 0x20 or o == 0x7F or 0xD800 <= o <= 0xDFFF:
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    return "".join(out)


def ebnf_literal(s: str) -> str:
    """``s`` as an xgrammar EBNF string literal."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def json_literal(s: str) -> str:
    """An EBNF literal emitting ``s`` as a quoted JSON string (label names, keys)."""
    return ebnf_literal('"' + json_escape(s) + '"')


class SuffixAutomaton:
    """The suffix automaton of a sequence of hashable symbols (state 0 is the start)."""

    def __init__(self, seq: list) -> None:
        self.next: list[dict] = [{}]
        self.link = [-1]
        self.length = [0]
        self.last_symbol: list = [None]  # the symbol every string of the state ends with
        last = 0
        for sym in seq:
            cur = self._new(self.length[last] + 1, sym)
            p = last
            while p != -1 and sym not in self.next[p]:
                self.next[p][sym] = cur
                p = self.link[p]
            if p == -1:
                self.link[cur] = 0
            else:
                q = self.next[p][sym]
                if self.length[p] + 1 == self.length[q]:
                    self.link[cur] = q
                else:
                    clone = self._new(self.length[p] + 1, sym)
                    self.next[clone] = dict(self.next[q])
                    self.link[clone] = self.link[q]
                    while p != -1 and self.next[p].get(sym) == q:
                        self.next[p][sym] = clone
                        p = self.link[p]
                    self.link[q] = self.link[cur] = clone
            last = cur

    def _new(self, length: int, sym) -> int:
        self.next.append({})
        self.link.append(-1)
        self.length.append(length)
        self.last_symbol.append(sym)
        return len(self.next) - 1


@lru_cache(maxsize=256)
def span_rules(text: str) -> str:
    """EBNF rules defining ``span``: a JSON string whose value is a run of ``text``'s
    units (at least one). Rules are named ``g<state>``."""
    seq = symbols(text)
    if not seq:
        return f'{SPAN_RULE} ::= "\\"" "\\""'  # nothing to quote: only an impossible span
    sam = SuffixAutomaton(seq)
    lines = [f'{SPAN_RULE} ::= "\\"" g0 "\\""']
    for state in _reachable(sam):
        trans = sam.next[state]
        alts = []
        if state and sam.last_symbol[state][1]:  # ends on a unit: the span may stop here
            alts.append('""')
        for (sym, is_unit), dst in trans.items():
            if state == 0 and not is_unit:
                continue  # a span never starts with whitespace
            alts.append(f"{ebnf_literal(json_escape(sym))} g{dst}")
        lines.append(f"g{state} ::= " + " | ".join(f"({a})" for a in alts))
    return "\n".join(lines)


def _reachable(sam: SuffixAutomaton) -> list[int]:
    """States reachable from the start without a leading whitespace symbol, in order."""
    seen = {0}
    todo = [dst for (_, is_unit), dst in sam.next[0].items() if is_unit]
    seen.update(todo)
    while todo:
        for dst in sam.next[todo.pop()].values():
            if dst not in seen:
                seen.add(dst)
                todo.append(dst)
    return sorted(seen)


def bounded_list(item: str, max_items: int, min_items: int = 0) -> str:
    """EBNF for a JSON array of ``min_items``..``max_items`` ``item``s (compact)."""
    rest = f'("," {item}){{{max(min_items - 1, 0)}, {max_items - 1}}}'
    full = f'"[" {item} {rest} "]"'
    return full if min_items > 0 else f'("[]" | {full})'


def strict_object_rule(fields: list[tuple[str, str]]) -> str:
    """EBNF for a JSON object with exactly these (key, value rule) fields, in order."""
    if not fields:
        return '"{}"'
    parts = [f'{json_literal(k)} ":" {v}' for k, v in fields]
    return '"{" ' + ' "," '.join(parts) + ' "}"'


def answer_object_rules(name: str, fields: list[tuple[str, str]], shape: str = "full") -> list[str]:
    """EBNF rules defining ``name``, the answer's object of ``fields`` (key, value rule).
    ``full``: every key, in order (:func:`strict_object_rule`). ``compact``: any subset of
    the keys, in the same order, no key twice; ``{}`` when none. ``name_<i>`` is "a
    non-empty run of fields i.. in order": ``f_i ("," name_<i+1>)? | name_<i+1>``."""
    if shape != "compact" or not fields:
        return [f"{name} ::= " + strict_object_rule(fields)]
    lines = [f'{name} ::= "{{}}" | "{{" {name}_0 "}}"']
    last = len(fields) - 1
    for i, (key, value) in enumerate(fields):
        field = f'{json_literal(key)} ":" {value}'
        if i == last:
            lines.append(f"{name}_{i} ::= {field}")
        else:
            lines.append(f'{name}_{i} ::= ({field} ("," {name}_{i + 1})?) | {name}_{i + 1}')
    return lines


@lru_cache(maxsize=1024)
def grounded_grammar(record_rules: str, text: str) -> str:
    """The whole grammar for one chunk and label group: the task's record rules (which
    define ``root`` and use ``span``) plus the chunk's span rules."""
    return record_rules + "\n" + span_rules(text)


def grounded_chunks(chunks: list[Chunk], limit: int = MAX_GROUNDED_CHARS) -> list[Chunk]:
    """``chunks`` with any longer than ``limit`` characters cut at sentences (else at
    characters) into pieces of at most ``limit``, offsets kept."""
    out: list[Chunk] = []
    for chunk in chunks:
        if len(chunk.text) <= limit:
            out.append(chunk)
            continue
        out += [Chunk(c.text, chunk.offset + c.offset) for c in chunk_text(chunk.text, limit, len)]
    return out


def span_ok(value: str, text: str) -> bool:
    """Whether ``value`` is a run of ``text``'s units, starting and ending on units (what
    the grammar allows; tests and the engine test check answers with it)."""
    if not value:
        return False
    bounds = units(text)
    starts = {s for s, _ in bounds}
    ends = {e for _, e in bounds}
    i = text.find(value)
    while i >= 0:
        if i in starts and i + len(value) in ends:
            return True
        i = text.find(value, i + 1)
    return False
