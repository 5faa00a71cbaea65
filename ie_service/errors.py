"""Every failure a client or a user is told about: one base, :class:`ServiceError`, that
carries its HTTP status, the command line's exit code and, where a retry can succeed, the
seconds to wait; and the one writer of error bodies.

Code raises the class that says what went wrong and translates nothing: the HTTP API answers
``{"error": message}`` with the status and a ``Retry-After`` (``api/errors.py``), the OpenAI
routes answer their own refusals in OpenAI's shape (:func:`error_body`), the command line
prints one ``error: message`` line and exits with the code (``cli/failures.py``).

=====================  ======  ====  ===========  =====================================
class                  status  exit  Retry-After  what
=====================  ======  ====  ===========  =====================================
ServiceError           500     1                  the base
UserInputError         422     2                  the caller fixes the input
BadInputFile           422     2                  ``FILE[:LINE]: problem``
InvalidRequest         422     2                  a request the engine cannot accept
InvalidJsonSchema      422     2                  ``json_schema`` refused
TooManyPrompts         413     2                  one request, too many engine prompts
PromptTooLong          400     2                  prompt + max_tokens over the context
RuntimeFailure         500     1                  the input was fine, the work failed
GenerationFailed       500     1                  the engine failed this one generation
QueueFull              429     1     1 s          the outstanding limit is reached
Unavailable            503     1     5 s          the engine cannot answer now
ClientDisconnected     499     1                  the client went away
=====================  ======  ====  ===========  =====================================

Other modules narrow these (``SchemaError`` is an :class:`InvalidRequest`, ``GrammarBusy``
an :class:`Unavailable`) without a status of their own. Standard library only (the response
helper imports Starlette when called).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from starlette.responses import JSONResponse

EXIT_FAILURE = 1
EXIT_USAGE = 2
CLIENT_CLOSED = 499  # nginx's code: the client went away


class ServiceError(Exception):
    """The base of every failure reported to a client or user, never as a traceback."""

    status: ClassVar[int] = 500
    exit_code: ClassVar[int] = EXIT_FAILURE
    retry_after: ClassVar[float | None] = None


class UserInputError(ServiceError):
    """Input the caller fixes (a file, a flag, a request field): exit code 2, HTTP 422."""

    status = 422
    exit_code = EXIT_USAGE


class RuntimeFailure(ServiceError):
    """The input was fine but the work failed (an unreachable service, documents that
    failed): exit code 1."""


class BadInputFile(UserInputError, ValueError):
    """A file that cannot be used: ``PATH[:LINE]: what is wrong``."""

    def __init__(self, path: str | Path, problem: str, line: int | None = None) -> None:
        self.path, self.problem, self.line = str(path), problem, line
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")


class InvalidRequest(UserInputError, ValueError):
    """Input the engine cannot accept: parameters out of vLLM's range, a schema that does
    not compile, ..."""


class InvalidJsonSchema(InvalidRequest):
    """``json_schema`` is invalid, too large, or takes too long to compile."""


class TooManyPrompts(InvalidRequest):
    """One request would put more prompts into the engine than one request may."""

    status = 413


class PromptTooLong(InvalidRequest):
    """The prompt plus the requested new tokens does not fit the model's context."""

    status = 400


class GenerationFailed(RuntimeFailure, RuntimeError):
    """The engine is alive but failed this one generation (the reason in the message)."""


class QueueFull(ServiceError, RuntimeError):
    """The engine has as much outstanding work as the service allows."""

    status = 429
    retry_after = 1


class Unavailable(ServiceError, RuntimeError):
    """The service cannot answer now (the engine died or restarts, grammar compilation is
    congested); not the client's fault, and every one says when to come back."""

    status = 503
    retry_after = 5


class ClientDisconnected(ServiceError):
    """The client closed the connection before the answer was ready."""

    status = CLIENT_CLOSED

    def __init__(self, message: str = "client disconnected") -> None:
        super().__init__(message)


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as one short line (library messages can span many lines)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


# the ``openai`` package's exception for each status (vLLM's names too)
OPENAI_TYPES = {400: "BadRequestError", 401: "AuthenticationError", 404: "NotFoundError",
                422: "UnprocessableEntityError", 429: "RateLimitError", 500: "InternalServerError",
                503: "ServiceUnavailableError"}


def error_body(message: str, status: int, *, openai: bool = False, param: str | None = None,
               detail: list[dict] | None = None) -> dict[str, Any]:
    """The body of every error answer: ``{"error": message}`` (with ``detail``, the
    validation errors, when given); OpenAI's shape ``{"error": {"message", "type", "param",
    "code"}}`` for the OpenAI routes' own refusals (``param``: the field at fault)."""
    if openai:
        kind = OPENAI_TYPES.get(status, "Error")
        return {"error": {"message": message, "type": kind, "param": param, "code": status}}
    return {"error": message} if detail is None else {"error": message, "detail": detail}


def retry_header(seconds: float | None) -> dict[str, str]:
    """``Retry-After`` for ``seconds`` (none for None)."""
    return {} if seconds is None else {"retry-after": f"{seconds:g}"}


def error_response(message: str, status: int, *, retry_after: float | None = None, openai: bool = False,
                   param: str | None = None) -> JSONResponse:
    """An error answer over HTTP: :func:`error_body`, the status and the Retry-After."""
    from starlette.responses import JSONResponse

    return JSONResponse(error_body(message, status, openai=openai, param=param), status_code=status,
                        headers=retry_header(retry_after))


def invalid_openai_request(errors: list[dict]) -> JSONResponse:
    """pydantic's ``errors`` as OpenAI's 400, ``param`` the first field at fault (the
    ``openai`` package's ``BadRequestError``: OpenAI's and vLLM's status for a bad parameter)."""
    param = _field_path(errors[0].get("loc", ())) if errors else None
    return error_response(validation_message(errors), 400, openai=True, param=param)


def validation_message(errors: list[dict]) -> str:
    """pydantic's errors as one line: ``invalid request: FIELD: what; ...``."""
    return "invalid request: " + "; ".join(f"{_field_path(e.get('loc', ()))}: {e.get('msg', 'invalid')}"
                                           for e in errors)


def _field_path(loc: tuple | list) -> str:
    """A validation error's location as ``a.b.0`` (the request ``body`` left out)."""
    return ".".join(str(p) for p in loc if p != "body") or "body"
