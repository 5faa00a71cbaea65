"""Python clients of the service: :class:`IEClient` (blocking) and :class:`AsyncIEClient`.

``ner`` / ``re`` / ``ee`` take a text (→ one response) or a list of texts (→ a list, sent
through the batch route in slices of at most ``MAX_BATCH``), the schema, and the request's
options as keywords; sampling keys (``max_tokens``, ``temperature``, ...) may be given
directly. Answers are the server's own pydantic wire models
(``extraction.wire.task_models``), so ``result.entities[0].start`` is typed.

Bounded retries: a 429 or 503 waits for ``Retry-After`` (else backs off) and a connection
failure backs off, at most ``retries`` times; then, or for any other error status,
:class:`IEStatusError` carries the status and the server's message::

    with IEClient("http://127.0.0.1:8090") as ie:
        print(ie.ner("Barack Obama met Angela Merkel in Berlin.", ["person", "location"]).entities)
        sure = ie.ner(text, ["person"], min_confidence=0.6)  # records below 0.6 left out

Every record carries ``confidence`` (0..1, see ``extraction.confidence``).

Sampling defaults differ by route: extraction decodes greedily (``temperature=0``), while
``generate`` takes ``/generate``'s defaults, which sample (``temperature=1.0``, ``top_p=1.0``,
``top_k=-1``, ``max_tokens=16``): pass ``temperature=0`` for a deterministic answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import httpx
from pydantic import BaseModel

from .api.wire import GenerateResponse, HealthResponse, ModelList
from .engine.sampling import SamplingOptions
from .extraction.tasks import TASKS
from .extraction.wire import MAX_BATCH, ExtractOptions, task_models

RETRY_STATUS = (429, 503)
MAX_WAIT_S = 30.0


class IEError(Exception):
    """A request that did not get an answer."""


class IEStatusError(IEError):
    """The service answered with an error status; ``message`` is its ``error`` text."""

    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status, self.message, self.body = status, message, body


class IEConnectionError(IEError):
    """The service could not be reached (after the retries)."""


_OPTION_FIELDS = set(ExtractOptions.model_fields) | {"schema", "labels_per_prompt"}
_SAMPLING_FIELDS = set(SamplingOptions.model_fields)


def _body(texts: str | Sequence[str], schema: Any, options: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The request body and whether it is a batch; sampling keys go into ``parameters``."""
    body: dict[str, Any] = {"schema": schema}
    parameters = dict(options.pop("parameters", None) or {})
    for key, value in options.items():
        if key in _SAMPLING_FIELDS and key not in _OPTION_FIELDS:
            parameters[key] = value
        else:
            body[key] = value
    if parameters:
        body["parameters"] = parameters
    if isinstance(texts, str):
        return {**body, "text": texts}, False
    return {**body, "texts": list(texts)}, True


def _task(name: str):
    task = TASKS.get(name)
    if task is None:
        raise ValueError(f"unknown task {name!r}; known: {sorted(TASKS)}")
    return task


def _error_message(response: httpx.Response) -> tuple[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase, None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):  # OpenAI's shape
        error = error.get("message")
    return (str(error) if error else response.text[:500]), body


def _wait_s(response: httpx.Response | None, attempt: int, backoff: float) -> float:
    if response is not None:
        try:
            return min(max(float(response.headers.get("retry-after", "")), 0.0), MAX_WAIT_S)
        except ValueError:
            pass
    return min(backoff * 2 ** attempt, MAX_WAIT_S)


def _retryable(exc: httpx.TransportError) -> bool:
    """Connection failures, not a request that timed out while the server worked on it."""
    return isinstance(exc, httpx.ConnectTimeout) or not isinstance(exc, httpx.TimeoutException)


