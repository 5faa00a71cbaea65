"""vLLM's scheduler with the less urgent requests held back for the most urgent (issue 31, fair share).

vLLM schedules the requests it is already running before the ones waiting, whatever their
priority, and each prefilling prompt takes as much of a step's token budget as it can. So a
4-token request that arrives beside a big extraction waits for the extraction's prefills, and
then every one of its decode steps carries their next chunks: 8.8x its idle time (measured).

:class:`FairShareScheduler` keeps vLLM's algorithm and changes what it sees for one step: while
requests of the most urgent priority present (lower runs first) are in the engine, the others'
prefill waits, and bulk requests (32 prompts or more: one long text) wait whole, decodes too,
so the urgent requests' steps cost about what they cost alone (a step with 8 lesser decodes
measured ~1.8x one without, with a 64-token chunk ~2.5x, a 2048-token one 20x and more). The
decodes of smaller lesser requests (the documents of ``eval`` and ``kg build``, a few prompts
each) go on: holding them too halved those runs' throughput (measured). After ``PATIENCE`` such
steps in a row the lesser decodes run and one lesser prompt computes ``prefill_allowance``
tokens, so a big request keeps moving under any stream of small ones (at least one step in
``PATIENCE + 1``). For ``AFTER_URGENT_STEPS`` steps after an urgent request, bulk requests
alone get an eighth of the step budget: the step the next small request arrives in, which
nothing interrupts, stays short. When the KV cache is nearly full nothing is held (vLLM's own
priority preemption then decides), and with equal priorities the scheduler is vLLM's, step
for step.

The engine core builds it from its qualified name (``scheduler_cls``) and reads the allowance
from vLLM's ``additional_config`` (``serve --fair-share-prefill-tokens``; 0 turns the hold off)."""

from __future__ import annotations

from dataclasses import dataclass, field

from vllm.v1.core.sched.request_queue import SchedulingPolicy
from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.request import Request

from .engine_args import FAIR_SHARE_KEY

HOLD_BELOW_KV_USAGE = 0.9  # a fuller cache is vLLM's to manage (it preempts by priority)
PATIENCE = 4  # steps a lesser request waits in a row: a 4-token request's whole life
BULK_PRIORITY = 31  # a request of 32 prompts or more (one long text): its decodes wait too
AFTER_URGENT_STEPS = 16  # steps after an urgent request during which the next one is expected
STEP_SHARE_AFTER_URGENT = 8  # those steps take 1/8 of the step budget (256 of vLLM's 2048 on a CPU)


def prefill_left(request: Request) -> int:
    """Tokens ``request`` must still compute before it samples (0 once it decodes)."""
    return max(0, request.num_tokens - 1 - request.num_computed_tokens)


@dataclass
class Hold:
    """What one step does not see: running and waiting requests taken out of its queues."""

    running: list[Request] = field(default_factory=list)
    waiting: list[Request] = field(default_factory=list)
    threshold: int | None = None  # the step's long-prefill cap when one lesser prefill is let through
    urgent: int | None = None  # the most urgent priority, when lesser requests are present

    @property
    def empty(self) -> bool:
        """Nothing held, no cap: the step is vLLM's (``urgent`` only records who was present)."""
        return not (self.running or self.waiting or self.threshold)


def plan_hold(running: list[Request], waiting: list[Request], allowance: int, *, let_one: bool) -> Hold:
    """The requests to hold back this step: the prefills of every request less urgent than the
    most urgent one present, and the decodes of the bulk ones among them (``BULK_PRIORITY``), so
    that the urgent ones' steps cost about what they cost alone; with ``let_one``, the lesser
    decodes go on and the first lesser prefill may compute ``allowance`` tokens (so a stream of
    small requests cannot starve a big one)."""
    present = running + waiting
    if allowance <= 0 or not present:
        return Hold()
    urgent = min(r.priority for r in present)
    lesser = sorted((r for r in present if r.priority > urgent), key=lambda r: (r.priority, r.arrival_time))
    if not lesser:
        return Hold()
    prefilling = [r for r in lesser if prefill_left(r) > 0]
    if not let_one:
        held = set(prefilling) | {r for r in lesser if r.priority >= BULK_PRIORITY}
    else:
        held = set(prefilling[1:])
    hold = Hold(running=[r for r in running if r in held], waiting=[r for r in waiting if r in held],
                urgent=urgent)
    if let_one:
        urgent_prefill = max((prefill_left(r) for r in present if r.priority == urgent), default=0)
        hold.threshold = max(allowance, urgent_prefill)
    return hold


class FairShareScheduler(Scheduler):
    """vLLM's scheduler, each step run over the requests :func:`plan_hold` leaves in view:
    ``PATIENCE`` steps with every lesser request held, then one with their decodes and one of
    their prefills let through; short steps for a while after an urgent request."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        extra = self.vllm_config.additional_config
        self.prefill_allowance = int(extra.get(FAIR_SHARE_KEY, 0)) if isinstance(extra, dict) else 0
        self.held_in_a_row = 0
        self.last_urgent: int | None = None  # the priority of the last urgent request held for
        self.since_urgent = 0  # steps since then

    def schedule(self, *args, **kwargs):
        hold = self._plan()
        self.held_in_a_row = 0 if hold.empty or hold.threshold else self.held_in_a_row + 1
        if hold.urgent is not None:
            self.last_urgent, self.since_urgent = hold.urgent, 0
        else:
            self.since_urgent += 1
        budget = self.max_num_scheduled_tokens
        if hold.empty and self._after_urgent():  # the next small request may come: keep the step short
            self.max_num_scheduled_tokens = max(self.prefill_allowance, budget // STEP_SHARE_AFTER_URGENT)
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
            self.max_num_scheduled_tokens = budget
            config.long_prefill_token_threshold, self.adaptive_long_prefill_threshold = threshold, adaptive
            for request in hold.waiting:
                self.waiting.add_request(request)
            # Back in their places: the held ones where they stood, new admissions after.
            self.running = sorted(self.running + hold.running, key=lambda r: order.get(id(r), len(order)))

    def _after_urgent(self) -> bool:
        """Within ``AFTER_URGENT_STEPS`` of an urgent request, only requests less urgent than it."""
        if self.last_urgent is None or self.since_urgent > AFTER_URGENT_STEPS or not self.prefill_allowance:
            return False
        present = [*self.running, *self.waiting]
        return bool(present) and min(r.priority for r in present) > max(self.last_urgent, BULK_PRIORITY - 1)

    def _plan(self) -> Hold:
        if self.policy != SchedulingPolicy.PRIORITY or self.kv_cache_manager.usage >= HOLD_BELOW_KV_USAGE:
            return Hold()
        return plan_hold(self.running, list(self.waiting), self.prefill_allowance,
                         let_one=self.held_in_a_row >= PATIENCE)
