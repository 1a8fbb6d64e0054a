"""``python -m bench tune``: search each ``tuned: true`` run of a suite on valid AUC, with Optuna.

Fairness, by construction:
- every tuned run gets the suite's same budget of trials (``tuning.trials``), the same sampler,
  pruner and training seed; a trial stopped by the pruner or diverging counts against it;
- a trial trains on train, selects its epoch on valid and is scored on valid only; it is handed
  the split with every test label masked (``trial_split``), so no test label enters a trial;
- the chosen configuration is then an ordinary run of ``bench run`` (the entry's label gets
  ``+tuned``), scored on test once per seed, its record naming the study and every trial.

A study lives in Optuna's SQLite storage at ``<results>/tuning/<suite>.db`` (one study per
dataset x run): a killed tune resumes where it stopped, and two tuners on one study share its
trials. Search spaces are data: ``Method.search_space`` (the published grids), replaced or
extended per method by the suite's ``tuning.spaces``.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import logging
import math
import random
import time
from pathlib import Path
from typing import Any

from bench.config import build_config, config_dict
from bench.errors import BenchError
from bench.registry import get_method
from bench.suites import RunSpec, Suite, TuningSpec

log = logging.getLogger("bench")

TUNE_FIX = "run `python -m bench tune --suite {suite}` first (it stores its studies under {where})"
# trial states that spend the budget: finished, stopped by the pruner (a diverging trial is one)
_SPENT = ("COMPLETE", "PRUNED")


def storage_path(results_dir: Path, suite: str) -> Path:
    return Path(results_dir) / "tuning" / f"{suite}.db"


def study_name(dataset: str, spec: RunSpec) -> str:
    """One study per (dataset, suite entry): ``ml1m/mf/bce+tuned``."""
    from bench.runner import run_variant

    return f"{dataset}/{spec.method}/{run_variant(spec)[1]}"


def search_space(suite: Suite, method: str) -> dict[str, list[Any]]:
    """The method's declared space with the suite's ``tuning.spaces[method]`` over it, checked
    against the method's config (an unknown key or a bad value is one BenchError)."""
    cls = get_method(method)
    space = {**cls.search_space, **suite.tuning.spaces.get(method, {})}
    if not space:
        raise BenchError(f"suite {suite.name}: {method} declares no search space",
                         f"give one in the suite: tuning: {{spaces: {{{method}: {{KEY: [VALUES]}}}}}}")
    for key, values in space.items():
        if not isinstance(values, list) or not values:
            raise BenchError(f"suite {suite.name}: search space {method}.{key} must be a non-empty list",
                             f"e.g. tuning: {{spaces: {{{method}: {{{key}: [1.0e-3, 1.0e-4]}}}}}}")
        for value in values:  # each value alone must make a valid config
            build_config(cls.Config, {key: value})
    return space


def with_params(cfg: Any, params: dict[str, Any]) -> Any:
    """``cfg`` with the searched values set. A config's ``per_dataset`` settings (the published
    per-dataset values) would silently replace them on that dataset: those keys are dropped there."""
    layer: dict[str, Any] = dict(params)
    per = getattr(cfg, "per_dataset", None)
    if per:
        layer["per_dataset"] = {d: {k: v for k, v in values.items() if k not in params} for d, values in per.items()}
    return build_config(type(cfg), config_dict(cfg), layer)


def trial_split(split: Any) -> Any:
    """The split a trial trains on: every test label replaced by 0, so no trial can learn from
    or select on a test label (and the objective scores valid rows only). The test rows' users
    and items stay, as in every run: they are part of the id space a model is built over, so the
    chosen configuration's ``bench run`` trains exactly as its trial did and reproduces its
    valid AUC. The fingerprint stays the real split's, so cached CF embeddings are found."""
    return dataclasses.replace(split, test=split.test.assign(label=0))


