"""Executes a suite: plans (dataset x run x seed), skips finished records, runs the rest.

The harness never branches on a method name: it builds the method's config from
defaults < variant < suite overrides, then calls fit / score / param_counts.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Iterable

from bench import distributed, records, workdirs
from bench.config import build_config, config_dict
from bench.artifacts import artifact_dir
from bench.data import load_split, transform_steps
from bench.data.schema import Split
from bench.errors import BenchError, did_you_mean, unknown
from bench.method import BudgetMatchable, CFDependency, RunContext, supports
from bench.metrics import evaluate, per_user_auc
from bench.registry import get_method, method_table
from bench.suites import DatasetSpec, RunSpec, Suite, load_suite

log = logging.getLogger("bench")


@dataclasses.dataclass
class PlannedRun:
    key: records.RunKey
    dataset: DatasetSpec
    spec: RunSpec
    method_cls: type
    config: Any
    timing: tuple[int, int] = (2, 5)  # (warm-up, timed) steps for the step timings
    suite_origin: str | None = None  # which suite file planned it (records carry it: see suites.identify)
    needs: tuple[tuple[records.RunKey, str], ...] = ()  # its CF dependencies' (key, config hash), set by plan()
    tuned: dict[str, Any] | None = None  # a tuned run: its study and choice (bench.tuning.chosen)

    def dependency_state(self, results_dir: Path) -> dict[str, tuple[str, Path]]:
        """Each CF dependency's stem -> (config hash, record path): what decides, beside the
        run's own config, whether its record is current (``records.is_finished``)."""
        return {key.stem: (h, key.path(results_dir)) for key, h in self.needs}

    @property
    def config_dict(self) -> dict[str, Any]:
        """The requested config (a budget target included): what decides whether a record is current."""
        out = config_dict(self.config)
        if self.spec.budget is not None:
            out["budget"] = self.spec.budget
        return out

    @property
    def config_defaults(self) -> dict[str, Any]:
        """The config class's field defaults, as ``config_dict`` writes them."""
        out = {}
        for f in dataclasses.fields(self.config):
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in out.items()}


DEVICE_FIX = "use auto, cpu, cuda or cuda:N (N: a visible CUDA device index)"


def check_device_name(device: str) -> str:
    """``device`` when it reads auto, cpu, cuda or cuda:N (checks the name only, imports nothing)."""
    name, sep, index = device.partition(":") if isinstance(device, str) else ("", "", "")
    if device in ("auto", "cpu", "cuda") or (name == "cuda" and sep and index.isascii() and index.isdigit()):
        return device
    raise BenchError(f"--device {device!r} is not a device", DEVICE_FIX)


def resolve_device(device: str) -> str:
    """auto -> cuda when torch sees a CUDA device, else cpu; cuda / cuda:N only when that device
    is visible, so a wrong --device stops before any work instead of failing every run."""
    check_device_name(device)
    if device == "cpu":
        return device
    try:
        import torch
    except ImportError:
        if device == "auto":
            return "cpu"
        raise BenchError(f"--device {device}: torch is not installed", "use --device cpu or auto") from None
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise BenchError(f"--device {device}: no CUDA device is visible (torch.cuda.is_available() is False)",
                         "use --device cpu or auto")
    index, count = device.partition(":")[2], torch.cuda.device_count()
    if index and int(index) >= count:
        visible = f"cuda:0 to cuda:{count - 1}" if count > 1 else "cuda:0"
        raise BenchError(f"--device {device}: only {count} CUDA device{'s are' if count > 1 else ' is'} visible "
                         f"({visible})", f"use --device {visible}, cuda, cpu or auto")
    return device


def _check_known(wanted: list[str] | None, known: Iterable[str], kind: str) -> None:
    known = set(known)
    for w in wanted or []:
        if w not in known:
            raise unknown(kind, w, known)


