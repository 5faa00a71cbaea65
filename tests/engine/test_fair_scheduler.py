"""The fair-share scheduler (ie_service/engine/fair_scheduler.py) driven step by step: vLLM's real
``Scheduler`` over a tiny model folder's config, a fake model runner that samples one token
whenever a request has computed its whole prompt. No engine, no model weights run."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from tiny_models import build_llama

pytest.importorskip("vllm")

from vllm.config import CacheConfig, DeviceConfig, ModelConfig, SchedulerConfig, VllmConfig  # noqa: E402
from vllm.sampling_params import SamplingParams  # noqa: E402
from vllm.v1.core.sched.scheduler import Scheduler  # noqa: E402
from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec  # noqa: E402
from vllm.v1.outputs import ModelRunnerOutput  # noqa: E402
from vllm.v1.request import Request  # noqa: E402
from vllm.v1.structured_output import StructuredOutputManager  # noqa: E402

from ie_service.engine.engine_args import FAIR_SCHEDULER, FAIR_SHARE_KEY  # noqa: E402
from ie_service.engine.fair_scheduler import (AFTER_URGENT_STEPS, BULK_PRIORITY, PATIENCE,  # noqa: E402
                                               STEP_SHARE_AFTER_URGENT, FairShareScheduler)

BUDGET = 512  # tokens a step may schedule
BLOCKS = 2000
BLOCK = 16


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory) -> Path:
    return build_llama(tmp_path_factory.mktemp("fair") / "m")


def scheduler(model_folder: Path, cls: type[Scheduler], allowance: int = 64, blocks: int = BLOCKS) -> Scheduler:
    cache = CacheConfig(block_size=BLOCK, cache_dtype="auto", enable_prefix_caching=False)
    cache.num_gpu_blocks = blocks
    config = VllmConfig(
        model_config=ModelConfig(model=str(model_folder), max_model_len=2048, dtype="float32"),
        scheduler_config=SchedulerConfig(max_num_seqs=32, max_num_batched_tokens=BUDGET, max_model_len=2048,
                                         enable_chunked_prefill=True, policy="priority",
                                         is_encoder_decoder=False),
        cache_config=cache, device_config=DeviceConfig("cpu"),
        additional_config={FAIR_SHARE_KEY: allowance})
    spec = FullAttentionSpec(block_size=BLOCK, num_kv_heads=1, head_size=64, dtype=torch.float32)
    kv = KVCacheConfig(num_blocks=blocks, kv_cache_tensors=[], kv_cache_groups=[KVCacheGroupSpec(["l"], spec)])
    return cls(vllm_config=config, kv_cache_config=kv, structured_output_manager=StructuredOutputManager(config),
               block_size=BLOCK, log_stats=False)


_arrivals = itertools.count()


def request(name: str, prompt: int, priority: int, max_tokens: int) -> Request:
    return Request(name, list(range(1, prompt + 1)), SamplingParams(max_tokens=max_tokens, ignore_eos=True),
                   None, arrival_time=float(next(_arrivals)), priority=priority)


def step(s: Scheduler) -> dict[str, int]:
    """One engine step: schedule, then a token for each request whose prompt is all computed."""
    out = s.schedule()
    ids = list(out.num_scheduled_tokens)
    sampled = [[7] if s.requests[r].num_computed_tokens >= s.requests[r].num_tokens else [] for r in ids]
    s.update_from_output(out, ModelRunnerOutput(req_ids=ids, req_id_to_index={r: i for i, r in enumerate(ids)},
                                                sampled_token_ids=sampled))
    return dict(out.num_scheduled_tokens)


def run(s: Scheduler, script: dict[int, list[Request]], steps: int = 200) -> list[dict[str, int]]:
    """Steps until every request is done; ``script`` adds requests before the step of its key."""
    trace = []
    for n in range(steps):
        for r in script.get(n, []):
            s.add_request(r)
        if not s.requests and n > max(script):
            return trace
        trace.append(step(s))
    raise AssertionError(f"requests still unfinished after {steps} steps: {sorted(s.requests)}")


def heavy_then_small() -> dict[int, list[Request]]:
    """Four 600-token prompts of one bulk request, a 40-token 4-token one at step 2."""
    heavy = [request(f"heavy{i}", 600, BULK_PRIORITY, 6) for i in range(4)]
    return {0: heavy, 2: [request("small", 40, 0, 4)]}


def small_steps(trace: list[dict[str, int]]) -> list[dict[str, int]]:
    return [s for s in trace if "small" in s]


def test_the_engine_builds_it_by_its_name() -> None:
    from vllm.utils.import_utils import resolve_obj_by_qualname

    assert resolve_obj_by_qualname(FAIR_SCHEDULER) is FairShareScheduler


def lesser_prefill(step: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in step.items() if not k.startswith("small") and v > 1}


def test_while_a_small_request_runs_its_steps_are_its_own(model_folder) -> None:
    trace = run(scheduler(model_folder, FairShareScheduler, allowance=64), heavy_then_small())
    during = small_steps(trace)
    assert during[0]["small"] == 40, "the small request's whole prompt in its first step"
    assert len(during) == 4  # prefill + 3 decodes, in consecutive steps
    assert all(set(s) == {"small"} for s in during), during
    last_small = max(i for i, t in enumerate(trace) if "small" in t)
    assert set(trace[last_small + 1]) != {"small"}, "then the big request has the steps again"


def test_vllms_own_scheduler_fills_those_steps_with_the_big_prefills(model_folder) -> None:
    """The same script without the hold: what the fair-share scheduler exists to prevent."""
    trace = run(scheduler(model_folder, Scheduler), heavy_then_small())
    assert max(sum(s.values()) for s in small_steps(trace)) > 64 * 4


def test_with_equal_priorities_or_no_allowance_it_is_vllms_scheduler_step_for_step(model_folder) -> None:
    def script() -> dict[int, list[Request]]:
        return {0: [request(f"a{i}", 300 + 50 * i, 2, 5) for i in range(3)], 3: [request("b", 100, 2, 3)]}

    ours = run(scheduler(model_folder, FairShareScheduler), script())
    assert ours == run(scheduler(model_folder, Scheduler), script())
    off = run(scheduler(model_folder, FairShareScheduler, allowance=0), heavy_then_small())
    assert off == run(scheduler(model_folder, Scheduler), heavy_then_small())


def test_a_bulk_requests_decodes_wait_too_a_smaller_ones_go_on(model_folder) -> None:
    """A small request arriving while others decode: a bulk request's decodes wait for it (its
    steps carry none of them); a request of a few prompts (a document of kg build) decodes on."""
    def script(priority: int) -> dict[int, list[Request]]:
        return {0: [request(f"heavy{i}", 40, priority, 30) for i in range(4)], 3: [request("small", 40, 0, 4)]}

    bulk = run(scheduler(model_folder, FairShareScheduler), script(BULK_PRIORITY))
    assert all(bulk[2][f"heavy{i}"] == 1 for i in range(4)), "decoding when the small one arrives"
    assert all(set(s) == {"small"} for s in small_steps(bulk)), small_steps(bulk)
    few = run(scheduler(model_folder, FairShareScheduler), script(3))
    assert all(len(s) == 5 for s in small_steps(few)), "the 4 decodes go on beside it"
    assert few == run(scheduler(model_folder, Scheduler), script(3)), "no prefill to hold: vLLM's steps"


def test_the_big_request_keeps_moving_under_a_stream_of_small_ones(model_folder) -> None:
    """A small request at every step: the big one still finishes, by the allowance."""
    script = {0: [request(f"heavy{i}", 600, 4, 2) for i in range(4)]}
    for n in range(1, 60):
        script[n] = [request(f"small{n}", 20, 0, 2)]
    s = scheduler(model_folder, FairShareScheduler, allowance=64)
    trace = run(s, script, steps=400)
    assert all(f"heavy{i}" not in s.requests for i in range(4))
    beside = [t for t in trace if any(k.startswith("small") for k in t)]
    let_through = [lesser_prefill(t) for t in beside if lesser_prefill(t)]
    assert let_through and all(len(p) == 1 and sum(p.values()) <= 64 for p in let_through)
    assert len(let_through) <= len(beside) // (PATIENCE + 1) + 1


def test_after_the_small_request_short_steps_then_the_whole_budget_again(model_folder) -> None:
    """The next small request may come soon: for ``AFTER_URGENT_STEPS`` steps a bulk request's
    steps take an eighth of the budget (so the step a small request arrives in is short), then
    all of it; smaller requests have the whole budget at once."""
    def script(priority: int) -> dict[int, list[Request]]:
        return {0: [request(f"heavy{i}", 1200, priority, 6) for i in range(4)], 2: [request("small", 40, 0, 4)]}

    trace = run(scheduler(model_folder, FairShareScheduler), script(BULK_PRIORITY))
    last_small = max(i for i, s in enumerate(trace) if "small" in s)
    after = trace[last_small + 1:]
    short = BUDGET // STEP_SHARE_AFTER_URGENT
    assert all(sum(t.values()) <= short for t in after[:AFTER_URGENT_STEPS]), after[:AFTER_URGENT_STEPS]
    assert sum(after[AFTER_URGENT_STEPS + 1].values()) == BUDGET
    assert sum(trace[0].values()) == BUDGET, "before any small request: vLLM's budget"
    few = run(scheduler(model_folder, FairShareScheduler), script(3))
    last_small = max(i for i, s in enumerate(few) if "small" in s)
    assert sum(few[last_small + 1].values()) == BUDGET


def test_a_nearly_full_kv_cache_is_left_to_vllms_preemption(model_folder, monkeypatch) -> None:
    """At 90% KV usage nothing is held: vLLM preempts by priority where blocks run short."""
    from vllm.v1.core.kv_cache_manager import KVCacheManager

    monkeypatch.setattr(KVCacheManager, "usage", property(lambda self: 0.9))
    ours = run(scheduler(model_folder, FairShareScheduler), heavy_then_small())
    assert ours == run(scheduler(model_folder, Scheduler), heavy_then_small())
