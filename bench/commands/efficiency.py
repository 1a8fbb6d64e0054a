"""``efficiency``: params / train-step / inference-step ratios of the LLM methods."""
from __future__ import annotations

import argparse
from pathlib import Path

from bench.commands.args import DEVICE_HELP, csv_list, require_positive
from bench.errors import BenchError

NAME = "efficiency"
HELP = "params / train-step / inference-step ratios of every LLM method, one process, one device"
DESCRIPTION = None


def add_arguments(eff: argparse.ArgumentParser) -> None:
    eff.add_argument("--backbone", default="random:smollm2-135m",
                     help="random:llama-7b | random:smollm2-135m | random:tiny | smollm2-135m | a local checkpoint")
    eff.add_argument("--device", default="auto", help=DEVICE_HELP)
    eff.add_argument("--dataset", default="ml1m", help="whose prompts fill the fixed batches (ml1m: mean ~150 tokens)")
    eff.add_argument("--data-dir", default=None)
    eff.add_argument("--subset-users", type=int, default=None)
    eff.add_argument("--methods", type=csv_list, help="comma-separated subset of the LLM methods")
    eff.add_argument("--batch-size", type=int, default=32)
    eff.add_argument("--eval-batch-size", type=int, default=64)
    eff.add_argument("--warmup", type=int, default=3)
    eff.add_argument("--repeats", type=int, default=10)
    eff.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"],
                     help="auto: bf16 on CUDA, fp32 on CPU")
    eff.add_argument("--params-only", action="store_true",
                     help="trainable-parameter counts only, models on the meta device (the 7B shape on any machine)")
    eff.add_argument("--out", default=Path("results/benchmarks"), type=Path)


def execute(args: argparse.Namespace) -> int:
    from bench.benchmarks import BENCHMARKS
    from bench.runner import resolve_device

    require_positive(args, "batch_size", "eval_batch_size", "repeats")
    if args.warmup < 0:
        raise BenchError("--warmup must be >= 0", "pass 0 or more")
    bench = BENCHMARKS["efficiency"]
    rec = bench.record(bench.measure(args.backbone, resolve_device(args.device), args.dataset, args.data_dir,
                                     args.batch_size, args.eval_batch_size, args.warmup, args.repeats, args.methods,
                                     subset_users=args.subset_users, dtype=args.dtype, params_only=args.params_only))
    print(f"wrote {bench.write(rec, args.out)}")
    return 0
