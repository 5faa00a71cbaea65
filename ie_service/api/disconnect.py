"""Abort work when the HTTP client goes away."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import Request

from ..errors import ClientDisconnected

T = TypeVar("T")
POLL_SECONDS = 0.2


async def _wait_disconnect(request: Request) -> None:
    while not await request.is_disconnected():
        await asyncio.sleep(POLL_SECONDS)


async def cancel_on_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``; if the client disconnects first, cancel it (which aborts the
    vLLM request) and raise :class:`ClientDisconnected`."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_disconnect(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        await _cancelled(task)
        raise
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    await _cancelled(task)
    raise ClientDisconnected()


async def _cancelled(task: asyncio.Future) -> None:
    """Cancel ``task`` and wait until it has ended (its prompts stay counted until then)."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
