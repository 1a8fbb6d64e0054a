"""Statistics behind every cell: mean over seeds with a 95% t-interval, and the two paired tests
Table 3 runs between the best method and the runner-up (scipy does the work)."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats

MISSING = "–"
MIN_SHARED_USERS = 5  # the paired user bootstrap's floor: fewer shared test users give no interval


def _clean(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


def mean_ci(values: Sequence[float | None]) -> tuple[float, float | None, int]:
    """(mean, half-width of the 95% t-interval or None for one value, n)."""
    vals = _clean(values)
    if not vals:
        return float("nan"), None, 0
    if len(vals) == 1:
        return vals[0], None, 1
    half = stats.t.ppf(0.975, len(vals) - 1) * np.std(vals, ddof=1) / math.sqrt(len(vals))
    return float(np.mean(vals)), float(half), len(vals)


def fmt_cell(values: Sequence[float | None]) -> str:
    mean, half, n = mean_ci(values)
    if n == 0:
        return MISSING
    if half is None:
        return f"{mean:.4f} (1 seed)"
    return f"{mean:.4f} ± {half:.4f} (n={n})"


def paired_seed_test(a: dict[int, float], b: dict[int, float]) -> float | None:
    """Two-sided paired t-test over the seeds both methods ran; None below 2 shared seeds
    (or when every paired difference is equal, where the t statistic is undefined)."""
    seeds = sorted(set(a) & set(b))
    x = np.array([a[s] for s in seeds], dtype=float)
    y = np.array([b[s] for s in seeds], dtype=float)
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    if len(x) < 2 or np.allclose(x - y, (x - y)[0]):
        return None
    return float(stats.ttest_rel(x, y).pvalue)


def paired_user_bootstrap(a: dict[str, float], b: dict[str, float], n_resamples: int = 2000,
                          seed: int = 0) -> tuple[float, tuple[float, float], float] | None:
    """Paired bootstrap over the test users both methods scored: the mean per-user AUC difference
    (i.e. the UAUC gap), its 95% BCa interval and a two-sided bootstrap p-value. None below 5
    shared users (``MIN_SHARED_USERS``)."""
    users = sorted(set(a) & set(b))
    if len(users) < MIN_SHARED_USERS:
        return None
    d = np.array([a[u] - b[u] for u in users], dtype=float)
    if np.allclose(d, d[0]):
        return float(d[0]), (float(d[0]), float(d[0])), (1.0 if d[0] == 0 else 0.0)
    res = stats.bootstrap((d,), np.mean, n_resamples=n_resamples, confidence_level=0.95,
                          random_state=np.random.default_rng(seed), method="BCa")
    dist = res.bootstrap_distribution
    p = min(1.0, 2 * min(float((dist <= 0).mean()), float((dist >= 0).mean())))
    return float(d.mean()), (float(res.confidence_interval.low), float(res.confidence_interval.high)), p
