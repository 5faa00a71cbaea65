#!/bin/sh
# Container entry point: serve on all interfaces, engine settings from the environment.
#   IE_MODEL (empty: the embedded model), IE_TP, IE_MAX_MODEL_LEN, IE_DTYPE, IE_PORT,
#   IE_KV_CACHE_GIB (KV cache per worker in GiB; empty: sized for the host, see --kv-cache-gib),
#   IE_EXTRA_ARGS
# Scaling out (each is passed only when set and non-empty):
#   IE_DP           --data-parallel-size: engine replicas inside this one service
#   IE_NNODES       --nnodes: nodes that share one tensor-parallel engine (IE_TP counts all
#                   their GPUs: IE_TP / IE_NNODES per node)
#   IE_NODE_RANK    --node-rank: 0 on the leader (serves HTTP), 1.. on the followers
#   IE_MASTER_ADDR  --master-addr: the leader's address, the same on every node
#   IE_MASTER_PORT  --master-port: the leader's rendezvous port, the same on every node
#   IE_HEADLESS     1 (or true/yes): --headless, a follower that runs engine workers only, no HTTP
set -eu
set -- --host 0.0.0.0 --port "${IE_PORT:-8090}" \
    --tensor-parallel-size "${IE_TP:-1}" --max-model-len "${IE_MAX_MODEL_LEN:-4096}" --dtype "${IE_DTYPE:-auto}"
if [ -n "${IE_MODEL:-}" ]; then set -- "$@" --model "$IE_MODEL"; fi
if [ -n "${IE_KV_CACHE_GIB:-}" ]; then set -- "$@" --kv-cache-gib "$IE_KV_CACHE_GIB"; fi
if [ -n "${IE_DP:-}" ]; then set -- "$@" --data-parallel-size "$IE_DP"; fi
if [ -n "${IE_NNODES:-}" ]; then set -- "$@" --nnodes "$IE_NNODES"; fi
if [ -n "${IE_NODE_RANK:-}" ]; then set -- "$@" --node-rank "$IE_NODE_RANK"; fi
if [ -n "${IE_MASTER_ADDR:-}" ]; then set -- "$@" --master-addr "$IE_MASTER_ADDR"; fi
if [ -n "${IE_MASTER_PORT:-}" ]; then set -- "$@" --master-port "$IE_MASTER_PORT"; fi
case "${IE_HEADLESS:-}" in
    1 | true | TRUE | True | yes | YES) set -- "$@" --headless ;;
    "" | 0 | false | FALSE | False | no | NO) ;;
    *) echo "entrypoint: IE_HEADLESS must be 1 or 0 (got '$IE_HEADLESS')" >&2; exit 2 ;;
esac
# shellcheck disable=SC2086  # IE_EXTRA_ARGS is a list of flags
exec ie-service serve "$@" ${IE_EXTRA_ARGS:-}
