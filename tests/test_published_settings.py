"""Published settings (issue 16): per-dataset CF / CoLLM learning rates and sizes, the original
TALLRec recipe (instruction prompt, causal-LM loss, Yes/No softmax), Table 7's TALLRec row."""
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from bench.config import build_config
from bench.data.schema import Split
from bench.method import RunContext
from bench.registry import get_method
from bench.report.layout import DEFAULT_LAYOUT, load_layout

TINY = {"backbone": "tiny-random", "eval_batch_size": 16}


def config(method, variant=None, **overrides):
    cls = get_method(method)
    return build_config(cls.Config, cls.variant_overrides(variant or cls.default_variant), overrides)


# ---- CF baselines and CoLLM: the published values per dataset ---------------------------------
def test_lightgcn_published_settings_per_dataset():
    c = config("lightgcn", "bce")
    ml = c.on_dataset("ml1m")
    assert (ml.learning_rate, ml.weight_decay, ml.embedding_size, ml.n_layers, ml.train_batch_size, ml.stopping_step) \
        == (1e-2, 1e-4, 64, 2, 2048, 100)
    book = c.on_dataset("amazon-book")
    assert (book.learning_rate, book.weight_decay, book.embedding_size, book.train_batch_size, book.stopping_step) \
        == (1e-4, 1e-7, 256, 10240, 100)
    assert c.on_dataset("ml100k") == ml  # an unlisted dataset takes the defaults
    native = config("lightgcn", "recbole").on_dataset("amazon-book")  # RecBole's training: earlier values
    assert (native.learning_rate, native.train_batch_size, native.stopping_step) == (1e-3, 2048, 20)


def test_sasrec_published_settings_per_dataset():
    c = config("sasrec", "bce")
    ml = c.on_dataset("ml1m")
    assert (ml.learning_rate, ml.weight_decay, ml.inner_size, ml.embedding_size, ml.max_seq_length,
            ml.train_batch_size, ml.stopping_step, ml.n_heads) == (1e-2, 1e-2, None, 64, 25, 2048, 100, 1)
    assert ml.model_params()["inner_size"] == ml.embedding_size  # CoLLM's feed-forward is d -> d
    wide = dataclasses.replace(ml, embedding_size=256)  # the tuner's d = 256, CoRA's SASRec
    assert wide.model_params()["inner_size"] == 256
    book = c.on_dataset("amazon-book")
    assert (book.learning_rate, book.weight_decay, book.max_seq_length, book.train_batch_size) == (1e-3, 1e-3, 20, 10240)
    native = config("sasrec", "recbole")
    assert (native.learning_rate, native.inner_size, native.stopping_step) == (1e-3, 256, 20)


@pytest.mark.parametrize("method, book_stage2", [("collm-mf", 1e-2), ("collm-lightgcn", 1e-2), ("collm-sasrec", 1e-4)])
def test_collm_learning_rates_per_dataset(method, book_stage2):
    from baselines.lightgcn import on_dataset

    c = config(method)
    stages = {}
    for ds in ("ml1m", "amazon-book", "ml100k"):
        r = on_dataset(c, ds)
        stages[ds] = (r.train_spec().lr, r.train_spec(lr=r.projector_lr).lr)
    assert stages["ml1m"] == (1e-3, 1e-3)
    assert stages["amazon-book"] == (1e-4, book_stage2)
    assert stages["ml100k"] == (1e-4, 1e-3)


def test_a_bad_per_dataset_key_fails_when_the_config_is_built():
    from bench.errors import BenchError

    with pytest.raises(BenchError, match="learnin_rate"):
        config("lightgcn", "bce", per_dataset={"ml1m": {"learnin_rate": 1e-2}})


def test_collm_resolves_its_dataset_values_at_fit(monkeypatch, tmp_path):
    from baselines.collm import CoLLM
    from bench.llm.recommender import LLMRecommender

    seen = {}
    monkeypatch.setattr(LLMRecommender, "fit", lambda self, split: seen.setdefault("cfg", self.config) and {})
    m = get_method("collm-mf")(config("collm-mf"), _ctx(tmp_path))
    info = CoLLM.fit(m, Split("amazon-book", *([_rows()] * 4), 3, 3))
    assert seen["cfg"].projector_lr == 1e-2 and seen["cfg"].lr == 1e-4
    assert info["dataset_settings"] == {"projector_lr": 1e-2}


