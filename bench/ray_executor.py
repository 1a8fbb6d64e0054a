"""``bench run --executor ray``: independent runs as Ray tasks (one GPU per run of a method that
wants an accelerator, when the cluster has GPUs; one CPU otherwise). Each task takes the same
per-run lock and writes the same record as the in-process executor, so the two can share a
results directory and a rerun skips whatever either finished."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("bench")


def _task(run: Any, split: Any, results_dir: Path, device: str, force: bool, *after: Any) -> tuple[str, str]:
    """``after``: the outcomes of the runs this one depends on; Ray starts the task only once they
    are done, which is all they are passed for."""
    import logging as _logging

    from bench.runner import resolve_device, run_one

    _logging.getLogger("bench").setLevel(_logging.INFO)
    return run.key.stem, run_one(run, split, results_dir, resolve_device(device), force, progress=False)


def run_on_ray(runs: list, counts: dict[str, int], *, results_dir: Path, data_dir: str | None, force: bool,
               device: str, address: str | None) -> dict[str, int]:
    import ray

    from bench.runner import load_splits, planned_dependencies

    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=True)
        else:  # a local instance on this machine
            ray.init(include_dashboard=False, log_to_driver=True)
    gpus = ray.cluster_resources().get("GPU", 0)
    splits = load_splits((run.dataset for run in runs), data_dir)
    refs = {name: ray.put(split) for name, split in splits.items() if split is not None}
    remote = ray.remote(_task)
    pending = []
    started: dict[int, Any] = {}  # id(run) -> its task, for the runs that need it
    for run in runs:  # the plan puts every dependency before the runs that need it
        if splits[run.dataset.name] is None:
            counts["unavailable"] += 1
            continue
        on_gpu = bool(gpus) and getattr(run.method_cls, "wants_accelerator", False)
        opts = {"num_gpus": 1, "num_cpus": 1} if on_gpu else {"num_cpus": 1}
        task_device = ("cuda" if on_gpu else "cpu") if device == "auto" else device
        after = [started[id(dep)] for dep in planned_dependencies(run, runs) if id(dep) in started]
        started[id(run)] = remote.options(**opts).remote(run, refs[run.dataset.name], Path(results_dir).resolve(),
                                                         task_device, force, *after)
        pending.append(started[id(run)])
    log.info("dispatched %d runs to Ray (%s GPUs in the cluster)", len(pending), int(gpus))
    for stem, outcome in ray.get(pending):
        counts[outcome] += 1
    return counts