# ---- Optuna --------------------------------------------------------------------------------
def _optuna():
    try:
        import optuna
    except ImportError:
        raise BenchError("tuning needs optuna, which is not installed",
                         "pip install -c constraints.txt -e '.[tune]'") from None
    import warnings

    # ERROR: a repeated configuration fails on purpose (see Repeat), with no traceback to show
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # the heartbeat (what lets a resumed tune re-run a killed trial) is flagged experimental
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def _storage(path: Path):
    optuna = _optuna()
    path.parent.mkdir(parents=True, exist_ok=True)
    # the heartbeat marks a killed process's running trial failed, so a resumed tune re-runs it
    # (parallel tuners share the file: wait for SQLite's write lock rather than fail at once)
    return optuna.storages.RDBStorage(f"sqlite:///{path.resolve()}", heartbeat_interval=15, grace_period=45,
                                      engine_kwargs={"connect_args": {"timeout": 60}})


def _sampler(kind: str, space: dict[str, list[Any]], seed: int):
    optuna = _optuna()
    if kind == "grid":
        return optuna.samplers.GridSampler(space, seed=seed)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _pruner(t: TuningSpec):
    optuna = _optuna()
    if t.pruner == "none":
        return optuna.pruners.NopPruner()
    if t.pruner == "halving":
        # asynchronous successive halving: at evaluations warmup_evals * 3**k a trial goes on
        # only if it is in the top third of the trials that reached that evaluation
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, t.warmup_evals), reduction_factor=3)
    # a trial below the median of earlier trials at the same evaluation stops there
    return optuna.pruners.MedianPruner(n_startup_trials=t.startup_trials, n_warmup_steps=t.warmup_evals)


def open_study(results_dir: Path, suite: Suite, dataset: str, spec: RunSpec, create: bool):
    """The stored study of one tuned entry; None when it does not exist and ``create`` is off."""
    optuna = _optuna()
    path = storage_path(results_dir, suite.name)
    name = study_name(dataset, spec)
    if not create:
        if not path.exists() or name not in optuna.study.get_all_study_names(_storage(path)):
            return None
        return optuna.load_study(study_name=name, storage=_storage(path))
    space = search_space(suite, spec.method)
    return optuna.create_study(study_name=name, storage=_storage(path), direction="maximize", load_if_exists=True,
                               sampler=_sampler(suite.tuning.sampler, space, suite.tuning.seed),
                               pruner=_pruner(suite.tuning.for_method(spec.method)))


def _spent(study) -> int:  # noqa: ANN001
    return sum(t.state.name in _SPENT for t in study.get_trials(deepcopy=False))


class Repeat(Exception):
    """A trial whose configuration an earlier (or running) trial of the study already has."""


MAX_REPEATS = 50  # repeated draws in a row after which a tuner stops whatever the space holds (a guard)


def _twin(trial, params: dict[str, Any]) -> int | None:  # noqa: ANN001
    """The number of another trial of the study with these values that finished, was pruned or
    is running; None when there is none."""
    for t in trial.study.get_trials(deepcopy=False):
        if t.number != trial.number and t.state.name in (*_SPENT, "RUNNING") and t.params == params:
            return t.number
    return None


def _untried(study, space: dict[str, list[Any]]) -> list[dict[str, Any]]:  # noqa: ANN001
    """The configurations of ``space`` no trial of the study has (finished, pruned, running or
    queued), in the space's order; a space too large to list is sampled (2,000 draws)."""
    taken = [t.params or t.system_attrs.get("fixed_params", {}) for t in study.get_trials(deepcopy=False)
             if t.state.name in (*_SPENT, "RUNNING", "WAITING")]
    keys = list(space)
    if math.prod(len(v) for v in space.values()) <= 100_000:
        combos = [dict(zip(keys, values)) for values in itertools.product(*space.values())]
    else:
        rng = random.Random(0)
        combos = [{k: rng.choice(space[k]) for k in keys} for _ in range(2000)]
    return [c for c in combos if c not in taken]


