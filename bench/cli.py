"""``python -m bench run | tune | ls | score | report | efficiency | scoring-speed | overhead``. Heavy imports happen inside the subcommands."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from bench.errors import BenchError


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _ints(value: str, flag: str = "--seeds") -> list[int]:
    """Comma-separated seeds, each in numpy's seed range; anything else is a BenchError."""
    max_seed = 2**32 - 1
    fix = f"e.g. {flag} 0,1,2 (or leave {flag} out for the suite's seeds)"
    items = _csv(value)
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


def _require_positive(args: argparse.Namespace, *names: str) -> None:
    for name in names:
        if getattr(args, name) <= 0:
            raise BenchError(f"--{name.replace('_', '-')} must be > 0", "pass a positive int")


def _key_values(items: list[str]) -> dict[str, object]:
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


def _check_installed(suite_name: str, methods: list[str] | None, datasets: list[str] | None) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description="recbench: reproducible LLM-rec benchmark")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a suite (finished runs are skipped)")
    run.add_argument("--suite", required=True, help="suite name (see `ls`) or a YAML path")
    run.add_argument("--methods", type=_csv,
                     help="comma-separated subset of the suite's methods; METHOD:VARIANT picks one variant, a bare "
                          "METHOD all its variants in the suite (e.g. mf:bce,graphlora); the CF runs they need run too")
    run.add_argument("--datasets", type=_csv, help="comma-separated subset of the suite's datasets")
    run.add_argument("--seeds", help="comma-separated seeds, ints from 0 to 2**32-1 (default: the suite's)")
    run.add_argument("--data-dir", default=None, help="folder holding ml-1m-collm/ etc. (else $RECBENCH_DATA_DIR)")
    run.add_argument("--results-dir", default="results", type=Path,
                     help="where run records go, one folder per suite (default: results)")
    run.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    run.add_argument("--force", action="store_true", help="redo runs that already have a record")
    run.add_argument("--executor", default="local", choices=["local", "ray"],
                     help="local: runs in this process (default); ray: independent runs as Ray tasks")
    run.add_argument("--address", default=None, help="Ray cluster address (with --executor ray; default: a local instance)")
    run.add_argument("--no-progress", action="store_true",
                     help="no progress bars, log lines only (also off under $CI or when stderr is not a terminal)")

    tune = sub.add_parser("tune", help="search a suite's `tuned: true` runs on valid AUC (Optuna; resumable)",
                          description="Each `tuned: true` run of the suite gets the suite's budget of trials "
                                      "(tuning.trials), searched by its sampler over the method's declared space; a "
                                      "trial never sees the test rows. Studies are stored in <results-dir>/tuning/"
                                      "<suite>.db: a killed tune resumes, two tuners share a study. Then `bench run` "
                                      "scores each chosen configuration on test as an ordinary run (label +tuned).")
    tune.add_argument("--suite", required=True, help="suite name (see `ls`) or a YAML path")
    tune.add_argument("--methods", type=_csv, help="comma-separated subset of the suite's tuned methods (METHOD:VARIANT too)")
    tune.add_argument("--datasets", type=_csv, help="comma-separated subset of the suite's datasets")
    tune.add_argument("--trials", type=int, default=None, help="trials per tuned run (default: the suite's tuning.trials)")
    tune.add_argument("--data-dir", default=None, help="folder holding ml-1m-collm/ etc. (else $RECBENCH_DATA_DIR)")
    tune.add_argument("--results-dir", default="results", type=Path,
                      help="where the studies go: <results-dir>/tuning/<suite>.db (default: results)")
    tune.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    tune.add_argument("--executor", default="local", choices=["local", "ray"],
                      help="local: trials one after another in this process (default); ray: --workers Ray tasks "
                           "per study run its trials in parallel")
    tune.add_argument("--workers", type=int, default=2, help="parallel tuners per study with --executor ray (default: 2)")
    tune.add_argument("--address", default=None, help="Ray cluster address (with --executor ray; default: a local instance)")

    ls = sub.add_parser("ls", help="list methods (with their variants), datasets (and where their data is) and suites")
    ls.add_argument("--data-dir", default=None, help="folder holding ml-1m-collm/ etc. (else $RECBENCH_DATA_DIR)")

    eff = sub.add_parser("efficiency", help="params / train-step / inference-step ratios of every LLM method, one process, one device")
    eff.add_argument("--backbone", default="random:smollm2-135m",
                     help="random:llama-7b | random:smollm2-135m | random:tiny | smollm2-135m | a local checkpoint")
    eff.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    eff.add_argument("--dataset", default="ml1m", help="whose prompts fill the fixed batches (ml1m: mean ~150 tokens)")
    eff.add_argument("--data-dir", default=None)
    eff.add_argument("--subset-users", type=int, default=None)
    eff.add_argument("--methods", type=_csv, help="comma-separated subset of the LLM methods")
    eff.add_argument("--batch-size", type=int, default=32)
    eff.add_argument("--eval-batch-size", type=int, default=64)
    eff.add_argument("--warmup", type=int, default=3)
    eff.add_argument("--repeats", type=int, default=10)
    eff.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"],
                     help="auto: bf16 on CUDA, fp32 on CPU")
    eff.add_argument("--params-only", action="store_true",
                     help="trainable-parameter counts only, models on the meta device (the 7B shape on any machine)")
    eff.add_argument("--out", default=Path("results/benchmarks"), type=Path)

    spd = sub.add_parser("scoring-speed", help="prompts/s: the harness scorer vs a plain Hugging Face loop")
    spd.add_argument("--backbone", default="smollm2-135m", help="as in `run` (random:<shape> too)")
    spd.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    spd.add_argument("--dataset", default="ml1m")
    spd.add_argument("--data-dir", default=None)
    spd.add_argument("--rows", type=int, default=128, help="test prompts scored by each path")
    spd.add_argument("--plain-batch", type=int, default=16)
    spd.add_argument("--harness-batch", type=int, default=64)
    spd.add_argument("--prompt", default="id", choices=["id", "text"],
                     help="id: the CoLLM/BinLLM/GraphLoRA prompt (ML-1M mean ~188 tokens); text: TALLRec's")
    spd.add_argument("--dtypes", type=_csv, default=["auto"],
                     help="harness precisions, comma-separated: auto (the plain loop's: fp32 on CPU, bf16 on "
                          "CUDA), float32, bfloat16 (on CPU: faster, scores not exact)")
    spd.add_argument("--out", default=Path("results/benchmarks"), type=Path)
    ovh = sub.add_parser("overhead", help="wall time of a whole harness run vs the library's own quick start, same split and config")
    ovh.add_argument("--methods", type=_csv, help="comma-separated subset (default: every method with a reference run)")
    ovh.add_argument("--dataset", default="ml1m")
    ovh.add_argument("--data-dir", default=None)
    ovh.add_argument("--subset-users", type=int, default=None)
    ovh.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    ovh.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="config override applied to both paths, e.g. --set epochs=10 (repeatable)")
    ovh.add_argument("--out", default=Path("results/benchmarks"), type=Path)
    sc = sub.add_parser("score", help="score rows (a CSV) with a finished LLM run's saved trained state, no training",
                        description="Rebuilds the run's method from the trained state its record names "
                                    "(artifacts.trained_state) and its split from the record, then scores the rows. "
                                    "A row that is a row of the split is scored as the run scored it; another takes "
                                    "the user's history after their last train row (--history all: last row of any "
                                    "part). Users or items the split never mentions are refused, listed.")
    sc.add_argument("--run", required=True, type=Path, help="the run's record (results/<suite>/<run>.json)")
    sc.add_argument("--rows", required=True, type=Path,
                    help="CSV with columns user,item (the split's ids) and optionally label (0/1: metrics are "
                         "printed), timestamp")
    sc.add_argument("--out", default=None, type=Path, help="where the scored CSV goes (default: stdout)")
    sc.add_argument("--data-dir", default=None, help="folder holding ml-1m-collm/ etc. (else $RECBENCH_DATA_DIR)")
    sc.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (the run's device and dtype "
                                                     "reproduce its scores exactly)")
    sc.add_argument("--history", default="train", choices=["train", "all"],
                    help="a new row's history: the user's after their last train row (default), or last row of any part")
    rep = sub.add_parser("report", help="render results/ as the paper's tables (Markdown, LaTeX) and figures")
    rep.add_argument("--results-dir", default="results", type=Path)
    rep.add_argument("--out", default="reports", type=Path)
    rep.add_argument("--layout", default=None, type=Path,
                     help="which run fills which table row (default: bench/layouts/graphlora-paper.yaml)")
    return p


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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("bench").setLevel(logging.INFO)
    try:
        if args.command == "ls":
            return cmd_ls(args.data_dir)
        if args.command == "run":
            from bench.runner import check_device_name, run_suite

            seeds = _ints(args.seeds) if args.seeds is not None else None
            for flag, given in (("--methods", args.methods), ("--datasets", args.datasets)):
                if given == []:  # an empty filter would silently mean "all of them"
                    raise BenchError(f"{flag} names nothing",
                                     f"give comma-separated names, or leave {flag} out for all of the suite's")
            check_device_name(args.device)  # the name here (any executor); a local run checks CUDA too
            _check_installed(args.suite, args.methods, args.datasets)
            counts = run_suite(args.suite, results_dir=args.results_dir, data_dir=args.data_dir,
                               methods=args.methods, datasets=args.datasets, seeds=seeds,
                               force=args.force, device=args.device, executor=args.executor, address=args.address,
                               progress=not args.no_progress and not os.environ.get("CI"))
            from bench import distributed

            if distributed.is_main():
                print(f"runs: {counts['done']} done, {counts['skipped']} already recorded, "
                      f"{counts['failed']} failed, {counts['unavailable']} without data")
            distributed.teardown()
            return 1 if counts["failed"] else 0
        if args.command == "tune":
            from bench.runner import check_device_name
            from bench.tuning import tune_suite

            if args.trials is not None:
                _require_positive(args, "trials")
            check_device_name(args.device)
            _check_installed(args.suite, args.methods, args.datasets)
            _require_positive(args, "workers")
            studies = tune_suite(args.suite, results_dir=args.results_dir, data_dir=args.data_dir,
                                 methods=args.methods, datasets=args.datasets, trials=args.trials, device=args.device,
                                 executor=args.executor, workers=args.workers, address=args.address)
            for info in studies:
                print(f"{info['study']}: valid auc {info['best_valid_auc']:.4f} with {info['params']} "
                      f"({info['complete']} complete, {info['pruned']} pruned of {info['budget']})")
            print(f"studies: {len(studies)} in {args.results_dir / 'tuning'}; next: python -m bench run --suite "
                  f"{args.suite} --results-dir {args.results_dir}")
            return 0
        if args.command == "efficiency":
            from bench.efficiency import measure, write
            from bench.runner import resolve_device

            _require_positive(args, "batch_size", "eval_batch_size", "repeats")
            if args.warmup < 0:
                raise BenchError("--warmup must be >= 0", "pass 0 or more")
            rec = measure(args.backbone, resolve_device(args.device), args.dataset, args.data_dir, args.batch_size,
                          args.eval_batch_size, args.warmup, args.repeats, args.methods, subset_users=args.subset_users,
                          dtype=args.dtype, params_only=args.params_only)
            print(f"wrote {write(rec, args.out)}")
            return 0
        if args.command == "scoring-speed":
            from bench import scoring_speed
            from bench.runner import resolve_device

            _require_positive(args, "rows", "plain_batch", "harness_batch")
            from bench.llm.backbone import DTYPES

            for name in args.dtypes:
                if name not in ("auto", *DTYPES):
                    raise BenchError(f"--dtypes: unknown precision {name!r}", f"use auto, {', '.join(DTYPES)}")
            rec = scoring_speed.measure(args.backbone, resolve_device(args.device), args.dataset, args.data_dir,
                                        args.rows, args.plain_batch, args.harness_batch, prompt=args.prompt,
                                        dtypes=tuple(args.dtypes))
            for e in rec["harness"]:
                print(f"harness ({e['dtype']}) {e['prompts_per_s']:.2f} prompts/s vs plain loop "
                      f"({rec['plain']['dtype']}) {rec['plain']['prompts_per_s']:.2f}/s: x{e['speedup']:.2f}")
            print(f"wrote {scoring_speed.write(rec, args.out)}")
            return 0
        if args.command == "overhead":
            from bench import overhead
            from bench.runner import resolve_device

            if args.subset_users is not None:
                _require_positive(args, "subset_users")
            rec = overhead.measure(args.dataset, args.data_dir, resolve_device(args.device), args.methods,
                                   _key_values(args.overrides), subset_users=args.subset_users)
            for e in rec["entries"]:
                print(f"{e['method']} ({e['variant']}): harness {e['harness_s']:.1f}s vs quick start "
                      f"{e['reference_s']:.1f}s: x{e['ratio']:.3f}")
            print(f"wrote {overhead.write(rec, args.out)}")
            return 0
        if args.command == "score":
            from bench.runner import check_device_name
            from bench.scoring import score_command

            check_device_name(args.device)
            return score_command(args.run, args.rows, args.out, args.data_dir, args.device, args.history)
        if args.command == "report":
            from bench.report import DEFAULT_LAYOUT, render_all

            for path in render_all(args.results_dir, args.out, args.layout or DEFAULT_LAYOUT):
                print(f"wrote {path}")
            return 0
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