def run_variant(spec: RunSpec) -> tuple[str, str]:
    """(variant, label) of a suite entry: the variant it runs, and the label its records carry
    (``bce+tuned`` for a tuned run, ``default@budget-graphlora`` for a budget-matched one)."""
    variant = spec.variant or get_method(spec.method).default_variant
    if spec.tuned:
        return variant, f"{variant}+tuned"
    return variant, (variant if spec.budget is None else f"{variant}@budget-{spec.budget}")


def method_filter(suite: Suite, methods: list[str] | None) -> dict[str, set[str] | None] | None:
    """``--methods`` items as method -> the variants to run (None: all of the suite's runs of
    it). ``METHOD:VARIANT`` picks one variant (or a budget run's label, ``cora-mf:default@budget-graphlora``);
    a bare method keeps meaning all its variants in the suite. An item naming a variant the
    method lacks, or that the suite does not run, is one BenchError saying which."""
    if not methods:
        return None
    out: dict[str, set[str] | None] = {}
    for item in methods:
        name, sep, variant = (part.strip() for part in item.partition(":"))
        if sep and not (name and variant):
            raise BenchError(f"--methods {item!r} is not METHOD or METHOD:VARIANT",
                             "e.g. --methods mf:bce,graphlora (a bare method: all its variants in the suite)")
        _check_known([name], method_table(), "method")
        if not sep:
            out[name] = None
            continue
        in_suite = sorted({v for spec in suite.runs if spec.method == name for v in run_variant(spec)})
        if variant not in in_suite:
            cls = get_method(name)
            try:
                cls.variant_overrides(variant.partition("@")[0])
            except BenchError:
                raise BenchError(f"--methods {item!r}: {name} has no variant {variant!r}",
                                 f"{did_you_mean(variant, in_suite or cls.variants)}; write it as "
                                 f"{name}:VARIANT, or give a bare {name} for all its variants in the suite") from None
            ran = f"runs {name} as {', '.join(in_suite)}" if in_suite else f"has no {name} run"
            raise BenchError(f"--methods {item!r}: suite {suite.name} {ran}, not {variant!r}",
                             f"pick one of the suite's variants (e.g. --methods {name}:{in_suite[0]})" if in_suite
                             else f"add a {{method: {name}, variant: {variant}}} run to the suite file, or pick "
                                  "another method (`python -m bench ls`)")
        if out.get(name, set()) is not None:
            out.setdefault(name, set()).add(variant)
    return out


def selected(spec: RunSpec, wanted: dict[str, set[str] | None] | None) -> bool:
    if wanted is None:
        return True
    if spec.method not in wanted:
        return False
    variants = wanted[spec.method]
    return variants is None or not variants.isdisjoint(run_variant(spec))


def plan(suite: Suite, methods: list[str] | None = None, datasets: list[str] | None = None,
         seeds: list[int] | None = None, results_dir: Path | None = None,
         untuned: list[tuple[str, BenchError]] | None = None) -> list[PlannedRun]:
    """Every run of the suite after filters, each preceded by the CF runs it declares
    (``Method.cf_dependencies``) as ordinary runs with their own records; configs are built (and
    so validated) up front. ``methods`` items are method names (all their variants in the suite)
    or ``METHOD:VARIANT`` (that variant only; see ``method_filter``).

    A dependency is the suite's own run where one has the same method and config on the same
    dataset and seed (moved before its first dependent if it came later, and kept even when
    ``methods`` filters it out: the run that needs it cannot do without it); otherwise it is a
    new run, planned once however many runs need it.

    A ``tuned: true`` entry takes the configuration its study under ``results_dir`` chose
    (``bench.tuning.chosen``); planning one without ``results_dir`` is an error. One whose study
    has no finished trial yet is an error too, unless ``untuned`` is a list: then the entry is
    left out and (study, error) appended to it, so the rest of the suite still runs."""
    from bench.data import DATASETS

    wanted_methods = method_filter(suite, methods)
    _check_known(datasets, sorted(set(DATASETS) | {d.name for d in suite.datasets}), "dataset")
    for ds in suite.datasets:
        if ds.source not in DATASETS:
            raise unknown("dataset", ds.source, DATASETS)
    seed_list = [int(s) for s in (seeds or suite.seeds)]
    entries = [(ds, spec) for ds in suite.datasets if not (datasets and ds.name not in datasets)
               for spec in suite.runs if not (spec.datasets and ds.name not in spec.datasets)]
    wanted = []
    for ds, spec in entries:
        if not selected(spec, wanted_methods):
            continue
        try:
            wanted += _entry_runs(suite, ds, spec, seed_list, results_dir)
        except BenchError as e:
            if not (spec.tuned and untuned is not None and results_dir is not None):
                raise
            from bench.tuning import study_name

            untuned.append((study_name(ds.name, spec), e))
    if not wanted and untuned:
        raise untuned[0][1]
    if not wanted:
        raise BenchError(f"suite {suite.name}: the filters leave nothing to run",
                         "check --methods / --datasets against `python -m bench ls`")
    return _with_dependencies(suite, entries, seed_list, wanted)


