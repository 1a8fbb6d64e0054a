"""``python -m bench run | tune | ls | score | report | efficiency | scoring-speed | overhead``. Each
subcommand is a module in ``bench.commands``; heavy imports happen inside the subcommands."""
from __future__ import annotations

import argparse
import logging
import sys

from bench.commands import COMMANDS
from bench.errors import BenchError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description="recbench: reproducible LLM-rec benchmark")
    sub = p.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        command.add_arguments(sub.add_parser(name, help=command.HELP, description=command.DESCRIPTION))
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("bench").setLevel(logging.INFO)
    try:
        return COMMANDS[args.command].execute(args)
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
