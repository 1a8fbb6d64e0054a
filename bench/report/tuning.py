"""The tuning table and figure: for each ``+tuned`` run, the budget its study spent, the values it
chose, and default vs tuned valid / test AUC (the default being the suite's run of the same
variant without tuning); and best-so-far valid AUC against trials. Read from the records alone
(each tuned record carries its study's trials), like every other table."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.report.stats import MISSING, fmt_cell

SUFFIX = "+tuned"


def _tuned_rows(df: pd.DataFrame) -> pd.DataFrame:
    if "tuned" not in df or df.empty:
        return df.iloc[:0]
    return df[df["variant"].str.endswith(SUFFIX) & df["tuned"].map(lambda t: isinstance(t, dict))]


def _value(v: object) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def table(df: pd.DataFrame) -> tuple[list[str], list[list[str]], list[str]]:
    """One row per (dataset, method, variant) with tuned records."""
    header = ["dataset", "method (variant)", "budget (trials)", "chosen on valid AUC", "default valid AUC",
              "tuned valid AUC", "default test AUC", "tuned test AUC", "search s"]
    body = []
    tuned = _tuned_rows(df)
    for (dataset, method, variant), g in tuned.groupby(["dataset", "method", "variant"], sort=True):
        info = g.sort_values("seed").iloc[0]["tuned"]
        base = variant[: -len(SUFFIX)]
        d = df[(df["dataset"] == dataset) & (df["method"] == method) & (df["variant"] == base)]
        spent = info["complete"] + info["pruned"]
        seconds = sum(t.get("seconds") or 0.0 for t in info["trials"])
        body.append([
            dataset, f"{method} ({base})",
            f"{spent} of {info['budget']} ({info['pruned']} pruned; {info['sampler']}, {info['pruner']})",
            ", ".join(f"{k}={_value(v)}" for k, v in info["params"].items()),
            fmt_cell(d["valid/auc"].tolist()) if len(d) else MISSING, fmt_cell(g["valid/auc"].tolist()),
            fmt_cell(d["test/auc"].tolist()) if len(d) else MISSING, fmt_cell(g["test/auc"].tolist()),
            f"{seconds:,.0f}",
        ])
    notes = ["Every tuned run got the same budget of trials over its method's declared space (the published "
             "grids), selected on valid AUC only; no trial saw a test label (they are masked), and the chosen "
             "configuration was scored on test once per seed. Pruned: stopped by the median pruner on per-epoch "
             "valid AUC, or diverged. Default: the suite's run of the same variant with the method's own settings. "
             "search s: the trials' wall time."] if body else []
    return header, body, notes


def figure(df: pd.DataFrame, layout: object, dataset: str, stem: Path) -> list[Path]:
    """Best-so-far valid AUC against trial number, one line per tuned run of ``dataset`` (the
    layout is not needed: a tuned run names itself; the argument keeps the figures' signature)."""
    tuned = _tuned_rows(df[df["dataset"] == dataset])
    if tuned.empty:
        return []
    from bench.report.figures import _save, plt

    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    for (method, variant), g in tuned.groupby(["method", "variant"], sort=True):
        trials = g.sort_values("seed").iloc[0]["tuned"]["trials"]
        best, xs, ys = float("-inf"), [], []
        for i, t in enumerate(trials, 1):
            if t.get("valid_auc") is not None:
                best = max(best, t["valid_auc"])
            if best > float("-inf"):
                xs.append(i)
                ys.append(best)
        ax.step(xs, ys, where="post", marker=".", label=f"{method} ({variant[: -len(SUFFIX)]})")
    ax.set_xlabel("trials spent (complete or pruned)")
    ax.set_ylabel("best valid AUC so far")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"Tuning — best-so-far valid AUC ({dataset})")
    fig.tight_layout()
    return _save(fig, stem)
