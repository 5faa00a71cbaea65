from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from ie_service.local_server import local_servers  # noqa: E402
from lanes import ENGINE_LANE, SIDE_NICE, LaneAssigner, check_lane, keep_own_lane, this_lane  # noqa: E402
from waits import wait_until  # noqa: E402

LOGS = Path(__file__).resolve().parent.parent / ".cache" / "test-logs"


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``-n N``: every worker runs the tests of its lane, kept at its collection (tests/lanes.py)."""
    from xdist.scheduler import EachScheduling

    return EachScheduling(config, log)


def pytest_configure(config) -> None:
    if getattr(config.option, "numprocesses", None) and this_lane(config) is None:  # xdist's controller
        config.pluginmanager.register(LaneAssigner(), "ie-lanes")
    if this_lane(config) not in (None, ENGINE_LANE):  # a side lane yields the cores to the engine lane
        os.nice(SIDE_NICE)


@pytest.fixture(autouse=True)
def _restore_environment() -> Iterator[None]:
    """Every test leaves ``os.environ`` as it found it: vLLM's config step (run in-process by
    unit tests) writes ``LD_PRELOAD``, ``VLLM_WORKER_MULTIPROC_METHOD`` and more into it, and
    servers started by later tests inherit the process environment (seen in CI: a leaked
    torch ``libgomp`` preload beside Intel OpenMP failed every later engine start)."""
    saved = dict(os.environ)
    yield
    if dict(os.environ) != saved:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's Chromium for the page tests (tests/headless_chromium.py)."""
    from headless_chromium import find_chromium

    return find_chromium()


GUARD_KEY = "s3cret"
GUARDED_ARGS = ["--api-key", GUARD_KEY, "--max-outstanding", "4"]