def entry_config(spec: RunSpec) -> Any:
    """A suite entry's config as written: defaults < variant < the entry's overrides (for a
    tuned entry, what its search starts from)."""
    cls = get_method(spec.method)
    variant, _ = run_variant(spec)
    return build_config(cls.Config, cls.variant_overrides(variant.partition("+")[0]), spec.overrides)


def _entry_runs(suite: Suite, ds: DatasetSpec, spec: RunSpec, seeds: list[int],
                results_dir: Path | None = None) -> list[PlannedRun]:
    """The planned runs (one per seed) of one suite entry on one dataset."""
    cls = get_method(spec.method)
    cfg = entry_config(spec)
    if spec.budget is not None and not supports(cls, BudgetMatchable):
        raise BenchError(f"suite {suite.name}: {spec.method} cannot take a budget", "use budget with LLM methods only")
    _, label = run_variant(spec)
    tuned = None
    if spec.tuned:
        from bench import tuning

        if results_dir is None:
            raise BenchError(f"suite {suite.name}: a tuned run is planned without a results directory",
                             "plan it with results_dir (where `python -m bench tune` stored its study)")
        cfg, tuned = tuning.chosen(suite, ds.name, spec, cfg, results_dir)
    return [PlannedRun(records.RunKey(suite.name, ds.name, spec.method, label, seed), ds, spec, cls, cfg, suite.timing,
                       suite.origin, tuned=tuned) for seed in seeds]


def _dependency_config(dep: CFDependency) -> tuple[type, str, Any]:
    """(class, variant, config) of a declared dependency, built as a suite entry's would be."""
    cls = get_method(dep.method)
    variant = dep.variant or cls.default_variant
    return cls, variant, build_config(cls.Config, cls.variant_overrides(variant), dep.overrides)


def _identity(run: PlannedRun) -> tuple[str, int, str, str]:
    """What makes two runs the same computation (dataset, seed, method, config), whatever their labels."""
    return run.dataset.name, run.key.seed, run.key.method, records.config_hash(run.config_dict)


def _dependency_label(cls: type, variant: str, config: Any) -> str:
    """The variant, plus each field where the config differs from the variant's, sorted
    (``bce+embedding_size=32``): readable, and distinct for distinct configs."""
    import json

    base = config_dict(build_config(cls.Config, cls.variant_overrides(variant)))
    changed = sorted((k, v) for k, v in config_dict(config).items() if base.get(k) != v)
    return "+".join([variant] + [f"{k}={json.dumps(v, separators=(',', ':')) if isinstance(v, (list, dict)) else v}"
                                 for k, v in changed])


