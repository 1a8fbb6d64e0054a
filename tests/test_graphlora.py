"""GraphLoRA: token-node alignment for any batch, reduction to LoRA, variants."""
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.config import build_config
from bench.errors import BenchError
from bench.method import RunContext
from bench.registry import get_method
from graphlora.injection import lora_modules_of_layer

TINY = {"backbone": "tiny-random", "eval_batch_size": 16, "lora_dropout": 0.0}


def prepared(split, backbone, tmp_path, variant="default", **over):
    import copy

    cls = get_method("graphlora")
    cfg = build_config(cls.Config, cls.variant_overrides(variant), TINY, over)
    m = cls(cfg, RunContext("ml100k", 0, "cpu", Path(tmp_path), Path(tmp_path) / "a", split.fingerprint, progress=False))
    m.prepare(split, copy.deepcopy(backbone))
    m.prompt = "id"
    with torch.no_grad():  # B starts at zero in LoRA: give it weights so the injection shows
        for n, p in m.model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    m.model.eval()
    m.modules.eval()
    return m


def rows_with_distinct_nodes(split, n=6):
    t = split.test.drop_duplicates("user").drop_duplicates("item")
    return t.iloc[:n].reset_index(drop=True)


def test_each_slot_gets_its_own_nodes_signal_for_batch_gt_1(split, backbone, tmp_path):
    m = prepared(split, backbone, tmp_path, "lora-trainable-mf", beta_f=0.5)  # identity GNN: g = MF(node)
    rows = rows_with_distinct_nodes(split)
    batch = next(m._batches(rows, "id", len(rows), shuffle=False))
    assert len(batch.rows) == len(rows) > 1
    layer_a = m.injector.proj  # P per target module
    a_mod = {name: mod.lora_A["default"]
             for name, mod in lora_modules_of_layer(m.model, m.layer, ("q_proj", "v_proj")).items()}
    seen = {}
    hooks = [a.register_forward_hook(lambda mod, i, o, n=n: seen.__setitem__(n, o.detach().clone())) for n, a in a_mod.items()]
    with torch.no_grad():
        m.forward_scores(batch)
        injected = dict(seen)
        m.injector.clear()
        m.before_forward = lambda b: None  # same forward, injection off
        m.forward_scores(batch)
        plain = dict(seen)
    for h in hooks:
        h.remove()
    for name in a_mod:
        delta = injected[name] - plain[name]
        mask = torch.zeros(delta.shape[:2], dtype=torch.bool)
        mask[batch.slot_rows, batch.slot_cols] = True
        assert delta[~mask].abs().max() == 0  # plain LoRA everywhere else
        for s in range(len(batch.slot_rows)):
            r, c = int(batch.slot_rows[s]), int(batch.slot_cols[s])
            row = rows.iloc[int(batch.rows[r])]
            node_emb = (m.modules["user_emb"].weight[row["user"]] if batch.slot_is_user[s]
                        else m.modules["item_emb"].weight[row["item"]])
            expect = 0.5 * layer_a[name](torch.nn.functional.normalize(node_emb, dim=-1))
            assert torch.allclose(delta[r, c], expect, atol=1e-5), (name, s)


def test_scores_do_not_depend_on_batch_company_or_order(split, backbone, tmp_path):
    m = prepared(split, backbone, tmp_path, "default", beta_f=1.0)  # NGCF
    rows = rows_with_distinct_nodes(split, 5)
    together = m._score_rows(rows, "id")
    reversed_ = m._score_rows(rows.iloc[::-1].reset_index(drop=True), "id")[::-1]
    alone = np.array([m._score_rows(rows.iloc[[i]].reset_index(drop=True), "id")[0] for i in range(len(rows))])
    assert np.allclose(together, reversed_, atol=1e-5)
    assert np.allclose(together, alone, atol=1e-4)
    # and the graph does matter: a different beta changes the scores
    m.injector.beta_f = 0.0
    assert not np.allclose(m._score_rows(rows, "id"), together, atol=1e-4)


