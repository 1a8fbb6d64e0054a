import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from bench import metrics


def test_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    s = rng.integers(0, 5, 500).astype(float)  # many ties
    assert metrics.auc(y, s) == pytest.approx(roc_auc_score(y, s))


def test_per_user_auc_equals_sklearn_per_user_with_ties():
    rng = np.random.default_rng(1)
    users = rng.integers(0, 60, 3000)
    y = rng.integers(0, 2, 3000)
    s = rng.integers(0, 6, 3000).astype(float)  # many ties within users
    got = metrics.per_user_auc(users, y, s)
    want = {str(u): roc_auc_score(y[users == u], s[users == u]) for u in np.unique(users)
            if len(set(y[users == u])) == 2}
    assert got.keys() == want.keys() and len(want) > 50
    for u, a in want.items():
        assert got[u] == pytest.approx(a, abs=1e-12)


def test_auc_one_class_is_nan():
    assert math.isnan(metrics.auc(np.ones(4), np.arange(4.0)))


def test_uauc_hand_worked_skips_one_class_and_single_row_users():
    # user 1: scores rank 2 of 2 pairs correctly -> 1.0; user 2: one of two pairs -> 0.5
    # user 3: all positive (skipped); user 4: a single row (skipped)
    users = np.array([1, 1, 1, 2, 2, 2, 3, 3, 4])
    y = np.array([1, 0, 0, 1, 0, 0, 1, 1, 1])
    s = np.array([0.9, 0.1, 0.2, 0.5, 0.9, 0.1, 0.3, 0.2, 0.7])
    assert metrics.uauc(users, y, s) == pytest.approx((1.0 + 0.5) / 2)
    # weighted by positives: both users have one positive -> same here; make user 1 have two
    users2 = np.array([1, 1, 1, 2, 2, 2])
    y2 = np.array([1, 1, 0, 1, 0, 0])
    s2 = np.array([0.9, 0.05, 0.1, 0.5, 0.9, 0.1])
    a1 = roc_auc_score([1, 1, 0], [0.9, 0.05, 0.1])  # 0.5
    a2 = roc_auc_score([1, 0, 0], [0.5, 0.9, 0.1])  # 0.5
    assert metrics.uauc(users2, y2, s2) == pytest.approx((a1 + a2) / 2)
    s3 = np.array([0.9, 0.8, 0.1, 0.5, 0.9, 0.1])  # user 1 -> 1.0, user 2 -> 0.5
    assert metrics.uauc_pos_weighted(users2, y2, s3) == pytest.approx((2 * 1.0 + 1 * 0.5) / 3)
    assert metrics.uauc(users2, y2, s3) == pytest.approx(0.75)


def test_ndcg_at_10_hand_worked():
    # one user, labels by descending score: 0, 1, 1 -> DCG = 1/log2(3) + 1/log2(4)
    users = np.array([7, 7, 7])
    y = np.array([1, 0, 1])
    s = np.array([0.5, 0.9, 0.1])
    dcg = 1 / math.log2(3) + 1 / math.log2(4)
    idcg = 1 / math.log2(2) + 1 / math.log2(3)
    assert metrics.ndcg_at_k(users, y, s, 10) == pytest.approx(dcg / idcg)
    # cut-off matters: k=1 sees only the top row (a negative)
    assert metrics.ndcg_at_k(users, y, s, 1) == 0.0


def test_ndcg_variants_differ_in_cutoff_and_users():
    # user 1: 12 rows, its only positive ranked 12th; user 2: all negative; user 3: all positive
    u = np.array([1] * 12 + [2, 2] + [3, 3])
    y = np.array([0] * 11 + [1] + [0, 0] + [1, 1])
    s = np.concatenate([np.linspace(1, 0, 12), [0.3, 0.2], [0.3, 0.2]])
    # NDCG@10: user 1 -> 0 (positive beyond 10), user 3 -> 1, user 2 excluded (no positive)
    assert metrics.ndcg_at_k(u, y, s, 10) == pytest.approx(0.5)
    # full list, both-class users only: user 1 alone, positive at rank 12
    assert metrics.ndcg_full_both_classes(u, y, s) == pytest.approx(1 / math.log2(13))


def test_evaluate_subsets_and_rejects_nan():
    rows = pd.DataFrame({"user": [1, 1, 2, 2], "label": [1, 0, 1, 0], "not_cold": [1, 1, 0, 0], "warm": [1, 1, 1, 0]})
    out = metrics.evaluate(rows, np.array([0.9, 0.1, 0.2, 0.8]))
    assert out["auc"] == pytest.approx(0.75)  # 3 of 4 pos/neg pairs ordered right
    assert out["warm/auc"] == 1.0 and out["cold/auc"] == 0.0
    assert out["warm/n_rows"] == 2 and out["warm3/n_rows"] == 3
    with pytest.raises(ValueError, match="non-finite"):
        metrics.evaluate(rows, np.array([0.9, np.nan, 0.2, 0.8]))
