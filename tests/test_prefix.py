"""Scoring with a shared prompt prefix (a user's template + history run once as a KV cache) gives
the scores of scoring every prompt whole, and groups only rows that may share."""
import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.config import build_config
from bench.data import subset
from bench.llm.prefix import plan, split_encoded
from bench.llm.prompts import Encoded
from bench.method import RunContext
from bench.registry import get_method, method_table


def enc(ids, slots=()):
    return Encoded(list(ids), list(slots), 0)


def test_plan_groups_rows_of_one_user_by_their_exact_common_prefix():
    base = list(range(100, 140))  # 40 shared tokens
    rows = [enc(base + [1, 2, 3]), enc(base + [4, 5]),  # user 7: a group sharing 40
            enc(base[:10] + [9] * 40),  # user 7: shares only 10 tokens: whole
            enc(base + [1, 2, 3]),  # user 8: same tokens as row 0, other user: whole
            enc(base + [6], [(35, "item")]), enc(base + [7], [(35, "item")]),  # user 9: cut at the item slot
            enc(base + [8], [(3, "user")]), enc(base + [8], [(3, "user")])]  # user 5: identical prompts
    users = np.array([7, 7, 7, 8, 9, 9, 5, 5])
    groups, singles = plan(rows, users, np.arange(len(rows)))
    got = {tuple(sorted(g.rows.tolist())): g.shared for g in groups}
    assert got == {(0, 1): 40, (4, 5): 35, (6, 7): 40}  # identical prompts keep one token each
    assert sorted(singles.tolist()) == [2, 3]
    # a subset is planned alone
    groups, singles = plan(rows, users, np.array([0, 2, 3]))
    assert groups == [] and sorted(singles.tolist()) == [0, 2, 3]
    head, tail = split_encoded(rows[6], 5)
    assert head.input_ids + tail.input_ids == rows[6].input_ids and head.slots == [(3, "user")] and tail.slots == []
    head, tail = split_encoded(rows[4], 35)
    assert head.slots == [] and tail.slots == [(0, "item")]


# where a method's default variant turns sharing off, a variant that keeps it on (GraphLoRA's
# default injects the row's induced subgraph, which depends on the target item)
SHARING_VARIANT = {"graphlora": "star"}
SHARING = [n for n in method_table() if getattr(get_method(n), "shares_prefix", False)]


def test_every_method_that_shares_a_prefix_is_checked():
    assert {"tallrec", "collm-mf", "graphlora", "binllm"} <= set(SHARING)
    assert set(SHARING_VARIANT) <= set(SHARING)


@pytest.mark.parametrize("name", SHARING)
def test_shared_prefix_scores_equal_whole_prompt_scores(ml1m, backbone, tmp_path, name):
    small = subset(ml1m, 30, 1)
    rows = small.test.head(160).reset_index(drop=True)
    cls = get_method(name)
    variant = SHARING_VARIANT.get(name, cls.default_variant)
    cfg = build_config(cls.Config, cls.variant_overrides(variant), {"backbone": "tiny-random", "eval_batch_size": 16})
    ctx = RunContext(dataset="ml1m", seed=0, device="cpu", work_dir=Path(tmp_path), artifact_dir=Path(tmp_path) / "a",
                     split_fingerprint=small.fingerprint, run_name="t", progress=False,
                     random_cf=True)  # seeded random CF tables (and BinLLM codes): no CF run to train
    m = cls(cfg, ctx)
    m.prepare(small, copy.deepcopy(backbone))
    prompt = m.prompt  # the prompt its last stage trains and scores with
    with torch.no_grad():  # trained-looking adapters and projector, so every part shapes the score
        for n, p in list(m.model.named_parameters()) + list(m.modules.named_parameters()):
            if "lora_B" in n or "projector" in n or "encoder" in n or "injector" in n:
                p.normal_(0, 0.05)
    keys = m.user_keys(rows)
    groups, _ = plan(m.scorer.encode(rows, prompt), keys, np.arange(len(rows)))
    if len(np.unique(keys)) == len(rows):  # a user slot of its own per row (sequence CF): nothing shares
        assert groups == []
    else:
        assert sum(len(g.rows) for g in groups) >= len(rows) // 3  # the shared path is really exercised
    assert m.prefix_sharing
    shared = m.scorer.score(rows, prompt)
    m.prefix_sharing = False
    whole = m.scorer.score(rows, prompt)
    assert whole.std() > 1e-3
    np.testing.assert_allclose(shared, whole, atol=1e-5)