def test_identity_gnn_reduces_to_lora_with_trainable_mf(split, backbone, tmp_path):
    m = prepared(split, backbone, tmp_path, "lora-trainable-mf")
    rows = rows_with_distinct_nodes(split, 4)
    base = m._score_rows(rows, "id")
    # the graph plays no part: scores are the same with every edge removed
    m.graph._ptr = torch.zeros_like(m.graph._ptr)
    assert np.allclose(m._score_rows(rows, "id"), base, atol=1e-6)
    # with beta = 0 the injection path vanishes: exactly LoRA + soft tokens from trainable MF
    m.injector.beta_f = 0.0
    with_zero = m._score_rows(rows, "id")
    m.injector.remove()
    m.injector = None
    assert np.allclose(m._score_rows(rows, "id"), with_zero, atol=1e-6)
    assert m.modules["user_emb"].weight.requires_grad


def test_injection_sits_in_one_layer_only(split, backbone, tmp_path):
    from peft.tuners.lora import LoraLayer

    m = prepared(split, backbone, tmp_path, "layer-0")
    hooked = [n for n, mod in m.model.named_modules()
              if isinstance(mod, torch.nn.Linear) and (mod._forward_hooks or mod._forward_pre_hooks)]
    assert m.layer == 0 and len(hooked) == 2 and all(".layers.0." in n for n in hooked)
    assert sum(isinstance(mod, LoraLayer) for mod in m.model.modules()) == 2 * backbone.num_layers


def test_variants_and_parameter_shapes(split, backbone, tmp_path):
    cls = get_method("graphlora")
    assert cls.variant_overrides("layer-7") == {"inject_layer": 7}
    with pytest.raises(BenchError, match="unknown variant of graphlora"):
        cls.variant_overrides("layer-x")
    frozen = prepared(split, backbone, tmp_path / "f", "lora-frozen-mf")
    assert frozen.injector is None and not frozen.modules["user_emb"].weight.requires_grad
    mid = prepared(split, backbone, tmp_path / "m", "default")
    pre = prepared(split, backbone, tmp_path / "p", "pre")
    r, hidden = mid.config.lora_r, backbone.hidden_size
    assert mid.injector.proj["q_proj"].weight.shape == (r, r)  # NGCF ends at width r
    assert pre.injector.proj["q_proj"].weight.shape == (hidden, r)  # pre-A: to the hidden size
    wide = prepared(split, backbone, tmp_path / "w", "pre-hidden")
    assert len(wide.injector.proj) == 0  # the signal already has x's size: no P
    convs = wide.modules["encoder"].convs  # every GNN layer at the hidden size: d -> H -> H -> H
    assert [c.w1.out_features for c in convs] == [hidden] * 3 and wide.modules["encoder"].out_dim == hidden
    rows = rows_with_distinct_nodes(split)
    batch = next(wide._batches(rows, "id", len(rows), shuffle=False))
    with torch.no_grad():  # the injection changes the score, and only through the slots' signal
        injected = wide.forward_scores(batch)
        wide.injector.beta_f = 0.0
        plain = wide.forward_scores(batch)
    assert not torch.allclose(injected, plain)
    mid_stage = mid.stages()[0]
    assert mid_stage.params[1]["weight_decay"] == 0.0  # Adam for the collaborative side


def test_ego_graphs_with_and_without_a_neighbour_cap(split):
    from graphlora.encoders import Subgraphs

    edges = split.train_graph()
    full = Subgraphs(edges, split.n_users, split.n_items)
    capped = Subgraphs(edges, split.n_users, split.n_items, max_neighbors=3, seed=1)
    user = int(edges[0, 0])
    node = torch.tensor([user, user])
    ids, ei, w, centers = full.ego_graphs(node)
    n_items = int((edges[:, 0] == user).sum())
    assert len(ids) == 2 * (1 + n_items) and centers.tolist() == [0, 1 + n_items]  # one ego graph per slot
    assert set(ids[1:1 + n_items].tolist()) == {split.n_users + int(i) for i in edges[edges[:, 0] == user, 1]}
    deg_u = n_items
    assert torch.allclose(w[0], torch.tensor(1.0 / (deg_u * float(full.deg[ids[1]])) ** 0.5))
    ids_c, _, _, _ = capped.ego_graphs(node)
    assert len(ids_c) == 2 * (1 + min(3, n_items))
    assert ids_c[1:1 + min(3, n_items)].tolist() == capped.ego_graphs(node[:1])[0][1:].tolist()  # fixed sample
