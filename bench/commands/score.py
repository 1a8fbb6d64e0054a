"""``score``: score rows with a finished LLM run's saved trained state, no training."""
from __future__ import annotations

import argparse
from pathlib import Path

from bench.commands.args import DATA_DIR_HELP, DEVICE_HELP

NAME = "score"
HELP = "score rows (a CSV) with a finished LLM run's saved trained state, no training"
DESCRIPTION = ("Rebuilds the run's method from the trained state its record names "
               "(artifacts.trained_state) and its split from the record, then scores the rows. "
               "A row that is a row of the split is scored as the run scored it; another takes "
               "the user's history after their last train row (--history all: last row of any "
               "part). Users or items the split never mentions are refused, listed.")


def add_arguments(sc: argparse.ArgumentParser) -> None:
    sc.add_argument("--run", required=True, type=Path, help="the run's record (results/<suite>/<run>.json)")
    sc.add_argument("--rows", required=True, type=Path,
                    help="CSV with columns user,item (the split's ids) and optionally label (0/1: metrics are "
                         "printed), timestamp")
    sc.add_argument("--out", default=None, type=Path, help="where the scored CSV goes (default: stdout)")
    sc.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)
    sc.add_argument("--device", default="auto", help=f"{DEVICE_HELP} (the run's device and dtype "
                                                     "reproduce its scores exactly)")
    sc.add_argument("--history", default="train", choices=["train", "all"],
                    help="a new row's history: the user's after their last train row (default), or last row of any part")


def execute(args: argparse.Namespace) -> int:
    from bench.runner import check_device_name
    from bench.scoring import score_command

    check_device_name(args.device)
    return score_command(args.run, args.rows, args.out, args.data_dir, args.device, args.history)
