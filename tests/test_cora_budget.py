"""The matched-budget option (Table 4): CoRA-MF at GraphLoRA's trainable-parameter count."""
from pathlib import Path

import pytest

from bench import budget
from bench.config import build_config
from bench.errors import BenchError
from bench.method import RunContext
from bench.registry import get_method

TINY = {"backbone": "tiny-random", "eval_batch_size": 16}


def ctx(tmp):
    return RunContext("ml100k", 0, "cpu", Path(tmp), Path(tmp) / "a", "fp", progress=False)


def test_budget_matches_graphloras_count_within_two_percent(split, backbone, tmp_path):
    cls = get_method("cora-mf")
    cfg = build_config(cls.Config, TINY)
    target = budget.trainable_count(get_method("graphlora"), build_config(get_method("graphlora").Config, TINY),
                                    split, ctx(tmp_path), backbone)
    matched, info = budget.match(cls, cfg, "graphlora", split, ctx(tmp_path), backbone)
    assert info["target"] == target and info["target_from"] == "graphlora"
    got = budget.trainable_count(cls, matched, split, ctx(tmp_path), backbone)
    assert got == info["matched"] and abs(got - target) <= 0.02 * target
    # the published r stays; the Q-Former narrows (to a multiple of its heads) and its
    # feed-forward width takes up the rest
    assert matched.cora_r == cfg.cora_r and 0 < matched.qformer_dim < 2 * 256
    assert matched.qformer_dim % matched.qformer_heads == 0
    assert set(info["knobs"]) == {"qformer_dim", "qformer_ffn"}
    # a config holding a dict (the CF runs' overrides, as smoke sets them) matches the same way
    with_dict, _ = budget.match(cls, build_config(cls.Config, {**TINY, "cf_overrides": {"epochs": 10}}), "graphlora",
                                split, ctx(tmp_path), backbone)
    assert (with_dict.qformer_dim, with_dict.qformer_ffn) == (matched.qformer_dim, matched.qformer_ffn)
    # a number works too, and an unreachable one is a clear error
    _, info = budget.match(get_method("tallrec"), build_config(get_method("tallrec").Config, TINY), 10_000,
                           split, ctx(tmp_path), backbone)
    assert abs(info["matched"] - 10_000) <= 200
    with pytest.raises(BenchError, match="within 2%"):
        budget.match(get_method("graphlora"), build_config(get_method("graphlora").Config, TINY), 1000,
                     split, ctx(tmp_path), backbone)
