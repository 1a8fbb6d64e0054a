"""The claims table (issue 21): two methods' records on the same whole-user test sample, the
difference with intervals paired by seed and by user x seed, and a plain answer."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from bench.data import eval_by_users
from bench.report import claims as claims_mod
from bench.report.frame import load_frame
from bench.report.layout import load_layout
from bench.runner import run_suite

pytest.importorskip("recbole")


def test_whole_user_eval_samples_keep_every_row_of_a_drawn_user(ml100k):
    s = eval_by_users(ml100k, valid=50, test=120, seed=3)
    assert len(s.test) >= 120 and len(s.valid) >= 50 and s.train is ml100k.train
    for part, full in (("test", ml100k.test), ("valid", ml100k.valid)):
        got = getattr(s, part)
        users = set(got["user"])
        assert len(got) == full["user"].isin(users).sum()  # whole users: all their rows
        # the last user drawn is what crossed the line: without it, fewer rows than asked
        counts = got.groupby("user").size()
        assert len(got) - counts.max() < (120 if part == "test" else 50) or len(users) == 1
    assert set(map(tuple, s.valid_small[["user", "item", "timestamp"]].to_numpy())) <= \
        set(map(tuple, s.valid[["user", "item", "timestamp"]].to_numpy()))
    assert eval_by_users(ml100k, 50, 120, 3).test.equals(s.test)  # seeded


def test_weighted_auc_matches_sklearn_with_ties_and_weights():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.normal(size=300) + y, 1)  # rounding makes ties
    w = rng.integers(0, 4, 300).astype(float)
    assert claims_mod.weighted_auc(y, s, w) == pytest.approx(roc_auc_score(y[w > 0], s[w > 0], sample_weight=w[w > 0]))
    assert np.isnan(claims_mod.weighted_auc(np.ones(5, int), s[:5], np.ones(5)))


def test_the_claims_table_from_two_seeds_of_two_methods(tmp_path):
    suite = tmp_path / "claims.yaml"
    suite.write_text("""
name: claims-test
seeds: [0, 1]
datasets:
  ml100k: {eval_by_users: {valid: 80, test: 300}, keep_test_scores: true}
runs:
  - {method: mf, variant: bce, overrides: {embedding_size: 16, epochs: 3, stopping_step: 3}}
  - {method: mf, variant: recbole, overrides: {embedding_size: 16, epochs: 3, stopping_step: 3}}
timing: {warmup: 0, repeats: 0}
""")
    layout = tmp_path / "layout.yaml"
    layout.write_text("""
claims:
  kind: claims
  caption: claims
  sections:
    - name: BCE beats BPR
      rows: [{label: MF bce, method: mf, variant: bce}, {label: MF bpr, method: mf, variant: recbole}]
    - name: and more so on cold rows
      compare: cold-minus-warm
      rows: [{label: MF bce, method: mf, variant: bce}, {label: MF bpr, method: mf, variant: recbole}]
""")
    results = tmp_path / "results"
    counts = run_suite(str(suite), results_dir=results, device="cpu", progress=False)
    assert counts["done"] == 4 and counts["failed"] == 0
    recs = {p.stem: json.loads(p.read_text()) for p in (results / "claims-test").glob("*.json")}
    rec = recs["ml100k__mf__bce__seed0"]
    kept = rec["test_scores"]
    assert len(kept["score"]) == rec["metrics"]["test"]["n_rows"] >= 300
    assert roc_auc_score(kept["label"], kept["score"]) == pytest.approx(rec["metrics"]["test"]["auc"], abs=1e-5)

    df, _ = load_frame(results)
    spec = load_layout(layout).tables[0]
    header, body, notes = claims_mod.claims(df, spec, load_layout(layout))
    assert len(body) >= 1 and not notes
    by = dict(zip(header, body[0]))
    diffs = [recs[f"ml100k__mf__bce__seed{s}"]["metrics"]["test"]["auc"]
             - recs[f"ml100k__mf__recbole__seed{s}"]["metrics"]["test"]["auc"] for s in (0, 1)]
    assert float(by["Δ"]) == pytest.approx(np.mean(diffs), abs=1e-4)
    low, high = (float(v) for v in by["95% CI (users × seeds)"].strip("[]").split(", "))
    assert low <= float(by["Δ"]) <= high
    expected = "supported" if low > 0 else "contradicted" if high < 0 else "not distinguishable at this scale"
    assert by["Answer"] == expected and by["Seeds / test rows / users"].startswith("2 / ")


def test_cold_minus_warm_pairs_users_and_seeds():
    """The cold-minus-warm statistic on synthetic scores: the point is the mean over seeds of the
    gain on cold rows minus the gain on warm rows (sklearn's AUCs), inside its interval."""
    rng = np.random.default_rng(1)
    n = 400
    users = [str(u) for u in rng.integers(0, 40, n)]
    labels = rng.integers(0, 2, n)
    not_cold = rng.integers(0, 2, n)
    pairs, expected = [], []
    for _ in range(3):
        a = labels + rng.normal(size=n) * np.where(not_cold == 0, 0.8, 2.0)  # A is better on cold rows
        b = labels + rng.normal(size=n) * 2.0
        rows = {"user": users, "label": labels.tolist(), "not_cold": not_cold.tolist()}
        pairs.append(({**rows, "score": a.tolist()}, {**rows, "score": b.tolist()}))
        gain = [roc_auc_score(labels[m], a[m]) - roc_auc_score(labels[m], b[m]) for m in (not_cold == 0, not_cold == 1)]
        expected.append(gain[0] - gain[1])
    point, (low, high), p = claims_mod.user_bootstrap(pairs, "cold-minus-warm", n_resamples=300)
    assert point == pytest.approx(np.mean(expected)) and low <= point <= high and 0 <= p <= 1
    assert claims_mod.answer((low, high)) == "supported"  # by construction A gains ~0.2 more on cold rows


def test_a_claim_needs_two_rows_and_compare_belongs_to_claims(tmp_path):
    from bench.errors import BenchError

    bad = tmp_path / "bad.yaml"
    bad.write_text("claims: {kind: claims, sections: [{name: x, rows: [{label: a, method: mf}]}]}\n")
    with pytest.raises(BenchError, match="two rows"):
        load_layout(bad)
    bad.write_text("table5: {kind: table5, sections: [{name: x, compare: cold-minus-warm, rows: [{label: a, method: mf}]}]}\n")
    with pytest.raises(BenchError, match="compare"):
        load_layout(bad)
