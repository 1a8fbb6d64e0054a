"""Suites: YAML files under bench/suites/ (or anywhere, by path) naming datasets, seeds and runs.

    name: my-sweep                      # a user's file: the folder under results/ (default: the
                                        # file stem); may not be a built-in suite's name
    description: ...
    seeds: [0, 1, 2]
    datasets:
      ml1m: {}                          # full split
      ml100k: {subset_users: 60, max_eval_rows: 48}   # user sample; seeded cap on valid/test rows
      amazon-book: {optional: true}     # skipped with a notice when its raw files are absent
      ml100k-16shot: {dataset: ml100k, few_shot: 16}   # a label over a dataset: TALLRec's seeded
                                        # n-row few-shot train sample (Table 7)
      ml1m-top100: {dataset: ml1m, top_items: 100}   # rows of the 100 most-rated train items
      my-books:                         # a dataset declared in YAML, no code (docs/datasets.md):
        declare:                        # inline, or `declare: path/to/dataset.yaml`
          interactions: ratings.csv     # relative to this file
          items: books.csv
          columns: {user: uid, item: isbn, rating: stars, timestamp: ts, title: name}
          label_rule: rating >= 4
          split: {ratio: [0.8, 0.1, 0.1]}   # time-ordered; or months / dates cut points
          domain: book
        subset_users: 100               # the usual options apply to it too
    runs:
      - {method: mf, variant: bce, overrides: {epochs: 30}}
      - {method: cora-mf, budget: graphlora}   # rank/width set to match graphlora's trainable params
      # one entry per value (several keys: every combination), expanded when the file loads
      - {method: graphlora, sweep: {variant: "layer-{0..29}"}}    # layer-0 .. layer-29
      - {method: graphlora, sweep: {lora_r: [4, 8, 16]}}   # variants default+lora_r=4, ... (overrides)
    timing: {warmup: 2, repeats: 5}     # step timings after each run (Table 6); repeats 0 = off
"""
from __future__ import annotations

import dataclasses
import itertools
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator

from bench.config import StrictModel, bad_value, read_yaml, schema_error, schema_field
from bench.errors import BenchError, did_you_mean, unknown

SUITE_DIR = Path(__file__).resolve().parent / "suites"
MAX_SEED = 2**32 - 1  # numpy's seed range
SEED_TEXT = f"an int from 0 to {MAX_SEED}"
FORMAT_FIX = "see bench/suites.py (or bench/suites/*.yaml) for the format"

Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
SWEEP_FIX = "e.g. sweep: {variant: 'layer-{0..29}'}, sweep: {variant: [pre, star]} or sweep: {lora_r: [4, 8, 16]}"
_RANGE = re.compile(r"^([^{}]*)\{(-?\d+)\.\.(-?\d+)(?:\.\.(\d+))?\}([^{}]*)$")
_LABEL_TEXT = re.compile(r"^[A-Za-z0-9._-]+$")  # what a swept value may read as inside a record name
Positive = Annotated[int, Field(gt=0)]


def _positive(key: str, example: Any) -> Any:
    return schema_field(None, "a positive int", f"e.g. {key}: {example}, or leave it out")


class _EvalByUsers(StrictModel):
    valid: Positive = _positive("eval_by_users.valid", 240)
    test: Positive = _positive("eval_by_users.test", 1000)


class _DatasetOptions(StrictModel):
    dataset: str | None = schema_field(None, "a registered dataset name (a string)",
                                       "e.g. dataset: ml100k (see `python -m bench ls`)")
    declare: dict[str, Any] | str | None = schema_field(
        None, "a dataset declaration (a mapping) or the path of a dataset YAML file",
        "e.g. declare: {interactions: ratings.csv, items: items.csv, label_rule: rating >= 4, "
        "split: {ratio: [0.8, 0.1, 0.1]}}, or declare: my-dataset.yaml (see docs/datasets.md)")
    subset_users: Positive | None = _positive("subset_users", 60)
    subset_seed: Seed = schema_field(0, SEED_TEXT, "e.g. subset_seed: 0")
    max_eval_rows: Positive | None = _positive("max_eval_rows", 400)
    optional: bool = schema_field(False, "true or false",
                                  "optional: true skips the dataset when its files are absent (default: false)")
    few_shot: Positive | None = _positive("few_shot", "16 (TALLRec: 16, 64, 256)")
    few_shot_seed: Seed = schema_field(0, SEED_TEXT, "e.g. few_shot_seed: 0")
    top_items: Positive | None = _positive("top_items", 100)
    eval_by_users: _EvalByUsers | None = schema_field(
        None, "a mapping {valid: rows, test: rows}",
        "e.g. eval_by_users: {valid: 240, test: 1000} (whole users, seeded by subset_seed)")
    keep_test_scores: bool = schema_field(
        False, "true or false", "keep_test_scores: true (records carry every test row's score, for the claims table)")


