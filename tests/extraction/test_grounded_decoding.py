"""Grounded decoding and the CPU runtime through the real engine (vLLM + embedded model):
every span of every answer is a run of the chunk's text, and the engine core process runs
with Intel OpenMP and tcmalloc mapped."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import psutil
import pytest

from ie_service.engine.cpu_runtime import find_iomp, find_tcmalloc
from ie_service.evaluation import datasets
from ie_service.extraction.grounded_grammar import span_ok

pytestmark = pytest.mark.engine
SETS = [("wnut17", "ner", 16), ("crossner-music", "ner", 6), ("fewfc", "ee", 6)]


def span_values(task: str, answer: dict) -> list[str]:
    if task == "ner":
        return [v for values in answer.values() for v in values]
    out = []
    for events in answer.values():
        for e in events:
            out.append(e["trigger"])
            for v in e["arguments"].values():
                out += v if isinstance(v, list) else [v] if v else []
    return out


def test_grounded_answers_hold_only_spans_of_the_text(server_url):
    try:
        sets = [(name, task, datasets.load(name)[:n]) for name, task, n in SETS]
    except FileNotFoundError as exc:
        pytest.skip(f"eval data not here: {exc}")

    async def run() -> list[tuple[str, str, dict]]:
        async with httpx.AsyncClient(timeout=600) as client:
            async def one(task: str, text: str, schema) -> tuple[str, str, dict]:
                r = await client.post(f"{server_url}/extract/{task}", json={
                    "text": text, "schema": schema, "parameters": {"max_tokens": 256}})
                assert r.status_code == 200, r.text
                return task, text, r.json()
            jobs = [one(task, d.text, datasets.labels_of(docs, task)) for _, task, docs in sets for d in docs]
            return await asyncio.gather(*jobs)

    results = asyncio.run(run())
    assert len(results) == sum(n for *_, n in SETS)
    spans = 0
    for task, text, body in results:
        assert body["stats"]["ungrounded"] == 0, body
        assert body["stats"]["unparseable"] == 0
        for raw in body["raw_output"]:
            if body["stats"]["truncated"]:
                continue
            for value in span_values(task, json.loads(raw)):
                assert span_ok(value, text), (value, text)
                spans += 1
    assert spans > 20  # the model did answer


def _engine_core() -> psutil.Process:
    for proc in psutil.Process().children(recursive=True):
        try:
            if "EngineCore" in " ".join(proc.cmdline()) or "EngineCore" in proc.name():
                return proc
        except psutil.Error:
            continue
    pytest.fail("no engine core process under the test's server")


@pytest.mark.skipif(find_iomp() is None, reason="the intel-openmp wheel is not installed")
def test_engine_core_runs_with_intel_openmp_and_tcmalloc(server_url):
    maps = Path(f"/proc/{_engine_core().pid}/maps").read_text()
    assert "libiomp5.so" in maps  # without the preload vLLM maps torch's libgomp only
    if find_tcmalloc():
        assert "libtcmalloc" in maps
