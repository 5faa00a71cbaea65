"""Two lanes for pytest-xdist (``-n 2``). The engine lane (worker ``gw0``, in collection
order) runs the modules that use the session's shared servers or big topologies; the
other lane runs everything else at a lower CPU priority (``nice``): unit tests, and the
engine modules that only start their own small server (a module says so with a line
``LANE = "fast"``). Those go out a module at a time, so the engine worker takes its part
of them once its own share is done and both end together.

Why: a server start is mostly single-threaded imports (three processes, ~12 s each on 2
cores) and a test mostly waits on HTTP, which leaves a core idle much of the time; the
other lane uses it. The nice value keeps it from slowing the engine lane while that one
computes (a niced engine only gets the cycles the engine lane leaves).

A module belongs to the engine lane when its source mentions ``mark.engine`` and has no
``LANE = "fast"`` line; a shared server asked for from another lane fails at once
(:func:`check_lane`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

ENGINE_WORKER = "gw0"
FAST_LINE = 'LANE = "fast"'  # in a module's source: its engine tests start their own small server
FAST_NICE = 10  # CFS weight 110 against 1024: about a tenth of a contended core


def worker_id() -> str | None:
    """This process's xdist worker id (``gw0``...), or None outside xdist."""
    return os.environ.get("PYTEST_XDIST_WORKER")


def on_engine_lane() -> bool:
    return worker_id() in (None, ENGINE_WORKER)


def check_lane(what: str) -> None:
    """Refuse to start a real engine outside the engine lane (two engines would share the cores)."""
    if not on_engine_lane():
        raise RuntimeError(f"{what} asked for on xdist worker {worker_id()}: mark its module "
                           "with pytest.mark.engine so that it runs on the engine lane (tests/lanes.py)")


class LaneScheduling:
    """xdist scheduler (the ``Scheduling`` protocol): the engine modules go to the first
    worker at once; every other module waits in a queue (those with their own servers
    first, they are the long ones) and goes, a module at a time, to whichever worker runs
    low: the other workers from the start, the first one once its engine share is done."""

    def __init__(self, config, log=None) -> None:
        from xdist.workermanage import parse_tx_spec_config  # xdist is only there for -n runs

        self.numnodes = len(parse_tx_spec_config(config))
        self.rootpath = Path(config.rootpath)
        self.collection: list[str] | None = None
        self.registered: dict = {}  # node -> its collection (nodeids, same on every node)
        self.pending: dict = {}  # node -> indexes sent and not completed
        self.queue: list[list[int]] = []  # modules not sent yet
        self._sources: dict[str, str] = {}

    @property
    def nodes(self) -> list:
        return list(self.pending)

    @property
    def collection_is_completed(self) -> bool:
        return len(self.registered) >= self.numnodes

    @property
    def tests_finished(self) -> bool:
        return self.collection is not None and not self.queue and not any(self.pending.values())

    @property
    def has_pending(self) -> bool:
        return bool(self.queue) or any(self.pending.values())

    def add_node(self, node) -> None:
        self.pending[node] = []

    def add_node_collection(self, node, collection: Sequence[str]) -> None:
        self.registered[node] = list(collection)

    def mark_test_complete(self, node, item_index: int, duration: float = 0) -> None:
        self.pending[node].remove(item_index)
        self._top_up(node)

    def mark_test_pending(self, item: str) -> None:
        raise NotImplementedError

    def remove_pending_tests_from_node(self, node, indices: Sequence[int]) -> None:
        raise NotImplementedError

    def remove_node(self, node) -> str | None:
        """A worker ended: the test it was on crashed it; the rest of its share goes back to
        the front of the queue for the others."""
        left = self.pending.pop(node)
        self.registered.pop(node, None)
        if not left:
            return None
        if left[1:]:
            self.queue.insert(0, left[1:])
            for other in self.nodes:
                self._top_up(other)
        assert self.collection is not None
        return self.collection[left[0]]

    def schedule(self) -> None:
        assert self.collection_is_completed
        if self.collection is not None:
            for node in self.nodes:  # a replacement worker
                self._top_up(node)
            return
        collections = list(self.registered.values())
        if any(c != collections[0] for c in collections[1:]):
            raise RuntimeError("xdist workers collected different tests")
        self.collection = collections[0]
        modules = self._modules(range(len(self.collection)))
        engine = [i for module in modules if self._lane(module[0]) == "engine" for i in module]
        own = [m for m in modules if self._lane(m[0]) == "own"]
        rest = [m for m in modules if self._lane(m[0]) == "fast"]
        self.queue = own + rest
        nodes = sorted(self.pending, key=lambda n: n.gateway.id)
        if engine:
            self._send(nodes[0], engine)
        for node in nodes:
            self._top_up(node)

    def _top_up(self, node) -> None:
        """Keep two tests ahead on ``node`` (xdist runs a test once it knows the next)."""
        if node.shutting_down:
            return
        while len(self.pending[node]) < 2 and self.queue:
            self._send(node, self.queue.pop(0))
        if not self.queue and len(self.pending[node]) < 2:
            node.shutdown()

    def _send(self, node, indexes: list[int]) -> None:
        self.pending[node].extend(indexes)
        node.send_runtest_some(indexes)

    def _modules(self, indexes) -> list[list[int]]:
        """Indexes grouped by module, in collection order."""
        assert self.collection is not None
        groups: dict[str, list[int]] = {}
        for i in indexes:
            groups.setdefault(self.collection[i].split("::", 1)[0], []).append(i)
        return list(groups.values())

    def _lane(self, index: int) -> str:
        """``engine`` (the first worker), ``own`` (own small servers) or ``fast``."""
        assert self.collection is not None
        path = self.collection[index].split("::", 1)[0]
        if path not in self._sources:
            try:
                self._sources[path] = (self.rootpath / path).read_text(errors="replace")
            except OSError:
                self._sources[path] = ""
        source = self._sources[path]
        if "mark.engine" not in source:
            return "fast"
        return "own" if FAST_LINE in source else "engine"
