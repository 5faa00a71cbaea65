"""Prometheus metrics, one registry per app (so tests can build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

ENGINE_PATHS = ("/generate", "/extract/ner", "/extract/re", "/extract/ee",
                "/extract/ner/batch", "/extract/re/batch", "/extract/ee/batch")
KNOWN_PATHS = (*ENGINE_PATHS, "/health", "/is_ready", "/v1/models", "/metrics", "/docs", "/openapi.json")


class Metrics:
    def __init__(self) -> None:
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

    @staticmethod
    def path_label(path: str) -> str:
        return path if path in KNOWN_PATHS else "other"

    def render(self) -> bytes:
        return generate_latest(self.registry)
