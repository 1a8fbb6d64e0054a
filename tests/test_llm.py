"""The shared LLM core on a tiny random LLaMA with the real SmolLM2 tokenizer."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from bench.config import build_config
from bench.data import subset
from bench.data.schema import Split
from bench.errors import BenchError
from bench.llm.backbone import smollm2_tokenizer
from bench.llm.batching import collate
from bench.llm.prompts import PromptBuilder, render, TEXT_TEMPLATE
from bench.method import RunContext
from bench.metrics import auc
from bench.registry import get_method

TINY = {"backbone": "tiny-random", "batch_size": 8, "eval_batch_size": 16}


@pytest.fixture(scope="module")
def tok():
    return smollm2_tokenizer()


def ctx(tmp, seed=0, name="t"):
    return RunContext(dataset="x", seed=seed, device="cpu", work_dir=Path(tmp), artifact_dir=Path(tmp) / "a",
                      split_fingerprint="fp", run_name=name, progress=False)


def test_text_prompt_wording_and_history(tok):
    text = render(TEXT_TEMPLATE, "book", ["A", "B"], "C")
    assert 'following books: "A", "B".' in text and 'the book titled "C"?' in text
    assert text.endswith('Answer with "Yes" or "No". \n#Answer:')
    pb = PromptBuilder(tok, "text", "movie", history_len=10)
    e = pb.encode([f"Film {i}" for i in range(15)], "T")
    decoded = tok.decode(e.input_ids)
    assert e.n_history == 10 and '"Film 5"' in decoded and '"Film 4"' not in decoded
    assert "following movies: none." in tok.decode(pb.encode([], "T").input_ids)


def test_truncation_drops_oldest_titles_only(tok):
    pb = PromptBuilder(tok, "id", "movie", history_len=10, max_len=120)
    titles = [f"A rather long movie title number {i} (1999)" for i in range(10)]
    e = pb.encode(titles, "Target (2000)")
    text = tok.decode(e.input_ids)
    assert len(e.input_ids) <= 120 and 0 < e.n_history < 10
    assert f'"{titles[-1]}"' in text and f'"{titles[0]}"' not in text
    assert '"Target (2000)"' in text and text.endswith('Answer with "Yes" or "No". \n#Answer:')
    with pytest.raises(ValueError, match="too small"):
        PromptBuilder(tok, "id", "movie", max_len=20).encode([], "T")


def test_slots_sit_at_the_placeholders_for_any_batch_layout(tok):
    pb = PromptBuilder(tok, "id", "movie")
    encs = [pb.encode(["X"] * k, f"Target {k}") for k in (0, 3, 7)]
    for e in encs:
        assert [k for _, k in e.slots] == ["user", "item"]
        for pos, kind in e.slots:
            before = tok.decode(e.input_ids[max(0, pos - 2):pos])
            assert "feature" in before
    users, items = np.array([11, 12, 13]), np.array([21, 22, 23])
    b = collate(encs, np.arange(3), users, items, np.array([1, 0, 1]), tok.pad_token_id)
    assert b.input_ids.shape[1] == max(len(e.input_ids) for e in encs)
    for s in range(len(b.slot_rows)):
        row, col = int(b.slot_rows[s]), int(b.slot_cols[s])
        off = b.input_ids.shape[1] - len(encs[row].input_ids)
        assert (col - off, "user" if b.slot_is_user[s] else "item") in encs[row].slots
        assert int(b.slot_nodes[s]) == (users[row] if b.slot_is_user[s] else items[row])
        assert int(b.position_ids[row, col]) == col - off
    assert (b.attention_mask.sum(1).numpy() == [len(e.input_ids) for e in encs]).all()


def test_score_is_the_yes_logit_of_a_plain_forward(ml100k, tmp_path, tok):
    cls = get_method("tallrec")
    m = cls(build_config(cls.Config, TINY, {"max_train_rows": 8, "max_valid_rows": 8, "epochs": 1}), ctx(tmp_path))
    small = subset(ml100k, 10, 0)
    m.fit(small)
    rows = small.test.iloc[:12].reset_index(drop=True)
    scores = m.score(rows)  # batched, left-padded, length-bucketed, last-position logits only
    yes = tok.encode(" Yes", add_special_tokens=False)[0]
    assert yes == 9230 == m.bb.yes_id
    m.model.eval()
    with torch.no_grad():
        for r in range(len(rows)):
            text = render(TEXT_TEMPLATE, "movie", rows["history_titles"][r][-10:], rows["title"][r])
            ids = torch.tensor([tok(text).input_ids])
            ref = m.model(input_ids=ids).logits[0, -1, yes].item()  # full vocab, every position
            assert scores[r] == pytest.approx(ref, abs=1e-4)


def _toy_split(n=256, seed=0) -> Split:
    """Yes iff the target title says 'wonderful': learnable from the text alone."""
    rng = np.random.default_rng(seed)

    def table(n):
        lab = rng.integers(0, 2, n)
        return pd.DataFrame({
            "user": rng.integers(1, 20, n), "item": rng.integers(1, 30, n), "label": lab,
            "timestamp": np.arange(n), "history": [[1, 2]] * n, "history_titles": [["Some film", "Another"]] * n,
            "title": [("A wonderful film" if y else "A dreadful film") + f" {i}" for i, y in enumerate(lab)],
            "not_cold": 1, "warm": 1})

    valid = table(64)
    return Split("toy", table(n), valid, valid, table(64), 20, 30)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])  # bf16: the GPU runs' precision, here on CPU
def test_training_moves_the_score_on_a_toy_task(tmp_path, dtype):
    split = _toy_split()
    cls = get_method("tallrec")
    cfg = build_config(cls.Config, TINY, {"dtype": dtype, "lr": 3e-3, "min_lr": 0, "epochs": 4, "eval_every": 16, "patience": 10,
                                          "lora_r": 16, "lora_alpha": 32, "lora_targets": ["q_proj", "v_proj", "o_proj", "down_proj"]})
    m = cls(cfg, ctx(tmp_path))
    info = m.fit(split)
    hist = info["stages"]["lora"]["valid_auc_history"]
    assert info["stages"]["lora"]["best_valid_auc"] > 0.9, hist
    test_auc = auc(split.test["label"].to_numpy(), m.score(split.test))
    assert test_auc > 0.9
    assert m.param_counts()["trainable"] == sum(p.numel() for p in m.lora_parameters())
    assert m.bb.dtype == getattr(torch, dtype)
    assert all(p.dtype == torch.float32 for p in m.lora_parameters())  # adapters train in fp32


def test_same_seed_same_scores_on_cpu(ml100k, tmp_path):
    small = subset(ml100k, 8, 1)
    cls = get_method("tallrec")
    cfg = build_config(cls.Config, TINY, {"max_train_rows": 16, "max_valid_rows": 8})
    a = cls(cfg, ctx(tmp_path / "a")).fit(small)
    m1 = cls(cfg, ctx(tmp_path / "b"))
    m1.fit(small)
    m2 = cls(cfg, ctx(tmp_path / "c"))
    m2.fit(small)
    assert np.allclose(m1.score(small.test), m2.score(small.test), atol=1e-6)
    assert a["stages"]["lora"]["steps"] == 2
    assert set(a["setup_s"]) == {"backbone_load"} and a["setup_s"]["backbone_load"] > 0  # no CF embeddings


def test_llm_path_never_imports_recbole_and_names_the_missing_cf_run(ml100k, tmp_path, monkeypatch):
    import subprocess, sys
    code = ("import sys, bench.llm.recommender, bench.llm.cf, baselines.tallrec, baselines.collm, baselines.binllm;"
            "assert 'recbole' not in sys.modules, 'recbole imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
    from bench.llm.cf import cf_embeddings
    monkeypatch.setenv("RECBENCH_CACHE", str(tmp_path))
    with pytest.raises(BenchError, match="(?s)no cached mf.*python -m bench run"):
        cf_embeddings(subset(ml100k, 5, 0), "mf", "bce", 0, train_if_missing=False)


def test_step_timings_change_nothing_learnt(ml100k, tmp_path):
    small = subset(ml100k, 8, 1)
    cls = get_method("tallrec")
    m = cls(build_config(cls.Config, TINY, {"max_train_rows": 16, "max_valid_rows": 8}), ctx(tmp_path))
    m.fit(small)
    before = m.score(small.test)
    state = {n: p.detach().clone() for n, p in m.model.named_parameters() if "lora_" in n}
    flags = {n: p.requires_grad for n, p in m.model.named_parameters()}
    t = m.step_timings(small.train, warmup=1, repeats=3)
    assert t["train_step_s"] > 0 and t["infer_step_s"] > 0
    assert t["step_batch"] == 8 and t["infer_batch"] == min(16, len(small.train))
    assert all(torch.equal(p, state[n]) for n, p in m.model.named_parameters() if "lora_" in n)
    assert all(p.grad is None for p in m.model.parameters())
    assert flags == {n: p.requires_grad for n, p in m.model.named_parameters()}
    assert np.array_equal(before, m.score(small.test))


def test_disliked_items_follow_the_liked_ones_and_truncate_from_the_longer_list(tok):
    text = render(TEXT_TEMPLATE, "book", ["A", "B"], "C", ["D"])
    assert 'high ratings to the following books: "A", "B", and low ratings to the following books: "D". ' in text
    pb = PromptBuilder(tok, "text", "book", history_len=10, max_len=10_000)
    full = pb.encode(["Liked one", "Liked two"], "Target", None, [f"Disliked {i}" for i in range(6)])
    short = PromptBuilder(tok, "text", "book", history_len=10, max_len=len(full.input_ids) - 3)
    enc = short.encode(["Liked one", "Liked two"], "Target", None, [f"Disliked {i}" for i in range(6)])
    decoded = tok.decode(enc.input_ids)
    assert '"Liked one", "Liked two"' in decoded and '"Disliked 0"' not in decoded and '"Disliked 5"' in decoded
    assert decoded.rstrip().endswith("#Answer:")


def test_random_shapes_have_the_published_parameter_counts(tok):
    from bench.llm.backbone import _random_shape

    def count(shape):
        m = _random_shape(shape, tok, torch.device("meta"), torch.bfloat16)  # no memory: meta tensors
        return sum(p.numel() for p in m.parameters())

    assert count("smollm2-135m") == 134_515_008  # SmolLM2-135M as published
    # LLaMA-7B is 6,738,415,616 with its 32,000-token vocabulary; the SmolLM2 tokenizer's 49,152
    # rows (input and output embeddings, untied) add 2 x 4096 x 17,152
    assert count("llama-7b") == 6_738_415_616 + 2 * 4096 * (49_152 - 32_000)
    with pytest.raises(BenchError, match="did you mean 'llama-7b'"):
        _random_shape("llama-8b", tok, torch.device("meta"), torch.bfloat16)


def test_undefined_valid_auc_keeps_the_latest_state_not_the_untrained_one():
    from bench.llm.trainer import TrainSpec, train

    w = torch.nn.Parameter(torch.zeros(1))
    spec = TrainSpec(lr=0.1, weight_decay=0.0, warmup_steps=0, min_lr=0.1, epochs=1, max_steps=0, grad_accum=1,
                     eval_every=2, patience=1)
    info = train([w], lambda epoch: range(6), 6, lambda b: (w - 1.0).pow(2).sum(), lambda: float("nan"), spec,
                 torch.device("cpu"), progress=False)
    assert info["steps"] == 6  # NaN evaluations never trigger early stopping
    assert 0.3 < float(w) < 1.0  # trained, not restored to the initial zero


def test_result_does_not_depend_on_whether_the_cf_cache_existed(ml100k, tmp_path, monkeypatch):
    # the first fit trains MF on demand (RecBole reseeds every generator), the second reads it
    monkeypatch.setenv("RECBENCH_CACHE", str(tmp_path / "cache"))
    small = subset(ml100k, 8, 1)
    cls = get_method("collm-mf")
    cfg = build_config(cls.Config, cls.variant_overrides("one-stage"), {**TINY, "max_train_rows": 16, "max_valid_rows": 8})
    miss = cls(cfg, ctx(tmp_path / "a"))
    miss.fit(small)
    assert len(list((tmp_path / "cache").rglob("embeddings.npz"))) == 1
    hit = cls(cfg, ctx(tmp_path / "b"))
    hit.fit(small)
    assert np.allclose(miss.score(small.test), hit.score(small.test), atol=1e-6)


def test_unknown_dtype_is_one_clear_error():
    cls = get_method("tallrec")
    with pytest.raises(BenchError, match="dtype 'fp16' is not one of auto, float32, bfloat16"):
        build_config(cls.Config, TINY, {"dtype": "fp16"})


def test_a_backbone_whose_head_caps_its_logits_is_refused(tmp_path, tok):
    """The Yes logit is read off one row of the output projection; a softcapped head (Gemma-2)
    would silently give other scores, so loading it is one clear error."""
    from transformers import Gemma2Config, Gemma2ForCausalLM

    from bench.llm.backbone import load_backbone

    cfg = Gemma2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                       num_attention_heads=2, num_key_value_heads=1, head_dim=16, final_logit_softcapping=0.05)  # caps the random logits hard
    torch.manual_seed(0)
    Gemma2ForCausalLM(cfg).save_pretrained(tmp_path / "capped")
    tok.save_pretrained(tmp_path / "capped")
    with pytest.raises(BenchError, match="post-processes its logits"):
        load_backbone(str(tmp_path / "capped"))
    from bench.llm.backbone import _tiny_random  # a plain linear head loads

    _tiny_random(tok).save_pretrained(tmp_path / "plain")
    tok.save_pretrained(tmp_path / "plain")
    assert load_backbone(str(tmp_path / "plain")).model.config.model_type == "llama"
