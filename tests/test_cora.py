"""CoRA as published (VanillaCreamer/CoRA): a BLIP-2 Q-Former turns the (user, item) CF vectors
into ONE per-sample LoRA A (unit norm over the whole H*r vector) shared by q, k, v, o of every
layer, each module with its own zero-initialised B; and its Table 6 count, live and as published."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import Blip2QFormerModel

from baselines.cora import DecoderGenerator, QFormerGenerator
from bench.config import build_config
from bench.method import RunContext
from bench.registry import get_method

TINY = {"backbone": "tiny-random", "eval_batch_size": 16}


def build(split, backbone, tmp: Path, method: str = "cora-mf", variant: str = "default", **overrides):
    cls = get_method(method)
    cfg = build_config(cls.Config, cls.variant_overrides(variant), {**TINY, **overrides})
    # the generator's input only has to differ per user / item: random CF tables of the right shape
    ctx = RunContext("ml100k", 0, "cpu", tmp, tmp / "a", "fp", progress=False, random_cf=True)
    m = cls(cfg, ctx)
    m.prepare(split, copy.deepcopy(backbone))
    m.model.eval()
    m.modules.eval()
    return m


def first_batch(m, split, n: int = 6):
    rows = split.test.iloc[:n].reset_index(drop=True)
    return next(m.scorer.batches(rows, "text", n, shuffle=False))


def test_the_generator_is_a_blip2_qformer_at_the_published_shape(split, backbone, tmp_path):
    m = build(split, backbone, tmp_path)
    gen = m.modules["generator"]
    assert isinstance(gen, QFormerGenerator) and isinstance(gen.qformer, Blip2QFormerModel)
    cfg = gen.qformer.config
    # 8 BERT layers, 8 heads, 2 x CF dim wide (the CF models are 256-d), cross-attention in every layer
    assert (cfg.num_hidden_layers, cfg.num_attention_heads, cfg.hidden_size, cfg.intermediate_size) == (8, 8, 512, 3072)
    assert all(layer.has_cross_attention for layer in gen.qformer.encoder.layer)
    # the memory is ONE [user; item] token read as it is: no input projection
    assert cfg.encoder_hidden_size == 2 * 256 and m.modules.cf_user.shape[1] == 256
    assert not any(isinstance(mod, torch.nn.Linear) and mod.in_features == 256 for mod in gen.modules())
    assert gen.queries.shape == (1, 4, 512)
    assert (gen.final.in_features, gen.final.out_features) == (512, backbone.hidden_size * 16)
    # the published defaults, and the dataset rule (Amazon-Book: 16/32 with every CF model)
    mf, lgcn, sas = (get_method(n).Config() for n in ("cora-mf", "cora-lightgcn", "cora-sasrec"))
    assert mf.rank("ml1m") == (16, 32) and lgcn.rank("ml1m") == sas.rank("ml1m") == (64, 128)
    assert mf.rank("amazon-book") == lgcn.rank("amazon-book") == sas.rank("amazon-book") == (16, 32)
    assert (mf.lr, mf.lora_dropout, mf.a_norm) == (1e-3, 0.05, "vector")
    assert get_method("cora-lightgcn").cf_dependencies(lgcn)[0].overrides == {"embedding_size": 256}


def test_unused_published_parameters_are_what_transformers_builds_for_text_input():
    """The published BertModel's word / position embeddings and text feed-forwards, counted from
    the config, equal what transformers builds when the Q-Former takes text."""
    from transformers.models.blip_2.modeling_blip_2 import Blip2TextEmbeddings

    c = get_method("cora-mf").Config()
    with torch.device("meta"):
        gen = QFormerGenerator(512, 4096 * 16, c)
        text = copy.deepcopy(gen.config)
        text.use_qformer_text_input = True
        with_text = sum(p.numel() for p in Blip2QFormerModel(text).parameters())
        embeddings = sum(p.numel() for p in Blip2TextEmbeddings(text).parameters())
    live = sum(p.numel() for p in gen.qformer.parameters())
    assert gen.unused_as_published() == with_text - live + embeddings


def test_one_A_per_sample_is_shared_by_every_adapted_module(split, backbone, tmp_path):
    m = build(split, backbone, tmp_path)
    targets = {k: mod for k, mod in m.model.named_modules() if k.split(".")[-1] in m.config.cora_targets}
    assert len(targets) == len(m.modules["B"]) == 4 * backbone.num_layers  # q, k, v, o of every layer
    torch.manual_seed(0)
    for b in m.modules["B"].values():  # non-zero, so each module's change shows
        b.data.normal_()
    seen = {}
    handles = [mod.register_forward_hook(lambda mod, inp, out, k=k: seen.__setitem__(k, (inp[0], out)))
               for k, mod in targets.items()]  # after CoRA's hook: sees the adapted output
    batch = first_batch(m, split)
    with torch.no_grad():
        m.forward_scores(batch)
        a = m.sample_A(m.modules.cf_user[batch.users], m.modules.cf_item[batch.items])
    for h in handles:
        h.remove()
    assert a.shape == (len(batch.labels), backbone.hidden_size, 16)
    assert not torch.allclose(a[0], a[1])  # per sample
    for k, mod in targets.items():
        x, out = seen[k]
        b = m.modules["B"][k.replace(".", "_")]
        # the module's own B times the ONE A of its sample, scaled by alpha / r
        want = torch.nn.functional.linear(x, mod.weight, mod.bias) + m.scaling * torch.einsum("bth,bhr->btr", x, a) @ b.T
        assert torch.allclose(out, want, atol=1e-5), k
    assert m.scaling == 32 / 16


def test_A_has_unit_norm_over_the_whole_vector_and_the_decoder_variant_per_column(split, backbone, tmp_path):
    m = build(split, backbone, tmp_path)
    users = torch.as_tensor(split.train["user"].unique()[:3])
    items = torch.as_tensor(split.train["item"].iloc[:3].to_numpy())
    with torch.no_grad():
        a = m.sample_A(m.modules.cf_user[users], m.modules.cf_item[items])
    assert torch.allclose(a.flatten(1).norm(dim=1), torch.ones(3), atol=1e-5)
    old = build(split, backbone, tmp_path, variant="decoder")
    assert isinstance(old.modules["generator"], DecoderGenerator)
    assert (old.config.qformer_dim, old.config.qformer_layers, old.config.lr, old.config.lora_dropout) == (256, 2, 1e-4, 0.0)
    with torch.no_grad():
        a = old.sample_A(old.modules.cf_user[users], old.modules.cf_item[items])
    # each of the r columns unit norm: the whole A sqrt(r) = 4 times the published one
    assert torch.allclose(a.norm(dim=1), torch.ones(3, 16), atol=1e-5)
    assert torch.allclose(a.flatten(1).norm(dim=1), torch.full((3,), 4.0), atol=1e-4)


@pytest.mark.parametrize("variant", ["default", "decoder"])
def test_zero_init_B_starts_exactly_at_the_frozen_backbone(split, backbone, tmp_path, variant):
    m = build(split, backbone, tmp_path, variant=variant)
    rows = split.test.iloc[:6].reset_index(drop=True)
    scores = m.scorer.score(rows, "text")
    hooked = m.before_forward
    m.before_forward = lambda batch: None  # A stays None: every hook returns the frozen output
    m._A = None
    frozen = m.scorer.score(rows, "text")
    assert np.allclose(scores, frozen, atol=1e-6)
    m.before_forward = hooked
    for b in m.modules["B"].values():
        b.data.fill_(0.1)
    assert not np.allclose(m.scorer.score(rows, "text"), frozen, atol=1e-4)  # the hooks are live


def test_cora_mf_at_the_7b_shape_counts_as_published_and_live(ml1m):
    """At Vicuna-7B's shape (meta device, no storage) CoRA-MF counts 125,132,800 as the paper
    does (its Table 6: 7.635 x LoRA-only's 16,390,400), 84,040,704 of them live."""
    from bench.llm.backbone import load_backbone

    cls = get_method("cora-mf")
    cfg = build_config(cls.Config, {"backbone": "random:llama-7b"})
    ctx = RunContext("ml1m", 0, "meta", Path("unused"), Path("unused") / "a", "fp", progress=False, random_cf=True)
    m = cls(cfg, ctx)
    m.prepare(ml1m, load_backbone("random:llama-7b", "meta"))
    counts = m.param_counts()
    published, live = counts["trainable_as_published"], counts["trainable"]
    assert abs(published - 125_132_800) <= 0.005 * 125_132_800
    assert abs(published / 16_390_400 - 7.635) <= 0.005 * 7.635
    assert live == m.trainable_count() < published
    # the unused: BERT word + position embeddings (30,522 + 512) x 512, text feed-forwards 8 x 3,150,336
    assert published - live == (30_522 + 512) * 512 + 8 * 3_150_336