class _Run(StrictModel):
    method: str = schema_field(..., "a method name (a string)", "e.g. method: mf (see `python -m bench ls`)")
    variant: str | None = schema_field(None, "a variant name (a string)",
                                       "e.g. variant: bce (one of the method's variants), or leave it out")
    overrides: dict[str, Any] | None = schema_field(None, "a mapping of config key to value",
                                                    "e.g. overrides: {epochs: 30}")
    datasets: list[str] | None = schema_field(None, "a list of the suite's dataset names",
                                              "e.g. datasets: [ml1m], or leave it out for all of them")
    budget: Any = schema_field(None, "a method name or a positive int",
                               "e.g. budget: graphlora (that method's trainable-parameter count) or budget: 1000000")
    sweep: dict[str, Any] | None = schema_field(
        None, "a mapping of variant or config key to a list of values or a range such as 'layer-{0..29}'",
        "e.g. sweep: {variant: 'layer-{0..29}'} or sweep: {lora_r: [4, 8, 16]}")
    tuned: bool | str = schema_field(
        False, "true, false or a suite name",
        "tuned: true runs the configuration `python -m bench tune` chose on valid AUC; tuned: cf-tuned takes "
        "the choice of that suite's study of the same method and variant (default: false, the method's own settings)")

    @field_validator("budget")
    @classmethod
    def _budget(cls, v: Any) -> Any:
        if v is None or isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool) and v > 0):
            return v
        raise bad_value()

    @field_validator("sweep")
    @classmethod
    def _sweep(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is None:
            return v
        if not v:
            raise bad_value("sweep is empty", SWEEP_FIX)
        return {key: sweep_values(key, values) for key, values in v.items()}


class _Timing(StrictModel):
    warmup: int = schema_field(2, "an int >= 0", "e.g. timing: {warmup: 2, repeats: 5}", ge=0)
    repeats: int = schema_field(
        5, "an int >= 0", "e.g. timing: {warmup: 2, repeats: 5} (repeats: 0 turns step timing off)", ge=0)


class _TuningOverride(StrictModel):
    pruner: Literal["median", "halving", "none"] | None = schema_field(
        None, "one of median, halving, none", "e.g. tuning: {methods: {sasrec: {pruner: halving}}}")
    warmup_evals: int | None = schema_field(None, "an int >= 0", "e.g. tuning: {methods: {sasrec: {warmup_evals: 1}}}",
                                            ge=0)
    startup_trials: int | None = schema_field(None, "an int >= 0",
                                              "e.g. tuning: {methods: {sasrec: {startup_trials: 0}}}", ge=0)


class _Tuning(StrictModel):
    trials: int = schema_field(20, "a positive int", "e.g. tuning: {trials: 20} (every tuned run gets this many)",
                               gt=0)
    sampler: Literal["tpe", "grid", "random"] = schema_field("tpe", "one of tpe, grid, random",
                                                             "e.g. tuning: {sampler: tpe}")
    pruner: Literal["median", "halving", "none"] = schema_field(
        "median", "one of median, halving, none", "e.g. tuning: {pruner: median}")
    # evaluations a trial always gets before the pruner may stop it, and trials before it prunes at all
    warmup_evals: int = schema_field(5, "an int >= 0", "e.g. tuning: {warmup_evals: 5}", ge=0)
    startup_trials: int = schema_field(5, "an int >= 0", "e.g. tuning: {startup_trials: 5}", ge=0)
    seed: Seed | None = schema_field(None, SEED_TEXT, "e.g. tuning: {seed: 0} (default: the suite's first seed)")
    spaces: dict[str, dict[str, list[Any]]] = schema_field(
        {}, "a mapping of method name to {config key: [values]}",
        "e.g. tuning: {spaces: {ngcf: {node_dropout: [0.0, 0.1]}}} (replaces or adds those keys of the method's "
        "declared search space)")
    # a method whose trials cost far more than the others' (SASRec at d = 256) may stop hopeless
    # ones sooner; the budget (trials) and the sampler stay the suite's, so the comparison stays fair
    methods: dict[str, _TuningOverride] = schema_field(
        {}, "a mapping of method name to {pruner, warmup_evals, startup_trials}",
        "e.g. tuning: {methods: {sasrec: {pruner: halving, warmup_evals: 1}}}")


class _SuiteFile(StrictModel):
    name: str | None = schema_field(None, "a name of letters, digits, '.', '_' or '-'",
                                    "e.g. name: my-ml1m-sweep (the folder its records go to under results/)",
                                    pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    description: str | None = schema_field("", "a string", "e.g. description: what the suite is for")
    seeds: list[Seed] = schema_field([0], f"a non-empty list of ints from 0 to {MAX_SEED}", "e.g. seeds: [0, 1, 2]",
                                            min_length=1)
    datasets: dict[str, _DatasetOptions | None] | None = schema_field(
        None, "a mapping of dataset name to options", "e.g. datasets: {ml100k: {subset_users: 60}, ml1m: {}}")
    runs: list[_Run] | None = schema_field(None, "a list of runs", "e.g. runs: [{method: mf, variant: bce}]")
    timing: _Timing | None = schema_field(None, "a mapping", "e.g. timing: {warmup: 2, repeats: 5}")
    tuning: _Tuning | None = schema_field(None, "a mapping",
                                          "e.g. tuning: {trials: 20, sampler: tpe, pruner: median}")


def _value_text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def sweep_values(key: str, values: Any) -> list[Any]:
    """A sweep key's values: a non-empty list of distinct scalars, or a range string
    ``prefix{a..b}suffix`` / ``prefix{a..b..step}suffix`` (ints when there is no prefix/suffix)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        raise bad_value(f"sweep key {key!r} is neither variant nor a config key", SWEEP_FIX)
    if isinstance(values, str):
        m = _RANGE.match(values)
        if not m:
            raise bad_value(f"sweep.{key} = {values!r} is neither a list nor a range such as 'layer-{{0..29}}'",
                            SWEEP_FIX)
        prefix, a, b, step, suffix = m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4) or 1), m.group(5)
        if step < 1:
            raise bad_value(f"sweep.{key} = {values!r} has step {step}", "give a step >= 1, e.g. 'layer-{0..29..2}'")
        numbers = range(a, b + 1, step) if a <= b else range(a, b - 1, -step)
        values = [f"{prefix}{n}{suffix}" for n in numbers] if prefix or suffix else list(numbers)
    if not isinstance(values, list) or not values:
        raise bad_value(f"sweep.{key} must be a non-empty list or a range string, got {values!r}", SWEEP_FIX)
    for value in values:
        if not isinstance(value, (str, int, float, bool)):
            raise bad_value(f"sweep.{key} holds {value!r}: values must be strings or numbers", SWEEP_FIX)
        if not _LABEL_TEXT.match(_value_text(value)):
            raise bad_value(f"sweep.{key} value {value!r} cannot be part of a record name",
                            "use values of letters, digits, '.', '_' or '-'")
    texts = [_value_text(v) for v in values]
    dups = sorted({t for t in texts if texts.count(t) > 1})
    if dups:
        raise bad_value(f"sweep.{key} lists {dups[0]!r} twice", "list each value once")
    return values


def expand_sweep(method: str, variant: str | None, overrides: dict[str, Any],
                 sweep: dict[str, list[Any]], where: str) -> list[tuple[str | None, dict[str, Any]]]:
    """(variant label, overrides) of each run a sweep entry stands for: every combination of the
    values, the last key varying fastest. A swept ``variant`` replaces the entry's variant; swept
    config keys join the overrides and name the run ``<variant>+<key>=<value>`` (its record key),
    the variant being the entry's own or else the method's default."""
    if "variant" in sweep and variant is not None:
        raise BenchError(f"{where} gives both variant and sweep.variant",
                         "drop variant:, or sweep over another key")
    both = sorted(set(sweep) & set(overrides))
    if both:
        raise BenchError(f"{where} sets {both[0]!r} in both overrides and sweep",
                         f"keep {both[0]} in one of them")
    keys = list(sweep)
    out: list[tuple[str | None, dict[str, Any]]] = []
    default: str | None = None
    for combo in itertools.product(*(sweep[k] for k in keys)):
        chosen = dict(zip(keys, combo))
        label = str(chosen.pop("variant")) if "variant" in chosen else variant
        if chosen:
            if label is None:
                if default is None:
                    from bench.registry import get_method

                    default = get_method(method).default_variant
                label = default
            label += "".join(f"+{k}={_value_text(v)}" for k, v in chosen.items())
        out.append((label, {**overrides, **chosen}))
    return out


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
    # seeded samples of whole users holding at least (valid, test) rows: per-user metrics stay whole
    eval_by_users: tuple[int, int] | None = None
    # records carry each test row's user, label, warm flag and score (the claims' paired bootstraps)
    keep_test_scores: bool = False

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
    # run the configuration `bench tune` chose (bench.tuning): True, this suite's study; a suite
    # name, the study of that suite's tuned entry of the same method and variant
    tuned: bool | str = False


@dataclasses.dataclass(frozen=True)
class TuningSpec:
    """How ``python -m bench tune`` searches a suite's ``tuned: true`` runs: the same budget of
    trials for each, one sampler, one pruner, one training seed (see ``bench.tuning``)."""
    trials: int = 20
    sampler: str = "tpe"
    pruner: str = "median"
    warmup_evals: int = 5
    startup_trials: int = 5
    seed: int = 0
    spaces: dict[str, dict[str, list[Any]]] = dataclasses.field(default_factory=dict)
    # method -> its own pruner settings (pruner, warmup_evals, startup_trials); never the budget
    methods: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def for_method(self, method: str) -> "TuningSpec":
        """The settings a method's studies use: the suite's, with its ``methods`` entry over them."""
        return dataclasses.replace(self, **self.methods.get(method, {}))


@dataclasses.dataclass(frozen=True)
class Suite:
    name: str
    description: str
    seeds: tuple[int, ...]
    datasets: tuple[DatasetSpec, ...]
    runs: tuple[RunSpec, ...]
    timing: tuple[int, int] = (2, 5)  # (warm-up steps, timed steps) on a fixed batch after each run
    # which file this is: "builtin:<name>" or the resolved path of a user's suite file. Records
    # carry it, so two different files can never share a results folder (see ``identify``).
    origin: str = ""
    tuning: TuningSpec = TuningSpec()  # how `bench tune` searches the suite's tuned runs


def suite_names() -> list[str]:
    return sorted(p.stem for p in SUITE_DIR.glob("*.yaml"))


def load_suite(name_or_path: str) -> Suite:
    path = Path(name_or_path)
    if not path.suffix:
        path = SUITE_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise unknown("suite", name_or_path, suite_names())
    elif not path.exists():
        raise BenchError(f"suite file {path} not found", "give a suite name from `python -m bench ls` or a YAML path")
    raw = read_yaml(path, "suite", "give a suite name from `python -m bench ls` or a YAML suite file")
    where = f"suite {path.stem}"
    try:
        spec = _SuiteFile.model_validate(raw)
    except ValidationError as e:
        raise schema_error(e, _SuiteFile, raw, where, FORMAT_FIX) from None
    datasets = tuple(_dataset_spec(name, opts or _DatasetOptions(), where) for name, opts in (spec.datasets or {}).items())
    if not datasets:
        raise BenchError(f"{where} names no datasets", "add a `datasets:` mapping")
    _declare(spec, path, where)
    names = [d.name for d in datasets]
    runs = []
    for i, r in enumerate(spec.runs or []):
        for d in r.datasets or []:
            if d not in names:
                raise BenchError(f"{where}: runs[{i}].datasets names {d!r}, which is not one of the suite's datasets",
                                 did_you_mean(d, names))
        expanded = (expand_sweep(r.method, r.variant, dict(r.overrides or {}), r.sweep, f"{where}: runs[{i}]")
                    if r.sweep else [(r.variant, dict(r.overrides or {}))])
        if isinstance(r.tuned, str) and r.tuned not in suite_names() and not (
                r.tuned.endswith((".yaml", ".yml")) and Path(r.tuned).is_file()):
            raise BenchError(f"{where}: runs[{i}].tuned names suite {r.tuned!r}, which is neither a built-in suite "
                             "nor a suite file", f"{did_you_mean(r.tuned, suite_names())} (or tuned: true, this "
                             "suite's own study)")
        if r.tuned and r.budget is not None:
            raise BenchError(f"{where}: runs[{i}] is both tuned and budget-matched",
                             "drop tuned: (a matched budget fixes the size the tuner would search) or budget:")
        runs.extend(RunSpec(r.method, variant, overrides, tuple(r.datasets) if r.datasets else None, r.budget,
                            r.tuned) for variant, overrides in expanded)
    timing = spec.timing or _Timing()
    tuning = spec.tuning or _Tuning()
    for method in tuning.methods:
        from bench.registry import get_method

        get_method(method)  # an unknown name is one clear error, not a silently ignored entry
    tuning_spec = TuningSpec(**{**tuning.model_dump(exclude={"methods"}),
                                "seed": spec.seeds[0] if tuning.seed is None else tuning.seed,
                                "methods": {m: o.model_dump(exclude_none=True) for m, o in tuning.methods.items()}})
    name, origin = identify(path, spec.name)
    return Suite(name, spec.description or "", tuple(spec.seeds), datasets, tuple(runs),
                 (timing.warmup, timing.repeats), origin, tuning_spec)


def _dataset_spec(name: str, opts: _DatasetOptions, where: str) -> DatasetSpec:
    if opts.eval_by_users is not None and opts.max_eval_rows is not None:
        raise BenchError(f"{where}: datasets.{name} gives both max_eval_rows and eval_by_users",
                         "keep one: max_eval_rows samples rows, eval_by_users whole users")
    fields = opts.model_dump(exclude={"declare", "eval_by_users"})
    by_users = (opts.eval_by_users.valid, opts.eval_by_users.test) if opts.eval_by_users else None
    return DatasetSpec(name, **fields, eval_by_users=by_users)


def _declare(spec: _SuiteFile, path: Path, where: str) -> None:
    """Validate the suite's ``declare:`` datasets and register them (``bench.data.DATASETS``)."""
    from bench.data import register_declared
    from bench.data.declared import parse

    for name, opts in (spec.datasets or {}).items():
        if opts is None or opts.declare is None:
            continue
        if opts.dataset is not None:
            raise BenchError(f"{where}: datasets.{name} gives both dataset and declare",
                             f"drop dataset: {opts.dataset} (declare: defines the data), or drop declare:")
        register_declared(parse(name, opts.declare, path.resolve().parent, f"{where}: datasets.{name}.declare",
                                f"{path.resolve()} (datasets.{name}.declare)"))


def identify(path: Path, declared: str | None) -> tuple[str, str]:
    """(name, origin) of a suite file. The name is the folder its records go to: a built-in
    suite's file stem, a user's file's declared ``name:`` or else its stem. A user's file may not
    take a built-in suite's name, or the two would silently replace each other's records."""
    builtin = path.resolve().parent == SUITE_DIR.resolve()
    name = declared or path.stem
    if builtin:
        if declared and declared != path.stem:
            raise BenchError(f"built-in suite {path.stem} declares name {declared!r}",
                             f"a built-in suite is named by its file: use name: {path.stem} or drop the key")
        return name, f"builtin:{name}"
    if name in suite_names():
        raise BenchError(f"suite file {path} is named {name!r}, like the built-in suite {name}: both would write "
                         f"<results>/{name}/ and replace each other's records",
                         f"give the file a unique name, e.g. add `name: my-{name}` to it")
    return name, str(path.resolve())
