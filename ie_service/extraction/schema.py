"""Shared checks for request schemas (label names); each task in ``tasks/`` turns its own
schema shapes into label objects with these."""

from __future__ import annotations

from typing import Any


class SchemaError(ValueError):
    """The request's schema cannot be understood (answered with a 422)."""


def clean_name(name: Any, what: str) -> str:
    """``name`` stripped; a SchemaError unless it is a non-empty string."""
    if not isinstance(name, str) or not name.strip():
        raise SchemaError(f"{what} names must be non-empty strings, got {name!r}")
    return name.strip()


def check_unique(names: list[str], what: str) -> None:
    seen = set()
    for n in names:
        if n.lower() in seen:
            raise SchemaError(f"duplicate {what} {n!r} in schema")
        seen.add(n.lower())


def check_nonempty(schema: Any, what: str) -> None:
    if not schema:
        raise SchemaError(f"schema must name at least one {what}")
