"""Deployment files: Dockerfiles lint clean, the compose file validates, the entrypoint
turns environment variables into the right serve flags."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HADOLINT = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.cpu"])
def test_dockerfiles_lint_clean(name):
    r = subprocess.run([HADOLINT, str(ROOT / "deploy" / name)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_hadolint_does_flag_problems(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:latest\nRUN cd /tmp && apt-get install curl\nCMD echo hi\n")
    assert subprocess.run([HADOLINT, str(bad)], capture_output=True).returncode != 0


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed (.ci/run installs it)")
def test_compose_file_validates(tmp_path):
    ok = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
                        capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0, ok.stderr
    service = yaml.safe_load(ok.stdout)["services"]["ie-service"]
    assert {"published": 8090, "target": 8090} in service["ports"]
    assert service["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert service["healthcheck"]["test"][-1] == "/app/deploy/healthcheck.py"
    broken = tmp_path / "docker-compose.yml"
    broken.write_text((ROOT / "docker-compose.yml").read_text().replace("ports:", "portz:"))
    bad = subprocess.run(["docker-compose", "-f", str(broken), "config"], capture_output=True, text=True)
    assert bad.returncode != 0


def run_entrypoint(tmp_path, **env):
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "ie-service").write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    (fake / "ie-service").chmod(0o755)
    full = {"PATH": f"{fake}:{os.environ['PATH']}", **env}
    r = subprocess.run(["sh", str(ROOT / "deploy" / "entrypoint.sh")], capture_output=True, text=True, env=full)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_entrypoint_defaults_to_embedded_model(tmp_path):
    args = run_entrypoint(tmp_path)
    assert args[:5] == ["serve", "--host", "0.0.0.0", "--port", "8090"]
    assert "--model" not in args and args[args.index("--tensor-parallel-size") + 1] == "1"


def test_entrypoint_passes_model_tp_and_extra_flags(tmp_path):
    args = run_entrypoint(tmp_path, IE_MODEL="/models/current", IE_TP="2", IE_PORT="9000",
                          IE_EXTRA_ARGS="--no-enforce-eager --max-outstanding 64")
    assert args[args.index("--model") + 1] == "/models/current"
    assert args[args.index("--tensor-parallel-size") + 1] == "2"
    assert args[args.index("--port") + 1] == "9000"
    assert args[-3:] == ["--no-enforce-eager", "--max-outstanding", "64"]
