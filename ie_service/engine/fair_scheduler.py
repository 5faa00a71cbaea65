"""vLLM's scheduler with prefill held back for the most urgent requests (issue 31, fair share).

vLLM schedules the requests it is already running before the ones waiting, whatever their
priority, and each prefilling prompt takes as much of a step's token budget as it can. So a
4-token request that arrives beside a big extraction waits for the extraction's prefills, and
then every one of its decode steps carries their next chunks: 8.8x its idle time (measured).

:class:`FairShareScheduler` keeps vLLM's algorithm and changes what it sees for one step: while
requests of the most urgent priority present (lower runs first) are in the engine, the others
may still decode, but their prefill waits; after ``PATIENCE`` such steps in a row one of them
computes ``prefill_allowance`` tokens. The urgent requests' steps stay decode-sized (a step
with a 64-token chunk measured ~2.5x one without, a 2048-token one 20x and more); the big
request keeps moving under any stream of small ones. When the KV cache is
nearly full nothing is held (vLLM's own priority preemption then decides), and with equal
priorities the scheduler is vLLM's, step for step.

The engine core builds it from its qualified name (``scheduler_cls``) and reads the allowance
from vLLM's ``additional_config`` (``serve --fair-share-prefill-tokens``; 0 turns the hold off)."""

from __future__ import annotations

from dataclasses import dataclass, field

from vllm.v1.core.sched.request_queue import SchedulingPolicy
from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.request import Request

from .engine_args import FAIR_SHARE_KEY

HOLD_BELOW_KV_USAGE = 0.9  # a fuller cache is vLLM's to manage (it preempts by priority)
PATIENCE = 4  # steps a lesser prefill waits in a row: a 4-token request's whole life


def prefill_left(request: Request) -> int:
    """Tokens ``request`` must still compute before it samples (0 once it decodes)."""
    return max(0, request.num_tokens - 1 - request.num_computed_tokens)


@dataclass
class Hold:
    """What one step does not see: running and waiting requests taken out of its queues."""

    running: list[Request] = field(default_factory=list)
    waiting: list[Request] = field(default_factory=list)
    threshold: int | None = None  # the step's long-prefill cap when one lesser prefill is let through

    @property
    def empty(self) -> bool:
        return not (self.running or self.waiting or self.threshold)


def plan_hold(running: list[Request], waiting: list[Request], allowance: int, *, let_one: bool) -> Hold:
    """The requests to hold back this step: every prefill of a request less urgent than the
    most urgent one present; with ``let_one``, all but the first of them, which may compute
    ``allowance`` tokens (so a stream of small requests cannot starve a big one)."""
    present = running + waiting
    if allowance <= 0 or not present:
        return Hold()
    urgent = min(r.priority for r in present)
    lesser = sorted((r for r in present if r.priority > urgent and prefill_left(r) > 0),
                    key=lambda r: (r.priority, r.arrival_time))
    if not lesser:
        return Hold()
    held = set(lesser[1:] if let_one else lesser)
    hold = Hold(running=[r for r in running if r in held], waiting=[r for r in waiting if r in held])
    if let_one:
        urgent_prefill = max((prefill_left(r) for r in present if r.priority == urgent), default=0)
        hold.threshold = max(allowance, urgent_prefill)
    return hold


class FairShareScheduler(Scheduler):
    """vLLM's scheduler, each step run over the requests :func:`plan_hold` leaves in view:
    ``PATIENCE`` steps with every lesser prefill held, then one with one of them let through."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        extra = self.vllm_config.additional_config
        self.prefill_allowance = int(extra.get(FAIR_SHARE_KEY, 0)) if isinstance(extra, dict) else 0
        self.held_in_a_row = 0

    def schedule(self, *args, **kwargs):
        hold = self._plan()
        self.held_in_a_row = 0 if hold.empty or hold.threshold else self.held_in_a_row + 1
        if hold.empty:
            return super().schedule(*args, **kwargs)
        order = {id(r): i for i, r in enumerate(self.running)}
        held_ids = {id(r) for r in hold.running}
        self.running = [r for r in self.running if id(r) not in held_ids]
        self.waiting.remove_requests(hold.waiting)
        config = self.scheduler_config
        threshold, adaptive = config.long_prefill_token_threshold, self.adaptive_long_prefill_threshold
        if hold.threshold:
            config.long_prefill_token_threshold, self.adaptive_long_prefill_threshold = hold.threshold, False
        try:
            return super().schedule(*args, **kwargs)
        finally:
            config.long_prefill_token_threshold, self.adaptive_long_prefill_threshold = threshold, adaptive
            for request in hold.waiting:
                self.waiting.add_request(request)
            # Back in their places: the held ones where they stood, new admissions after.
            self.running = sorted(self.running + hold.running, key=lambda r: order.get(id(r), len(order)))

    def _plan(self) -> Hold:
        if self.policy != SchedulingPolicy.PRIORITY or self.kv_cache_manager.usage >= HOLD_BELOW_KV_USAGE:
            return Hold()
        return plan_hold(self.running, list(self.waiting), self.prefill_allowance,
                         let_one=self.held_in_a_row >= PATIENCE)
