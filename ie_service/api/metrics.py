"""Prometheus metrics, one registry per app (so tests can build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ..engine.generation import EngineActivity
from ..extraction.tasks import TASKS

OTHER_PATHS = ("/health", "/is_ready", "/v1/models", "/metrics", "/docs", "/openapi.json", "/templates",
               "/", "/playground.js", "/playground.css")
OPENAI_PATHS = ("/v1/chat/completions", "/v1/completions")


def engine_paths() -> tuple[str, ...]:
    """Routes that reach the engine (admission and timeouts apply): ``/generate``, the
    extraction routes of every registered task and the OpenAI routes."""
    return ("/generate", *(f"/extract/{name}{suffix}" for name in TASKS for suffix in ("", "/batch")),
            *OPENAI_PATHS)


class Metrics:
    def __init__(self) -> None:
        self.engine_paths = frozenset(engine_paths())
        self.known_paths = self.engine_paths | set(OTHER_PATHS)
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("ie_requests", "HTTP requests by path and status", ["path", "status"], registry=r)
        self.latency = Histogram("ie_request_seconds", "HTTP request latency", ["path"], registry=r,
                                 buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300))
        self.outstanding = Gauge("ie_outstanding_requests", "engine requests in flight or waiting", registry=r)
        self.rejected = Counter("ie_rejected", "requests refused before the engine", ["reason"], registry=r)
        self.extraction = Counter("ie_extraction_events", "extraction outcomes needing attention",
                                  ["task", "kind"], registry=r)
        self.output_tokens = Counter("ie_output_tokens", "tokens generated", ["task"], registry=r)
        # vLLM's prefix_cache_queries / prefix_cache_hits, counted per request of ours: prompt
        # tokens looked up in the prefix cache, and those found there (not computed again)
        self.prefix_queries = Counter("ie_prefix_cache_queries", "prompt tokens looked up in the prefix cache",
                                      ["task"], registry=r)
        self.prefix_hits = Counter("ie_prefix_cache_hits", "prompt tokens found in the prefix cache",
                                   ["task"], registry=r)
        self.health_probes = Gauge("ie_health_probes", "1-token probe generations the health check "
                                   "sent to the engine since start (engine requests of no client)",
                                   registry=r)
        self.engine_steps = Gauge("ie_engine_steps", "engine steps completed since the engine "
                                  "started (a count that stays put: the engine holds no work)", registry=r)
        self.engine_unfinished = Gauge("ie_engine_unfinished_requests", "requests the engine holds: "
                                       "running or waiting (a client's abort removes its own)", registry=r)
        self.replica_requests = Gauge("ie_replica_finished_requests",
                                      "requests finished by each data-parallel engine replica",
                                      ["replica"], registry=r)

    def observe_probes(self, sent: int) -> None:
        self.health_probes.set(sent)

    def observe_prompts(self, task: str, prompt_tokens: int, cached_tokens: int) -> None:
        self.prefix_queries.labels(task).inc(prompt_tokens)
        self.prefix_hits.labels(task).inc(cached_tokens)

    def observe_engine(self, activity: EngineActivity) -> None:
        self.engine_steps.set(activity.steps)
        self.engine_unfinished.set(activity.unfinished)
        for replica, count in activity.finished_by_replica.items():
            self.replica_requests.labels(replica=str(replica)).set(count)

    def path_label(self, path: str) -> str:
        return path if path in self.known_paths else "other"

    def render(self) -> bytes:
        return generate_latest(self.registry)
