"""Renders run records into tables: a pure function of ``results/`` (never imports torch).

Table 3 layout: one row per method (variant), per dataset the test AUC and UAUC, as the mean
over seeds with a 95% t-interval (a single-seed cell says so). Missing cells show as "–",
never as zero; records of one dataset with different split fingerprints are refused.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from tabulate import tabulate

from bench.errors import BenchError
from bench.records import iter_records

MISSING = "–"
TABLE3_METRICS = (("auc", "AUC"), ("uauc", "UAUC"))


def load_frame(results_dir: Path) -> tuple[pd.DataFrame, list[str]]:
    """One row per finished record; plus the paths of unreadable or foreign files."""
    rows, bad = [], []
    for path, rec in iter_records(results_dir):
        if rec is None:
            bad.append(str(path))
            continue
        if rec.get("status") != "ok" or "metrics" not in rec:
            continue
        row = {k: rec[k] for k in ("suite", "dataset", "method", "variant", "seed")}
        row["fingerprint"] = rec["split"]["fingerprint"]
        row["subset_users"] = rec["split"].get("subset_users")
        row["max_eval_rows"] = rec["split"].get("max_eval_rows")
        for part in ("valid", "test"):
            for m, v in rec["metrics"].get(part, {}).items():
                row[f"{part}/{m}"] = v
        row["params_trainable"] = rec.get("params", {}).get("trainable")
        row["train_s"] = rec.get("timing", {}).get("train_s")
        row["infer_test_s"] = rec.get("timing", {}).get("infer_test_s")
        row["budget_target"] = (rec.get("budget") or {}).get("target")
        rows.append(row)
    return pd.DataFrame(rows), bad


def mean_ci(values: list[float]) -> tuple[float, float | None, int]:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return float("nan"), None, 0
    if len(vals) == 1:
        return vals[0], None, 1
    half = stats.t.ppf(0.975, len(vals) - 1) * np.std(vals, ddof=1) / math.sqrt(len(vals))
    return float(np.mean(vals)), float(half), len(vals)


def fmt_cell(values: list[float]) -> str:
    mean, half, n = mean_ci(values)
    if n == 0:
        return MISSING
    if half is None:
        return f"{mean:.4f} (1 seed)"
    return f"{mean:.4f} ± {half:.4f} (n={n})"


def check_fingerprints(df: pd.DataFrame, suite: str) -> None:
    for dataset, g in df.groupby("dataset"):
        fps = g["fingerprint"].unique()
        if len(fps) > 1:
            raise BenchError(
                f"suite {suite}: records of {dataset} come from {len(fps)} different splits ({', '.join(fps)})",
                "rerun the stale records with --force, or move them out of results/",
            )


def table3(df: pd.DataFrame, part: str = "test") -> tuple[list[str], list[list[str]]]:
    datasets = sorted(df["dataset"].unique())
    header = ["Method"] + [f"{d} {label}" for d in datasets for _, label in TABLE3_METRICS]
    body = []
    for (method, variant), g in sorted(df.groupby(["method", "variant"])):
        row = [f"{method} ({variant})"]
        for d in datasets:
            cell = g[g["dataset"] == d]
            for metric, _ in TABLE3_METRICS:
                col = f"{part}/{metric}"
                row.append(fmt_cell(cell[col].tolist()) if col in cell and len(cell) else MISSING)
        body.append(row)
    return header, body


DETAIL_COLUMNS = (("valid/auc", "valid AUC"), ("valid/uauc", "valid UAUC"), ("test/auc", "test AUC"),
                  ("test/uauc", "test UAUC"), ("test/ndcg@10", "test NDCG@10"), ("test/n_rows", "test rows"),
                  ("params_trainable", "trainable params"), ("budget_target", "budget target"),
                  ("train_s", "train s"), ("infer_test_s", "test inference s"))


def _num(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return MISSING
    if isinstance(v, float) and not v.is_integer():
        return f"{v:.4f}" if abs(v) < 10 else f"{v:.1f}"
    return f"{int(v):,}"


def details(df: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Every run: valid and test metrics, trainable parameters (and a budget target), times."""
    header = ["dataset", "method (variant)", "seed"] + [label for _, label in DETAIL_COLUMNS]
    body = []
    for _, r in df.sort_values(["dataset", "method", "variant", "seed"]).iterrows():
        body.append([r["dataset"], f"{r['method']} ({r['variant']})", str(r["seed"])]
                    + [_num(r.get(col)) for col, _ in DETAIL_COLUMNS])
    return header, body


def _given(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _data_note(dataset: str, r: pd.Series) -> str:
    parts = [f"{int(r['subset_users'])}-user subset" if _given(r.get("subset_users")) else "all users"]
    if _given(r.get("max_eval_rows")):
        parts.append(f"seeded samples of at most {int(r['max_eval_rows'])} valid / test rows")
    return f"{dataset}: " + ", ".join(parts)


def render_all(results_dir: Path, out_dir: Path) -> list[Path]:
    if not results_dir.exists():
        raise BenchError(f"results directory {results_dir} does not exist", "run `python -m bench run --suite smoke` first")
    df, bad = load_frame(results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    md: list[str] = ["# recbench results", ""]
    if bad:
        md += ["Unreadable or foreign files in results/ (ignored):", ""] + [f"- `{p}`" for p in bad] + [""]
    if df.empty:
        md.append("No finished runs yet.")
    for suite, g in (df.groupby("suite") if not df.empty else []):
        check_fingerprints(g, suite)
        header, body = table3(g)
        note = "; ".join(_data_note(d, r) for d, r in g.groupby("dataset").first().iterrows())
        md += [f"## Suite `{suite}` — Table 3 layout (test split; mean ± 95% CI over seeds)", "",
               f"Data: {note}. UAUC = unweighted mean of per-user AUC over users with both classes.", "",
               tabulate(body, headers=header, tablefmt="github"), ""]
        dh, db = details(g)
        md += [f"### Suite `{suite}` — every run", "", tabulate(db, headers=dh, tablefmt="github"), ""]
        tex = tabulate(body, headers=header, tablefmt="latex_booktabs")
        path = out_dir / f"table3_{suite}.tex"
        path.write_text(tex + "\n")
        written.append(path)
    path = out_dir / "results.md"
    path.write_text("\n".join(md) + "\n")
    written.insert(0, path)
    return written
