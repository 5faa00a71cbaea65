#!/bin/sh
# Container entry point: serve on all interfaces, engine settings from the environment.
#   IE_MODEL (empty: the embedded model), IE_TP, IE_MAX_MODEL_LEN, IE_DTYPE, IE_PORT,
#   IE_KV_CACHE_GIB (KV cache per worker in GiB; empty: sized for the host, see --kv-cache-gib),
#   IE_EXTRA_ARGS
set -eu
set -- --host 0.0.0.0 --port "${IE_PORT:-8090}" \
    --tensor-parallel-size "${IE_TP:-1}" --max-model-len "${IE_MAX_MODEL_LEN:-4096}" --dtype "${IE_DTYPE:-auto}"
if [ -n "${IE_MODEL:-}" ]; then set -- "$@" --model "$IE_MODEL"; fi
if [ -n "${IE_KV_CACHE_GIB:-}" ]; then set -- "$@" --kv-cache-gib "$IE_KV_CACHE_GIB"; fi
# shellcheck disable=SC2086  # IE_EXTRA_ARGS is a list of flags
exec ie-service serve "$@" ${IE_EXTRA_ARGS:-}