def _with_dependencies(suite: Suite, entries: list[tuple[DatasetSpec, RunSpec]], seeds: list[int],
                       wanted: list[PlannedRun]) -> list[PlannedRun]:
    """``wanted`` in order, each run's dependencies (recursively) placed before it, once each."""
    # the suite's runs of a method, filtered out or not, built when a dependency first names it:
    # a dependency reuses one with its config, and never takes the key of one without it
    by_method: dict[str, list[PlannedRun]] = {}
    for run in wanted:
        by_method.setdefault(run.key.method, []).append(run)
    pooled: set[str] = set()
    in_wanted = {(run.dataset.name, id(run.spec)) for run in wanted}

    def pool(method: str) -> list[PlannedRun]:
        if method not in pooled:
            pooled.add(method)
            for ds, spec in entries:  # a tuned run is never another's dependency: its config moves
                if spec.method == method and not spec.tuned and (ds.name, id(spec)) not in in_wanted:
                    by_method.setdefault(method, []).extend(_entry_runs(suite, ds, spec, seeds))
        return by_method.setdefault(method, [])

    def resolve(run: PlannedRun, dep: CFDependency) -> PlannedRun:
        cls, variant, cfg = _dependency_config(dep)
        candidate = PlannedRun(records.RunKey(suite.name, run.dataset.name, dep.method, "", run.key.seed), run.dataset,
                               RunSpec(dep.method, variant, dict(dep.overrides)), cls, cfg, suite.timing, suite.origin)
        runs = pool(dep.method)
        for other in runs:
            if other.spec.budget is None and _identity(other) == _identity(candidate):
                return other
        label = _dependency_label(cls, variant, cfg)
        # a suite entry of the same variant with other overrides holds the plain label: this one
        # says it is the variant's own config, or failing that, which config it is
        taken = {r.key for r in runs}
        for name in [label] + ([f"{variant}+defaults"] if label == variant else []) + \
                [f"{label}+{records.config_hash(candidate.config_dict)}"]:
            candidate.key = dataclasses.replace(candidate.key, variant=name)
            if candidate.key not in taken:
                break
        runs.append(candidate)
        return candidate

    out: list[PlannedRun] = []
    placed: set[int] = set()

    def place(run: PlannedRun, needed_by: tuple[str, ...]) -> None:
        if id(run) in placed:
            return
        if run.key.stem in needed_by:
            raise BenchError(f"suite {suite.name}: {' -> '.join(needed_by + (run.key.stem,))} depend on each other",
                             "a method's cf_dependencies must not lead back to it")
        deps = [resolve(run, dep) for dep in run.method_cls.cf_runs(run.config)]
        for dep_run in deps:
            place(dep_run, needed_by + (run.key.stem,))
        run.needs = tuple((d.key, records.config_hash(d.config_dict)) for d in deps)
        placed.add(id(run))
        out.append(run)

    for run in wanted:
        place(run, ())
    return out


def planned_dependencies(run: PlannedRun, runs: list[PlannedRun]) -> list[PlannedRun]:
    """The runs of a plan that ``run`` declares it needs (for an executor that runs the plan
    out of order: it must start ``run`` only after these finish)."""
    found = []
    for dep in run.method_cls.cf_runs(run.config):
        cls, variant, cfg = _dependency_config(dep)
        want = (run.dataset.name, run.key.seed, dep.method, records.config_hash(config_dict(cfg)))
        found += [other for other in runs if other.key.method == dep.method and other.key.seed == run.key.seed
                  and other.dataset.name == run.dataset.name and other.spec.budget is None and _identity(other) == want]
    return found


def execute(run: PlannedRun, split: Split, results_dir: Path, device: str, progress: bool = True,
            force: bool = False) -> dict[str, Any]:
    """Fit, score valid and test, write the record. Raises after writing a failed record. A tuned
    run may restore its study's best trial instead of fitting (``_restore_trial``), unless ``force``."""
    key = run.key
    artifacts = artifact_dir(split.fingerprint, key.method, key.seed, records.config_hash(run.config_dict))
    base: dict[str, Any] = {
        "schema_version": records.SCHEMA_VERSION,
        "kind": "run",
        "key": dataclasses.asdict(key),
        "suite_file": run.suite_origin,
        "description": run.method_cls.description,
        "config": run.config_dict,
        "config_hash": records.config_hash(run.config_dict),
        "dependencies": {key.stem: h for key, h in run.needs} if run.needs else None,
        "tuned": run.tuned,
        # the data as the run saw it, described by the record alone: the report reads nothing else
        "split": {"fingerprint": split.fingerprint, "source": run.dataset.source,
                  "transforms": dataset_steps(run.dataset), "stats": split.stats(),
                  "notes": list(getattr(split, "notes", ()))},
        **records.provenance(device),
        "started": records.now(),
    }
    with workdirs.scratch(key.method) as work:
        return _execute(run, split, results_dir, device, progress, base, artifacts, work, force)


