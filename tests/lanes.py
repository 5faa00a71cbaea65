"""Two lanes for pytest-xdist (``-n 2``). The engine lane (worker ``gw0``, in collection
order) runs the modules that use the session's shared servers or big topologies; the
other lane runs everything else at a lower CPU priority (``nice``): unit tests, and the
engine modules that only start their own small server (a module says so with a line
``LANE = "fast"``).

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
        raise RuntimeError(f"{what} asked for on xdist worker {worker_id()}: mark its module with "
                           f"pytest.mark.engine and no {FAST_LINE!r} line, so that it runs on the engine "
                           "lane (tests/lanes.py)")


class LaneScheduling:
    """xdist scheduler (the ``Scheduling`` protocol): engine modules to the first worker,
    the rest spread by module over the others; each worker gets its whole share at once."""

    def __init__(self, config, log=None) -> None:
        from xdist.workermanage import parse_tx_spec_config  # xdist is only there for -n runs

        self.numnodes = len(parse_tx_spec_config(config))
        self.rootpath = Path(config.rootpath)
        self.collection: list[str] | None = None
        self.registered: dict = {}  # node -> its collection (nodeids, same on every node)
        self.pending: dict = {}  # node -> indexes sent and not completed
        self._engine_files: dict[str, bool] = {}

    @property
    def nodes(self) -> list:
        return list(self.pending)

    @property
    def collection_is_completed(self) -> bool:
        return len(self.registered) >= self.numnodes

    @property
    def tests_finished(self) -> bool:
        return self.collection is not None and not any(self.pending.values())

    @property
    def has_pending(self) -> bool:
        return any(self.pending.values())

    def add_node(self, node) -> None:
        self.pending[node] = []

    def add_node_collection(self, node, collection: Sequence[str]) -> None:
        self.registered[node] = list(collection)

    def mark_test_complete(self, node, item_index: int, duration: float = 0) -> None:
        self.pending[node].remove(item_index)

    def mark_test_pending(self, item: str) -> None:
        raise NotImplementedError

    def remove_pending_tests_from_node(self, node, indices: Sequence[int]) -> None:
        raise NotImplementedError

    def remove_node(self, node) -> str | None:
        """A worker ended: the test it was on crashed it; the rest of its share goes to a
        live worker of the same kind if there is one, else is reported by xdist as not run."""
        left = self.pending.pop(node)
        self.registered.pop(node, None)
        if not left:
            return None
        crashed, rest = left[0], left[1:]
        if rest and self.pending:
            heir = self.nodes[0]
            self.pending[heir].extend(rest)
            heir.send_runtest_some(rest)
        assert self.collection is not None
        return self.collection[crashed]

    def schedule(self) -> None:
        assert self.collection_is_completed
        if self.collection is not None:
            return  # a replacement worker: the shares are out already
        collections = list(self.registered.values())
        if any(c != collections[0] for c in collections[1:]):
            raise RuntimeError("xdist workers collected different tests")
        self.collection = collections[0]
        nodes = sorted(self.pending, key=lambda n: n.gateway.id)
        engine: list[int] = []
        fast: list[int] = []
        for i, nodeid in enumerate(self.collection):
            (engine if self._is_engine(nodeid) else fast).append(i)
        shares: dict = {node: [] for node in nodes}
        shares[nodes[0]].extend(engine)
        others = nodes[1:] if engine and len(nodes) > 1 else nodes
        for n, module in enumerate(self._modules(fast)):
            shares[others[n % len(others)]].extend(module)
        for node in nodes:
            if shares[node]:
                self.pending[node] = sorted(shares[node])
                node.send_runtest_some(self.pending[node])
            node.shutdown()

    def _modules(self, indexes: list[int]) -> list[list[int]]:
        """Indexes grouped by module, in collection order."""
        assert self.collection is not None
        groups: dict[str, list[int]] = {}
        for i in indexes:
            groups.setdefault(self.collection[i].split("::", 1)[0], []).append(i)
        return list(groups.values())

    def _is_engine(self, nodeid: str) -> bool:
        path = nodeid.split("::", 1)[0]
        if path not in self._engine_files:
            try:
                source = (self.rootpath / path).read_text(errors="replace")
            except OSError:
                source = ""
            self._engine_files[path] = "mark.engine" in source and FAST_LINE not in source
        return self._engine_files[path]
