"""What several subcommands share: argument types, checks and help texts. Imports nothing heavy."""
from __future__ import annotations

import argparse

from bench.errors import BenchError

SUITE_HELP = "suite name (see `ls`) or a YAML path"
DATA_DIR_HELP = "folder holding ml-1m-collm/ etc. (else $RECBENCH_DATA_DIR)"
DEVICE_HELP = "auto | cpu | cuda | cuda:N"
ADDRESS_HELP = "Ray cluster address (with --executor ray; default: a local instance)"


def csv_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def seed_list(value: str, flag: str = "--seeds") -> list[int]:
    """Comma-separated seeds, each in numpy's seed range; anything else is a BenchError."""
    max_seed = 2**32 - 1
    fix = f"e.g. {flag} 0,1,2 (or leave {flag} out for the suite's seeds)"
    items = csv_list(value)
    if not items:
        raise BenchError(f"{flag} {value!r} names no seeds", fix)
    seeds = []
    for item in items:
        try:
            seed = int(item)
        except ValueError:
            raise BenchError(f"{flag}: {item!r} is not an int", fix) from None
        if not 0 <= seed <= max_seed:
            raise BenchError(f"{flag}: {seed} is not a seed (seeds are ints from 0 to {max_seed})", fix)
        seeds.append(seed)
    return seeds


def require_positive(args: argparse.Namespace, *names: str) -> None:
    for name in names:
        if getattr(args, name) <= 0:
            raise BenchError(f"--{name.replace('_', '-')} must be > 0", "pass a positive int")


def key_values(items: list[str]) -> dict[str, object]:
    """``KEY=VALUE`` pairs, values read as YAML scalars (10 -> int, 1e-3 -> float)."""
    import yaml

    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BenchError(f"--set {item!r} is not KEY=VALUE", "e.g. --set epochs=10")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            why = getattr(e, "problem", None) or e
            raise BenchError(f"--set {item!r}: the value {value!r} is not valid YAML ({why})",
                             "give a YAML value, e.g. --set epochs=10 or --set 'dims=[64, 32]'; quote a string "
                             "that YAML would misread, e.g. --set 'name=\"a: b\"'") from None
    return out


def check_suite_installed(suite_name: str, methods: list[str] | None, datasets: list[str] | None) -> None:
    """Stop before any work when a method the run would start needs a package that is missing
    (e.g. torch on a core-only install), naming the extra to install."""
    from bench.registry import check_installed, method_table
    from bench.suites import load_suite

    suite = load_suite(suite_name)
    names = [d.name for d in suite.datasets if not datasets or d.name in datasets]
    chosen = {m.partition(":")[0].strip() for m in methods or []}  # METHOD:VARIANT: the method's packages
    wanted = [r.method for r in suite.runs if (not methods or r.method in chosen)
              and any(not r.datasets or n in r.datasets for n in names)]
    for name in dict.fromkeys(wanted):
        if name in method_table():  # an unknown one gets its did-you-mean from the planner
            check_installed(name)
