"""``overhead``: wall time of a whole harness run vs the library's own quick start."""
from __future__ import annotations

import argparse
from pathlib import Path

from bench.commands.args import DEVICE_HELP, csv_list, key_values, require_positive

NAME = "overhead"
HELP = "wall time of a whole harness run vs the library's own quick start, same split and config"
DESCRIPTION = None


def add_arguments(ovh: argparse.ArgumentParser) -> None:
    ovh.add_argument("--methods", type=csv_list, help="comma-separated subset (default: every method with a reference run)")
    ovh.add_argument("--dataset", default="ml1m")
    ovh.add_argument("--data-dir", default=None)
    ovh.add_argument("--subset-users", type=int, default=None)
    ovh.add_argument("--device", default="auto", help=DEVICE_HELP)
    ovh.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="config override applied to both paths, e.g. --set epochs=10 (repeatable)")
    ovh.add_argument("--out", default=Path("results/benchmarks"), type=Path)


def execute(args: argparse.Namespace) -> int:
    from bench.benchmarks import BENCHMARKS
    from bench.runner import resolve_device

    if args.subset_users is not None:
        require_positive(args, "subset_users")
    bench = BENCHMARKS["overhead"]
    rec = bench.record(bench.measure(args.dataset, args.data_dir, resolve_device(args.device), args.methods,
                                     key_values(args.overrides), subset_users=args.subset_users))
    for e in rec["entries"]:
        print(f"{e['method']} ({e['variant']}): harness {e['harness_s']:.1f}s vs quick start "
              f"{e['reference_s']:.1f}s: x{e['ratio']:.3f}")
    print(f"wrote {bench.write(rec, args.out)}")
    return 0
