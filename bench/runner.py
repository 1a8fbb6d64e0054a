"""Executes a suite: plans (dataset x run x seed), skips finished records, runs the rest.

The harness never branches on a method name: it builds the method's config from
defaults < variant < suite overrides, then calls fit / score / param_counts.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Iterable

from bench import distributed, records
from bench.config import build_config, config_dict
from bench.artifacts import artifact_dir
from bench.data import load_split
from bench.data.schema import Split
from bench.errors import BenchError, unknown
from bench.method import RunContext
from bench.metrics import evaluate, per_user_auc
from bench.registry import get_method, method_table
from bench.suites import DatasetSpec, RunSpec, Suite, load_suite

log = logging.getLogger("bench")
REPO = Path(__file__).resolve().parent.parent


@dataclasses.dataclass
class PlannedRun:
    key: records.RunKey
    dataset: DatasetSpec
    spec: RunSpec
    method_cls: type
    config: Any
    timing: tuple[int, int] = (2, 5)  # (warm-up, timed) steps for the step timings

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


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def _check_known(wanted: list[str] | None, known: Iterable[str], kind: str) -> None:
    known = set(known)
    for w in wanted or []:
        if w not in known:
            raise unknown(kind, w, known)


def plan(suite: Suite, methods: list[str] | None = None, datasets: list[str] | None = None,
         seeds: list[int] | None = None) -> list[PlannedRun]:
    """Every run of the suite after filters; configs are built (and so validated) up front."""
    from bench.data import DATASETS

    _check_known(methods, method_table(), "method")
    _check_known(datasets, sorted(set(DATASETS) | {d.name for d in suite.datasets}), "dataset")
    for ds in suite.datasets:
        if ds.source not in DATASETS:
            raise unknown("dataset", ds.source, DATASETS)
    out: list[PlannedRun] = []
    for ds in suite.datasets:
        if datasets and ds.name not in datasets:
            continue
        for spec in suite.runs:
            if (methods and spec.method not in methods) or (spec.datasets and ds.name not in spec.datasets):
                continue
            cls = get_method(spec.method)
            variant = spec.variant or cls.default_variant
            cfg = build_config(cls.Config, cls.variant_overrides(variant), spec.overrides)
            if spec.budget is not None and not hasattr(cls, "budget_knobs"):
                raise BenchError(f"suite {suite.name}: {spec.method} cannot take a budget", "use budget with LLM methods only")
            label = variant if spec.budget is None else f"{variant}@budget-{spec.budget}"
            for seed in seeds or suite.seeds:
                out.append(PlannedRun(records.RunKey(suite.name, ds.name, spec.method, label, int(seed)),
                                      ds, spec, cls, cfg, suite.timing))
    if not out:
        raise BenchError(f"suite {suite.name}: the filters leave nothing to run",
                         "check --methods / --datasets against `python -m bench ls`")
    return out


def execute(run: PlannedRun, split: Split, results_dir: Path, device: str, progress: bool = True) -> dict[str, Any]:
    """Fit, score valid and test, write the record. Raises after writing a failed record."""
    key = run.key
    artifacts = artifact_dir(key.dataset, split.fingerprint, key.method, key.variant, key.seed,
                             records.config_hash(run.config_dict))
    work = Path(tempfile.mkdtemp(prefix=f"recbench-{key.method}-"))
    base: dict[str, Any] = {
        "schema_version": records.SCHEMA_VERSION,
        "key": dataclasses.asdict(key),
        **dataclasses.asdict(key),
        "description": run.method_cls.description,
        "config": run.config_dict,
        "config_hash": records.config_hash(run.config_dict),
        "split": {"fingerprint": split.fingerprint, "subset_users": run.dataset.subset_users,
                  "subset_seed": run.dataset.subset_seed, "max_eval_rows": run.dataset.max_eval_rows,
                  "source": run.dataset.source, "few_shot": run.dataset.few_shot,
                  **({"top_items": run.dataset.top_items} if run.dataset.top_items else {}),
                  "stats": split.stats()},
        "device": device,
        "device_name": records.device_name(device),
        "versions": records.versions(),
        "git": records.git_state(REPO),
        "started": records.now(),
    }
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
        t0 = time.perf_counter()
        fit_info = method.fit(split)
        train_s = time.perf_counter() - t0
        metrics, infer, per_user = {}, {}, {}
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
            except ValueError as e:
                raise BenchError(f"{key.stem}: {part} scores are unusable ({e})",
                                 "the model diverged (NaN/inf): lower the learning rate or check the data") from None
        timing = {"train_s": train_s, "infer_valid_s": infer["valid"], "infer_test_s": infer["test"],
                  "infer_test_rows_per_s": len(split.test) / max(infer["test"], 1e-9)}
        warmup, repeats = run.timing
        if repeats:  # after scoring, so the timed steps cannot touch any reported number
            timing.update(method.step_timings(split.train, warmup, repeats) or {})
        rec = {**base, "status": "ok", "fit": fit_info, "metrics": metrics,
               "per_user_auc": per_user,  # for paired bootstraps over users in the report
               "params": method.param_counts(),
               "timing": timing,
               "artifacts": method.artifacts(), "finished": records.now()}
        if distributed.is_main():  # one writer under data parallelism
            records.write_atomic(key.path(results_dir), rec)
            key.failed_path(results_dir).unlink(missing_ok=True)
        return rec
    except Exception as e:
        rec = {**base, "status": "failed", "error": f"{type(e).__name__}: {e}",
               "traceback": traceback.format_exc(), "finished": records.now()}
        if distributed.is_main():
            records.write_atomic(key.failed_path(results_dir), rec)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_one(run: PlannedRun, split: Split, results_dir: Path, device: str, force: bool = False,
            progress: bool = True) -> str:
    """One planned run under its lock: "done", "skipped" (finished, or held by another live
    process) or "failed" (a failed record is written; the caller goes on).

    Under data parallelism rank 0 alone takes the lock, decides and writes; the other ranks
    follow its decision and join the run if the method trains data-parallel, else wait."""
    path = run.key.path(results_dir)
    main = distributed.is_main()
    if main and not force and records.is_finished(path, run.config_dict, split.fingerprint, run.config_defaults):
        records.clear_stale_lock(path)
        return distributed.broadcast("skipped")
    with records.run_lock(path) if main else contextlib.nullcontext(True) as mine:
        # another live `bench run` holds this run, or finished it while we waited our turn
        todo = bool(mine) and (force or not records.is_finished(path, run.config_dict, split.fingerprint, run.config_defaults))
        if distributed.broadcast("run" if todo else "skipped") == "skipped":
            return "skipped"
        together = run.method_cls.data_parallel
        try:
            if not (main or together):
                return "done"  # rank 0 runs it; the barrier below waits for it
            rec = execute(run, split, results_dir, device, progress)
        except Exception as e:  # one failed run never stops the suite nor loses finished records
            log.error("%s failed: %s (record in %s)", run.key.stem, e, run.key.failed_path(results_dir))
            return "failed"
        finally:
            if not together:
                distributed.barrier()
        m = rec["metrics"]["test"]
        log.info("%s: test auc=%.4f uauc=%s (%.0fs)", run.key.stem, m["auc"], m["uauc"], rec["timing"]["train_s"])
        return "done"


def _load_splits(runs: list[PlannedRun], data_dir: str | None) -> dict[str, Split | None]:
    splits: dict[str, Split | None] = {}
    for run in runs:
        ds = run.dataset
        if ds.name in splits:
            continue
        try:
            splits[ds.name] = load_split(ds.source, data_dir, ds.subset_users, ds.subset_seed,
                                         max_eval_rows=ds.max_eval_rows, few_shot_rows=ds.few_shot,
                                         few_shot_seed=ds.few_shot_seed, top_items_n=ds.top_items)
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
    runs = plan(suite, methods, datasets, seeds)
    counts = {"done": 0, "skipped": 0, "failed": 0, "unavailable": 0}
    if executor not in ("local", "ray"):
        raise unknown("executor", executor, ["local", "ray"])
    if executor == "ray":
        from bench.ray_executor import run_on_ray

        return run_on_ray(runs, counts, results_dir=results_dir, data_dir=data_dir, force=force,
                          device=device, address=address)
    device = distributed.setup(resolve_device(device))  # joins a torchrun / accelerate group if any
    progress = progress and distributed.is_main()
    if not distributed.is_main():  # one rank reports; the others only warn
        log.setLevel(max(log.getEffectiveLevel(), logging.WARNING))
    splits = _load_splits(runs, data_dir)
    from tqdm import tqdm

    bar = tqdm(runs, desc=f"suite {suite.name}", unit="run", disable=not progress)
    for run in bar:
        split = splits[run.dataset.name]
        if split is None:
            counts["unavailable"] += 1
            continue
        bar.set_postfix_str(run.key.stem)
        counts[run_one(run, split, results_dir, device, force, progress)] += 1
    return counts
