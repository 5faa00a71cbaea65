#!/usr/bin/env bash
# Build the CPU image with podman and check that its entry point serves the embedded model:
# /health answers and /extract/ner returns schema-typed entities. Used by .ci/run.
#
# Made for machines without a Docker engine or registry access (see shared/notes/cpu-stack.md):
#   - the base image is a local Debian made by debootstrap (no pull), tagged $BASE_IMAGE;
#   - podman builds with vfs storage and chroot isolation;
#   - containers cannot start there (rlimits), so the image's filesystem is mounted and its
#     entry point runs in a chroot with the image's environment.
# pip inside the build gets the host's find-links folder (PIP_FIND_LINKS or pip's config: where
# torch's +cpu wheel is) and the host's CA bundle (PIP_CERT, default the system one), so a
# registry behind a TLS-inspecting proxy works as it does on the host.
#   KEEP_IMAGE=1     keep the built image (default: remove it, it is ~4 GB in vfs storage)
#   SMOKE_PORT=N     port for the chroot server (default 18090)
set -euo pipefail
cd "$(dirname "$0")/.."
PODMAN=(podman --storage-driver vfs)
BASE_IMAGE=${BASE_IMAGE:-localhost/ie-base:bookworm}
IMAGE=${IMAGE:-localhost/ie-service:cpu}
PORT=${SMOKE_PORT:-18090}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
WORK=$(mktemp -d)
log() { echo "[podman-smoke $(date +%T)] $*"; }

if ! "${PODMAN[@]}" image exists "$BASE_IMAGE"; then
    log "debootstrap bookworm -> $BASE_IMAGE"
    debootstrap --variant=minbase --include=python3,python3-pip,python3-venv bookworm \
        "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log"; exit 1; }
    tar -C "$WORK/rootfs" -c . | "${PODMAN[@]}" import - "$BASE_IMAGE" >/dev/null
    rm -rf "$WORK/rootfs"
fi

build=(--isolation chroot --layers=false --format docker -f deploy/Dockerfile.cpu
       --build-arg "BASE=$BASE_IMAGE" -t "$IMAGE")
FIND_LINKS=${PIP_FIND_LINKS:-$(python3 -m pip config get global.find-links 2>/dev/null || true)}
if [ -n "$FIND_LINKS" ] && [ -d "$FIND_LINKS" ]; then
    build+=(-v "$FIND_LINKS:/host-wheels:ro" --build-arg PIP_FIND_LINKS=/host-wheels)
fi
CERT=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
if [ -f "$CERT" ]; then
    build+=(-v "$CERT:/host-ca.crt:ro" --build-arg PIP_CERT=/host-ca.crt)
fi
log "podman build $IMAGE"
"${PODMAN[@]}" build "${build[@]}" . >"$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log"; exit 1; }
log "built: $("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE") bytes"

CID=$("${PODMAN[@]}" create "$IMAGE")
ROOT=$("${PODMAN[@]}" mount "$CID")
SERVER=""
cleanup() {
    if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
    for m in dev/shm dev sys proc; do umount -l "$ROOT/$m" 2>/dev/null || true; done
    "${PODMAN[@]}" umount "$CID" >/dev/null 2>&1 || true
    "${PODMAN[@]}" rm -f "$CID" >/dev/null 2>&1 || true
    [ -n "${KEEP_IMAGE:-}" ] || "${PODMAN[@]}" rmi -f "$IMAGE" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
mount -t proc proc "$ROOT/proc"
mount --rbind /sys "$ROOT/sys"
mount --rbind /dev "$ROOT/dev"

# The image's own environment and command, as `docker run` would use them.
mapfile -t ENV < <("${PODMAN[@]}" image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$IMAGE" | sed '/^$/d')
CMD=$("${PODMAN[@]}" image inspect --format '{{index .Config.Cmd 0}}' "$IMAGE")
WORKDIR=$("${PODMAN[@]}" image inspect --format '{{.Config.WorkingDir}}' "$IMAGE")
log "chroot: $CMD (IE_PORT=$PORT)"
env -i "${ENV[@]}" HOME=/root IE_PORT="$PORT" chroot "$ROOT" sh -c "cd '$WORKDIR' && exec $CMD" \
    >"$WORK/server.log" 2>&1 &
SERVER=$!

# On failure: the root cause first (a long traceback's tail may be cut where CI output is shortened).
server_failed() {
    echo "--- the server's first error lines:"; grep -m 8 -E "Error|error:" "$WORK/server.log" || true
    echo "--- the server's last lines:"; tail -40 "$WORK/server.log"; exit 1
}
python3 - "$PORT" "$SERVER" <<'EOF' || server_failed
import json, os, sys, time, urllib.request

port, pid = sys.argv[1], int(sys.argv[2])
base = f"http://127.0.0.1:{port}"
deadline = time.time() + 600
while True:
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=5) as r:
            health = json.load(r)
        break
    except OSError:
        if time.time() > deadline or not os.path.exists(f"/proc/{pid}"):
            sys.exit("the server in the image did not answer /health")
        time.sleep(3)
assert health["status"] == "ok", health
print("health:", health)
labels = ["person", "location", "organization"]
body = json.dumps({"text": "Barack Obama met Angela Merkel in Berlin.", "schema": labels}).encode()
req = urllib.request.Request(f"{base}/extract/ner", body, {"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=300) as r:
    assert r.status == 200, r.status
    res = json.load(r)
print("extract/ner:", json.dumps({k: res[k] for k in ("entities", "raw_output", "stats")}))
assert res["stats"]["truncated"] == 0 and res["stats"]["unparseable"] == 0, res["stats"]
assert set(json.loads(res["raw_output"][0])) == set(labels), res["raw_output"]
assert all(e["type"] in labels for e in res["entities"]), res["entities"]
EOF
# The image's HEALTHCHECK command, run the same way.
env -i "${ENV[@]}" IE_PORT="$PORT" chroot "$ROOT" python /app/deploy/healthcheck.py
log "ok: the image's entry point answers /health and /extract/ner"
