"""Waiting on a condition in tests: poll it until it holds, with a deadline, instead of
sleeping a guessed time or writing the loop again."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, interval: float = 0.02,
               what: str | Callable[[], str] = "") -> T:
    """``predicate()`` every ``interval`` seconds until it returns something truthy, which is
    returned. After ``timeout`` seconds: an AssertionError naming ``what`` (a callable is asked
    then, for the state at the end). The predicate may raise to end the wait at once."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() >= deadline:
            said = what() if callable(what) else what or getattr(predicate, "__name__", repr(predicate))
            raise AssertionError(f"not within {timeout:g}s: {said}")
        time.sleep(interval)
    return value
