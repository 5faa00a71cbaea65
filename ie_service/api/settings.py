"""Service limits and access control (everything the HTTP layer enforces)."""

from __future__ import annotations

import os

from pydantic import BaseModel, Field, field_validator

from ..errors import UserInputError

API_KEYS_ENV = "IE_SERVICE_API_KEYS"


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot be an API key (None: it can). Blank would open every route; spaces
    around it never arrive (HTTP trims header values); a comma cannot be in
    ``$IE_SERVICE_API_KEYS``, which separates keys with it. The key is never echoed."""
    if not key.strip():
        return "an API key must not be empty or only spaces"
    if key != key.strip():
        return "an API key must not start or end with spaces"
    if "," in key:
        return "an API key must not hold a comma (give one key per --api-key)"
    return None


class ServiceSettings(BaseModel):
    api_keys: list[str] = Field(default_factory=list,
                                description="if any, every route needs one (Bearer or X-API-Key)")
    max_request_bytes: int = Field(2 * 1024 * 1024, ge=1024)
    max_outstanding: int = Field(256, ge=1, description="engine requests in flight + waiting; beyond: 429")
    request_timeout_s: float = Field(600.0, gt=0, description="engine routes; beyond: 504, request aborted")

    @field_validator("api_keys")
    @classmethod
    def _usable_keys(cls, keys: list[str]) -> list[str]:
        for key in keys:
            if problem := key_problem(key):
                raise ValueError(problem)
        return keys

    @staticmethod
    def keys_from_env() -> list[str]:
        """The comma-separated keys of ``$IE_SERVICE_API_KEYS`` (unset or empty: none). A
        blank entry (``" "``, ``",,"``, ``"a, ,b"``) is a :class:`UserInputError`: the keys
        were asked for, and silently dropping them would leave routes open."""
        raw = os.environ.get(API_KEYS_ENV, "")
        if raw == "":
            return []
        keys = [k.strip() for k in raw.split(",")]
        blank = [n for n, k in enumerate(keys, 1) if not k]
        if blank:  # the keys themselves are never echoed
            raise UserInputError(f"${API_KEYS_ENV}: entry {blank[0]} of {len(keys)} is blank (keys are "
                                 "comma-separated, none empty); unset it or give only keys")
        return keys
