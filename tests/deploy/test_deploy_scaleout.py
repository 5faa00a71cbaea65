"""Scale-out deployment files (issue 13): the Kubernetes manifests in deploy/k8s validate
strictly and offline (kubernetes-validate ships the schemas), the two-node StatefulSet turns
its pod ordinal into the right node rank / leader address, the entry point maps the new
environment variables to serve flags, and the compose profiles render consistently."""

from __future__ import annotations

import copy
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import kubernetes_validate.utils as kubernetes_validate  # the test extra; ships the schemas
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"
IMAGE_ENTRYPOINT = "/app/deploy/entrypoint.sh"  # where deploy/Dockerfile puts it
# The oldest version still served by the big managed offerings, and the newest the package ships.
K8S_VERSIONS = ("1.33.0", "1.37.0")
# Kinds from CRDs have no schema in kubernetes-validate: named here, validated by hand below.
CRD_KINDS = {("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet")}
MANIFESTS = sorted(K8S.glob("*.yaml"))


def load(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def find(docs: list[dict], kind: str, name: str | None = None) -> dict:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


@pytest.fixture
def offline(monkeypatch):
    """Any network access while validating is an error (CI has no network at test time)."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access during validation: {args!r}")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def validate(doc: dict, version: str) -> None:
    """Strict validation (unknown fields rejected); a kind without a schema is an error too,
    where kubernetes-validate's CLI only warns."""
    kubernetes_validate.validate(doc, version, strict=True)


def validate_crd(doc: dict, version: str) -> None:
    """LeaderWorkerSet: the CRD's schema is not bundled, so its pod templates are validated
    strictly as core v1 PodTemplates and the few LWS fields used are checked by name."""
    assert (doc["apiVersion"], doc["kind"]) == ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet")
    assert set(doc) <= {"apiVersion", "kind", "metadata", "spec"}
    assert set(doc["spec"]) <= {"replicas", "leaderWorkerTemplate", "startupPolicy", "rolloutStrategy",
                                "networkConfig"}
    template = doc["spec"]["leaderWorkerTemplate"]
    assert set(template) <= {"size", "restartPolicy", "leaderTemplate", "workerTemplate",
                             "subGroupPolicy", "resizePolicy"}
    assert template["restartPolicy"] in {"RecreateGroupOnPodRestart", "None", "Default"}
    for key in ("leaderTemplate", "workerTemplate"):
        validate({"apiVersion": "v1", "kind": "PodTemplate",
                  "metadata": {"name": f"{doc['metadata']['name']}-{key}"}, "template": template[key]},
                 version)


def check(doc: dict, version: str) -> None:
    if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
        validate_crd(doc, version)
    else:
        validate(doc, version)


def test_there_are_manifests():
    assert {p.name for p in MANIFESTS} >= {"single-node.yaml", "data-parallel.yaml", "two-node.yaml",
                                          "models-pvc.yaml"}


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_validates_strictly(path, version, offline):
    docs = load(path)
    assert docs
    for doc in docs:
        check(doc, version)


def test_cli_validates_offline(tmp_path):
    """The CLI as a deployer would run it, with no network namespace where one can be had."""
    cmd = [sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", "-k", K8S_VERSIONS[-1],
           *[str(p) for p in MANIFESTS if p.name != "two-node-lws.yaml"]]
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0:
        cmd = ["unshare", "-n", *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0 and "WARN" not in r.stdout, r.stdout + r.stderr


def broken_variants() -> dict[str, dict]:
    deployment = find(load(K8S / "single-node.yaml"), "Deployment")
    variants = {}
    d = copy.deepcopy(deployment)  # unknown field (a typo): rejected only by strict validation
    d["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0]["readonly"] = True
    variants["unknown-field"] = d
    d = copy.deepcopy(deployment)
    d["spec"]["replicas"] = "one"
    variants["wrong-type"] = d
    d = copy.deepcopy(deployment)
    del d["spec"]["template"]["spec"]["containers"][0]["name"]
    variants["missing-required"] = d
    d = copy.deepcopy(deployment)
    d["kind"] = "Deploymnet"
    variants["unknown-kind"] = d
    return variants


@pytest.mark.parametrize("variant", sorted(broken_variants()))
def test_broken_manifest_is_rejected(variant, offline):
    with pytest.raises(Exception):
        check(broken_variants()[variant], K8S_VERSIONS[-1])


def test_broken_manifest_fails_the_cli(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((K8S / "single-node.yaml").read_text().replace("readOnly: true", "readonly: true"))
    r = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "-k", K8S_VERSIONS[-1], str(bad)],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "readonly" in r.stdout, r.stdout + r.stderr


def test_broken_lws_pod_template_is_rejected(offline):
    lws = copy.deepcopy(find(load(K8S / "two-node-lws.yaml"), "LeaderWorkerSet"))
    lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]["imagePullPolicy"] = 3
    with pytest.raises(Exception):
        check(lws, K8S_VERSIONS[-1])


# ---------------------------------------------------------------- manifest content


def container(workload: dict) -> dict:
    (c,) = workload["spec"]["template"]["spec"]["containers"]
    return c


def env_of(c: dict) -> dict[str, str]:
    """The literal environment values (valueFrom entries left out)."""
    return {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}


def documented_vars() -> set[str]:
    header = [line for line in ENTRYPOINT.read_text().splitlines() if line.startswith("#")]
    return set(re.findall(r"\bIE_[A-Z_]+\b", "\n".join(header)))


def all_workloads():
    for path in MANIFESTS:
        for doc in load(path):
            if doc["kind"] in ("Deployment", "StatefulSet"):
                yield path.name, doc["metadata"]["name"], doc["spec"]["template"]
            elif doc["kind"] == "LeaderWorkerSet":
                t = doc["spec"]["leaderWorkerTemplate"]
                yield path.name, "leader", t["leaderTemplate"]
                yield path.name, "worker", t["workerTemplate"]


@pytest.mark.parametrize("where,name,template", list(all_workloads()), ids=lambda v: v if isinstance(v, str) else "")
def test_pods_are_set_up_like_the_image_expects(where, name, template):
    spec = template["spec"]
    (c,) = spec["containers"]
    names = {e["name"] for e in c["env"]}
    # every IE_* variable is one the entry point reads (or the service's own API keys)
    assert {n for n in names if n.startswith("IE_")} - documented_vars() <= {"IE_SERVICE_API_KEYS"}
    keys = next(e for e in c["env"] if e["name"] == "IE_SERVICE_API_KEYS")["valueFrom"]["secretKeyRef"]
    assert keys["optional"] is True
    assert env_of(c)["IE_MODEL"] == "/models/current"
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    models = next(m for m in mounts.values() if m["mountPath"] == "/models/current")
    assert models["readOnly"] is True and volumes[models["name"]]["persistentVolumeClaim"]["claimName"] == "ie-models"
    shm = next(m for m in mounts.values() if m["mountPath"] == "/dev/shm")
    assert volumes[shm["name"]]["emptyDir"]["medium"] == "Memory"
    res = c["resources"]
    for part in ("requests", "limits"):
        assert {"cpu", "memory", "nvidia.com/gpu"} <= set(res[part])
    assert res["limits"]["nvidia.com/gpu"] == res["requests"]["nvidia.com/gpu"]
    gpus, e = res["limits"]["nvidia.com/gpu"], env_of(c)
    nodes = int(e.get("IE_NNODES", 1))
    assert int(e["IE_TP"]) * int(e.get("IE_DP", 1)) == gpus * nodes
    assert spec["enableServiceLinks"] is False
    if name != "worker":  # an LWS worker is headless: no HTTP, no probes
        startup = c["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 600  # a 13B model loads for minutes
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert "/app/deploy/healthcheck.py" in " ".join(c[probe]["exec"]["command"])


@pytest.mark.parametrize("path", ["single-node.yaml", "data-parallel.yaml"])
def test_service_selects_the_pods(path):
    docs = load(K8S / path)
    workload, service = find(docs, "Deployment"), find(docs, "Service")
    labels = workload["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ports = {p["name"] for p in container(workload)["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports


# ---------------------------------------------------------------- two nodes


def stub_bin(tmp_path: Path) -> Path:
    """ie-service and python on PATH that print their argv, one per line."""
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    for name in ("ie-service", "python"):
        (fake / name).write_text(f'#!/bin/sh\necho {name}\nfor a in "$@"; do echo "$a"; done\n')
        (fake / name).chmod(0o755)
    return fake


def run_in_pod(tmp_path, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """A container command as the pod would run it, the image's entry point being ours."""
    argv = [a.replace(IMAGE_ENTRYPOINT, f"sh {ENTRYPOINT}") for a in argv]
    full = {"PATH": f"{stub_bin(tmp_path)}:{os.environ['PATH']}", **env}
    return subprocess.run(argv, capture_output=True, text=True, env=full)


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


@pytest.fixture(scope="module")
def two_node():
    docs = load(K8S / "two-node.yaml")
    sts = find(docs, "StatefulSet")
    headless = find(docs, "Service", sts["spec"]["serviceName"])
    leader = next(d for d in docs if d["kind"] == "Service" and d is not headless)
    return sts, headless, leader


def test_image_entrypoint_path_matches_the_dockerfile():
    assert f'CMD ["{IMAGE_ENTRYPOINT}"]' in (ROOT / "deploy" / "Dockerfile").read_text()


def test_two_node_statefulset_is_consistent(two_node):
    sts, headless, leader = two_node
    name, c = sts["metadata"]["name"], container(sts)
    env = env_of(c)
    assert sts["spec"]["replicas"] == int(env["IE_NNODES"]) == 2
    assert sts["spec"]["podManagementPolicy"] == "Parallel"  # OrderedReady would wait for pod 0 forever
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is True
    assert headless["spec"]["selector"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()
    assert env["IE_MASTER_ADDR"] == f"{name}-0.{sts['spec']['serviceName']}"
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["master"] == int(env["IE_MASTER_PORT"])
    assert [p["port"] for p in headless["spec"]["ports"]] == [int(env["IE_MASTER_PORT"])]
    assert leader["spec"]["selector"] == {"statefulset.kubernetes.io/pod-name": f"{name}-0"}
    assert leader["spec"]["ports"][0]["targetPort"] in ports
    assert "IE_NODE_RANK" not in env and "IE_HEADLESS" not in env  # the wrapper sets them per pod


@pytest.mark.parametrize("ordinal", [0, 1])
def test_two_node_wrapper_makes_pod_0_the_leader_and_pod_1_a_headless_follower(tmp_path, two_node, ordinal):
    sts, _, _ = two_node
    name, c = sts["metadata"]["name"], container(sts)
    r = run_in_pod(tmp_path, c["command"] + c["args"], {**env_of(c), "HOSTNAME": f"{name}-{ordinal}"})
    assert r.returncode == 0, r.stderr
    args = r.stdout.split()
    assert args[:2] == ["ie-service", "serve"]
    assert flag(args, "--node-rank") == str(ordinal) and ("--headless" in args) == (ordinal == 1)
    assert flag(args, "--nnodes") == "2"
    assert flag(args, "--master-addr") == f"{name}-0.{sts['spec']['serviceName']}"
    assert flag(args, "--master-port") == "29501"
    assert flag(args, "--tensor-parallel-size") == "2" and flag(args, "--model") == "/models/current"
    assert flag(args, "--host") == "0.0.0.0" and flag(args, "--port") == "8090"


@pytest.mark.parametrize("hostname", ["ie-service-2node-2", "somehost", "ie-service-2node-x"])
def test_two_node_wrapper_refuses_a_rank_it_cannot_trust(tmp_path, two_node, hostname):
    sts, _, _ = two_node
    c = container(sts)
    r = run_in_pod(tmp_path, c["command"] + c["args"], {**env_of(c), "HOSTNAME": hostname})
    assert r.returncode == 2 and "ie-service" not in r.stdout, r.stdout
    assert "IE_NNODES" in r.stderr or "hostname" in r.stderr


@pytest.mark.parametrize("probe", ["startupProbe", "readinessProbe", "livenessProbe"])
def test_two_node_probes_check_http_on_the_leader_only(tmp_path, two_node, probe):
    sts, _, _ = two_node
    name, command = sts["metadata"]["name"], container(sts)[probe]["exec"]["command"]
    leader = run_in_pod(tmp_path, command, {"HOSTNAME": f"{name}-0"})
    assert leader.returncode == 0 and leader.stdout.split() == ["python", "/app/deploy/healthcheck.py"]
    follower = run_in_pod(tmp_path, command, {"HOSTNAME": f"{name}-1"})
    assert follower.returncode == 0 and follower.stdout == ""


def test_lws_variant_is_consistent(tmp_path):
    docs = load(K8S / "two-node-lws.yaml")
    lws, service = find(docs, "LeaderWorkerSet"), find(docs, "Service")
    t = lws["spec"]["leaderWorkerTemplate"]
    leader, worker = t["leaderTemplate"], t["workerTemplate"]
    # LWS labels every pod of the set with leaderworkerset.sigs.k8s.io/name itself
    pods = {"leaderworkerset.sigs.k8s.io/name": lws["metadata"]["name"]}
    assert service["spec"]["selector"].items() <= {**leader["metadata"]["labels"], **pods}.items()
    assert not service["spec"]["selector"].items() <= {**worker["metadata"]["labels"], **pods}.items()
    for tpl, rank, headless in ((leader, "0", False), (worker, "1", True)):
        (c,) = tpl["spec"]["containers"]
        assert t["size"] == int(env_of(c)["IE_NNODES"])
        rank_ref = next(e for e in c["env"] if e["name"] == "IE_NODE_RANK")["valueFrom"]["fieldRef"]
        assert rank_ref["fieldPath"] == "metadata.labels['leaderworkerset.sigs.k8s.io/worker-index']"
        # what LWS and the downward API put in the environment
        env = {**env_of(c), "IE_NODE_RANK": rank, "LWS_LEADER_ADDRESS": "ie-service-lws-0.ie-service-lws.ns"}
        r = run_in_pod(tmp_path, c["command"] + c["args"], env)
        assert r.returncode == 0, r.stderr
        args = r.stdout.split()
        assert flag(args, "--node-rank") == rank and ("--headless" in args) is headless
        assert flag(args, "--master-addr") == "ie-service-lws-0.ie-service-lws.ns"


# ---------------------------------------------------------------- entry point


def run_entrypoint(tmp_path, **env) -> subprocess.CompletedProcess:
    return run_in_pod(tmp_path, ["sh", str(ENTRYPOINT)], env)


NEW_FLAGS = {
    "IE_DP": ("--data-parallel-size", "4"),
    "IE_NNODES": ("--nnodes", "2"),
    "IE_NODE_RANK": ("--node-rank", "1"),
    "IE_MASTER_ADDR": ("--master-addr", "10.0.0.1"),
    "IE_MASTER_PORT": ("--master-port", "29600"),
}


@pytest.mark.parametrize("var", sorted(NEW_FLAGS))
def test_entrypoint_maps_each_scale_out_variable(tmp_path, var):
    name, value = NEW_FLAGS[var]
    r = run_entrypoint(tmp_path, **{var: value})
    assert r.returncode == 0, r.stderr
    args = r.stdout.split()
    assert flag(args, name) == value
    others = {n for v, (n, _) in NEW_FLAGS.items() if v != var} | {"--headless"}
    assert not others & set(args)


def test_entrypoint_sets_nothing_for_empty_variables(tmp_path):
    r = run_entrypoint(tmp_path, **{var: "" for var in NEW_FLAGS}, IE_HEADLESS="")
    assert r.returncode == 0, r.stderr
    args = r.stdout.split()
    assert not {n for n, _ in NEW_FLAGS.values()} & set(args) and "--headless" not in args
    assert args == run_entrypoint(tmp_path).stdout.split()


@pytest.mark.parametrize("value,headless", [("1", True), ("true", True), ("0", False), ("", False)])
def test_entrypoint_headless_switch(tmp_path, value, headless):
    r = run_entrypoint(tmp_path, IE_HEADLESS=value)
    assert r.returncode == 0, r.stderr
    assert ("--headless" in r.stdout.split()) is headless


def test_entrypoint_refuses_an_unclear_headless_value(tmp_path):
    r = run_entrypoint(tmp_path, IE_HEADLESS="maybe")
    assert r.returncode == 2 and "IE_HEADLESS" in r.stderr and "ie-service" not in r.stdout


def test_entrypoint_keeps_extra_args_last(tmp_path):
    r = run_entrypoint(tmp_path, IE_DP="2", IE_HEADLESS="1", IE_EXTRA_ARGS="--no-enforce-eager")
    assert r.stdout.split()[-1] == "--no-enforce-eager"


# ---------------------------------------------------------------- compose profiles

needs_compose = pytest.mark.skipif(shutil.which("docker-compose") is None,
                                   reason="docker-compose not installed (.ci/run installs it)")


def compose_config(*profiles: str, **env: str) -> dict:
    argv = ["docker-compose", "-f", str(ROOT / "docker-compose.yml")]
    for p in profiles:
        argv += ["--profile", p]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IE_")}
    r = subprocess.run([*argv, "config"], capture_output=True, text=True, cwd=ROOT, env={**clean, **env})
    assert r.returncode == 0, r.stderr
    return yaml.safe_load(r.stdout)["services"]


@needs_compose
def test_compose_profiles_leave_plain_up_to_the_default_service():
    raw = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert "profiles" not in raw["ie-service"]
    assert all(s.get("profiles") for n, s in raw.items() if n != "ie-service")


@needs_compose
def test_compose_data_parallel_profile():
    dp = compose_config("data-parallel")["ie-service-dp"]
    assert dp["profiles"] == ["data-parallel"]
    assert dp["environment"]["IE_DP"] == "2" and dp["environment"]["IE_TP"] == "1"
    assert dp["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert dp["healthcheck"]["test"][-1] == "/app/deploy/healthcheck.py"


@needs_compose
@pytest.mark.parametrize("override", [{}, {"IE_MASTER_ADDR": "10.0.0.1", "IE_MASTER_PORT": "29600"}])
def test_compose_two_node_profile(tmp_path, override):
    services = compose_config("two-node", **override)
    leader, follower = services["ie-leader"], services["ie-follower"]
    le, fe = leader["environment"], follower["environment"]
    assert le["IE_MASTER_ADDR"] == fe["IE_MASTER_ADDR"] == override.get("IE_MASTER_ADDR", "ie-leader")
    assert le["IE_MASTER_PORT"] == fe["IE_MASTER_PORT"] == override.get("IE_MASTER_PORT", "29501")
    assert le["IE_NNODES"] == fe["IE_NNODES"] == "2" and le["IE_TP"] == fe["IE_TP"]
    assert (le["IE_NODE_RANK"], fe["IE_NODE_RANK"]) == ("0", "1")
    assert "IE_HEADLESS" not in le and fe["IE_HEADLESS"] == "1"
    assert {"published": 8090, "target": 8090} in leader["ports"] and "ports" not in follower
    assert follower["healthcheck"]["test"] == ["NONE"]  # no HTTP to check on a follower
    ids = [s["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] for s in (leader, follower)]
    assert not set(ids[0]) & set(ids[1])  # on one host they split the GPUs
    assert leader["volumes"] == follower["volumes"]
    # and the entry point turns the follower's environment into a headless follower
    r = run_entrypoint(tmp_path, **{k: str(v) for k, v in fe.items()})
    args = r.stdout.split()
    assert r.returncode == 0 and "--headless" in args and flag(args, "--node-rank") == "1"
    assert flag(args, "--master-addr") == le["IE_MASTER_ADDR"]


def test_serve_accepts_what_the_entrypoint_passes(tmp_path):
    """The flags the entry point builds parse with the real ``ie-service`` parser."""
    from ie_service.cli import build_parser

    env = {var: value for var, (_, value) in NEW_FLAGS.items()}
    r = run_entrypoint(tmp_path, IE_MODEL="/models/current", IE_KV_CACHE_GIB="8", IE_HEADLESS="1",
                       IE_EXTRA_ARGS="--no-enforce-eager", **env)
    assert r.returncode == 0, r.stderr
    args = build_parser().parse_args(r.stdout.split()[1:])
    assert (args.data_parallel_size, args.nnodes, args.node_rank) == (4, 2, 1)
    assert (args.master_addr, args.master_port, args.headless) == ("10.0.0.1", 29600, True)
