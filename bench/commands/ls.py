"""``ls``: the methods (with their variants), the datasets (and where their data is) and the suites."""
from __future__ import annotations

import argparse
from pathlib import Path

from bench.commands.args import DATA_DIR_HELP
from bench.errors import BenchError

NAME = "ls"
HELP = "list methods (with their variants), datasets (and where their data is) and suites"
DESCRIPTION = None


def add_arguments(ls: argparse.ArgumentParser) -> None:
    ls.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)


def execute(args: argparse.Namespace) -> int:
    return cmd_ls(args.data_dir)


def _variants(cls: type) -> str:
    """A method's variants in its table's order, the default marked ``*``, then the parametric
    names its ``variant_overrides`` also takes (from its unknown-variant hint), a family of them
    written once: ``legacy-<variant>`` for ``legacy-default``, ``legacy-gcn``, ..."""
    names = list(cls.variants)
    try:
        cls.variant_overrides("\0")
    except BenchError as e:
        hint = [n for n in e.fix.rpartition("known: ")[2].split(", ") if n]
        extra = [n for n in hint if n not in names]
        base = set(names) | {n for n in extra if "<" in n}
        families: dict[str, list[str]] = {}
        for n in extra:
            prefix = next((n[:i] for i in range(1, len(n)) if n[i:] in base), None)
            families.setdefault(prefix or n, []).append(n)
        for prefix, members in families.items():
            names += [f"{prefix}<variant>"] if len(members) > 1 else members
    return ", ".join(f"{n}*" if n == cls.default_variant else n for n in names)


def _data_subdir(target: object) -> str | None:
    """The folder under the data dir a dataset's ``module:function`` loader reads: the ``*SUBDIR``
    constant it names (None for any other loader, e.g. a dataset declared in YAML)."""
    import importlib

    if not isinstance(target, str) or ":" not in target:
        return None
    module, _, func = target.partition(":")
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    code = getattr(getattr(mod, func, None), "__code__", None)
    for name in code.co_names if code else ():
        value = getattr(mod, name, None)
        if name.endswith("SUBDIR") and isinstance(value, str):
            return value
    return None


def _data_status(target: object, needs_dir: bool, data_dir: Path | None) -> str:
    if not needs_dir:
        return "embedded (no data dir needed)"
    if data_dir is None:
        return "needs --data-dir or RECBENCH_DATA_DIR"
    if not data_dir.is_dir():
        return f"data dir {data_dir} does not exist"
    sub = _data_subdir(target)
    if sub is None:
        return f"read from {data_dir}"
    return f"{'found' if (data_dir / sub).exists() else 'missing'}: {data_dir / sub}"


def _first_sentence(text: str) -> str:
    import re

    text = " ".join(text.split())
    return re.split(r"(?<=[.!?])\s+(?=[A-Z`(])", text, maxsplit=1)[0] if text else ""


def _indented(rows: list[list[str]], headers: list[str], widths: list[int | None]) -> str:
    """A table indented under its heading; columns as wide as their longest cell, long text wrapped
    at ``widths`` (between words, never inside a hyphenated name)."""
    import textwrap

    from tabulate import tabulate

    rows = [[textwrap.fill(cell, w, break_on_hyphens=False, break_long_words=False) if w else cell
             for cell, w in zip(row, widths)] for row in rows]
    table = tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)
    return "\n".join("  " + line for line in table.splitlines())


def cmd_ls(data_dir: str | None = None) -> int:
    from bench.data import DATASETS, resolve_data_dir
    from bench.registry import get_method, method_table
    from bench.suites import load_suite, suite_names

    rows = []
    for name, target in method_table().items():
        try:
            variants = _variants(get_method(name))
        except BenchError as e:  # e.g. torch missing on a core-only install
            variants = f"unavailable: {e.problem}"
        rows.append([name, variants, target])
    print("methods (run one variant with --methods METHOD:VARIANT):")
    print(_indented(rows, ["method", "variants (* = default)", "class"], [None, 60, None]))
    ddir = resolve_data_dir(data_dir)
    where = "none (pass --data-dir or set RECBENCH_DATA_DIR)" if ddir is None else \
        f"{ddir} (from {'--data-dir' if data_dir else 'RECBENCH_DATA_DIR'})"
    print(f"datasets (data dir: {where}):")
    rows = [[name, _data_status(target, needs_dir, ddir)] for name, (target, needs_dir, _) in DATASETS.items()]
    print(_indented(rows, ["dataset", "data"], [None, None]))
    print("suites (python -m bench run --suite NAME):")
    rows = []
    for name in suite_names():
        try:
            about = _first_sentence(load_suite(name).description)
        except BenchError as e:
            about = f"does not load: {e.problem}"
        rows.append([name, about])
    print(_indented(rows, ["suite", "description (first sentence)"], [None, 90]))
    return 0
