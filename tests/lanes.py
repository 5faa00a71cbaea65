"""Lanes for pytest-xdist (``-n 2``, the README's test command), chosen by the ``engine`` marker.

Lane 0, the engine lane, runs the tests marked ``engine``: those that use the session's shared
servers (conftest.py) or start big topologies, one engine computing at a time. The other lanes
run everything else at a lower CPU priority (``nice``): the unit tests, and the engine tests
that start only their own small server, one at a time, marked ``engine(lane="side")`` (a
test that starts several at once belongs on the engine lane: two lanes' servers together ran a
23 GB host out of memory); with more than two workers the side lanes share those by module.

Why: a server start is mostly single-threaded imports (~12 s a process on 2 cores) and a test
mostly waits on HTTP, which leaves a core idle much of the time; the side lane uses it. The nice
value keeps it from slowing the engine lane while that one computes.

How: the controller gives each worker a lane as it starts it (a worker that replaces a crashed
one takes over the dead one's lane), each worker keeps the tests of its own lane at collection,
and xdist's ``each`` scheduling runs on every worker what it collected. A shared server asked for
from a side lane fails at once (:func:`check_lane`): its test lacks the marker."""

from __future__ import annotations

ENGINE_LANE = 0
SIDE = "side"  # engine(lane=SIDE): an engine test that starts only its own small server
SIDE_NICE = 10  # CFS weight 110 against 1024: about a tenth of a contended core
WORKER_KEY = "ie_lane"  # in each worker's workerinput


class LaneAssigner:
    """Controller side: the lowest free lane to each worker xdist starts."""

    def __init__(self) -> None:
        self.free: set[int] = set()  # lanes whose worker crashed
        self.next = ENGINE_LANE
        self.held: dict[str, int] = {}  # worker id -> its lane

    def pytest_configure_node(self, node) -> None:
        if self.free:
            lane = min(self.free)
            self.free.discard(lane)
        else:
            lane, self.next = self.next, self.next + 1
        self.held[node.gateway.id] = lane
        node.workerinput[WORKER_KEY] = lane

    def pytest_testnodedown(self, node, error) -> None:
        lane = self.held.pop(node.gateway.id, None)
        if lane is not None and error:  # crashed: its replacement takes the lane
            self.free.add(lane)


def this_lane(config) -> int | None:
    """This worker's lane, or None outside xdist (one process runs every test)."""
    workerinput = getattr(config, "workerinput", None)
    return None if workerinput is None else workerinput[WORKER_KEY]


def lane_of(item) -> str:
    """``engine`` or ``side``: the test's ``engine`` marker (its ``lane`` keyword) says."""
    mark = item.get_closest_marker("engine")
    if mark is None:
        return SIDE
    lane = mark.kwargs.get("lane", "engine")
    if lane not in ("engine", SIDE):
        raise ValueError(f"{item.nodeid}: engine(lane={lane!r}): the lanes are 'engine' and {SIDE!r}")
    return lane


def keep_own_lane(config, items: list) -> None:
    """On an xdist worker, keep (in place) only the tests of this worker's lane: the engine
    tests on lane 0; the rest on the side lanes, by module, in collection order. With no
    engine-lane tests (``-m "not engine"``) every lane takes side modules."""
    lane = this_lane(config)
    if lane is None:
        return
    engine = [item for item in items if lane_of(item) == "engine"]
    if lane == ENGINE_LANE and engine:
        items[:] = engine
        return
    first = ENGINE_LANE + 1 if engine else ENGINE_LANE
    lanes = int(config.workerinput["workercount"]) - first
    modules = list(dict.fromkeys(item.path for item in items if lane_of(item) == SIDE))
    mine = {path for k, path in enumerate(modules) if first + k % max(lanes, 1) == lane}
    items[:] = [item for item in items if lane_of(item) == SIDE and item.path in mine]


def check_lane(config, what: str) -> None:
    """Refuse to start a shared server outside the engine lane (two engines would share the cores)."""
    lane = this_lane(config)
    if lane not in (None, ENGINE_LANE):
        raise RuntimeError(f"{what} asked for on side lane {lane}: mark its test pytest.mark.engine "
                           "(tests/lanes.py)")
