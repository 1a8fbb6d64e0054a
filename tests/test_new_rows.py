"""Table 3's ICL, Prompt4NR and PersonPrompt rows: each method's defining property, on the tiny
random LLaMA with the real SmolLM2 tokenizer."""
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from bench.config import build_config
from bench.data import subset
from bench.method import RunContext
from bench.registry import get_method, method_table

TINY = {"backbone": "tiny-random", "batch_size": 8, "eval_batch_size": 16}
NEW = ("icl", "prompt4nr", "personprompt")
REPO = Path(__file__).resolve().parent.parent


def ctx(tmp, seed=0, name="t"):
    return RunContext(dataset="x", seed=seed, device="cpu", work_dir=Path(tmp), artifact_dir=Path(tmp) / "a",
                      split_fingerprint="fp", run_name=name, progress=False)


def make(name, tmp, variant=None, **over):
    cls = get_method(name)
    cfg = build_config(cls.Config, cls.variant_overrides(variant or cls.default_variant), TINY, over)
    return cls(cfg, ctx(tmp))


@pytest.fixture(scope="module")
def small(ml100k):
    return subset(ml100k, 10, 0)


def _rows(split, n=12):
    """Test rows of several users, a few each (so prefix sharing has groups to share)."""
    return split.test.groupby("user", sort=False).head(3).iloc[:n].reset_index(drop=True)


