#!/usr/bin/env bash
# The adapter's before/after table: the same `ie-service eval` command on every set, served,
# constrained decoding, default settings. Run it once per model, against a running service:
#   ie-service serve --port 8091 &                      # the default (base + IE adapter)
#   ie-service serve --port 8092 --model embedded:base &  # the raw base
#   bash benchmarks/adapter_eval.sh http://127.0.0.1:8091 eval-runs/adapter 300 EVAL_DIR
# EVAL_DIR holds the held-out dev splits written by `ie-service train data --eval-dir`.
# Each set takes its first LIMIT documents; reports land in OUT/*.report.json, and a rerun
# with a larger LIMIT only predicts the documents not done yet. Arguments after EVAL_DIR go to
# every `eval` (e.g. --ungrounded, --adapter NAME: benchmarks/grounded_eval.sh).
set -euo pipefail
URL=$1 OUT=$2 LIMIT=$3 DEV=$4
shift 4
EXTRA=("$@")
IE=${IE:-.venv/bin/ie-service}  # may be a command with arguments
run() { $IE eval --url "$URL" --out-dir "$OUT" --concurrency 16 --limit "$LIMIT" "${EXTRA[@]}" "$@"; }
run --dataset wnut17 --task ner
run --dataset crossner-ai --task ner
run --dataset crossner-music --task ner
run --dataset "$DEV/uner-zh-dev.jsonl" --task ner --language zh
run --dataset fewfc --task ee
run --dataset "$DEV/fewrel-dev.jsonl" --task re
run --dataset "$DEV/fewrel-zeroshot.jsonl" --task re
run --dataset "$DEV/phee-dev.jsonl" --task ee
