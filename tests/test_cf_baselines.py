"""The four CF baselines through RecBole on a tiny real ML-1M subset, end to end."""
import json
import sys

import numpy as np
import pytest

from bench.data import subset
from bench.report import render_all
from bench.runner import run_suite

SUITE = """
seeds: [0]
datasets:
  ml1m: {subset_users: 60, subset_seed: 3}
runs:
  - {method: mf, variant: bce, overrides: {epochs: 4, stopping_step: 2, embedding_size: 32}}
  - {method: lightgcn, variant: bce, overrides: {epochs: 4, stopping_step: 2}}
  - {method: ngcf, variant: recbole, overrides: {epochs: 3, stopping_step: 2}}
  - {method: sasrec, variant: bce, overrides: {epochs: 2, stopping_step: 2, max_seq_length: 10}}
"""


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory, data_dir):
    tmp = tmp_path_factory.mktemp("cf")
    suite = tmp / "cfmini.yaml"
    suite.write_text(SUITE)
    results = tmp / "results"
    # RecBole's Config reads --key=value from sys.argv: ours must not leak into it.
    argv = sys.argv
    sys.argv = ["bench", "--seed=99", "--embedding_size=7"]
    try:
        counts = run_suite(str(suite), results_dir=results, data_dir=str(data_dir), device="cpu", progress=False)
    finally:
        sys.argv = argv
    return suite, results, counts


def test_all_four_train_and_record(suite_run, ml1m):
    _, results, counts = suite_run
    assert counts == {"done": 4, "skipped": 0, "failed": 0, "unavailable": 0}
    recs = {p.stem.split("__")[1]: json.loads(p.read_text()) for p in (results / "cfmini").glob("*.json")}
    assert set(recs) == {"mf", "lightgcn", "ngcf", "sasrec"}
    small = subset(ml1m, 60, 3)
    for name, rec in recs.items():
        assert rec["status"] == "ok" and rec["seed"] == 0
        assert rec["split"]["fingerprint"] == small.fingerprint
        assert rec["metrics"]["test"]["n_rows"] == len(small.test)
        assert 0.0 <= rec["metrics"]["test"]["auc"] <= 1.0
        assert rec["params"]["trainable"] > 0 and rec["timing"]["train_s"] > 0
        assert rec["versions"]["recbole"] == "1.2.1"
        per_user = rec["per_user_auc"]["test"]  # what the report's paired bootstrap reads
        assert per_user and np.mean(list(per_user.values())) == pytest.approx(rec["metrics"]["test"]["uauc"], abs=1e-5)
        assert "valid" not in rec["per_user_auc"] and rec["device_name"].startswith("CPU")
        emb = np.load(rec["artifacts"]["embeddings"])
        assert emb["item"].shape[0] == ml1m.n_items
        trained_items = np.unique(small.train["item"])
        assert np.abs(emb["item"][trained_items]).sum() > 0
    # argv did not leak: MF kept its configured width, not --embedding_size=7
    assert recs["mf"]["config"]["embedding_size"] == 32
    assert np.load(recs["mf"]["artifacts"]["embeddings"])["user"].shape == (ml1m.n_users, 32)
    assert recs["ngcf"]["fit"]["protocol"] == "recbole"


def test_rerun_skips_finished_and_force_redoes(suite_run, data_dir):
    suite, results, _ = suite_run
    path = results / "cfmini" / "ml1m__mf__bce__seed0.json"
    before = path.read_text()
    counts = run_suite(str(suite), results_dir=results, data_dir=str(data_dir), device="cpu", progress=False)
    assert counts["skipped"] == 4 and counts["done"] == 0
    assert path.read_text() == before
    counts = run_suite(str(suite), results_dir=results, data_dir=str(data_dir), methods=["mf"],
                       device="cpu", progress=False, force=True)
    assert counts["done"] == 1
    # same seed, same config: same metrics
    assert json.loads(path.read_text())["metrics"] == json.loads(before)["metrics"]


def test_report_renders_table3(suite_run, tmp_path):
    _, results, _ = suite_run
    paths = render_all(results, tmp_path)
    md = (tmp_path / "results.md").read_text()
    assert "ml1m AUC" in md and "sasrec (bce)" in md and "(1 seed)" in md
    assert any(p.suffix == ".tex" for p in paths)


def test_sasrec_history_shares_the_item_vocabulary(ml1m, tmp_path):
    from bench.config import build_config
    from bench.method import RunContext
    from bench.registry import get_method
    import torch

    cls = get_method("sasrec")
    small = subset(ml1m, 20, 1)
    m = cls(build_config(cls.Config, {"epochs": 1, "max_seq_length": 5}),
            RunContext("ml1m", 0, "cpu", tmp_path, tmp_path / "a", small.fingerprint))
    m.fit(small)
    row = small.test[small.test["history"].map(len) >= 4].iloc[:1]
    inter = m._interaction_for(row)
    ids = inter["item_id_list"][0, : int(inter["item_length"][0])].tolist()
    tokens = m.dataset.id2token("item_id", ids).tolist()
    assert tokens == ["0"] + [str(i) for i in row["history"].iloc[0][-4:]]
    assert not torch.is_anomaly_enabled()  # RecBole's sine.py switched it on; compat switched it off
