"""Shared checks for request schemas (label names); each task in ``tasks/`` turns its own
schema shapes into label objects with these."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from ..errors import InvalidRequest

_SEPARATORS = re.compile(r"[\s_\-]+")


class SchemaError(InvalidRequest):
    """The request's schema cannot be understood (answered with a 422)."""


def clean_name(name: Any, what: str) -> str:
    """``name`` stripped; a SchemaError unless it is a non-empty string."""
    if not isinstance(name, str) or not name.strip():
        raise SchemaError(f"{what} names must be non-empty strings, got {name!r}")
    return name.strip()


def label_key(label: str) -> str:
    """What the output parser matches a label by: Unicode NFC, case-folded, runs of
    spaces / ``_`` / ``-`` as one space (``First_Name`` = ``first name`` = ``first-name``)."""
    return _SEPARATORS.sub(" ", unicodedata.normalize("NFC", label).strip().casefold())


def check_unique(names: list[str], what: str) -> None:
    """SchemaError naming both spellings when two names are one label to the parser (its
    answers could not be told apart: records would be mislabelled)."""
    seen: dict[str, str] = {}
    for n in names:
        key = label_key(n)
        if key in seen:
            first = seen[key]
            if first == n:
                raise SchemaError(f"duplicate {what} {n!r} in schema")
            raise SchemaError(
                f"duplicate {what}: {first!r} and {n!r} are the same label to the output parser (it ignores "
                "case, '_', '-', spaces and Unicode normalisation): rename or merge them")
        seen[key] = n


def check_nonempty(schema: Any, what: str) -> None:
    if not schema:
        raise SchemaError(f"schema must name at least one {what}")