# ---- the original TALLRec -------------------------------------------------------------------
def _ctx(tmp):
    return RunContext(dataset="x", seed=0, device="cpu", work_dir=Path(tmp), artifact_dir=Path(tmp) / "a",
                      split_fingerprint="fp", run_name="t", progress=False)


def _rows(n=6, authors=False):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({
        "user": np.arange(1, n + 1), "item": rng.integers(1, 3, n), "label": np.arange(n) % 2,
        "timestamp": 0, "history": [[1]] * n, "history_titles": [["Liked One", "Liked Two"]] * n,
        "title": [f"Target {i}" for i in range(n)], "not_cold": 0, "warm": 0,
        "disliked": [[2]] * n, "disliked_titles": [["Bad One"]] * n})
    if authors:
        df["author"] = [f"Author {i}" for i in range(n)]
        df["history_authors"] = [["A1", "A2"]] * n
        df["disliked_authors"] = [["A3"]] * n
    return df


def _book_split():
    t = _rows(8, authors=True)
    return Split("bookcrossing", t, t, t, t, 9, 3, domain="book")


def _fitted(tmp_path, **over):
    cls = get_method("tallrec")
    m = cls(build_config(cls.Config, cls.variant_overrides("original"), TINY,
                         {"epochs": 1, "batch_size": 4, "micro_batch_size": 2, **over}), _ctx(tmp_path))
    m.fit(_book_split())
    return m


def test_original_prompt_is_the_instruction_template_with_authors(tmp_path):
    m = _fitted(tmp_path)
    rows = _book_split().test
    text = m.bb.tokenizer.decode(m.encode(rows, "tallrec-original")[0].input_ids)
    assert text.startswith("Below is an instruction that describes a task, paired with an input")
    assert "request.  # noqa: E501\n\n### Instruction:\nGiven the user's preference and unpreference, identify " \
           'whether the user will like the target book by answering "Yes." or "No.".\n\n### Input:\n' in text
    assert ('User Preference: "Liked One" written by A1, "Liked Two" written by A2\n'
            'User Unpreference: "Bad One" written by A3\n'
            'Whether the user will like the target book ""Target 0" written by Author 0"?\n\n### Response:\n') in text
    assert text.endswith("### Response:\n")
    train = m.encode(rows, "tallrec-original+answer")
    assert m.bb.tokenizer.decode(train[0].input_ids[-train[0].n_answer:]) == "No." + m.bb.tokenizer.eos_token
    assert m.bb.tokenizer.decode(train[1].input_ids[-train[1].n_answer:]) == "Yes." + m.bb.tokenizer.eos_token


def _manual_loss(m, enc_list, response_only):
    """Cross-entropy of a plain full-vocabulary forward, row by row, over the chosen targets."""
    logits, targets = [], []
    for e in enc_list:
        ids = torch.tensor([e.input_ids])
        out = m.model(input_ids=ids).logits[0, :-1]
        tgt = ids[0, 1:]
        keep = torch.arange(1, len(e.input_ids)) >= (len(e.input_ids) - e.n_answer if response_only else 1)
        logits.append(out[keep])
        targets.append(tgt[keep])
    return torch.nn.functional.cross_entropy(torch.cat(logits), torch.cat(targets)).item()


@pytest.mark.parametrize("train_on_inputs", [False, True])
def test_original_loss_covers_the_response_only_or_every_token(tmp_path, train_on_inputs):
    m = _fitted(tmp_path, train_on_inputs=train_on_inputs)
    rows = _book_split().train
    enc = m.encode(rows, "tallrec-original+answer")
    idx = np.arange(4)
    batch = next(m.scorer.batches(rows, "tallrec-original+answer", 4, shuffle=False, subset=idx))
    m.model.eval()
    with torch.no_grad():
        got = m.lm_loss(batch, np.asarray([enc[i].n_answer for i in batch.rows])).item()
        want = _manual_loss(m, [enc[i] for i in batch.rows], response_only=not train_on_inputs)
    assert got == pytest.approx(want, rel=1e-4)
    assert enc[0].n_answer == len(m._answer_ids[int(rows["label"][0])]) + 1  # "Yes." / "No." and EOS