def _no_training(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("an optimiser step / training loop ran")

    monkeypatch.setattr("bench.llm.trainer.train", refuse)
    monkeypatch.setattr(torch.optim.AdamW, "step", refuse)


# ---- ICL ------------------------------------------------------------------------------------
def test_icl_trains_nothing_and_scores_as_the_zero_shot_scorer(small, tmp_path, monkeypatch):
    _no_training(monkeypatch)
    m = make("icl", tmp_path / "icl")
    info = m.fit(small)
    assert info["stages"] == {} and len(m.modules) == 0
    assert m.param_counts()["trainable"] == 0 and m.trainable_count() == 0
    assert not any(p.requires_grad for p in m.model.parameters())
    assert m.step_timings(_rows(small), 0, 1) is None  # no train step to time
    rows = _rows(small)
    scores = m.score(rows)
    # the shared scorer of the untrained TALLRec-style model (text prompt; fresh LoRA, B = 0),
    # with its adapter and with the adapter switched off (the bare frozen backbone)
    ref = make("tallrec", tmp_path / "ref")
    ref.prepare(small)
    for sharing in (True, False):
        ref.prefix_sharing = sharing
        assert np.allclose(scores, ref.scorer.score(rows, "text"), atol=1e-5)
        with ref.model.disable_adapter():
            assert np.allclose(scores, ref.scorer.score(rows, "text"), atol=1e-5)
    # and a plain full-vocabulary forward of the backbone
    from bench.llm.prompts import TEXT_TEMPLATE, render

    tok = m.bb.tokenizer
    with torch.no_grad():
        for r in range(3):
            ids = torch.tensor([tok(render(TEXT_TEMPLATE, "movie", rows["history_titles"][r][-10:], rows["title"][r])).input_ids])
            assert scores[r] == pytest.approx(m.model(input_ids=ids).logits[0, -1, m.bb.yes_id].item(), abs=1e-4)


def test_icl_demos_are_the_users_latest_solved_train_rows_before_the_query(small, tmp_path, monkeypatch):
    _no_training(monkeypatch)
    m = make("icl", tmp_path, "demos")
    assert m.config.n_demos == 1
    m.fit(small)
    test = small.test
    warm = test[test["user"].isin(small.train["user"])].head(8)
    rows = warm._append(test[~test["user"].isin(small.train["user"])].head(4)).reset_index(drop=True)
    enc = m.encode(rows, "text")
    tok = m.bb.tokenizer
    n_with = 0
    for r in range(len(rows)):
        text = tok.decode(enc[r].input_ids, skip_special_tokens=True)
        user, ts = rows["user"][r], rows["timestamp"][r]
        before = small.train[(small.train["user"] == user) & (small.train["timestamp"] < ts)]
        assert text.count("#Question:") == 1 + min(1, len(before))
        if len(before):
            n_with += 1
            demo = before.sort_values("timestamp", kind="stable").iloc[-1]
            first, query = text.split("#Answer:", 1)
            assert f'titled "{demo["title"]}"' in first
            assert query.startswith(" Yes\n" if demo["label"] == 1 else " No\n")
            assert f'titled "{rows["title"][r]}"' in query and text.endswith("#Answer:")
    assert n_with > 0
    zero = make("icl", tmp_path / "zero")
    zero.fit(small)
    assert not np.allclose(m.score(rows), zero.score(rows))
    assert m.param_counts()["trainable"] == 0


# ---- Prompt4NR ---------------------------------------------------------------------------------
def test_prompt4nr_soft_tokens_are_the_same_for_every_sample(small, tmp_path):
    m = make("prompt4nr", tmp_path, max_train_rows=16, max_valid_rows=8, lr=1e-2, eval_every=1)
    m.prepare(small)
    start = m.soft_tokens().detach().clone()
    h = m.bb.hidden_size
    assert start.shape == (2, 3, h)
    info = m.fit(small)
    assert list(info["stages"]) == ["joint"] and m.prompt == "hybrid-3"
    tokens = m.soft_tokens().detach()
    assert not torch.equal(tokens, start)  # trained
    lora = sum(p.numel() for p in m.lora_parameters())
    assert lora > 0 and m.param_counts()["trainable"] == lora + 2 * 3 * h
    # the prompt: 3 user slots, then the history, [SEP], 3 item slots, the target, [SEP], question
    rows = _rows(small)
    enc = m.encode(rows, m.prompt)
    for e in enc:
        assert [k for _, k in e.slots] == ["user"] * 3 + ["item"] * 3
        text = m.bb.tokenizer.decode(e.input_ids)
        assert "[SEP]" in text and "make a prediction about whether the user would enjoy the movie?" in text
    batch = next(m.scorer.batches(rows, m.prompt, 16, shuffle=False))
    assert batch.users.unique().numel() > 1 and batch.items.unique().numel() > 1
    soft = m.slot_embeddings(batch).detach()
    user, item = soft[batch.slot_is_user].view(-1, 3, h), soft[~batch.slot_is_user].view(-1, 3, h)
    assert torch.equal(user, tokens[0].expand_as(user)) and torch.equal(item, tokens[1].expand_as(item))
    # scoring with and without the shared-prefix cache agrees
    a = m.score(rows)
    m.prefix_sharing = False
    assert np.allclose(a, m.score(rows), atol=1e-4)


def test_prompt4nr_tallrec_init_trains_the_text_lora_first(tmp_path):
    cls = get_method("prompt4nr")
    m = make("prompt4nr", tmp_path, "tallrec-init", lr=1e-2, min_lr=0)
    assert m.config.init == "tallrec"
    m.soft_tokens = lambda: torch.nn.Parameter(torch.zeros(1))  # stages() only, no backbone needed
    m.lora_parameters = lambda: [torch.nn.Parameter(torch.zeros(1))]
    m.hybrid = "hybrid-3"
    st = m.stages()
    assert [(s.name, s.prompt, s.spec.lr) for s in st] == [("lora", "text", 1e-4), ("joint", "hybrid-3", 1e-2)]
    assert cls.Config().lr == 1e-4  # ML-1M's published lr is the default


# ---- PersonPrompt ------------------------------------------------------------------------------
def test_personprompt_tokens_differ_per_id_and_only_they_train(small, tmp_path):
    m = make("personprompt", tmp_path, max_train_rows=16, max_valid_rows=8, eval_every=1)
    assert m.config.lr == 1e-2 and m.config.freeze_lora
    m.prepare(small)
    lora0 = [p.detach().clone() for p in m.lora_parameters()]
    u0, i0 = (m.modules[k].weight.detach().clone() for k in ("user_emb", "item_emb"))
    assert lora0 and not any(p.requires_grad for p in m.lora_parameters())
    info = m.fit(small)
    assert list(info["stages"]) == ["ids"] and m.prompt == "id"
    h = m.bb.hidden_size
    assert m.param_counts()["trainable"] == (small.n_users + small.n_items) * h
    assert all(torch.equal(a, b) for a, b in zip(lora0, m.lora_parameters()))  # LoRA untouched
    assert not any(p.requires_grad for p in m.model.parameters())
    u1, i1 = m.modules["user_emb"].weight.detach(), m.modules["item_emb"].weight.detach()
    assert not torch.equal(u0, u1) and not torch.equal(i0, i1)
    rows = _rows(small, 16)
    batch = next(m.scorer.batches(rows, "id", 16, shuffle=False))
    soft = m.slot_embeddings(batch).detach()
    u, nodes = batch.slot_is_user, batch.slot_nodes
    assert torch.equal(soft[u], u1[nodes[u]]) and torch.equal(soft[~u], i1[nodes[~u]])
    items = nodes[~u]
    a, b = (items != items[0]).nonzero()[0, 0].item(), 0
    assert not torch.equal(soft[~u][a], soft[~u][b])  # another item, another token
    a_score = m.score(rows)
    m.prefix_sharing = False
    assert np.allclose(a_score, m.score(rows), atol=1e-4)


def test_personprompt_trainable_lora_variant_trains_the_lora_too(small, tmp_path):
    m = make("personprompt", tmp_path, "trainable-lora")
    m.prepare(small)
    st = m.stages()
    assert len(st) == 1 and st[0].params[1]["lr"] == m.config.lora_lr == 1e-4
    assert all(p.requires_grad for p in m.lora_parameters())
    lora = sum(p.numel() for p in m.lora_parameters())
    assert m.trainable_count() == lora + (small.n_users + small.n_items) * m.bb.hidden_size


# ---- registration, suites, layout ---------------------------------------------------------------
def test_new_methods_are_registered_run_in_every_suite_and_fill_table3():
    table = method_table()
    assert all(n in table for n in NEW)
    for suite in ("smoke", "ci", "main"):
        runs = yaml.safe_load((REPO / "bench" / "suites" / f"{suite}.yaml").read_text())["runs"]
        assert set(NEW) <= {r["method"] for r in runs}, suite
    layout = yaml.safe_load((REPO / "bench" / "layouts" / "graphlora-paper.yaml").read_text())
    groups = {g["name"]: [r["method"] for r in g["rows"]] for g in layout["table3"]["groups"]}
    assert groups["LLM-based recommendation"] == ["icl", "prompt4nr", "tallrec"]
    assert groups["Input-space alignment"][0] == "personprompt"
