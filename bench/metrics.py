"""Metrics of the CoLLM family, each named for exactly what it computes.

- ``auc``: global ROC AUC over the rows of a split (sklearn).
- ``uauc``: unweighted mean of per-user AUC over users with both classes (CoLLM/BinLLM/CoRA).
- ``uauc_pos_weighted``: the same, each user weighted by their positives (GraphLoRA's
  ``uAUC_pandas``); a named variant, never a silent substitute.
- ``ndcg@10``: per user, rows ranked by score, DCG@10 with gain = label and 1/log2(rank+1),
  over the ideal DCG@10; mean over users with >= 1 positive.
- ``ndcg_full_both_classes``: GraphLoRA repo's ``compute_dcg``: no cut-off, users with >= 2
  rows and both classes only.
Every metric also on the ``warm`` and ``cold`` subsets (``not_cold`` definition, and the
CoLLM ``warm`` > 3 definition under ``warm3``).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

HIGHER_IS_BETTER = {"auc": True, "uauc": True, "uauc_pos_weighted": True, "ndcg@10": True,
                    "ndcg_full_both_classes": True, "n_rows": True}


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    labels = np.asarray(labels)
    if len(labels) == 0 or labels.min() == labels.max():
        return float("nan")
    return float(roc_auc_score(labels, scores))


def _per_user(users: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> pd.core.groupby.DataFrameGroupBy:
    df = pd.DataFrame({"u": np.asarray(users), "y": np.asarray(labels), "s": np.asarray(scores, dtype=float)})
    return df.groupby("u", sort=True)


def _user_auc_table(users, labels, scores) -> pd.DataFrame:
    """AUC and positives of every user with both classes (one-class or single-row users have no
    AUC), sorted by user. AUC is the Mann-Whitney U over within-user average ranks, which is ROC
    AUC with ties counted as half, as sklearn's: one groupby instead of a call per user."""
    df = pd.DataFrame({"u": np.asarray(users), "y": np.asarray(labels).astype(np.int64),
                       "s": np.asarray(scores, dtype=float)})
    df["r"] = df.groupby("u", sort=False)["s"].rank(method="average")
    df["ry"] = df["r"] * df["y"]
    g = df.groupby("u", sort=True)
    n, npos, rank_sum = g.size(), g["y"].sum(), g["ry"].sum()
    nneg = n - npos
    both = (npos > 0) & (nneg > 0)
    npos, nneg, rank_sum = npos[both].astype(float), nneg[both].astype(float), rank_sum[both]
    return pd.DataFrame({"auc": (rank_sum - npos * (npos + 1) / 2) / (npos * nneg), "npos": npos})


def _user_aucs(users, labels, scores) -> tuple[np.ndarray, np.ndarray]:
    t = _user_auc_table(users, labels, scores)
    return t["auc"].to_numpy(dtype=float), t["npos"].to_numpy(dtype=float)


def per_user_auc(users, labels, scores) -> dict[str, float]:
    """AUC of every user with both classes, keyed by the user id as text (JSON-ready). Records keep
    it for the test split so the report can run a paired bootstrap over users between methods."""
    return {str(u): float(a) for u, a in _user_auc_table(users, labels, scores)["auc"].items()}


def uauc(users, labels, scores) -> float:
    aucs, _ = _user_aucs(users, labels, scores)
    return float(aucs.mean()) if len(aucs) else float("nan")


def uauc_pos_weighted(users, labels, scores) -> float:
    aucs, npos = _user_aucs(users, labels, scores)
    return float((aucs * npos).sum() / npos.sum()) if len(aucs) else float("nan")


def _dcg(gains: np.ndarray) -> float:
    return float((gains / np.log2(np.arange(2, len(gains) + 2))).sum())


def _ndcg_user(y: np.ndarray, s: np.ndarray, k: int | None) -> float:
    # Stable sort on -score: ties keep row order, so the metric is deterministic.
    order = np.argsort(-s, kind="stable")
    ranked = y[order][:k] if k else y[order]
    ideal = np.sort(y)[::-1][:k] if k else np.sort(y)[::-1]
    return _dcg(ranked) / _dcg(ideal)


def ndcg_at_k(users, labels, scores, k: int = 10) -> float:
    vals = [
        _ndcg_user(g["y"].to_numpy(), g["s"].to_numpy(), k)
        for _, g in _per_user(users, labels, scores) if g["y"].sum() > 0
    ]
    return float(np.mean(vals)) if vals else float("nan")


def ndcg_full_both_classes(users, labels, scores) -> float:
    vals = [
        _ndcg_user(g["y"].to_numpy(), g["s"].to_numpy(), None)
        for _, g in _per_user(users, labels, scores)
        if len(g) >= 2 and 0 < g["y"].sum() < len(g)
    ]
    return float(np.mean(vals)) if vals else float("nan")


METRICS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], float]] = {
    "auc": lambda u, y, s: auc(y, s),
    "uauc": uauc,
    "uauc_pos_weighted": uauc_pos_weighted,
    "ndcg@10": ndcg_at_k,
    "ndcg_full_both_classes": ndcg_full_both_classes,
}

# subset name -> row mask over a split table
SUBSETS: dict[str, Callable[[pd.DataFrame], np.ndarray]] = {
    "all": lambda df: np.ones(len(df), dtype=bool),
    "warm": lambda df: df["not_cold"].to_numpy() == 1,
    "cold": lambda df: df["not_cold"].to_numpy() == 0,
    "warm3": lambda df: df["warm"].to_numpy() == 1,
}


def evaluate(rows: pd.DataFrame, scores: np.ndarray) -> dict[str, float]:
    """All metrics on all subsets: keys ``metric`` (whole split) and ``subset/metric``."""
    scores = np.asarray(scores, dtype=float)
    if len(scores) != len(rows):
        raise ValueError(f"{len(scores)} scores for {len(rows)} rows")
    if not np.isfinite(scores).all():
        raise ValueError(f"{int((~np.isfinite(scores)).sum())} non-finite scores")
    out: dict[str, float] = {}
    for subset, mask_fn in SUBSETS.items():
        mask = mask_fn(rows)
        u, y, s = rows["user"].to_numpy()[mask], rows["label"].to_numpy()[mask], scores[mask]
        prefix = "" if subset == "all" else f"{subset}/"
        out[f"{prefix}n_rows"] = int(mask.sum())
        for name, fn in METRICS.items():
            val = fn(u, y, s) if mask.any() else float("nan")
            out[f"{prefix}{name}"] = None if (val is None or math.isnan(val)) else float(val)
    return out
