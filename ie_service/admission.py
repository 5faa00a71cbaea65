"""What one request may put into the engine, counted in engine prompts.

The HTTP guard admits a request into a shared :class:`Admission` (one slot: /generate is
one prompt) and binds its :class:`RequestBudget` to the request's context. Code that fans
a request out into several prompts (extraction: chunks × label groups × texts) claims
them with :func:`reserve_prompts` before any reaches the engine, so the outstanding limit
counts engine prompts, not HTTP requests, and one request cannot hold the engine:

* more labels than :data:`MAX_LABELS_PER_REQUEST` → 422 (:class:`TooManyLabels`);
* more prompts than the per-request cap → 413 (:class:`TooManyPrompts`), the limit named;
* not enough room left under ``max_outstanding`` → 429 (:class:`QueueFull`).

Issue 20: the prompt cap is checked before chunking too (:meth:`RequestBudget.expect`, from
the text's token count: the fewest chunks it can take); a request's prompts go to the
engine at most :data:`PROMPTS_IN_FLIGHT_PER_REQUEST` at a time (:func:`prompt_slot`) and
with a priority that puts small requests first (:func:`current_priority`); and they
succeed or fail together (:func:`all_or_none`: on the first failure the others are
cancelled, which aborts them in the engine, and awaited, so they stay counted until they
have really ended).

Also here: :func:`find_lone_surrogate`, the body check that keeps ``"\\ud800"`` (valid
JSON, not valid Unicode) from reaching tokenizers and response encoders (it was a 500).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from contextvars import ContextVar, Token
from typing import TypeVar

from .errors import InvalidRequest, QueueFull, TooManyPrompts

MAX_LABELS_PER_REQUEST = 256
MAX_PROMPTS_PER_REQUEST = 64
PROMPTS_IN_FLIGHT_PER_REQUEST = 8  # the rest of a big request waits here, not in the engine
MAX_PRIORITY = 1_000_000
T = TypeVar("T")


class TooManyLabels(InvalidRequest):
    """The schema names more labels than one request may (422)."""


def check_label_count(n: int, limit: int = MAX_LABELS_PER_REQUEST) -> None:
    if n > limit:
        raise TooManyLabels(f"schema has {n} labels; at most {limit} per request")


class RequestBudget:
    """The prompts one request holds in the :class:`Admission`."""

    def __init__(self, admission: "Admission", cap: int) -> None:
        self.admission = admission
        self.cap = cap
        self.held = 1  # the slot taken when the request was admitted
        self.claimed = 0
        self.refused: TooManyPrompts | QueueFull | None = None
        self.expected = 0  # the fewest prompts the request's texts can take (before chunking)
        self.in_flight = asyncio.Semaphore(PROMPTS_IN_FLIGHT_PER_REQUEST)

    def _too_many(self, n: int, what: str) -> TooManyPrompts:
        self.admission.refused("prompts")
        self.refused = TooManyPrompts(
            f"this request needs more than {self.cap} engine prompts ({n} {what}: "
            f"texts x chunks x label groups); at most {self.cap} per request. Send fewer "
            "labels or texts, raise labels_per_prompt, or split the request")
        return self.refused

    def expect(self, n: int) -> None:
        """Before chunking: a text will take at least ``n`` prompts (413 over the cap)."""
        if self.refused is not None:
            raise type(self.refused)(str(self.refused))
        self.expected += n
        if self.expected > self.cap:
            raise self._too_many(self.expected, "at least, from the texts' token counts")

    @property
    def priority(self) -> int:
        """vLLM priority of this request's prompts (lower runs first): one-prompt requests
        0, bigger ones their prompt count."""
        return min(MAX_PRIORITY, max(self.claimed, self.expected, 1) - 1)

    def claim(self, n: int) -> None:
        """Add ``n`` prompts to this request; take more slots when it passes what it holds."""
        if self.refused is not None:  # a sibling text already failed the request
            raise type(self.refused)(str(self.refused))
        self.claimed += n
        if self.claimed > self.cap:
            raise self._too_many(self.claimed, "so far")
        extra = self.claimed - self.held
        if extra > 0:
            try:
                self.admission.take(extra)
            except QueueFull as exc:
                self.admission.refused("queue")
                self.refused = exc
                raise
            self.held += extra

    def close(self) -> None:
        self.admission.give(self.held)
        self.held = 0


class Admission:
    """Engine prompts in flight or waiting, bounded by ``max_outstanding``."""

    def __init__(self, max_outstanding: int, max_prompts_per_request: int = MAX_PROMPTS_PER_REQUEST,
                 on_change: Callable[[int], None] | None = None,
                 on_refused: Callable[[str], None] | None = None) -> None:
        self.max_outstanding = max_outstanding
        self.per_request = max(1, min(max_prompts_per_request, max_outstanding))
        self.outstanding = 0
        self._on_change = on_change
        self._on_refused = on_refused

    def refused(self, reason: str) -> None:
        """A request's fan-out was refused (``queue``: no room, ``prompts``: over the cap)."""
        if self._on_refused is not None:
            self._on_refused(reason)

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self.outstanding)

    def take(self, n: int) -> None:
        if self.outstanding + n > self.max_outstanding:
            raise QueueFull(f"server busy: {self.outstanding} engine prompts outstanding "
                            f"(limit {self.max_outstanding}); retry later")
        self.outstanding += n
        self._changed()

    def give(self, n: int) -> None:
        self.outstanding = max(0, self.outstanding - n)
        self._changed()

    def enter(self) -> RequestBudget:
        """Admit one request (one prompt); raises :class:`QueueFull`."""
        self.take(1)
        return RequestBudget(self, self.per_request)


