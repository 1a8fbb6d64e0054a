"""``python -m bench overhead``: what the harness costs over the underlying library's own entry
point, per method that has one (``Method.reference_run``: for the CF baselines, RecBole's quick
start), on the same split with the same config, one process, one device.

The harness path is a whole ``bench run`` of the method (atomic files, fit, scoring valid and
test, metrics, embedding cache, record) into a scratch results dir; the reference path is the
library's entry point alone (for RecBole, ``run_recbole``: its own data pipeline, training with
validation every epoch, and the test evaluation). Both train the same model from the same
seed, so their test AUCs must agree; the record keeps both so a reader can check."""
from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import records
from bench.errors import BenchError

log = logging.getLogger("bench")
KIND = "overhead"
TITLE = "Harness overhead"  # the report's heading of a record, before its file's stem
TEX = None  # the stem of its LaTeX table beside the report (None: Markdown only)
AUC_TOL = 1e-3  # both paths train one model; RecBole's AUC and ours differ only in tie handling


def entries(methods: list[str] | None = None) -> list[tuple[str, type]]:
    """(name, class) of every registered method with a reference run, or of ``methods``."""
    from bench.registry import get_method, method_table

    out = [(name, get_method(name)) for name in (methods or method_table())]  # an unknown name: did-you-mean
    missing = [name for name, cls in out if cls.reference_variant is None]
    if methods and missing:
        raise BenchError(f"{', '.join(missing)} has no reference entry point to compare with",
                         "name methods that define reference_run (the CF baselines)")
    return [(name, cls) for name, cls in out if cls.reference_variant is not None]


def _timed(fn):  # noqa: ANN001, ANN202
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def measure(dataset: str, data_dir: str | None, device: str, methods: list[str] | None = None,
            overrides: dict[str, Any] | None = None, seed: int = 0, subset_users: int | None = None) -> dict[str, Any]:
    """The payload of an overhead record: each method's harness and reference wall times."""
    from bench.config import build_config
    from bench.data import load_split
    from bench.method import RunContext
    from bench.runner import PlannedRun, execute
    from bench.suites import DatasetSpec, RunSpec

    todo = entries(methods)  # bad method names fail before any data is read
    if not todo:
        raise BenchError("no registered method has a reference run", "install the CF extra: pip install -e '.[cf]'")
    split = load_split(dataset, data_dir, subset_users, seed)
    results = []
    with tempfile.TemporaryDirectory(prefix="recbench-overhead-") as tmp:
        for i, (name, cls) in enumerate(todo):
            variant = cls.reference_variant
            cfg = build_config(cls.Config, cls.variant_overrides(variant), overrides)
            run = PlannedRun(records.RunKey("overhead", dataset, name, variant, seed),
                             DatasetSpec(dataset, subset_users, seed), RunSpec(name, variant, dict(overrides or {})),
                             cls, cfg, timing=(0, 0))

            def harness(run=run):  # noqa: ANN202
                return execute(run, split, Path(tmp) / "results", device, progress=False)

            def reference(cls=cls, cfg=cfg, name=name, variant=variant):  # noqa: ANN202
                work = Path(tempfile.mkdtemp(dir=tmp))
                ctx = RunContext(dataset=dataset, seed=seed, device=device, work_dir=work, artifact_dir=work / "a",
                                 split_fingerprint=split.fingerprint, run_name=f"overhead:{name}:{variant}",
                                 progress=False)
                return cls(cfg, ctx).reference_run(split)

            if i == 0:  # untimed: imports, file cache and allocator warm-up count against neither path
                harness()
                reference()
            rec, harness_s = _timed(harness)
            ref, reference_s = _timed(reference)
            auc_h, auc_r = rec["metrics"]["test"]["auc"], ref["auc"]
            row = {"method": name, "variant": variant, "harness_s": harness_s, "reference_s": reference_s,
                   "ratio": harness_s / reference_s, "harness_test_auc": auc_h, "reference_test_auc": auc_r,
                   "same_model": abs(auc_h - auc_r) <= AUC_TOL, "fit": rec.get("fit", {})}
            if not row["same_model"]:
                log.warning("%s: harness test AUC %.4f vs reference %.4f: the two paths did not train the same model",
                            name, auc_h, auc_r)
            log.info("%s (%s): harness %.1fs, reference %.1fs, x%.3f", name, variant, harness_s, reference_s, row["ratio"])
            results.append(row)
    return {"device": device, "dataset": dataset, "split_fingerprint": split.fingerprint, "subset_users": subset_users,
            "overrides": dict(overrides or {}), "seed": seed, "entries": results}


def write(record: dict[str, Any], out_dir: Path) -> Path:
    return records.write_benchmark(record, out_dir, KIND, field="dataset")


def table(rec: dict[str, Any], layout: Any = None, tex: bool = False) -> tuple[list[str], list[list[str]], list[str]]:
    """One overhead record: a whole harness run of each method against the library's own entry point."""
    header = ["Method", "Variant", "Harness s", "Quick start s", "Ratio", "Test AUC (harness / quick start)"]
    body = [[e["method"], e["variant"], f"{e['harness_s']:.1f}", f"{e['reference_s']:.1f}", f"{e['ratio']:.3f}",
             f"{e['harness_test_auc']:.4f} / {e['reference_test_auc']:.4f}"] for e in rec["entries"]]
    sets = ", ".join(f"{k}={v}" for k, v in rec.get("overrides", {}).items()) or "the methods' own configs"
    note = (f"{rec['dataset']} on {rec['device_name']}, {sets}; the harness run includes scoring valid and test, "
            "metrics, the embedding cache and the record; the first method's two paths ran once untimed first.")
    return header, body, [note]
