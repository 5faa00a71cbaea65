"""ASGI middleware in front of every route: request id, header count and size (→ 431), API
keys, body size, admission (bounded outstanding engine work → 429), timeout (→ 504, work
cancelled), metrics and a JSON access log line.

What the HTTP server reads of the request line and headers is bounded before any of this
runs (:data:`UVICORN_LIMITS`, used by ``ie-service serve``)."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# issue 12 #1/#2: admission counts engine prompts, not HTTP requests; bodies with lone surrogates are 422
from ..admission import MAX_BODY_DEPTH, Admission, bind, find_lone_surrogate, json_nesting_over, unbind
from ..errors import QueueFull, error_body, retry_header
from .metrics import Metrics
from .settings import ServiceSettings

access_log = logging.getLogger("ie_service.access")
# the playground page and its assets carry no data and ask for the key themselves: they load
# without one (GET only); every other route needs it
PUBLIC_PATHS = frozenset({"/", "/playground.js", "/playground.css"})
# issue 31: a 32 MB header line and 2,000 headers were read and answered 200. Apache's
# LimitRequestFields is 100; browsers send ~20. 32 KiB of header fields leaves room for
# cookies a browser sends to localhost (nginx: 8 KiB lines, Node: 16 KiB in all).
MAX_HEADER_COUNT = 100
MAX_HEADER_BYTES = 32 * 1024
# what the server reads is bounded too: uvicorn's httptools parser has no header limit; h11
# refuses (400, connection closed) a request line + headers still incomplete past this many
# bytes (a head that arrives in one read, <= 256 KiB, is parsed whole: then the guard's 431)
UVICORN_LIMITS = {"http": "h11", "h11_max_incomplete_event_size": MAX_HEADER_BYTES}


async def _reply(send: Send, status: int, error: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps(error_body(error, status)).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class Guard:
    def __init__(self, app: ASGIApp, settings: ServiceSettings, metrics: Metrics) -> None:
        self.app, self.settings, self.metrics = app, settings, metrics
        self.admission = Admission(settings.max_outstanding, on_change=metrics.outstanding.set,
                                   on_refused=lambda reason: metrics.rejected.labels(reason).inc())

    def _authorized(self, scope: Scope) -> bool:
        if not self.settings.api_keys:
            return True
        if scope["path"] in PUBLIC_PATHS and scope.get("method") in ("GET", "HEAD"):
            return True
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-api-key", b"").decode("latin-1")
        auth = headers.get(b"authorization", b"").decode("latin-1")
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        return any(hmac.compare_digest(given.encode(), k.encode()) for k in self.settings.api_keys)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        label = self.metrics.path_label(path)
        request_id = uuid.uuid4().hex[:16]
        started = time.perf_counter()
        state = {"status": 500, "sent": False}

        async def send_wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"], state["sent"] = message["status"], True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        async def refuse(status: int, reason: str, error: str, headers: dict | None = None) -> None:
            self.metrics.rejected.labels(reason).inc()
            if not state["sent"]:
                await _reply(send_wrapped, status, error, headers)

        try:
            await self._handle(scope, receive, send_wrapped, refuse, path)
        finally:
            seconds = time.perf_counter() - started
            self.metrics.requests.labels(label, str(state["status"])).inc()
            self.metrics.latency.labels(label).observe(seconds)
            access_log.info(json.dumps({
                "request_id": request_id, "method": scope.get("method"), "path": path,
                "status": state["status"], "ms": round(seconds * 1000, 1),
                "client": (scope.get("client") or ["?"])[0]}))

    async def _handle(self, scope: Scope, receive: Receive, send: Send, refuse, path: str) -> None:
        fields = scope.get("headers") or []
        size = sum(len(name) + len(value) for name, value in fields)
        if len(fields) > MAX_HEADER_COUNT or size > MAX_HEADER_BYTES:
            await refuse(431, "headers", f"request has {len(fields)} header fields of {size} bytes; at most "
                                         f"{MAX_HEADER_COUNT} fields and {MAX_HEADER_BYTES} bytes")
            return
        if not self._authorized(scope):
            await refuse(401, "auth", "missing or invalid API key", {"www-authenticate": "Bearer"})
            return
        headers = dict(scope.get("headers") or [])
        limit = self.settings.max_request_bytes
        try:
            declared = int(headers.get(b"content-length", b"0") or 0)
        except ValueError:
            await refuse(400, "size", "invalid Content-Length")
            return
        if declared > limit:
            await refuse(413, "size", f"request body over {limit} bytes")
            return
        body = await self._read_body(receive, limit)
        if body is None:
            await refuse(413, "size", f"request body over {limit} bytes")
            return
        lone = find_lone_surrogate(body)
        if lone is not None:
            await refuse(422, "invalid", f"invalid request: lone UTF-16 surrogate {lone[0]} at byte {lone[1]}; "
                                         "text must be valid Unicode")
            return
        if json_nesting_over(body):
            await refuse(422, "invalid", f"invalid request: the JSON body nests more than {MAX_BODY_DEPTH} "
                                         "levels deep")
            return
        replayed = False

        async def replay() -> Message:
            """The buffered body once, then the client's own messages (disconnects)."""
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        if path not in self.metrics.engine_paths:
            await self.app(scope, replay, send)
            return
        try:
            budget = self.admission.enter()  # one engine prompt; fan-out claims more (admission.py)
        except QueueFull as exc:
            await refuse(exc.status, "queue", str(exc), retry_header(exc.retry_after))
            return
        token = bind(budget)
        try:
            await asyncio.wait_for(self.app(scope, replay, send), timeout=self.settings.request_timeout_s)
        except asyncio.TimeoutError:
            await refuse(504, "timeout", f"request took over {self.settings.request_timeout_s:g}s; aborted")
        finally:
            unbind(token)
            budget.close()

    @staticmethod
    async def _read_body(receive: Receive, limit: int) -> bytes | None:
        """The whole request body, or None once it passes ``limit`` bytes."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
