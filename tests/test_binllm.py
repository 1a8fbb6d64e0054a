"""BinLLM's collaborative hashing: published joint MF + hash training (default) vs the frozen-MF
variant (issue 16). No LLM training here: ``prepare`` builds the codes, which is all that differs."""
import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from baselines.binllm import FROZEN_MF, BinLLM, CollaborativeHash, encode_bits, fit_joint_hash, next_beta
from bench.config import build_config
from bench.embeddings import CFEmbeddings
from bench.llm.prompts import ITEM_SLOT, USER_SLOT
from bench.method import RunContext

TINY = {"backbone": "tiny-random", "batch_size": 8, "eval_batch_size": 16}


def _ctx(tmp, seed=0):
    return RunContext(dataset="x", seed=seed, device="cpu", work_dir=Path(tmp), artifact_dir=Path(tmp) / "a",
                      split_fingerprint="fp", run_name="t", progress=False)


def _cfg(variant, **over):
    return build_config(BinLLM.Config, BinLLM.variant_overrides(variant), {**TINY, **over})


def test_variants_keep_the_prompt_styles_and_name_the_frozen_mf_hashing():
    for v, enc in (("plain", "plain"), ("dotted", "dotted")):
        c = _cfg(v)
        assert (c.hashing, c.encoding) == ("joint", enc) and BinLLM.cf_dependencies(c) == []  # MF from scratch
    assert BinLLM.default_variant == "plain"
    c = _cfg("plain")  # the published ML-1M save version (hashGNN_ml.py L403-434)
    assert (c.hash_lr, c.hash_weight_decay, c.beta_step, c.beta_after, c.hash_batch_size, c.hash_patience,
            c.hash_epochs, c.cf_dim) == (1e-2, 1e-3, 0.001, 1.0, 2048, 100, 5000, 32)
    assert c.hash_settings("amazon-book") == (1e-3, 1e-4, 0.02) and c.hash_settings("ml1m") == (1e-2, 1e-3, 0.001)
    for v, enc in (("frozen-mf-hash", "plain"), ("frozen-mf-hash-dotted", "dotted")):
        c = _cfg(v)
        assert (c.hashing, c.encoding, c.hash_epochs, c.hash_lr) == ("frozen-mf", enc, 30, 1e-3)
        (dep,) = BinLLM.cf_dependencies(c)
        assert (dep.method, dep.variant, dep.overrides) == ("mf", "bce", {"embedding_size": 32})
    assert _cfg("frozen-mf-hash", hash_epochs=5).hash_epochs == 5  # a suite's override still applies
    assert encode_bits(np.array([1, 1, 0, 0, 0, 0, 0, 0] + [1, 0, 1, 0, 1, 0, 0, 0] + [0] * 7 + [1] + [0] * 6 + [1, 0]), "dotted") \
        == "192.168.1.2"


def test_beta_grows_after_even_epochs_and_then_stays_at_sign():
    beta, done, seen = 0.0, False, []
    for epoch in range(2100):
        seen.append(beta)  # beta used during this epoch
        beta, done = next_beta(beta, epoch, 0.001, 1.0, done)
    assert seen[:6] == [0.0, 0.001, 0.001, 0.002, 0.002, 0.003]  # 0.001 * ceil(e / 2): epoch 0 pure tanh
    assert done and seen[-1] == 1.0 and max(seen) >= 1.01  # fixed once past 1.01 (~epoch 2020)
    assert seen.index(1.0) > 2000


def _toy_split(ml100k):
    from bench.data import subset

    return subset(ml100k, 30, 0)