def test_published_variant_trains_on_inputs_and_the_response_variant_does_not():
    assert config("tallrec", "original").train_on_inputs is True  # TALLRec passes --train_on_inputs
    assert config("tallrec", "original-response").train_on_inputs is False
    c = config("tallrec", "original")
    assert (c.lora_r, c.lora_alpha, c.lora_dropout, c.lora_targets) == (8, 16, 0.05, ("q_proj", "v_proj"))
    assert (c.lr, c.batch_size, c.weight_decay, c.warmup_steps, c.epochs, c.eval_every, c.patience, c.max_len) \
        == (1e-4, 128, 0.0, 20, 200, 10, 10, 512)


@pytest.mark.parametrize("kind", ["double-softmax", "pair-softmax"])
def test_original_score_is_the_yes_no_softmax(tmp_path, kind):
    m = _fitted(tmp_path, yes_no_score=kind)
    rows = _book_split().test
    scores = m.score(rows)
    yes, no = m.yes_no_ids
    assert m.bb.tokenizer.decode([yes]) == "Yes" and m.bb.tokenizer.decode([no]) == "No"
    m.model.eval()
    with torch.no_grad():
        for r, e in enumerate(m.encode(rows, "tallrec-original")):
            logits = m.model(input_ids=torch.tensor([e.input_ids])).logits[0, -1].double()
            pair = logits.softmax(-1)[[yes, no]] if kind == "double-softmax" else logits[[yes, no]]
            prob_yes = pair.softmax(-1)[0].item()  # the published score
            assert torch.sigmoid(torch.tensor(scores[r], dtype=torch.float64)).item() == pytest.approx(prob_yes, abs=1e-6)


def test_original_fit_trains_the_lora(tmp_path):
    m = _fitted(tmp_path, epochs=2, eval_every=1)
    info = m.fit_info["stages"]["lora"]
    assert info["steps"] == 4  # 8 rows, batch 4: two optimiser steps per epoch
    assert any(p.abs().sum() > 0 for n, p in m.model.named_parameters() if "lora_B" in n)


# ---- Table 7 --------------------------------------------------------------------------------
def test_table7_tallrec_row_prefers_the_original_recipe():
    row = next(r for r in load_layout(DEFAULT_LAYOUT).table7 if r.method == "tallrec")
    assert row.variants == ("original", "default")
    both = pd.DataFrame({"method": ["tallrec", "tallrec"], "variant": ["default", "original"], "x": [1, 2]})
    label, g = row.pick(both)
    assert list(g["variant"]) == ["original"] and label == row.label
    label, g = row.pick(both[both["variant"] == "default"])
    assert list(g["variant"]) == ["default"] and label.endswith("(default)")
    assert "not like-for-like" in row.label


def test_original_evaluates_every_eval_every_steps_across_epochs(tmp_path):
    # one optimiser step per epoch (8 rows, batch 8): evaluations at steps 2 and 4 and at the end
    m = _fitted(tmp_path, epochs=5, batch_size=8, micro_batch_size=4, eval_every=2, patience=10)
    hist = m.fit_info["stages"]["lora"]["valid_auc_history"]
    assert [s for s, _ in hist] == [2, 4, 5]


def test_original_prompt_on_a_movie_split_without_authors_or_dislikes(tmp_path):
    cls = get_method("tallrec")
    m = cls(build_config(cls.Config, cls.variant_overrides("original"), TINY), _ctx(tmp_path))
    rows = _rows(2).drop(columns=["disliked", "disliked_titles"])
    m.prepare(Split("ml100k", rows, rows, rows, rows, 7, 3))
    text = m.bb.tokenizer.decode(m.encode(rows, "tallrec-original")[0].input_ids)
    assert ('User Preference: "Liked One", "Liked Two"\nUser Unpreference: \n'
            'Whether the user will like the target movie "Target 0"?\n\n### Response:\n') in text