def _objective(suite: Suite, dataset: str, spec: RunSpec, base: Any, split: Any, device: str, progress: bool,
               storage: Path):
    from bench import workdirs
    from bench.method import RunContext
    from bench.metrics import auc

    optuna = _optuna()
    cls = get_method(spec.method)
    space = search_space(suite, spec.method)
    seen = trial_split(split)

    repeats = [0]

    def objective(trial) -> float:  # noqa: ANN001
        params = {k: trial.suggest_categorical(k, v) for k, v in space.items()}
        twin = _twin(trial, params)
        if twin is not None:
            # A configuration already tried (or running in a parallel tuner, whose seeded sampler
            # drew the same) is not trained again: the trial fails, which spends no budget and
            # which the sampler ignores. TPE keeps redrawing its favourite in a small space, so
            # the next trial takes a seeded random untried configuration instead (the budget is
            # spent on distinct ones); a space with none left stops the search.
            trial.set_user_attr("repeat_of", twin)
            repeats[0] += 1
            left = _untried(trial.study, space)
            if left:
                pick = random.Random(f"{suite.tuning.seed}/{trial.number}").choice(left)
                trial.study.enqueue_trial(pick, skip_if_exists=True)
            if not left or repeats[0] >= MAX_REPEATS:
                log.warning("%s: no untried configuration is left in the space; the search stops",
                            trial.study.study_name)
                trial.study.stop()
            raise Repeat(f"trial {trial.number} repeats trial {twin}")
        repeats[0] = 0
        config = with_params(base, params)

        def on_eval(step: int, value: float) -> None:
            if math.isnan(value):  # a one-class valid sample says nothing to prune on
                return
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"valid AUC {value:.4f} at step {step}")

        t0 = time.perf_counter()
        with workdirs.scratch(spec.method) as work:
            ctx = RunContext(dataset=dataset, seed=suite.tuning.seed, device=device, work_dir=work,
                             artifact_dir=work / "artifacts", split_fingerprint=split.fingerprint,
                             run_name=f"{study_name(dataset, spec)}#{trial.number}", progress=progress,
                             on_eval=on_eval, export_artifacts=False)
            method = cls(config, ctx)
            try:
                info = method.fit(seen) or {}
                fit_s = time.perf_counter() - t0
                value = auc(seen.valid["label"].to_numpy(), method.score(seen.valid))
                if math.isfinite(value) and value > _best_value(trial.study):
                    _keep_state(method, trial, storage, split.fingerprint, spec.method, config, info, fit_s)
            except optuna.TrialPruned:
                trial.set_user_attr("seconds", round(time.perf_counter() - t0, 2))
                raise
            except (BenchError, ValueError, FloatingPointError) as e:
                # a diverging configuration (NaN loss, unusable scores) is a hopeless trial:
                # stopped, counted against the budget, and the search goes on
                trial.set_user_attr("error", f"{type(e).__name__}: {e}"[:500])
                trial.set_user_attr("seconds", round(time.perf_counter() - t0, 2))
                raise optuna.TrialPruned(str(e)[:200]) from None
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 2))
        for k in ("best_epoch", "best_step"):
            if k in info:
                trial.set_user_attr(k, info[k])
        if not math.isfinite(value):
            trial.set_user_attr("error", "valid AUC is undefined")
            raise optuna.TrialPruned("valid AUC is undefined")
        return float(value)

    return objective


# ---- the winning trial's trained state -------------------------------------------------------
# A trial that beats every finished trial so far keeps its trained state (``Method.save_state``)
# where a `bench run` of the same configuration and seed keeps its own: in the cache, under the
# artifact directory of (split, method, tuning seed, config hash). Beside it, TRIAL_FILE names the
# study (by its database's absolute path) and trial, the device, a digest of the code and of the
# state's manifest, and holds the fit's info and seconds. The chosen configuration's run at the
# tuning seed then restores that state instead of training the same model on the same data with
# the same seed a second time (``reused_trial``); any other seed, ``--force``, other code, another
# device, a state written over since, or a cache without it: the run trains.
TRIAL_FILE = "tuning_trial.json"


