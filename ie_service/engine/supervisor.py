"""The engine under supervision (issue 20): a health verdict that tells hung from busy, and
a new engine started in place when the old one dies.

* **Health** (:meth:`EngineSupervisor.health`, answered from state, never waiting on the
  engine): the engine core is alive (``check_health``) and makes progress. Progress is any
  output arriving or engine step completing (``engine.last_progress``: a long prefill
  outputs nothing for seconds, but its steps complete) or a probe answering; when nothing has
  arrived for :attr:`probe_every_s`, a 1-token probe generation is sent (top priority), and
  the engine is *hung* once that probe has waited :attr:`hung_after_s` with no output from
  anyone. A busy engine (work in flight, outputs arriving) is healthy. Probes are sent only
  when someone waits: by the monitor while generations are in flight, and by ``/health``
  itself. An idle server with nobody asking sends none (a probe every 2 s kept an idle
  CPU server's worker at 53% of a core: vLLM's OpenMP threads spin after every step).
* **Restart**: a monitor task polls ``check_health``; when the engine core died (``kill -9``
  of its process; with data parallel, any replica) the in-flight requests have already got
  503, the old engine is shut down and the factory called again (in a worker thread, so
  ``/health`` keeps answering ``restarting``), with bounded retries and backoff. When the
  retries fail, or the engine keeps dying, :attr:`on_give_up` runs: by default the process
  exits with :data:`EXIT_ENGINE_FAILED` so that an orchestrator takes over.

Callers reach the engine through :meth:`EngineSupervisor.current` (``EngineRestarting``, a
503, while there is none); what they build over it (the API's extractor) is theirs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .generation import EngineUnavailable
from .interface import TextEngine
from .sampling import SamplingOptions

log = logging.getLogger(__name__)

EXIT_ENGINE_FAILED = 3


class EngineRestarting(EngineUnavailable):
    """The engine is being (re)started: 503 with Retry-After."""


@dataclass
class HealthVerdict:
    status: str  # ok | starting | restarting | hung | dead | failed
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _exit(code: int) -> None:  # pragma: no cover - ends the process
    logging.shutdown()
    os._exit(code)


@dataclass
class EngineSupervisor:
    factory: Callable[[], TextEngine]
    max_attempts: int = 3  # engine starts per restart before giving up
    backoff_s: tuple[float, ...] = (1.0, 4.0, 10.0)
    max_deaths: int = 5  # deaths within death_window_s: give up (a crash loop)
    death_window_s: float = 600.0
    monitor_every_s: float = 0.5
    probe_every_s: float = 2.0
    hung_after_s: float = 10.0
    on_give_up: Callable[[int], None] = _exit
    engine: TextEngine | None = None
    state: str = "starting"
    detail: str = ""
    restarts: int = 0
    _deaths: list[float] = field(default_factory=list)
    _probe: asyncio.Task | None = None
    _probe_started: float = 0.0
    _probe_ok: float = field(default_factory=time.monotonic)
    _busy_since: float | None = None  # when work last started waiting on an idle engine
    probes: int = 0  # probe generations sent (each is one engine request: /metrics shows them)
    _monitor: asyncio.Task | None = None
    _stopping: bool = False

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """The first engine (at start-up: a failure here stops the service, as before)."""
        self._install(self.factory())

    def _install(self, engine: TextEngine) -> None:
        self.engine = engine
        self._probe_ok = time.monotonic()
        self._probe = None
        self.state, self.detail = "ok", ""

    def watch(self) -> None:
        """Start the monitor (inside the running event loop)."""
        if self._monitor is None:
            self._monitor = asyncio.get_running_loop().create_task(self._run(), name="engine-supervisor")

    async def stop(self) -> None:
        self._stopping = True  # Python 3.11's wait_for can swallow a cancellation: the flag ends the loop
        for task in (self._monitor, self._probe):
            if task is not None:
                task.cancel()
                await asyncio.wait([task], timeout=5)
        self._monitor = self._probe = None
        if self.engine is not None:
            self.engine.shutdown()
            self.engine = None

    # --- what routes use ---------------------------------------------------------------

    def current(self) -> TextEngine:
        if self.state != "ok" or self.engine is None:
            raise EngineRestarting(f"engine {self.state}{': ' + self.detail if self.detail else ''}; "
                                   f"retry in a few seconds")
        return self.engine

    async def health(self) -> HealthVerdict:
        """The verdict, from state (bounded: never waits on the engine)."""
        if self.state != "ok" or self.engine is None:
            return HealthVerdict(self.state, self.detail)
        try:
            await asyncio.wait_for(self.engine.check_health(), timeout=1.0)
        except Exception as exc:
            return HealthVerdict("dead", f"engine unhealthy: {exc or type(exc).__name__}")
        self._maybe_probe()  # asked, and nothing arrived lately: find out (answered next time)
        stalled = self._stalled_for()
        if stalled is not None:
            return HealthVerdict("hung", f"engine not answering: a probe has waited {stalled:.0f}s "
                                         "with no output from any request")
        return HealthVerdict("ok")

    # --- progress and probes -----------------------------------------------------------

    def _last_progress(self) -> float:
        return max(self._probe_ok, self.engine.last_progress if self.engine is not None else 0.0)

    def _stalled_for(self) -> float | None:
        """Seconds a pending probe has waited with no progress anywhere, once over the limit."""
        if self._probe is None or self._probe.done():
            return None
        now = time.monotonic()
        waited = now - max(self._probe_started, self._last_progress())
        return waited if waited >= self.hung_after_s else None

    def _maybe_probe(self, since: float = 0.0) -> None:
        """A probe, unless one is pending or there was progress (or, from the monitor, work
        started: ``since``) within :attr:`probe_every_s`."""
        if self._probe is not None and not self._probe.done():
            return
        if time.monotonic() - max(self._last_progress(), since) < self.probe_every_s:
            return
        self.probes += 1
        self._probe_started = time.monotonic()
        self._probe = asyncio.get_running_loop().create_task(self._probe_once(self.engine), name="engine-probe")

    async def _probe_once(self, engine: TextEngine) -> None:
        options = SamplingOptions(max_tokens=1, temperature=0.0)
        try:
            await engine.generate(engine.render("ping"), options, None, priority=-1)
        except Exception as exc:  # a dead engine: the monitor sees it via check_health
            log.warning("engine probe failed: %s", exc)
            return
        if engine is self.engine:
            self._probe_ok = time.monotonic()

    # --- monitor and restart -----------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.monitor_every_s)
            if self.state != "ok" or self.engine is None:
                continue
            try:
                await asyncio.wait_for(self.engine.check_health(), timeout=5.0)
            except asyncio.TimeoutError:
                continue
            except Exception as exc:
                await self._restart(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
                continue
            if self._stopping or self.engine.in_flight == 0:
                self._busy_since = None
                continue
            if self._busy_since is None:  # work just arrived at an idle engine: not a stall yet
                self._busy_since = time.monotonic()
            self._maybe_probe(since=self._busy_since)  # work waits on the engine: is it moving?

    async def _restart(self, reason: str) -> None:
        now = time.monotonic()
        self._deaths = [t for t in self._deaths if now - t < self.death_window_s] + [now]
        log.error("engine died (%s); starting a new one", reason)
        self.state, self.detail = "restarting", f"the engine died ({reason})"
        old, self.engine = self.engine, None
        if self._probe is not None:
            self._probe.cancel()
        await asyncio.to_thread(_shutdown_quietly, old)
        if len(self._deaths) > self.max_deaths:
            self._give_up(f"the engine died {len(self._deaths)} times in {self.death_window_s:.0f}s")
            return
        for attempt in range(1, self.max_attempts + 1):
            self.detail = f"attempt {attempt} of {self.max_attempts} after: {reason}"
            try:
                engine = await asyncio.to_thread(self.factory)
            except Exception as exc:
                log.error("engine start %d of %d failed: %s", attempt, self.max_attempts, exc)
                if attempt < self.max_attempts:
                    await asyncio.sleep(self.backoff_s[min(attempt - 1, len(self.backoff_s) - 1)])
                continue
            self._install(engine)
            self.restarts += 1
            log.warning("engine restarted (restart %d) after %.1fs", self.restarts, time.monotonic() - now)
            return
        self._give_up(f"{self.max_attempts} engine starts failed")

    def _give_up(self, why: str) -> None:
        self.state, self.detail = "failed", why
        log.critical("giving up on the engine: %s; exiting with %d", why, EXIT_ENGINE_FAILED)
        self.on_give_up(EXIT_ENGINE_FAILED)


def _shutdown_quietly(engine: TextEngine | None) -> None:
    if engine is None:
        return
    try:
        engine.shutdown()
    except Exception as exc:  # the dead engine's processes may be gone already
        log.warning("shutting down the dead engine: %s", exc)
