"""``scoring-speed``: prompts/s of the harness scorer vs a plain Hugging Face loop."""
from __future__ import annotations

import argparse
from pathlib import Path

from bench.commands.args import DEVICE_HELP, csv_list, require_positive
from bench.errors import BenchError

NAME = "scoring-speed"
HELP = "prompts/s: the harness scorer vs a plain Hugging Face loop"
DESCRIPTION = None


def add_arguments(spd: argparse.ArgumentParser) -> None:
    spd.add_argument("--backbone", default="smollm2-135m", help="as in `run` (random:<shape> too)")
    spd.add_argument("--device", default="auto", help=DEVICE_HELP)
    spd.add_argument("--dataset", default="ml1m")
    spd.add_argument("--data-dir", default=None)
    spd.add_argument("--rows", type=int, default=128, help="test prompts scored by each path")
    spd.add_argument("--plain-batch", type=int, default=16)
    spd.add_argument("--harness-batch", type=int, default=64)
    spd.add_argument("--prompt", default="id", choices=["id", "text"],
                     help="id: the CoLLM/BinLLM/GraphLoRA prompt (ML-1M mean ~188 tokens); text: TALLRec's")
    spd.add_argument("--dtypes", type=csv_list, default=["auto"],
                     help="harness precisions, comma-separated: auto (the plain loop's: fp32 on CPU, bf16 on "
                          "CUDA), float32, bfloat16 (on CPU: faster, scores not exact)")
    spd.add_argument("--out", default=Path("results/benchmarks"), type=Path)


def execute(args: argparse.Namespace) -> int:
    from bench.benchmarks import BENCHMARKS
    from bench.runner import resolve_device

    require_positive(args, "rows", "plain_batch", "harness_batch")
    from bench.llm.backbone import DTYPES

    for name in args.dtypes:
        if name not in ("auto", *DTYPES):
            raise BenchError(f"--dtypes: unknown precision {name!r}", f"use auto, {', '.join(DTYPES)}")
    bench = BENCHMARKS["scoring_speed"]
    rec = bench.record(bench.measure(args.backbone, resolve_device(args.device), args.dataset, args.data_dir,
                                     args.rows, args.plain_batch, args.harness_batch, prompt=args.prompt,
                                     dtypes=tuple(args.dtypes)))
    for e in rec["harness"]:
        print(f"harness ({e['dtype']}) {e['prompts_per_s']:.2f} prompts/s vs plain loop "
              f"({rec['plain']['dtype']}) {rec['plain']['prompts_per_s']:.2f}/s: x{e['speedup']:.2f}")
    print(f"wrote {bench.write(rec, args.out)}")
    return 0
