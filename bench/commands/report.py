"""``report``: render results/ as the paper's tables and figures."""
from __future__ import annotations

import argparse
from pathlib import Path

NAME = "report"
HELP = "render results/ as the paper's tables (Markdown, LaTeX) and figures"
DESCRIPTION = None


def add_arguments(rep: argparse.ArgumentParser) -> None:
    rep.add_argument("--results-dir", default="results", type=Path)
    rep.add_argument("--out", default="reports", type=Path)
    rep.add_argument("--layout", default=None, type=Path,
                     help="which run fills which table row (default: bench/layouts/graphlora-paper.yaml)")


def execute(args: argparse.Namespace) -> int:
    from bench.report import DEFAULT_LAYOUT, render_all

    for path in render_all(args.results_dir, args.out, args.layout or DEFAULT_LAYOUT):
        print(f"wrote {path}")
    return 0
