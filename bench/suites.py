"""Suites: YAML files under bench/suites/ naming datasets, seeds and a list of runs.

    description: ...
    seeds: [0, 1, 2]
    datasets:
      ml1m: {}                          # full split
      ml100k: {subset_users: 60, max_eval_rows: 48}   # user sample; seeded cap on valid/test rows
      amazon-book: {optional: true}     # skipped with a notice when its raw files are absent
      ml100k-16shot: {dataset: ml100k, few_shot: 16}   # a label over a dataset: TALLRec's seeded
                                        # n-row few-shot train sample (Table 7)
      ml1m-top100: {dataset: ml1m, top_items: 100}   # rows of the 100 most-rated train items
    runs:
      - {method: mf, variant: bce, overrides: {epochs: 30}}
      - {method: cora-mf, budget: graphlora}   # rank/width set to match graphlora's trainable params
    timing: {warmup: 2, repeats: 5}     # step timings after each run (Table 6); repeats 0 = off
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from bench.errors import BenchError, did_you_mean, unknown

SUITE_DIR = Path(__file__).resolve().parent / "suites"
DATASET_KEYS = {"dataset", "subset_users", "subset_seed", "max_eval_rows", "optional", "few_shot", "few_shot_seed",
                "top_items"}
# dataset keys that take a positive int, with an example value for the error's fix
POSITIVE_DATASET_KEYS = {"subset_users": 60, "max_eval_rows": 400, "top_items": 100,
                         "few_shot": "16 (TALLRec: 16, 64, 256)"}
RUN_KEYS = {"method", "variant", "overrides", "datasets", "budget"}
SUITE_KEYS = {"description", "seeds", "datasets", "runs", "timing"}
TIMING_KEYS = {"warmup", "repeats"}


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    name: str
    subset_users: int | None = None
    subset_seed: int = 0
    max_eval_rows: int | None = None  # seeded cap on valid/test rows (smoke runs on a CPU)
    optional: bool = False
    dataset: str | None = None  # the registered dataset when ``name`` is only a label
    few_shot: int | None = None  # seeded sample of this many train rows (TALLRec's few-shot protocol)
    few_shot_seed: int = 0
    top_items: int | None = None  # only rows of the N most-rated train items (a dense subset)

    @property
    def source(self) -> str:
        return self.dataset or self.name


@dataclasses.dataclass(frozen=True)
class RunSpec:
    method: str
    variant: str | None
    overrides: dict[str, Any]
    datasets: tuple[str, ...] | None = None  # restrict this run to some of the suite's datasets
    budget: str | int | None = None  # match trainable params to a method's count (or a number)


@dataclasses.dataclass(frozen=True)
class Suite:
    name: str
    description: str
    seeds: tuple[int, ...]
    datasets: tuple[DatasetSpec, ...]
    runs: tuple[RunSpec, ...]
    timing: tuple[int, int] = (2, 5)  # (warm-up steps, timed steps) on a fixed batch after each run


def suite_names() -> list[str]:
    return sorted(p.stem for p in SUITE_DIR.glob("*.yaml"))


def _check_keys(obj: Any, allowed: set[str], where: str) -> dict:
    if not isinstance(obj, dict):
        raise BenchError(f"{where} must be a mapping, got {type(obj).__name__}", "see bench/suites.py for the format")
    extra = set(obj) - allowed
    if extra:
        key = sorted(extra)[0]
        raise BenchError(f"{where}: unknown key {key!r}", did_you_mean(key, allowed))
    return obj


def load_suite(name_or_path: str) -> Suite:
    path = Path(name_or_path)
    if not path.suffix:
        path = SUITE_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise unknown("suite", name_or_path, suite_names())
    elif not path.exists():
        raise BenchError(f"suite file {path} not found", "give a suite name from `python -m bench ls` or a YAML path")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:  # never skip a broken suite silently
        raise BenchError(f"suite {path} is not valid YAML: {e}", "fix the YAML syntax") from None
    where = f"suite {path.stem}"
    raw = _check_keys(raw, SUITE_KEYS, where)
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds) or not seeds:
        raise BenchError(f"{where}: seeds must be a non-empty list of ints, got {seeds!r}", "e.g. seeds: [0, 1, 2]")
    datasets = []
    for dname, opts in (raw.get("datasets") or {}).items():
        opts = _check_keys(opts or {}, DATASET_KEYS, f"{where}: dataset {dname}")
        for key, example in POSITIVE_DATASET_KEYS.items():
            v = opts.get(key)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v <= 0):
                raise BenchError(f"{where}: dataset {dname}: {key} must be a positive int, got {v!r}",
                                 f"e.g. {key}: {example}, or leave it out")
        datasets.append(DatasetSpec(dname, opts.get("subset_users"), int(opts.get("subset_seed", 0)),
                                    opts.get("max_eval_rows"), bool(opts.get("optional", False)),
                                    opts.get("dataset"), opts.get("few_shot"), int(opts.get("few_shot_seed", 0)),
                                    opts.get("top_items")))
    if not datasets:
        raise BenchError(f"{where} names no datasets", "add a `datasets:` mapping")
    runs = []
    for i, r in enumerate(raw.get("runs") or []):
        r = _check_keys(r, RUN_KEYS, f"{where}: runs[{i}]")
        if "method" not in r:
            raise BenchError(f"{where}: runs[{i}] has no method", "add `method: NAME`")
        ds = r.get("datasets")
        runs.append(RunSpec(str(r["method"]), r.get("variant"), dict(r.get("overrides") or {}),
                            tuple(ds) if ds else None, r.get("budget")))
    timing = _check_keys(raw.get("timing") or {}, TIMING_KEYS, f"{where}: timing")
    warmup, repeats = timing.get("warmup", 2), timing.get("repeats", 5)
    if not all(isinstance(v, int) and v >= 0 for v in (warmup, repeats)):
        raise BenchError(f"{where}: timing warmup / repeats must be ints >= 0, got {warmup!r} / {repeats!r}",
                         "e.g. timing: {warmup: 2, repeats: 5} (repeats: 0 turns step timing off)")
    return Suite(path.stem, str(raw.get("description", "")), tuple(seeds), tuple(datasets), tuple(runs),
                 (warmup, repeats))
