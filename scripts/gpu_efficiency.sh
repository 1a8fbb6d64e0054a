#!/usr/bin/env bash
# The whole GPU efficiency measurement (issue 7, paper Table 6) in one go, on a machine whose
# python3 has torch / transformers / peft / torch-geometric but no RecBole and no network:
# Table 6 at the LLaMA-7B and SmolLM2-135M shapes (random weights, bf16, CF embeddings as seeded
# random tables), then the harness scorer vs a plain Hugging Face loop at both shapes.
#
#   scripts/prepare_device.sh                 # here: stage the ML-1M split + SmolLM2 tokenizer in .device/
#   DEVICE=cuda scripts/gpu_efficiency.sh     # there (default); DEVICE=cpu SHAPES=tiny tries it on a CPU
#   DEVICE=cpu SHAPES=tiny DTYPE=bfloat16 scripts/gpu_efficiency.sh   # ...in the GPU's precision (bf16)
#
# Records land in $OUT (default results/benchmarks); `python -m bench report` renders them.
set -euo pipefail
cd "$(dirname "$0")/.."
export RECBENCH_CACHE="${RECBENCH_CACHE:-$PWD/.device/cache}"
export RECBENCH_DATA_DIR="${RECBENCH_DATA_DIR:-$PWD/.device/data}"
DEVICE="${DEVICE:-cuda}"
DTYPE="${DTYPE:-auto}"  # auto: bf16 on CUDA, fp32 on CPU
SHAPES="${SHAPES:-llama-7b smollm2-135m}"
OUT="${OUT:-results/benchmarks}"
PY="${PYTHON:-python3}"
for shape in $SHAPES; do
  case "$shape" in  # batch sizes as the issue's anchors: train 32, scoring 64 (7B) / 256 (135M)
    llama-7b) rows=512; hb=64 ;;
    smollm2-135m) rows=2048; hb=256 ;;
    *) rows=32; hb=8 ;;
  esac
  "$PY" -m bench efficiency --backbone "random:$shape" --device "$DEVICE" --batch-size 32 --eval-batch-size 64 \
    --warmup 3 --repeats 10 --dtype "$DTYPE" --out "$OUT"
  "$PY" -m bench scoring-speed --backbone "random:$shape" --device "$DEVICE" --rows "$rows" \
    --plain-batch 16 --harness-batch "$hb" --dtypes "$DTYPE" --out "$OUT"
done