def _checked(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        message, body = _error_message(response)
        raise IEStatusError(response.status_code, message, body)
    return response.json()


class _Client:
    def __init__(self, url: str, api_key: str | None, timeout: float, retries: int, backoff: float) -> None:
        self.url = url.rstrip("/")
        self.retries, self.backoff = retries, backoff
        self.timeout = timeout
        self.headers = {"authorization": f"Bearer {api_key}"} if api_key else {}

    @staticmethod
    def _extract_parts(task_name: str, texts: str | Sequence[str], schema: Any,
                       options: dict[str, Any]) -> tuple[str, list[dict[str, Any]], bool]:
        task = _task(task_name)
        body, batch = _body(texts, schema, dict(options))
        if not batch:
            return f"/extract/{task.name}", [body], False
        all_texts = body.pop("texts")
        if not all_texts:
            raise ValueError("texts is empty")
        bodies = [{**body, "texts": all_texts[i:i + MAX_BATCH]} for i in range(0, len(all_texts), MAX_BATCH)]
        return f"/extract/{task.name}/batch", bodies, True

    @staticmethod
    def _parse(task_name: str, answers: list[Any], batch: bool) -> BaseModel | list[BaseModel]:
        models = task_models(_task(task_name))
        if not batch:
            return models.response.model_validate(answers[0])
        return [models.response.model_validate(r) for a in answers for r in a["results"]]


class IEClient(_Client):
    """Blocking client. ``transport``: an httpx transport (tests: an in-process app)."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 600.0, *, retries: int = 5,
                 backoff: float = 0.5, transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(url, api_key, timeout, retries, backoff)
        self._http = httpx.Client(timeout=timeout, headers=self.headers, transport=transport)

    def request(self, method: str, path: str, json: Any = None) -> Any:
        """One call with the retries; the decoded JSON answer."""
        for attempt in range(self.retries + 1):
            try:
                response = self._http.request(method, self.url + path, json=json)
            except httpx.TransportError as exc:
                if attempt == self.retries or not _retryable(exc):
                    raise IEConnectionError(f"{method} {self.url}{path}: {exc!r}") from exc
                time.sleep(_wait_s(None, attempt, self.backoff))
                continue
            if response.status_code in RETRY_STATUS and attempt < self.retries:
                time.sleep(_wait_s(response, attempt, self.backoff))
                continue
            return _checked(response)
        raise AssertionError("unreachable")

    def extract(self, task: str, texts: str | Sequence[str], schema: Any, **options: Any):
        path, bodies, batch = self._extract_parts(task, texts, schema, options)
        return self._parse(task, [self.request("POST", path, b) for b in bodies], batch)

    def ner(self, texts: str | Sequence[str], schema: Any, **options: Any):
        return self.extract("ner", texts, schema, **options)

    def re(self, texts: str | Sequence[str], schema: Any, **options: Any):
        return self.extract("re", texts, schema, **options)

    def ee(self, texts: str | Sequence[str], schema: Any, **options: Any):
        return self.extract("ee", texts, schema, **options)

    def generate(self, instruction: str, input: str = "", json_schema: dict | None = None,
                 **parameters: Any) -> GenerateResponse:
        """``POST /generate``: the model's answer to ``instruction`` (+ ``input``), in the
        served model's prompt format; ``json_schema`` constrains the output.

        ``parameters`` are the sampling keys (:class:`~ie_service.engine.sampling.SamplingOptions`:
        ``max_tokens``, ``temperature``, ``top_p``, ``top_k``, ``seed``, ``stop``, ...). Any key
        not given takes the API's default, which **samples**: ``temperature=1.0`` with
        ``top_p=1.0`` and ``top_k=-1`` (the whole vocabulary, no truncation), no ``seed``, and
        ``max_tokens=16``. A small model sampled that way often writes gibberish and every call
        differs; for a deterministic answer pass ``temperature=0`` (greedy), or tame sampling
        with e.g. ``top_p=0.9`` and a ``seed``::

            ie.generate("Say hi", max_tokens=8, temperature=0)

        (``ner`` / ``re`` / ``ee`` default to greedy decoding: ``temperature=0``.)"""
        body = {"instruction": instruction, "input": input, "parameters": parameters, "json_schema": json_schema}
        return GenerateResponse.model_validate(self.request("POST", "/generate", body))

    def health(self) -> HealthResponse:
        return HealthResponse.model_validate(self.request("GET", "/health"))

    def models(self) -> ModelList:
        return ModelList.model_validate(self.request("GET", "/v1/models"))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "IEClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncIEClient(_Client):
    """The same calls, awaited; one connection pool for many concurrent requests."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 600.0, *, retries: int = 5,
                 backoff: float = 0.5, transport: httpx.AsyncBaseTransport | None = None,
                 max_connections: int = 100) -> None:
        super().__init__(url, api_key, timeout, retries, backoff)
        self._http = httpx.AsyncClient(timeout=timeout, headers=self.headers, transport=transport,
                                       limits=httpx.Limits(max_connections=max_connections))

    async def request(self, method: str, path: str, json: Any = None) -> Any:
        for attempt in range(self.retries + 1):
            try:
                response = await self._http.request(method, self.url + path, json=json)
            except httpx.TransportError as exc:
                if attempt == self.retries or not _retryable(exc):
                    raise IEConnectionError(f"{method} {self.url}{path}: {exc!r}") from exc
                await asyncio.sleep(_wait_s(None, attempt, self.backoff))
                continue
            if response.status_code in RETRY_STATUS and attempt < self.retries:
                await asyncio.sleep(_wait_s(response, attempt, self.backoff))
                continue
            return _checked(response)
        raise AssertionError("unreachable")

    async def extract(self, task: str, texts: str | Sequence[str], schema: Any, **options: Any):
        path, bodies, batch = self._extract_parts(task, texts, schema, options)
        answers = await asyncio.gather(*(self.request("POST", path, b) for b in bodies))
        return self._parse(task, list(answers), batch)

    async def ner(self, texts: str | Sequence[str], schema: Any, **options: Any):
        return await self.extract("ner", texts, schema, **options)

    async def re(self, texts: str | Sequence[str], schema: Any, **options: Any):
        return await self.extract("re", texts, schema, **options)

    async def ee(self, texts: str | Sequence[str], schema: Any, **options: Any):
        return await self.extract("ee", texts, schema, **options)

    async def generate(self, instruction: str, input: str = "", json_schema: dict | None = None,
                       **parameters: Any) -> GenerateResponse:
        """``POST /generate``, as :meth:`IEClient.generate` (whose defaults sample:
        ``temperature=1.0``, no top-p/top-k truncation; pass ``temperature=0`` for greedy)."""
        body = {"instruction": instruction, "input": input, "parameters": parameters, "json_schema": json_schema}
        return GenerateResponse.model_validate(await self.request("POST", "/generate", body))

    async def health(self) -> HealthResponse:
        return HealthResponse.model_validate(await self.request("GET", "/health"))

    async def models(self) -> ModelList:
        return ModelList.model_validate(await self.request("GET", "/v1/models"))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncIEClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


__all__ = ["AsyncIEClient", "IEClient", "IEConnectionError", "IEError", "IEStatusError"]