_CURRENT: ContextVar[RequestBudget | None] = ContextVar("ie_request_budget", default=None)


def bind(budget: RequestBudget) -> Token:
    """Make ``budget`` the current request's (tasks started from here inherit it)."""
    return _CURRENT.set(budget)


def unbind(token: Token) -> None:
    _CURRENT.reset(token)


@asynccontextmanager
async def reserve_prompts(n: int) -> AsyncIterator[None]:
    """Claim ``n`` engine prompts for the current request before sending them. Outside a
    request (a library caller) there is no budget and nothing is counted.

    The texts of a batch request claim concurrently; after claiming, each yields once so
    that every sibling has claimed before any prompt is sent: when the batch as a whole is
    over the cap, all of them refuse and the engine sees none of it."""
    budget = _CURRENT.get()
    if budget is None:
        yield
        return
    budget.claim(n)
    await asyncio.sleep(0)
    if budget.refused is not None:
        raise type(budget.refused)(str(budget.refused))
    yield


def current_budget() -> RequestBudget | None:
    return _CURRENT.get()


def expect_prompts(n: int) -> None:
    """Before chunking: the current request's texts take at least ``n`` more prompts."""
    budget = _CURRENT.get()
    if budget is not None:
        budget.expect(n)


def current_priority() -> int:
    """The engine priority of the current request's prompts (0 outside a request)."""
    budget = _CURRENT.get()
    return 0 if budget is None else budget.priority


@asynccontextmanager
async def prompt_slot() -> AsyncIterator[None]:
    """Hold one of the current request's :data:`PROMPTS_IN_FLIGHT_PER_REQUEST` engine slots:
    a big request's prompts queue here, so other clients' prompts interleave with them."""
    budget = _CURRENT.get()
    if budget is None:
        yield
        return
    async with budget.in_flight:
        yield


async def all_or_none(work: Iterable[Awaitable[T]]) -> list[T]:
    """Await every item concurrently; on the first failure cancel the others (a cancelled
    generation is aborted in the engine), wait until they have ended, and raise it. Cancelled
    from outside, it cancels and awaits them too."""
    tasks = [asyncio.ensure_future(w) for w in work]
    if not tasks:
        return []
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except asyncio.CancelledError:
        await _cancel_all(tasks)
        raise
    failed = next((t for t in tasks if t.done() and not t.cancelled() and t.exception() is not None), None)
    if failed is not None:
        await _cancel_all(tasks)
        raise failed.exception()
    return [t.result() for t in tasks]


async def _cancel_all(tasks: list[asyncio.Future]) -> None:
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# --- request bodies -------------------------------------------------------------------------

_ESCAPE = re.compile(rb"\\(?:u([0-9a-fA-F]{4})|.)", re.S)


def find_lone_surrogate(body: bytes) -> tuple[str, int] | None:
    """``(escape, byte offset)`` of the first ``\\uD800``-``\\uDFFF`` escape in a JSON body
    that is not half of a surrogate pair, else None. (Raw UTF-8 cannot carry a surrogate:
    such bytes already fail JSON decoding.)"""
    if b"\\u" not in body:
        return None
    pending: tuple[str, int, int] | None = None  # escape, start, end of a high surrogate
    for m in _ESCAPE.finditer(body):
        hexs = m.group(1)
        cp = int(hexs, 16) if hexs is not None else None
        if pending is not None:
            if cp is not None and m.start() == pending[2] and 0xDC00 <= cp <= 0xDFFF:
                pending = None
                continue
            return pending[0], pending[1]
        if cp is None:
            continue
        if 0xD800 <= cp <= 0xDBFF:
            pending = ("\\u" + hexs.decode(), m.start(), m.end())
        elif 0xDC00 <= cp <= 0xDFFF:
            return "\\u" + hexs.decode(), m.start()
    return (pending[0], pending[1]) if pending is not None else None


MAX_BODY_DEPTH = 128  # JSON nesting of a whole body (a client's json_schema may nest 64)
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


def json_nesting_over(body: bytes, limit: int = MAX_BODY_DEPTH) -> bool:
    """True when the JSON ``body`` nests arrays/objects more than ``limit`` deep (or has more
    than ``limit`` brackets that do not match). Checked before any JSON parser sees it: the
    parsers recurse, and 975 levels were a 500 ``RecursionError``. Cost: one pass per level,
    each in C (strings removed first)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKET)
    for _ in range(limit):
        reduced = brackets.replace(b"[]", b"").replace(b"{}", b"")
        if not reduced:
            return False
        if reduced == brackets:  # unmatched brackets: malformed; harmless unless many
            return len(reduced) > limit
        brackets = reduced
    return bool(brackets)
