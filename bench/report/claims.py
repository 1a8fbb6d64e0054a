"""The ``claims`` table: a paper's claims put to the records, one comparison per layout section.

A section names two rows: the claimed winner first, then the method it is claimed to beat. Its
``compare`` says what is compared: ``all`` (test AUC of A minus B) or ``cold-minus-warm`` (A's
AUC gain over B on cold test rows minus its gain on warm ones). Each comparison gets

- the difference, the mean over the seeds both rows ran;
- a 95% t-interval and a paired t-test over those seeds;
- a 95% percentile interval and a two-sided p-value from a bootstrap over test users, paired by
  user and by seed: each resample draws users with replacement, and every seed's A and B are
  scored on the same resampled rows (records of suites with ``keep_test_scores: true`` carry each
  test row's score; every run of such a suite scores the same rows);
- an answer: "supported" when the interval lies above zero, "contradicted" when it lies below,
  else "not distinguishable at this scale". The users x seeds interval decides where there is
  one, else the seeds' interval.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from bench.report.layout import Layout, Row, TableSpec
from bench.report.stats import MISSING, mean_ci

N_RESAMPLES = 2000
COMPARES = ("all", "cold-minus-warm")


def weighted_auc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> float:
    """ROC AUC with row weights (a bootstrap's multiplicities); ties count one half. NaN when a
    class has no weight."""
    order = np.argsort(scores, kind="stable")
    s, y, w = scores[order], labels[order], weights[order]
    group = np.concatenate([[0], np.cumsum(s[1:] != s[:-1])])  # tied scores share a group
    pos = np.bincount(group, weights=w * (y == 1))
    neg = np.bincount(group, weights=w * (y == 0))
    w_pos, w_neg = pos.sum(), neg.sum()
    if w_pos == 0 or w_neg == 0:
        return float("nan")
    below = np.cumsum(neg) - neg
    return float((pos * (below + 0.5 * neg)).sum() / (w_pos * w_neg))


def _delta(compare: str, labels: np.ndarray, cold: np.ndarray, a: np.ndarray, b: np.ndarray, w: np.ndarray) -> float:
    if compare == "all":
        return weighted_auc(labels, a, w) - weighted_auc(labels, b, w)
    gain = [weighted_auc(labels, a, w * part) - weighted_auc(labels, b, w * part) for part in (cold, ~cold)]
    return gain[0] - gain[1]


def user_bootstrap(pairs: list[tuple[dict[str, list], dict[str, list]]], compare: str,
                   n_resamples: int = N_RESAMPLES, seed: int = 0) -> tuple[float, tuple[float, float], float]:
    """(difference, 95% percentile interval, two-sided p) over test users, paired by user and by
    seed: ``pairs`` holds each seed's (A, B) ``test_scores``, all on the same rows."""
    first = pairs[0][0]
    labels = np.asarray(first["label"], dtype=int)
    cold = np.asarray(first["not_cold"], dtype=int) == 0
    _, user_idx = np.unique(np.asarray(first["user"]), return_inverse=True)
    n_users = int(user_idx.max()) + 1
    scores = [(np.asarray(a["score"], dtype=float), np.asarray(b["score"], dtype=float)) for a, b in pairs]

    def stat(w: np.ndarray) -> float:
        return float(np.nanmean([_delta(compare, labels, cold, a, b, w) for a, b in scores]))

    point = stat(np.ones(len(labels)))
    rng = np.random.default_rng(seed)
    draws = np.array([stat(rng.multinomial(n_users, np.full(n_users, 1 / n_users))[user_idx].astype(float))
                      for _ in range(n_resamples)])
    draws = draws[~np.isnan(draws)]
    low, high = np.percentile(draws, [2.5, 97.5])
    p = min(1.0, 2 * min(float((draws <= 0).mean()), float((draws >= 0).mean())))
    return point, (float(low), float(high)), p


def _num(v: Any) -> float:
    """A recorded metric as a float; an undefined one (None, e.g. no cold row with both classes) as NaN."""
    return float("nan") if v is None else float(v)


def _seed_delta(ga: pd.DataFrame, gb: pd.DataFrame, compare: str) -> dict[int, float]:
    """Each shared seed's difference from the recorded metrics (no per-row scores needed)."""
    cols = ["test/auc"] if compare == "all" else ["test/cold/auc", "test/warm/auc"]
    if any(c not in ga or c not in gb for c in cols):
        return {}
    a, b = ga.set_index("seed"), gb.set_index("seed")
    out = {}
    for s in sorted(set(a.index) & set(b.index)):
        d = [_num(a.at[s, c]) - _num(b.at[s, c]) for c in cols]
        out[int(s)] = d[0] if compare == "all" else d[0] - d[1]
    return {s: v for s, v in out.items() if not math.isnan(v)}


def _pairs(ga: pd.DataFrame, gb: pd.DataFrame, seeds: list[int]) -> tuple[list, str | None]:
    """Each seed's (A, B) per-row test scores, or why there are none to pair."""
    if "test_scores" not in ga or "test_scores" not in gb:
        return [], "per-row test scores not recorded (keep_test_scores)"
    a, b = ga.set_index("seed")["test_scores"], gb.set_index("seed")["test_scores"]
    pairs = []
    for s in seeds:
        sa, sb = a.get(s), b.get(s)
        if not isinstance(sa, dict) or not isinstance(sb, dict):
            return [], "per-row test scores not recorded (keep_test_scores)"
        if sa["user"] != sb["user"] or sa["label"] != sb["label"]:
            return [], f"seed {s}: the two runs scored different test rows"
        pairs.append((sa, sb))
    if pairs and any(p[0]["user"] != pairs[0][0]["user"] for p in pairs):
        return [], "the seeds scored different test rows"
    return pairs, None


def answer(interval: tuple[float, float] | None) -> str:
    if interval is None:
        return "not testable (one seed and no per-row scores)"
    if interval[0] > 0:
        return "supported"
    if interval[1] < 0:
        return "contradicted"
    return "not distinguishable at this scale"


def _fmt(v: float) -> str:
    return f"{v:+.4f}"


def compare_rows(df: pd.DataFrame, a: Row, b: Row, compare: str) -> list[dict[str, Any]]:
    """One result per dataset where both rows ran: the difference, both intervals, p-values, sizes
    and the answer (see the module docstring)."""
    la, ga_all = a.pick(df)
    lb, gb_all = b.pick(df)
    out = []
    for d in sorted(set(ga_all["dataset"]) & set(gb_all["dataset"])):
        ga, gb = ga_all[ga_all["dataset"] == d], gb_all[gb_all["dataset"] == d]
        per_seed = _seed_delta(ga, gb, compare)
        seeds = sorted(per_seed)
        if not seeds:
            continue
        mean, half, n = mean_ci(list(per_seed.values()))
        seed_ci = (mean - half, mean + half) if half is not None else None
        p_seed = (float(stats.ttest_1samp(list(per_seed.values()), 0.0).pvalue)
                  if n >= 2 and not np.allclose(list(per_seed.values()), mean) else None)
        pairs, why = _pairs(ga, gb, seeds)
        boot = user_bootstrap(pairs, compare) if pairs else None
        n_rows = len(pairs[0][0]["user"]) if pairs else None
        n_users = len(set(pairs[0][0]["user"])) if pairs else None
        out.append({"dataset": d, "a": la, "b": lb, "compare": compare, "delta": boot[0] if boot else mean,
                    "seeds": seeds, "seed_ci": seed_ci, "p_seed": p_seed, "boot_ci": boot[1] if boot else None,
                    "p_boot": boot[2] if boot else None, "why_no_boot": why, "rows": n_rows, "users": n_users,
                    "answer": answer(boot[1] if boot else seed_ci)})
    return out


CLAIMS_NOTE = ("Δ = the first method minus the second (test AUC; for cold − warm: its AUC gain on cold test rows "
               "minus its gain on warm ones), the mean over the seeds both ran. Intervals are 95%: a t-interval "
               f"over seeds, and a percentile interval from {N_RESAMPLES:,} bootstrap resamples of test users, "
               "paired by user and by seed. The answer reads the users × seeds interval where there is one: "
               "above 0 supported, below 0 contradicted, else not distinguishable at this scale.")


def claims(df: pd.DataFrame, spec: TableSpec, layout: Layout, tex: bool = False) -> tuple[list[str], list[list[str]], list[str]]:
    from bench.report.tables import esc

    header = ["Claim", "Comparison", "Dataset", "Δ", "95% CI (seeds)", "p (seeds)", "95% CI (users × seeds)",
              "p (users × seeds)", "Seeds / test rows / users", "Answer"]
    body, notes = [], []
    for section in spec.sections:
        if len(section.rows) != 2:
            continue  # the layout loader requires two rows; a hand-made spec may not
        for r in compare_rows(df, section.rows[0], section.rows[1], section.compare):
            what = f"{r['a']} − {r['b']}" + (" (cold gain − warm gain)" if r["compare"] != "all" else "")
            ci = lambda c: f"[{_fmt(c[0])}, {_fmt(c[1])}]" if c else MISSING  # noqa: E731
            p = lambda v: MISSING if v is None else f"< {1 / N_RESAMPLES:.1g}" if v == 0 else f"{v:.3g}"  # noqa: E731
            sizes = f"{len(r['seeds'])} / {r['rows'] or MISSING} / {r['users'] or MISSING}"
            body.append([esc(section.name, tex), esc(what, tex), esc(r["dataset"], tex), _fmt(r["delta"]),
                         ci(r["seed_ci"]), p(r["p_seed"]), ci(r["boot_ci"]), p(r["p_boot"]), sizes, r["answer"]])
            if r["why_no_boot"]:
                notes.append(f"{section.name} ({r['dataset']}): no users × seeds bootstrap: {r['why_no_boot']}.")
    return header, body, notes
