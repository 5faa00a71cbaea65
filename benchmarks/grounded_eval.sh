#!/usr/bin/env bash
# Grounded decoding on vs off (issue 21): the adapter_eval.sh sets, the same `ie-service eval`
# commands twice against one running service ("grounded" is a request option).
#   ie-service serve --port 8091 &
#   bash benchmarks/grounded_eval.sh http://127.0.0.1:8091 eval-runs/grounded 100 EVAL_DIR
set -euo pipefail
URL=$1 OUT=$2 LIMIT=$3 DEV=$4
HERE=$(dirname "$0")
bash "$HERE/adapter_eval.sh" "$URL" "$OUT/on" "$LIMIT" "$DEV"
bash "$HERE/adapter_eval.sh" "$URL" "$OUT/off" "$LIMIT" "$DEV" --ungrounded