def test_joint_hashing_moves_the_mf_tables_and_anneals_to_sign(ml100k):
    split = _toy_split(ml100k)
    torch.manual_seed(0)
    net = CollaborativeHash(split.n_users, split.n_items, 32)
    before = copy.deepcopy(net.state_dict())
    info = fit_joint_hash(net, split, lr=1e-2, weight_decay=0.0, beta_step=0.5, beta_after=1.0, epochs=8,
                          batch_size=256, patience=100, seed=0)
    users = np.unique(split.train["user"].to_numpy())
    items = np.unique(split.train["item"].to_numpy())
    after = net.state_dict()
    # the MF rows of trained users / items moved (no weight decay: nothing else moves them)
    assert not torch.allclose(after["user.weight"][users], before["user.weight"][users])
    assert not torch.allclose(after["item.weight"][items], before["item.weight"][items])
    untouched = np.setdiff1d(np.arange(split.n_users), users)
    assert torch.equal(after["user.weight"][untouched], before["user.weight"][untouched])
    assert torch.equal(after["user.weight"][0], torch.zeros(32))  # padding row
    # beta 0, .5, .5, 1, 1, 1.5 -> fixed at 1.0: training outputs are the sign codes themselves
    assert info["hash_annealed"] and info["hash_beta_end"] == 1.0 and info["hash_epochs_run"] == 8
    u, i = torch.as_tensor(split.train["user"].to_numpy()[:64]), torch.as_tensor(split.train["item"].to_numpy()[:64])
    net.train()
    train_out = net.outputs(u, i, info["hash_beta_end"])
    net.eval()
    eval_out = net.outputs(u, i)
    for a, b in zip(train_out, eval_out):
        assert torch.equal(a, b) and set(a.unique().tolist()) <= {-1.0, 1.0}
    hu, hi = net.codes()
    assert set(hu.unique().tolist()) | set(hi.unique().tolist()) <= {-1.0, 1.0}
    assert torch.equal(hu[u], eval_out[0])
    assert 0.0 <= info["hash_valid_auc"] <= 1.0


def test_default_builds_its_codes_from_jointly_trained_mf_without_a_cf_run(ml100k, backbone, tmp_path, monkeypatch):
    split = _toy_split(ml100k)
    m = BinLLM(_cfg("plain", hash_epochs=4, hash_weight_decay=0.0, beta_step=0.5), _ctx(tmp_path))
    monkeypatch.setattr(m, "load_cf", lambda *a, **k: pytest.fail("the joint hashing loads no CF run"))
    m.prepare(split, backbone=copy.deepcopy(backbone))
    net = m.modules["hash"]
    torch.manual_seed(0)
    init = CollaborativeHash(split.n_users, split.n_items, 32)  # the same seeded from-scratch init
    users = np.unique(split.train["user"].to_numpy())
    assert not torch.allclose(net.user.weight.detach()[users], init.user.weight.detach()[users])
    assert m.hash_info["hash_epochs_run"] == 4 and m.artifacts() == {}
    hu, hi = net.codes()
    assert np.array_equal(m.user_bits, (hu > 0).numpy()) and np.array_equal(m.item_bits, (hi > 0).numpy())
    row = next(split.test.head(1).itertuples(index=False))
    text = m.slot_text(row)
    assert text == {USER_SLOT: encode_bits(m.user_bits[row.user], "plain"), ITEM_SLOT: encode_bits(m.item_bits[row.item], "plain")}
    assert len(text[USER_SLOT]) == 32 and set(text[USER_SLOT] + text[ITEM_SLOT]) <= {"0", "1"}
    counts = m.param_counts()  # the MF tables and hash layers were trained (in the hashing stage)
    assert counts["trainable"] >= (split.n_users + split.n_items) * 32 + 2 * (32 * 32 + 32)


def test_frozen_variant_keeps_the_cf_tables_fixed(ml100k, backbone, tmp_path):
    split = _toy_split(ml100k)
    rng = np.random.default_rng(0)
    user = rng.normal(0, 0.1, (split.n_users, 32)).astype(np.float32)
    item = rng.normal(0, 0.1, (split.n_items, 32)).astype(np.float32)
    cf = CFEmbeddings("mf", item.copy(), user.copy(), path="/x/embeddings.npz")
    m = BinLLM(_cfg("frozen-mf-hash", hash_epochs=3), _ctx(tmp_path))
    m.load_cf = lambda *a, **k: cf
    m.prepare(split, backbone=copy.deepcopy(backbone))
    assert np.array_equal(cf.user, user) and np.array_equal(cf.item, item)  # MF never moved
    assert "hash" not in m.modules and set(m.modules) == {"hash_user", "hash_item"}
    with torch.no_grad():
        bits = (m.modules["hash_user"](torch.as_tensor(user)) >= 0).numpy()
    assert np.array_equal(m.user_bits, bits)  # the codes hash exactly the loaded tables
    assert m.artifacts() == {"cf_embeddings": "/x/embeddings.npz"}
