"""Debian's Chromium, headless, for the page tests (the playground, the KG picture)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

# no background connections: this machine's network is closed, and Chromium retries them
QUIET = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def find_chromium() -> str:
    """The browser (the ``chromium`` fixture in conftest.py); a skip where it is missing,
    a failure in CI, which installs it."""
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (CI installs it: .ci/run)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


def run_chromium(chromium: str, tmp_path: Path, url: str, *args: str, budget_ms: int = 20000,
                 timeout: float = 180, console_marks: tuple[str, ...] = (":CONSOLE", "Uncaught")) -> tuple[str, list[str]]:
    """Load ``url`` in a fresh profile, letting its scripts run ``budget_ms`` of virtual time;
    (stdout, the stderr lines holding one of ``console_marks``)."""
    cmd = [chromium, *QUIET, f"--user-data-dir={tmp_path / 'chromium-profile'}", "--enable-logging=stderr",
           "--v=0", f"--virtual-time-budget={budget_ms}", *args, url]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, "HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr[-3000:]
    console = [line for line in r.stderr.splitlines() if any(mark in line for mark in console_marks)]
    return r.stdout, console