def _execute(run: PlannedRun, split: Split, results_dir: Path, device: str, progress: bool,
             base: dict[str, Any], artifacts: Path, work: Path, force: bool = False) -> dict[str, Any]:
    key = run.key
    try:
        ctx = RunContext(dataset=key.dataset, seed=key.seed, device=device, work_dir=work,
                         artifact_dir=artifacts, split_fingerprint=split.fingerprint,
                         run_name=key.stem, progress=progress)
        config = run.config
        if run.spec.budget is not None:
            from bench import budget

            config, base["budget"] = budget.match(run.method_cls, config, run.spec.budget, split, ctx)
            base["matched_config"] = config_dict(config)
        method = run.method_cls(config, ctx)
        reused = None
        if run.tuned and run.spec.budget is None and not force:
            reused = _restore_trial(run, method, split, results_dir, device)
            if reused is None:  # nothing of a failed restore stays (an LLM's backbone: memory)
                del method
                _release_memory()
                method = run.method_cls(config, ctx)
        if reused is not None:  # the study's best trial trained this very model: not trained twice
            method, fit_info, fit_s = reused
        else:
            t0 = time.perf_counter()
            fit_info = method.fit(split)
            fit_s = time.perf_counter() - t0
        # backbone loading and CF embeddings are set-up, not training: recorded apart, excluded
        setup = {k: float(v) for k, v in ((fit_info or {}).get("setup_s") or {}).items()}
        train_s = max(fit_s - sum(setup.values()), 0.0)
        metrics, infer, per_user, kept_scores = {}, {}, {}, None
        for part in ("valid", "test"):
            rows = getattr(split, part)
            t0 = time.perf_counter()
            scores = method.score(rows)
            infer[part] = time.perf_counter() - t0
            try:
                metrics[part] = evaluate(rows, scores)
                if part == "test":  # test only: what the report's paired user bootstrap reads
                    per_user[part] = {u: round(v, 6) for u, v in
                                      per_user_auc(rows["user"].to_numpy(), rows["label"].to_numpy(), scores).items()}
                    if run.dataset.keep_test_scores:
                        kept_scores = test_scores(rows, scores)
            except ValueError as e:
                raise BenchError(f"{key.stem}: {part} scores are unusable ({e})",
                                 "the model diverged (NaN/inf): lower the learning rate or check the data") from None
        timing = {"train_s": train_s, "fit_wall_s": fit_s, "setup_s": setup, "infer_valid_s": infer["valid"],
                  "infer_test_s": infer["test"], "infer_test_rows_per_s": len(split.test) / max(infer["test"], 1e-9)}
        if reused is not None:  # train_s was measured on this trial (pruner reports and all), not here
            timing["train_s_from_trial"] = int(fit_info["reused_trial"]["trial"])
        kept = dict(method.artifacts())
        if reused is not None:
            kept["trained_state"] = fit_info["reused_trial"]["state"]
        elif distributed.is_main():  # the trained state, for `python -m bench score` (one writer)
            try:
                state = method.save_state(artifacts / "trained_state")
            except Exception as e:  # a run that trained and scored is not lost for want of a copy
                log.warning("%s: its trained state was not saved (%s: %s)", key.stem, type(e).__name__, e)
                state = None
            if state is not None:
                kept["trained_state"] = str(state)
        warmup, repeats = run.timing
        if repeats:  # after scoring, so the timed steps cannot touch any reported number
            timing.update(method.step_timings(split.train, warmup, repeats) or {})
        rec = {**base, "status": "ok", "fit": fit_info, "metrics": metrics,
               "per_user_auc": per_user,  # for paired bootstraps over users in the report
               "test_scores": kept_scores,
               "params": method.param_counts(),
               "timing": timing,
               "artifacts": kept, "finished": records.now()}
        if distributed.is_main():  # one writer under data parallelism
            records.write_record(key.path(results_dir), rec)
            key.failed_path(results_dir).unlink(missing_ok=True)
        return rec
    except Exception as e:
        rec = {**base, "status": "failed", "error": f"{type(e).__name__}: {e}",
               "traceback": traceback.format_exc(), "finished": records.now()}
        if distributed.is_main():
            records.write_record(key.failed_path(results_dir), rec)
        raise