def scaled_adapter(src: Path, dst: Path, factor: float) -> Path:
    """A copy of the adapter ``src`` with every lora_B weight multiplied by ``factor``."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy(src / "adapter_config.json", dst / "adapter_config.json")
    state = load_file(str(src / "adapter_model.safetensors"))
    state = {k: (v.float() * factor).to(v.dtype) if "lora_B" in k else v for k, v in state.items()}
    save_file(state, str(dst / "adapter_model.safetensors"))
    return dst


def _lora_args(tmp_path_factory) -> list[str]:
    """The base with the shipped adapter as ``ie`` and, as ``off``, that adapter with B = 0."""
    from ie_service.models.embedded import ADAPTER_DIR

    off = scaled_adapter(ADAPTER_DIR, tmp_path_factory.mktemp("off"), 0.0)
    return ["--model", "embedded:base", "--lora", f"ie={ADAPTER_DIR}", "--lora", f"off={off}"]


# float32 on every host: tests compare answers across batches, and a run-time adapter with the
# merged model; bf16 (``auto`` on a CPU with native bf16) rounds differently for each batch shape
# (seen on an AMX host: the same prompt twice in one batch, two answers). The dtype choice
# itself is tested on faked hosts (tests/models/test_model_inspect.py).
SHARED_DTYPE = ["--dtype", "float32"]

# The servers shared by the session, by fixture name: (its arguments, its log).
SHARED_SERVERS = {
    "server_url": (lambda tmp: list(SHARED_DTYPE), "server-tp1.log"),
    "guarded_url": (lambda tmp: [*SHARED_DTYPE, *GUARDED_ARGS], "server-guarded.log"),
    "lora_url": (lambda tmp: [*SHARED_DTYPE, *_lora_args(tmp)], "server-lora.log"),
}


@pytest.hookimpl(trylast=True)  # after -m / -k have deselected
def pytest_collection_modifyitems(config, items: list) -> None:
    """Under xdist, this worker's lane only (tests/lanes.py). The modules that use the shared
    servers run first, those of the server the fewest modules use first (collection order
    otherwise, a module's tests together): each shared server is
    stopped after its last test, so none is held idle (~3.5 GB) through the modules that start
    their own servers and topologies. A run without shared servers keeps its order."""
    users: dict[str, set] = {name: set() for name in SHARED_SERVERS}
    for item in items:
        for name in SHARED_SERVERS:
            if name in getattr(item, "fixturenames", ()):
                users[name].add(item.path)
    rank = sorted(SHARED_SERVERS, key=lambda name: len(users[name]))
    items.sort(key=lambda item: min((i for i, name in enumerate(rank) if item.path in users[name]),
                                    default=len(rank)))
    keep_own_lane(config, items)


_SHARED_LEFT: dict[str, int] = {}  # shared server -> tests of this run that still need it
_SHARED_STOPS: dict[str, Callable[[], None]] = {}  # running shared server -> what stops it


@pytest.fixture(scope="session")
def _shared_servers(request, tmp_path_factory) -> Iterator[dict[str, str]]:
    """The shared servers this run's tests ask for, started at once on first use (their
    start-ups overlap): fixture name -> URL. Each is stopped after the last test that asks
    for it (its ~4 GB back for the servers later tests start)."""
    check_lane(request.config, "a shared server")
    for item in request.session.items:
        for name in SHARED_SERVERS:
            if name in getattr(item, "fixturenames", ()):
                _SHARED_LEFT[name] = _SHARED_LEFT.get(name, 0) + 1
    wanted = [name for name in SHARED_SERVERS if _SHARED_LEFT.get(name)]
    LOGS.mkdir(parents=True, exist_ok=True)
    specs = [(SHARED_SERVERS[name][0](tmp_path_factory), LOGS / SHARED_SERVERS[name][1]) for name in wanted]
    with local_servers(specs) as group:
        urls = dict(zip(wanted, group))
        _SHARED_STOPS.update({name: functools.partial(group.stop, url) for name, url in urls.items()})
        yield urls
        _SHARED_STOPS.clear()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    result = yield
    for name in SHARED_SERVERS:
        if name in getattr(item, "fixturenames", ()) and name in _SHARED_LEFT:
            _SHARED_LEFT[name] -= 1
            if _SHARED_LEFT[name] == 0 and name in _SHARED_STOPS:
                _SHARED_STOPS.pop(name)()
    return result


@pytest.fixture(scope="session")
def server_url(_shared_servers) -> str:
    """A real ``ie-service serve`` (vLLM, embedded model) on loopback, shared by the session."""
    return _shared_servers["server_url"]


@pytest.fixture(scope="session")
def guarded_url(_shared_servers) -> str:
    """A second real server, behind ``--api-key`` and admitting 4 outstanding requests, shared
    by the tests of those guards (the kill -9 test has a server of its own: tests/engine/test_recovery.py)."""
    return _shared_servers["guarded_url"]


@pytest.fixture(scope="session")
def lora_url(_shared_servers) -> str:
    """The base model with run-time adapters (``--lora ie=<shipped> --lora off=<B = 0>``)."""
    return _shared_servers["lora_url"]


def engine_core_of(url: str):
    """The vLLM engine core process of the server at ``url`` (started by this session)."""
    import psutil

    port = url.rsplit(":", 1)[1]
    for proc in psutil.Process().children(recursive=True):
        try:
            cmd = proc.cmdline()
        except psutil.Error:
            continue
        if "serve" in cmd and "--port" in cmd and cmd[cmd.index("--port") + 1] == port:
            for child in proc.children(recursive=True):
                try:
                    if "EngineCore" in " ".join(child.cmdline()) + child.name():
                        return child
                except psutil.Error:
                    continue
    raise AssertionError(f"no engine core under the server at {url}")


def health_until_back(url: str, headers: dict | None = None, limit_s: float = 400,
                      log_path: Path | None = None) -> set[str]:
    """After a kill: the ``/health`` 503 statuses seen until it answered 200 again. Fails when
    it is not back within ``limit_s`` or the server stops answering (the log's tail then)."""
    import httpx

    states: set[str] = set()

    def back() -> bool:
        try:
            r = httpx.get(f"{url}/health", headers=headers, timeout=5)
        except httpx.TransportError:  # the process exited: not what we want
            tail = log_path.read_text(errors="replace")[-3000:] if log_path else ""
            raise AssertionError(f"{url} stopped answering /health\n{tail}")
        if r.status_code == 503:
            states.add(r.json()["status"])
        return r.status_code == 200 and bool(states)

    wait_until(back, limit_s, interval=0.5, what=lambda: f"{url}/health back to 200 (503 statuses seen: {states})")
    return states



def scrape(url: str) -> dict[str, float]:
    """A real server's ``/metrics``: each series (``name`` or ``name{labels}``) and its value."""
    import httpx

    lines = httpx.get(f"{url}/metrics", timeout=10).text.splitlines()
    return {series: float(value) for series, value in
            (line.rsplit(" ", 1) for line in lines if line and not line.startswith("#"))}
