"""``run``: run a suite, skipping the runs that already have a record."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from bench.commands.args import ADDRESS_HELP, DATA_DIR_HELP, DEVICE_HELP, SUITE_HELP, check_suite_installed, csv_list, seed_list
from bench.errors import BenchError

NAME = "run"
HELP = "run a suite (finished runs are skipped)"
DESCRIPTION = None


def add_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument("--suite", required=True, help=SUITE_HELP)
    run.add_argument("--methods", type=csv_list,
                     help="comma-separated subset of the suite's methods; METHOD:VARIANT picks one variant, a bare "
                          "METHOD all its variants in the suite (e.g. mf:bce,graphlora); the CF runs they need run too")
    run.add_argument("--datasets", type=csv_list, help="comma-separated subset of the suite's datasets")
    run.add_argument("--seeds", help="comma-separated seeds, ints from 0 to 2**32-1 (default: the suite's)")
    run.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)
    run.add_argument("--results-dir", default="results", type=Path,
                     help="where run records go, one folder per suite (default: results)")
    run.add_argument("--device", default="auto", help=DEVICE_HELP)
    run.add_argument("--force", action="store_true", help="redo runs that already have a record")
    run.add_argument("--executor", default="local", choices=["local", "ray"],
                     help="local: runs in this process (default); ray: independent runs as Ray tasks")
    run.add_argument("--address", default=None, help=ADDRESS_HELP)
    run.add_argument("--no-progress", action="store_true",
                     help="no progress bars, log lines only (also off under $CI or when stderr is not a terminal)")


def execute(args: argparse.Namespace) -> int:
    from bench.runner import check_device_name, run_suite

    seeds = seed_list(args.seeds) if args.seeds is not None else None
    for flag, given in (("--methods", args.methods), ("--datasets", args.datasets)):
        if given == []:  # an empty filter would silently mean "all of them"
            raise BenchError(f"{flag} names nothing",
                             f"give comma-separated names, or leave {flag} out for all of the suite's")
    check_device_name(args.device)  # the name here (any executor); a local run checks CUDA too
    check_suite_installed(args.suite, args.methods, args.datasets)
    counts = run_suite(args.suite, results_dir=args.results_dir, data_dir=args.data_dir,
                       methods=args.methods, datasets=args.datasets, seeds=seeds,
                       force=args.force, device=args.device, executor=args.executor, address=args.address,
                       progress=not args.no_progress and not os.environ.get("CI"))
    from bench import distributed

    if distributed.is_main():
        print(f"runs: {counts['done']} done, {counts['skipped']} already recorded, "
              f"{counts['failed']} failed, {counts['unavailable']} without data"
              + (f", {counts['untuned']} waiting for `bench tune`" if counts.get("untuned") else ""))
    distributed.teardown()
    return 1 if counts["failed"] else 0