def _restore_trial(run: PlannedRun, method: Any, split: Split, results_dir: Path,
                   device: str) -> tuple[Any, dict[str, Any], float] | None:
    """(method, fit info, fit seconds) of a tuned run restored from its study's best trial's kept
    state (``bench.tuning.trial_state``): the fit info and seconds are the trial's, as its training
    is this run's, and ``reused_trial`` says so; None where there is none to restore (it trains)."""
    from bench import tuning

    t0 = time.perf_counter()
    try:
        kept = tuning.trial_state(run.tuned, results_dir, split.fingerprint, run.key.method, run.key.seed, run.config,
                                  device)
        if kept is None:
            return None
        method.restore(split, Path(kept["state"]))
    except Exception as e:  # a damaged copy costs a retrain, never the run
        log.warning("%s: its study's best trial's kept state did not restore (%s: %s); training instead",
                    run.key.stem, type(e).__name__, e)
        return None
    info = {**(kept.get("fit") or {}), "reused_trial": {
        "study": kept["study"], "trial": kept["trial"], "state": kept["state"],
        "restore_s": round(time.perf_counter() - t0, 3)}}
    log.info("%s: restored trial %s of %s (same config, data, seed, device and code): not trained again",
             run.key.stem, kept["trial"], kept["study"])
    return method, info, float(kept["fit_wall_s"])


def _release_memory() -> None:
    """What an abandoned method held (a backbone sits in reference cycles): freed before the next."""
    import gc

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_one(run: PlannedRun, split: Split, results_dir: Path, device: str, force: bool = False,
            progress: bool = True) -> str:
    """One planned run under its lock: "done", "skipped" (finished, or held by another live
    process) or "failed" (a failed record is written; the caller goes on).

    Under data parallelism rank 0 alone takes the lock, decides and writes; the other ranks
    follow its decision and join the run if the method trains data-parallel, else wait."""
    path = run.key.path(results_dir)
    main = distributed.is_main()
    deps = run.dependency_state(results_dir)

    def current() -> bool:
        return records.is_finished(path, run.config_dict, split.fingerprint, run.config_defaults, run.key, deps)

    if main and not force and current():
        records.clear_stale_lock(path)
        return distributed.broadcast("skipped")
    with records.run_lock(path) if main else contextlib.nullcontext(True) as mine:
        # another live `bench run` holds this run, or finished it while we waited our turn
        todo = bool(mine) and (force or not current())
        if distributed.broadcast("run" if todo else "skipped") == "skipped":
            return "skipped"
        together = run.method_cls.data_parallel
        try:
            if not (main or together):
                return "done"  # rank 0 runs it; the barrier below waits for it
            rec = execute(run, split, results_dir, device, progress, force)
        except Exception as e:  # one failed run never stops the suite nor loses finished records
            log.error("%s failed: %s (record in %s)", run.key.stem, e, run.key.failed_path(results_dir))
            return "failed"
        finally:
            if not together:
                distributed.barrier()
        m = rec["metrics"]["test"]
        log.info("%s: test auc=%s uauc=%s (%.0fs)", run.key.stem, _metric(m.get("auc")), _metric(m.get("uauc")),
                 rec["timing"]["train_s"])
        return "done"


