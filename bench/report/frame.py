"""Run records -> one pandas row per finished run (the only input of every table and figure)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.records import iter_records


def load_frame(results_dir: Path) -> tuple[pd.DataFrame, list[str]]:
    """One row per finished record; plus the paths of unreadable or foreign files."""
    rows, bad = [], []
    for path, rec in iter_records(results_dir):
        if rec is None:
            bad.append(str(path))
            continue
        if rec.get("status") != "ok" or "metrics" not in rec:
            continue
        try:
            row = {k: rec[k] for k in ("suite", "dataset", "method", "variant", "seed")}
            split = rec["split"]
            row["fingerprint"] = split["fingerprint"]
        except (KeyError, TypeError):
            bad.append(str(path))
            continue
        row["subset_users"] = split.get("subset_users")
        row["max_eval_rows"] = split.get("max_eval_rows")
        row["few_shot"] = split.get("few_shot")
        row["source"] = split.get("source") or row["dataset"]
        for k, v in (split.get("stats") or {}).items():
            row[f"stats/{k}"] = v
        for part in ("valid", "test"):
            for m, v in rec["metrics"].get(part, {}).items():
                row[f"{part}/{m}"] = v
        timing = rec.get("timing", {})
        row["params_trainable"] = rec.get("params", {}).get("trainable")
        row["train_s"] = timing.get("train_s")
        row["infer_test_s"] = timing.get("infer_test_s")
        row["train_step_s"] = timing.get("train_step_s")  # median of timed steps on a fixed batch
        row["infer_step_s"] = timing.get("infer_step_s")
        row["device"] = rec.get("device_name") or rec.get("device")
        row["budget_target"] = (rec.get("budget") or {}).get("target")
        row["per_user_auc"] = (rec.get("per_user_auc") or {}).get("test")
        rows.append(row)
    return pd.DataFrame(rows), bad
