#!/usr/bin/env bash
# Stage what the GPU machine cannot fetch into .device/ (git-ignored, never committed): the ML-1M
# split (licence: not redistributed, only carried to our own machine) and the SmolLM2 tokenizer.
# Then carry it: run(command="scripts/gpu_efficiency.sh", carry=[".device"]).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${RECBENCH_DATA_DIR:-../shared/data}"
mkdir -p .device/data/ml-1m-collm .device/cache
cp "$DATA/ml-1m-collm/ml-1m.zip" .device/data/ml-1m-collm/
RECBENCH_CACHE="$PWD/.device/cache" "${PYTHON:-python}" -c "from bench.llm.backbone import smollm2_tokenizer; smollm2_tokenizer()"
grep -qx ".device/" .git/info/exclude 2>/dev/null || echo ".device/" >> .git/info/exclude
du -sh .device
