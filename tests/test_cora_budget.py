"""CoRA's per-sample LoRA and the matched-budget option."""
import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from bench import budget
from bench.config import build_config
from bench.errors import BenchError
from bench.method import RunContext
from bench.registry import get_method

TINY = {"backbone": "tiny-random", "eval_batch_size": 16}


def ctx(tmp):
    return RunContext("ml100k", 0, "cpu", Path(tmp), Path(tmp) / "a", "fp", progress=False)


def test_cora_is_per_sample_and_starts_as_the_frozen_model(split, backbone, tmp_path):
    cls = get_method("cora-mf")
    m = cls(build_config(cls.Config, TINY), ctx(tmp_path))
    m.prepare(split, copy.deepcopy(backbone))
    rows = split.test.iloc[:6].reset_index(drop=True)
    # B is zero-initialised: CoRA starts exactly at the frozen backbone
    base = copy.deepcopy(backbone)
    base.model.eval()
    m.model.eval()
    scores = m._score_rows(rows, "text")
    m._A = None
    m.before_forward = lambda b: None
    assert np.allclose(scores, m._score_rows(rows, "text"), atol=1e-6)
    # every q,k,v,o of every layer has its own B; A depends on the (user, item) of the row
    assert len(m.modules["B"]) == 4 * backbone.num_layers
    two_users = torch.as_tensor(split.train["user"].unique()[:2])
    item = torch.as_tensor(split.train["item"].iloc[[0, 0]].to_numpy())
    u, i = m.modules.cf_user[two_users], m.modules.cf_item[item]
    a = m.modules["qformer"](u, i)
    assert a.shape == (2, backbone.hidden_size, m.config.cora_r)
    assert not torch.allclose(a[0], a[1])
    assert torch.allclose(a.norm(dim=1), torch.ones(2, m.config.cora_r), atol=1e-5)
    assert get_method("cora-lightgcn").Config().cora_r == 64 and get_method("cora-mf").Config().cora_r == 16


def test_budget_matches_graphloras_count_within_two_percent(split, backbone, tmp_path):
    cls = get_method("cora-mf")
    cfg = build_config(cls.Config, TINY)
    target = budget.trainable_count(get_method("graphlora"), build_config(get_method("graphlora").Config, TINY),
                                    split, ctx(tmp_path), backbone)
    matched, info = budget.match(cls, cfg, "graphlora", split, ctx(tmp_path), backbone)
    assert info["target"] == target and info["target_from"] == "graphlora"
    got = budget.trainable_count(cls, matched, split, ctx(tmp_path), backbone)
    assert got == info["matched"] and abs(got - target) <= 0.02 * target
    assert matched.cora_r != cfg.cora_r or matched.qformer_dim != cfg.qformer_dim
    # a number works too, and an unreachable one is a clear error
    _, info = budget.match(get_method("tallrec"), build_config(get_method("tallrec").Config, TINY), 10_000,
                           split, ctx(tmp_path), backbone)
    assert abs(info["matched"] - 10_000) <= 200
    with pytest.raises(BenchError, match="within 2%"):
        budget.match(get_method("graphlora"), build_config(get_method("graphlora").Config, TINY), 1000,
                     split, ctx(tmp_path), backbone)
