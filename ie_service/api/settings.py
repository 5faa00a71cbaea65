"""Service limits and access control (everything the HTTP layer enforces)."""

from __future__ import annotations

import os

from pydantic import BaseModel, Field

API_KEYS_ENV = "IE_SERVICE_API_KEYS"


class ServiceSettings(BaseModel):
    api_keys: list[str] = Field(default_factory=list,
                                description="if any, every route needs one (Bearer or X-API-Key)")
    max_request_bytes: int = Field(2 * 1024 * 1024, ge=1024)
    max_outstanding: int = Field(256, ge=1, description="engine requests in flight + waiting; beyond: 429")
    request_timeout_s: float = Field(600.0, gt=0, description="engine routes; beyond: 504, request aborted")

    @staticmethod
    def keys_from_env() -> list[str]:
        return [k.strip() for k in os.environ.get(API_KEYS_ENV, "").split(",") if k.strip()]
