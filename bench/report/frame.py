"""Run records -> one pandas row per finished run (the only input of every table and figure)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.data.transforms import describe
from bench.records import RunRecord, Scan, scan


def kept_untrained(fit: dict | None) -> bool | None:
    """True when a training stage's kept state is its untrained start (``best_step`` 0: no
    optimiser step before the state model selection kept), False when every stage kept a trained
    state, None when the record names no kept step (CF runs, ICL, records before the field)."""
    if not isinstance(fit, dict):
        return None
    stages = fit.get("stages") if isinstance(fit.get("stages"), dict) else {}
    steps = [s["best_step"] for s in stages.values() if isinstance(s, dict) and s.get("best_step") is not None]
    if fit.get("best_step") is not None:
        steps.append(fit["best_step"])
    return any(int(s) == 0 for s in steps) if steps else None


def _row(rec: RunRecord, latest_failure: RunRecord | None) -> dict:
    key, split, timing = rec.key, rec.split, rec.timing
    row = {"suite": key.suite, "dataset": key.dataset, "method": key.method, "variant": key.variant,
           "seed": key.seed, "fingerprint": split.fingerprint, "source": split.source,
           "data": describe(split.transforms),  # the data the run saw, in words, from the record alone
           "few_shot": next((s.get("n") for s in split.transforms if s.get("name") == "few_shot"), None),
           "notes": list(split.notes)}
    for k, v in split.stats.items():
        row[f"stats/{k}"] = v
    for part in ("valid", "test"):
        for m, v in rec.metrics.get(part, {}).items():
            row[f"{part}/{m}"] = v
    row["params_trainable"] = rec.params.get("trainable")
    row["train_s"] = timing.get("train_s")
    row["infer_test_s"] = timing.get("infer_test_s")
    row["train_step_s"] = timing.get("train_step_s")  # median of timed steps on a fixed batch
    row["infer_step_s"] = timing.get("infer_step_s")
    row["device"] = rec.device_name or rec.device
    row["budget_target"] = (rec.budget or {}).get("target")
    row["tuned"] = rec.tuned  # a tuned run: its study's budget, choice and trials (the tuning table)
    row["per_user_auc"] = rec.per_user_auc.get("test")
    row["test_scores"] = rec.test_scores  # each test row's score, where the suite kept them (claims)
    fit = rec.fit if isinstance(rec.fit, dict) else {}
    row["kept_untrained"] = kept_untrained(fit)
    # the LLM's own samples of train / valid_small rows (Table 2 notes them beside the split's counts)
    row["fit_train_rows"] = fit.get("train_rows") if row["kept_untrained"] is not None else None
    row["fit_valid_rows"] = fit.get("valid_rows") if row["kept_untrained"] is not None else None
    # a newer attempt of this run failed: the numbers are the older config's, and the report says so
    row["latest_failed"] = latest_failure.error if latest_failure is not None else None
    return row


def load_frame(results_dir: Path) -> tuple[pd.DataFrame, Scan]:
    """One row per finished record that sits where its key says (copies and misplaced files
    are left out and listed in ``Scan.problems``), and the scan itself."""
    found = scan(results_dir)
    rows = [_row(rec, found.latest_failure(rec)) for _, rec in found.runs]
    return pd.DataFrame(rows), found
