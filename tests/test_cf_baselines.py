"""The four CF baselines through RecBole on a tiny real ML-1M subset, end to end."""
import json
import sys

import numpy as np
import pytest

from bench.data import subset
from bench.embeddings import load as load_embeddings
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
        assert rec["status"] == "ok" and rec["key"]["seed"] == 0
        assert rec["split"]["fingerprint"] == small.fingerprint
        assert rec["metrics"]["test"]["n_rows"] == len(small.test)
        assert 0.0 <= rec["metrics"]["test"]["auc"] <= 1.0
        assert rec["params"]["trainable"] > 0 and rec["timing"]["train_s"] > 0
        assert rec["versions"]["recbole"] == "1.2.1"
        per_user = rec["per_user_auc"]["test"]  # what the report's paired bootstrap reads
        assert per_user and np.mean(list(per_user.values())) == pytest.approx(rec["metrics"]["test"]["uauc"], abs=1e-5)
        assert "valid" not in rec["per_user_auc"] and rec["device_name"].startswith("CPU")
        emb = load_embeddings(rec["artifacts"]["embeddings"])
        assert emb.item.shape[0] == ml1m.n_items
        trained_items = np.unique(small.train["item"])
        assert np.abs(emb.item[trained_items]).sum() > 0
    # argv did not leak: MF kept its configured width, not --embedding_size=7
    assert recs["mf"]["config"]["embedding_size"] == 32
    assert load_embeddings(recs["mf"]["artifacts"]["embeddings"]).user.shape == (ml1m.n_users, 32)
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


def test_sasrec_native_protocol_embeds_rows_of_users_and_items_recbole_never_saw(tmp_path, data_dir, ml1m):
    # Under the `recbole` protocol the train file holds positives only: this subset has a user
    # and 192 items whose train rows are all negative (and no valid/test rows), which RecBole's
    # token table lacks; CoLLM-SAS still needs a sequence embedding for every train row.
    small = subset(ml1m, 60, 3)
    pos = small.train[small.train["label"] == 1]
    seen_later = set(small.valid["user"]) | set(small.test["user"])
    assert set(small.train["user"]) - set(pos["user"]) - seen_later  # the case is really there
    suite = tmp_path / "sas.yaml"
    suite.write_text("seeds: [0]\ndatasets:\n  ml1m: {subset_users: 60, subset_seed: 3}\nruns:\n"
                     "  - {method: sasrec, variant: recbole, overrides: {epochs: 1, stopping_step: 1, max_seq_length: 10}}\n"
                     "timing: {repeats: 0}\n")
    counts = run_suite(str(suite), results_dir=tmp_path / "results", data_dir=str(data_dir), device="cpu", progress=False)
    assert counts["done"] == 1, counts
    rec = json.loads(next((tmp_path / "results" / "sas").glob("*.json")).read_text())
    keys, vectors = load_embeddings(rec["artifacts"]["embeddings"]).rows["train"]
    assert len(keys) == vectors.shape[0] == len(small.train) and np.isfinite(vectors).all()


def test_sasrec_row_embeddings_run_each_history_once_and_equal_a_per_row_forward(tmp_path, ml1m):
    import torch

    from bench.config import build_config
    from bench.method import RunContext
    from bench.registry import get_method

    small = subset(ml1m, 60, 3)
    cls = get_method("sasrec")
    cfg = build_config(cls.Config, cls.variant_overrides("bce"), {"epochs": 1, "stopping_step": 1, "max_seq_length": 10})
    m = cls(cfg, RunContext(dataset="ml1m", seed=0, device="cpu", work_dir=tmp_path, artifact_dir=tmp_path / "a",
                            split_fingerprint=small.fingerprint, progress=False))
    m.fit(small)
    rows = small.train.head(300).reset_index(drop=True)
    assert rows["history"].map(lambda h: tuple(h[-9:])).nunique() < len(rows)  # shared histories exist
    got = m.row_user_embeddings(rows)
    with torch.no_grad():
        for i in range(0, len(rows), 37):
            inter = m._interaction_for(rows.iloc[i:i + 1])
            want = m.model.forward(inter["item_id_list"], inter["item_length"]).numpy()[0]
            np.testing.assert_allclose(got[i], want, atol=1e-5)


def test_no_own_edge_drops_exactly_the_batch_positive_edges_and_restores_the_graph(ml100k, tmp_path):
    """NGCF / LightGCN ``no-own-edge``: each training batch propagates over the train graph minus
    that batch's own positive (user, item) edges; scoring uses the whole train graph again."""
    import scipy.sparse as sp
    import torch

    from baselines._recbole_cf import _without_edges
    from baselines.ngcf import NGCF
    from bench.config import build_config
    from bench.method import RunContext

    m = sp.coo_matrix((np.ones(5, dtype=np.float32), ([0, 0, 1, 2, 2], [1, 2, 2, 0, 3])), shape=(3, 4))
    batch = {"u": torch.tensor([0, 2, 1]), "i": torch.tensor([2, 3, 0]), "label": torch.tensor([1.0, 1.0, 1.0])}
    batch_neg = dict(batch, label=torch.tensor([1.0, 0.0, 1.0]))  # a negative row's pair is no edge to drop
    left = {(r, c) for r, c in zip(*_without_edges(m, batch, "u", "i").nonzero())}
    assert left == {(0, 1), (1, 2), (2, 0)}
    assert {(r, c) for r, c in zip(*_without_edges(m, batch_neg, "u", "i").nonzero())} == {(0, 1), (1, 2), (2, 0), (2, 3)}

    cfg = build_config(NGCF.Config, NGCF.variant_overrides("no-own-edge"), {"epochs": 2, "embedding_size": 8,
                                                                            "hidden_size_list": [8]})
    ctx = RunContext(dataset="ml100k", seed=0, device="cpu", work_dir=tmp_path, artifact_dir=tmp_path / "a",
                     split_fingerprint="x", progress=False)
    method = NGCF(cfg, ctx)
    seen: list[int] = []
    split = subset(ml100k, 30, 0)
    original = NGCF.recbole_model
    info = method.fit(split)
    model = method.model
    assert type(model).__qualname__ == "NGCF_DropOwnEdge" and original == "NGCF"
    full = model.get_norm_adj_mat()  # after fit: the whole train-positive graph is back
    assert torch.equal(model.norm_adj_matrix.to_dense(), full.to_dense())
    assert model.interaction_matrix.nnz == len(split.train_graph())
    pos = split.train[split.train["label"] == 1].head(64)
    inter = method._interaction_for(pos)
    inter.interaction["label"] = torch.ones(len(inter))
    predict = model.predict
    model.predict = lambda batch: (seen.append(model.interaction_matrix.nnz), predict(batch))[1]
    model.calculate_loss(inter)  # a training step propagates without the batch's 64 edges ...
    assert seen == [len(split.train_graph()) - len(pos[["user", "item"]].drop_duplicates())]
    assert torch.equal(model.norm_adj_matrix.to_dense(), full.to_dense())  # ... and puts them back
    assert info["best_epoch"] >= 0