def _best_value(study) -> float:  # noqa: ANN001
    values = [t.value for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    return max(values, default=-math.inf)


def _state_home(fingerprint: str, method: str, seed: int, config: Any) -> Path:
    from bench.artifacts import artifact_dir
    from bench.records import config_hash

    return artifact_dir(fingerprint, method, seed, config_hash(config_dict(config)))


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """SHA-256 of the harness's and the methods' source: a kept state is restored only by the code
    that trained it (a fix to a method's training must retrain, not restore the old weights)."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for package in ("bench", "baselines", "graphlora"):
        for path in sorted((root / package).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _manifest_digest(state: Path) -> str | None:
    from bench import trained_state as saved

    try:
        return hashlib.sha256((Path(state) / saved.MANIFEST).read_bytes()).hexdigest()
    except OSError:
        return None


def _keep_state(method: Any, trial, storage: Path, fingerprint: str, name: str, config: Any,  # noqa: ANN001
                info: dict[str, Any], fit_s: float) -> None:
    from bench.records import write_atomic

    home = _state_home(fingerprint, name, method.ctx.seed, config)
    try:
        (home / TRIAL_FILE).unlink(missing_ok=True)  # never beside a state it does not describe
        state = method.save_state(home / "trained_state")
        if state is None:
            return
        write_atomic(home / TRIAL_FILE, json.loads(json.dumps({
            "storage": str(storage.resolve()), "study": trial.study.study_name, "trial": trial.number,
            "state": str(state), "manifest_sha256": _manifest_digest(state), "config": config_dict(config),
            "device": method.ctx.device, "code_sha256": code_digest(), "fit": info, "fit_wall_s": fit_s},
            default=str)))
    except Exception as e:  # the trial stands without its copy; the chosen run then trains
        log.warning("%s#%d: its trained state was not kept (%s: %s)", trial.study.study_name, trial.number,
                    type(e).__name__, e)


def trial_state(tuned: dict[str, Any] | None, results_dir: Path, fingerprint: str, method: str, seed: int,
                config: Any, device: str) -> dict[str, Any] | None:
    """What a tuned run may restore instead of training: the kept state of its study's best trial
    (TRIAL_FILE's fields), where the run is that trial's configuration at the tuning seed on the
    same split and device, with the same code, and the state is still the one the trial wrote;
    else None (the run trains)."""
    if not tuned or seed != tuned.get("seed") or not tuned.get("storage"):
        return None
    try:
        kept = json.loads((_state_home(fingerprint, method, seed, config) / TRIAL_FILE).read_text())
        same = (kept["storage"] == str((Path(results_dir) / tuned["storage"]).resolve())
                and kept["study"] == tuned.get("study") and kept["trial"] == tuned.get("best_trial")
                and kept["device"] == device and kept["code_sha256"] == code_digest()
                and kept["config"] == json.loads(json.dumps(config_dict(config), default=str))
                and kept["manifest_sha256"] is not None and kept["manifest_sha256"] == _manifest_digest(kept["state"])
                and isinstance(kept["fit_wall_s"], (int, float)))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return kept if same else None


def tune_entry(suite: Suite, dataset: str, spec: RunSpec, split: Any, results_dir: Path, device: str,
               trials: int | None = None, progress: bool = False) -> dict[str, Any]:
    """Run trials of one tuned entry until its study has spent ``trials`` (the suite's budget by
    default); trials already in the study count, so a killed tune resumes where it stopped."""
    from bench.runner import entry_config

    optuna = _optuna()
    budget = trials or suite.tuning.trials
    study = open_study(results_dir, suite, dataset, spec, create=True)
    study.set_user_attr("budget", budget)
    left = budget - _spent(study)
    name = study_name(dataset, spec)
    if left > 0:
        log.info("%s: %d of %d trials to run", name, left, budget)
        objective = _objective(suite, dataset, spec, entry_config(spec), split, device, progress,
                               storage_path(results_dir, suite.name))
        # running trials count too, so parallel tuners on one study stop at the budget together
        states = tuple(optuna.trial.TrialState[s] for s in (*_SPENT, "RUNNING"))
        stop = optuna.study.MaxTrialsCallback(budget, states=states)
        # no n_trials: repeats spend nothing, so the budget callback (or an exhausted space) stops it
        study.optimize(objective, callbacks=[stop], gc_after_trial=True, catch=(Repeat,))
    else:
        log.info("%s: its %d trials are done", name, budget)
    return summary(study, suite, spec)


def summary(study, suite: Suite, spec: RunSpec) -> dict[str, Any]:  # noqa: ANN001
    """What a tuned run's record says of its study: where it is, the budget, the chosen values and
    every trial (number, state, valid AUC, values, seconds), in trial order."""
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    if not complete:
        raise BenchError(f"study {study.study_name} has no finished trial",
                         f"run `python -m bench tune --suite {suite.name}` (more trials, or a narrower space)")
    best = max(complete, key=lambda t: (t.value, -t.number))  # ties: the earliest trial
    return {
        "study": study.study_name,
        "storage": f"tuning/{suite.name}.db",
        "sampler": suite.tuning.sampler, "pruner": suite.tuning.for_method(spec.method).pruner,
        "seed": suite.tuning.seed,
        "budget": int(study.user_attrs.get("budget", suite.tuning.trials)),
        "space": search_space(suite, spec.method),
        "complete": len(complete),
        "pruned": sum(t.state.name == "PRUNED" for t in trials),
        "best_trial": best.number,
        "best_valid_auc": best.value,
        "params": dict(best.params),
        "trials": [{"number": t.number, "state": t.state.name.lower(), "valid_auc": t.value,
                    "params": dict(t.params), "seconds": t.user_attrs.get("seconds"),
                    **({"error": t.user_attrs["error"]} if "error" in t.user_attrs else {})}
                   for t in trials if t.state.name in _SPENT],
    }


def study_of(suite: Suite, spec: RunSpec) -> tuple[Suite, RunSpec]:
    """The suite and entry whose study a tuned entry takes: its own, or with ``tuned: SUITE`` that
    suite's tuned entry of the same method and variant (e.g. `main`'s CF rows take `cf-tuned`'s)."""
    if spec.tuned is True:
        return suite, spec
    from bench.runner import run_variant
    from bench.suites import load_suite

    source = load_suite(str(spec.tuned))
    variant = run_variant(spec)[0]
    for other in source.runs:
        if other.tuned is True and other.method == spec.method and run_variant(other)[0] == variant:
            return source, other
    raise BenchError(f"suite {suite.name}: {spec.method}:{variant} takes its tuned configuration from suite "
                     f"{source.name}, which tunes no such entry",
                     f"add {{method: {spec.method}, variant: {variant}, tuned: true}} to {source.name}, or use tuned: true")


def chosen(suite: Suite, dataset: str, spec: RunSpec, base: Any, results_dir: Path) -> tuple[Any, dict[str, Any]]:
    """(config, tuned info) of a tuned entry: its config with the study's best values, and the
    study summary its records carry. No study, or none finished: one BenchError saying to tune."""
    if spec.tuned is not True:
        # the source entry's config (what its trials trained from), this entry's overrides over it
        from bench.runner import entry_config

        source_suite, source = study_of(suite, spec)
        base = build_config(type(base), config_dict(entry_config(source)), spec.overrides)
        suite, spec = source_suite, source
    where = storage_path(results_dir, suite.name)
    study = open_study(results_dir, suite, dataset, spec, create=False)
    if study is None:
        raise BenchError(f"suite {suite.name}: {study_name(dataset, spec)} is tuned, but {where} has no study of it",
                         TUNE_FIX.format(suite=suite.name, where=where.parent))
    info = summary(study, suite, spec)
    return with_params(base, info["params"]), info


def tune_suite(suite_name: str, *, results_dir: Path, data_dir: str | None = None, methods: list[str] | None = None,
               datasets: list[str] | None = None, trials: int | None = None, device: str = "auto",
               progress: bool = False, executor: str = "local", workers: int = 2,
               address: str | None = None) -> list[dict[str, Any]]:
    """Tune every ``tuned: true`` entry of the suite (after the filters), one study each; returns
    each study's summary. The chosen configurations then run with ``bench run``.

    ``executor="ray"``: ``workers`` Ray tasks per study run its trials in parallel, sharing the
    study through its storage (each trial on one CPU, or one GPU where the method wants one)."""
    from bench import records, runner, workdirs
    from bench.suites import load_suite

    suite = load_suite(suite_name)
    wanted = runner.method_filter(suite, methods)
    entries = [(ds, spec) for ds in suite.datasets if not (datasets and ds.name not in datasets)
               for spec in suite.runs if spec.tuned is True and not (spec.datasets and ds.name not in spec.datasets)
               and runner.selected(spec, wanted)]
    if not entries:
        raise BenchError(f"suite {suite.name}: nothing to tune (no `tuned: true` run is left by the filters)",
                         "mark runs `tuned: true` in the suite file, or check --methods / --datasets "
                         "(a run with `tuned: SUITE` is tuned by that suite's `bench tune`)")
    for _, spec in entries:
        search_space(suite, spec.method)  # every space checked before any training
    records.writable_dir(results_dir, "--results-dir")
    workdirs.clean_stale()
    if executor not in ("local", "ray"):
        from bench.errors import unknown

        raise unknown("executor", executor, ["local", "ray"])
    if workers < 1:
        raise BenchError(f"--workers {workers}: a tune needs at least one worker", "e.g. --workers 2")
    device = device if executor == "ray" else runner.resolve_device(device)
    out, splits = [], runner.load_splits((ds for ds, _ in entries), data_dir)
    for ds, spec in entries:
        if splits[ds.name] is None:
            continue
        if executor == "ray":
            out.append((ds, spec))
            continue
        t0 = time.perf_counter()
        info = tune_entry(suite, ds.name, spec, splits[ds.name], results_dir, device, trials, progress)
        log.info("%s: best valid auc %.4f (trial %d of %d complete, %d pruned) with %s in %.0fs", info["study"],
                 info["best_valid_auc"], info["best_trial"], info["complete"], info["pruned"], info["params"],
                 time.perf_counter() - t0)
        out.append(info)
    if executor == "ray":
        return _tune_on_ray(suite, out, splits, results_dir, device, trials, workers, address)
    return out


def _ray_worker(suite: Suite, dataset: str, spec: RunSpec, split: Any, results_dir: Path, device: str,
                trials: int | None) -> dict[str, Any]:
    import logging as _logging

    from bench.runner import resolve_device

    _logging.getLogger("bench").setLevel(_logging.INFO)
    return tune_entry(suite, dataset, spec, split, results_dir, resolve_device(device), trials)


def _tune_on_ray(suite: Suite, entries: list, splits: dict[str, Any], results_dir: Path, device: str,
                 trials: int | None, workers: int, address: str | None) -> list[dict[str, Any]]:
    import ray

    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=True) if address else ray.init(include_dashboard=False,
                                                                                log_to_driver=True)
    gpus = ray.cluster_resources().get("GPU", 0)
    refs = {name: ray.put(split) for name, split in splits.items() if split is not None}
    remote = ray.remote(_ray_worker)
    results_dir = Path(results_dir).resolve()
    for ds, spec in entries:  # create each study once, before its workers race to
        open_study(results_dir, suite, ds.name, spec, create=True)
    pending = []
    for ds, spec in entries:
        on_gpu = bool(gpus) and getattr(get_method(spec.method), "wants_accelerator", False)
        opts = {"num_gpus": 1, "num_cpus": 1} if on_gpu else {"num_cpus": 1}
        task_device = ("cuda" if on_gpu else "cpu") if device == "auto" else device
        pending.append([remote.options(**opts).remote(suite, ds.name, spec, refs[ds.name], results_dir, task_device,
                                                      trials) for _ in range(workers)])
    log.info("dispatched %d tuners (%d per study) to Ray", sum(len(p) for p in pending), workers)
    for tasks in pending:
        ray.get(tasks)
    # each study as its last tuner left it
    return [summary(open_study(results_dir, suite, ds.name, spec, create=False), suite, spec) for ds, spec in entries]
