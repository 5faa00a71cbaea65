#!/usr/bin/env bash
# Grounded decoding on vs off (issue 21): the adapter_eval.sh sets, the same `ie-service eval`
# command twice per set against one running service ("grounded" is a request option).
#   ie-service serve --port 8091 &
#   bash benchmarks/grounded_eval.sh http://127.0.0.1:8091 eval-runs/grounded 100 EVAL_DIR
set -euo pipefail
URL=$1 OUT=$2 LIMIT=$3 DEV=$4
IE=${IE:-.venv/bin/ie-service}  # may be a command with arguments
run() {
  $IE eval --url "$URL" --out-dir "$OUT/on" --concurrency 16 --limit "$LIMIT" "$@"
  $IE eval --url "$URL" --out-dir "$OUT/off" --concurrency 16 --limit "$LIMIT" --ungrounded "$@"
}
run --dataset wnut17 --task ner
run --dataset crossner-ai --task ner
run --dataset crossner-music --task ner
run --dataset "$DEV/uner-zh-dev.jsonl" --task ner --language zh
run --dataset fewfc --task ee
run --dataset "$DEV/fewrel-dev.jsonl" --task re
run --dataset "$DEV/fewrel-zeroshot.jsonl" --task re
run --dataset "$DEV/phee-dev.jsonl" --task ee