def test_scores(rows: pd.DataFrame, scores: np.ndarray) -> dict[str, list]:
    """Each test row's user, label, warm flag (``not_cold``) and score, in row order: what the
    claims table's bootstraps over users resample (every method of a suite scores the same rows)."""
    return {"user": [str(u) for u in rows["user"]], "label": [int(v) for v in rows["label"]],
            "not_cold": [int(v) for v in rows["not_cold"]], "score": [round(float(v), 6) for v in scores]}


def _metric(value: float | None) -> str:
    """A metric for a log line: 4 decimals, or n/a where it is undefined (None / NaN)."""
    return "n/a" if value is None or value != value else f"{value:.4f}"


def dataset_steps(ds: DatasetSpec) -> list[dict[str, Any]]:
    """The suite dataset's transforms, in the order they are applied (and recorded)."""
    return transform_steps(ds.subset_users, ds.subset_seed, ds.top_items, ds.few_shot, ds.few_shot_seed,
                           ds.max_eval_rows, ds.eval_by_users)


def load_splits(datasets: Iterable[DatasetSpec], data_dir: str | None) -> dict[str, Split | None]:
    """Each distinct dataset's split, loaded once; an optional one whose files are absent maps
    to None (with a warning), any other loading error is raised."""
    splits: dict[str, Split | None] = {}
    for ds in datasets:
        if ds.name in splits:
            continue
        try:
            splits[ds.name] = load_split(ds.source, data_dir, steps=dataset_steps(ds))
        except BenchError as e:
            if not ds.optional:
                raise
            log.warning("skipping optional dataset %s: %s", ds.name, e.problem)
            splits[ds.name] = None
    return splits


def run_suite(suite_name: str, *, results_dir: Path, data_dir: str | None = None,
              methods: list[str] | None = None, datasets: list[str] | None = None,
              seeds: list[int] | None = None, force: bool = False, device: str = "auto",
              progress: bool = True, executor: str = "local", address: str | None = None) -> dict[str, int]:
    """Every planned run of the suite, in this process (``local``) or as Ray tasks (``ray``)."""
    suite = load_suite(suite_name)
    untuned: list[tuple[str, BenchError]] = []
    runs = plan(suite, methods, datasets, seeds, results_dir, untuned)
    counts = {"done": 0, "skipped": 0, "failed": 0, "unavailable": 0}
    if untuned:  # tuned runs whose studies are not finished: they wait for `bench tune`
        counts["untuned"] = len(untuned) * len(seeds or suite.seeds)
    for name, e in untuned:  # a tuned run waits for its study; the rest of the suite runs
        log.warning("%s: not run, %s (%s)", name, e.problem, e.fix)
    if executor not in ("local", "ray"):
        raise unknown("executor", executor, ["local", "ray"])
    records.writable_dir(results_dir, "--results-dir")  # before any work: never train what cannot be kept
    records.claim_suite_dir(results_dir, suite.name, suite.origin)
    workdirs.clean_stale()  # scratch dirs of runs killed before they could clean up
    if executor == "ray":
        from bench.ray_executor import run_on_ray

        return run_on_ray(runs, counts, results_dir=results_dir, data_dir=data_dir, force=force,
                          device=device, address=address)
    device = distributed.setup(resolve_device(device))  # joins a torchrun / accelerate group if any
    # bars only on a terminal: redirected to a file, stderr gets plain log lines, no cursor codes
    progress = progress and distributed.is_main() and sys.stderr.isatty()
    if not distributed.is_main():  # one rank reports; the others only warn
        log.setLevel(max(log.getEffectiveLevel(), logging.WARNING))
    splits = load_splits((run.dataset for run in runs), data_dir)
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    # log records go through tqdm.write while bars are shown, so a log line never shares a bar's line
    with logging_redirect_tqdm() if progress else contextlib.nullcontext():
        bar = tqdm(runs, desc=f"suite {suite.name}", unit="run", disable=not progress)
        for run in bar:
            split = splits[run.dataset.name]
            if split is None:
                counts["unavailable"] += 1
                continue
            bar.set_postfix_str(run.key.stem)
            counts[run_one(run, split, results_dir, device, force, progress)] += 1
        bar.close()
    return counts
