"""Errors of one HTTP request, raised below the API (engine, extraction, admission) and
answered with a status of their own (see :data:`STATUS`; ``api/errors.py`` maps them).
No vllm import here."""

from __future__ import annotations


class InvalidRequest(ValueError):
    """Input the engine cannot accept (422): parameters out of vLLM's range, a JSON
    schema that does not compile, ..."""


class InvalidJsonSchema(InvalidRequest):
    """``json_schema`` is invalid, too large, or takes too long to compile (422)."""


class TooManyPrompts(InvalidRequest):
    """One request would put more prompts into the engine than one request may (413)."""


class QueueFull(RuntimeError):
    """The engine has as much outstanding work as the service allows (429, Retry-After)."""

    retry_after_s = 1


class GenerationFailed(RuntimeError):
    """The engine is alive but failed this one generation (500, with the reason)."""


STATUS: dict[type[Exception], int] = {
    TooManyPrompts: 413,
    InvalidJsonSchema: 422,
    InvalidRequest: 422,
    QueueFull: 429,
    GenerationFailed: 500,
}
