"""Issue 30: the wheel works outside the checkout. Built from a copy of the sources, installed
(not editable) into a folder of its own that sits before the project venv on ``PYTHONPATH``
(the heavy dependencies come from the venv), and run from another directory: ``--version``,
the shipped templates and evaluation sets, then one real ``serve`` answering ``/extract/ner``
and ``eval --dataset wnut17 --limit 3`` against that one server.

This module starts its own small server beside the shared ones (tests/lanes.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from ie_service import __version__

ROOT = Path(__file__).resolve().parents[2]


def _run(cmd: list[str], cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"{cmd}: exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """The wheel installed into its own folder: its ``site`` folder, the env that puts it first,
    and a working directory away from the checkout."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "ie_service", src / "ie_service", ignore=shutil.ignore_patterns("__pycache__"))
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(src),
          "-w", str(tmp / "dist")], cwd=tmp)
    wheels = list((tmp / "dist").glob("ie_service-*.whl"))
    assert [w.name for w in wheels] == [f"ie_service-{__version__}-py3-none-any.whl"]
    site = tmp / "site"
    _run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheels[0])], cwd=tmp)
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    for var in ("IE_SERVICE_PROMPTS", "IE_SERVICE_DATA"):
        env.pop(var, None)
    return {"site": site, "env": env, "cwd": elsewhere, "bin": site / "bin" / "ie-service"}


def test_the_wheel_is_what_runs_and_has_its_data(installed):
    probe = ("import ie_service, ie_service.paths as p, ie_service.evaluation.datasets as d;"
             "print(ie_service.__file__);"
             "print(sorted(x.name for x in (p.prompts_dir() / 'tasks').glob('*.json')));"
             "print({n: len(d.load(n)) for n in sorted(d.NAMED)})")
    out = _run([sys.executable, "-c", probe], cwd=installed["cwd"], env=installed["env"]).stdout.splitlines()
    assert out[0].startswith(str(installed["site"]))  # not the checkout's editable install
    assert "ner-en-schema.json" in out[1] and "ee-zh-schema.json" in out[1]
    assert eval(out[2]) == {"crossner-ai": 430, "crossner-music": 457, "fewfc": 1821, "wnut17": 1287}
    for license_file in ("wnut17/README.md", "crossner/LICENSE", "fewfc/LICENSE.txt", "README.md"):
        assert (installed["site"] / "ie_service" / "data" / license_file).is_file()
    version = _run([str(installed["bin"]), "--version"], cwd=installed["cwd"], env=installed["env"])
    assert version.stdout.strip() == f"ie-service {__version__}"


def _changelog_versions() -> list[str]:
    return [line.split()[1].strip("[]") for line in (ROOT / "CHANGELOG.md").read_text().splitlines()
            if line.startswith("## ")]


def test_one_version_source():
    """pyproject reads the version from ``ie_service.__version__``; CHANGELOG's newest entry is it."""
    text = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in text and 'attr = "ie_service.__version__"' in text
    assert _changelog_versions()[0] == __version__


@pytest.mark.engine(lane="side")  # its own small server (tests/lanes.py)
def test_wheel_serves_extracts_and_evaluates(installed, monkeypatch):
    from ie_service.local_server import local_server

    monkeypatch.chdir(installed["cwd"])  # the server runs from outside the checkout, on the wheel
    monkeypatch.setenv("PYTHONPATH", installed["env"]["PYTHONPATH"])
    for var in ("IE_SERVICE_PROMPTS", "IE_SERVICE_DATA"):
        monkeypatch.delenv(var, raising=False)
    log = installed["cwd"] / "server.log"
    with local_server([], log_path=log) as url:
        r = httpx.post(f"{url}/extract/ner", json={"text": "Barack Obama met Angela Merkel in Berlin.",
                                                    "schema": ["person", "location"]}, timeout=300)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["template"] == "ner-en-schema@1"  # the shipped template, read from the wheel
        assert {e["text"] for e in body["entities"]} & {"Barack Obama", "Angela Merkel", "Berlin"}
        out = installed["cwd"] / "eval"
        done = _run([str(installed["bin"]), "eval", "--dataset", "wnut17", "--task", "ner", "--limit", "3",
                     "--url", url, "--out-dir", str(out), "--max-tokens", "128"],
                    cwd=installed["cwd"], env=installed["env"], timeout=600)
        report = json.loads((out / "wnut17-ner-constrained.report.json").read_text())
        assert report["totals"]["docs"] == 3 and report["totals"]["errors"] == 0
        assert "micro" in done.stdout
