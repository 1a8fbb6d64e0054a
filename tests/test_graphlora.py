"""GraphLoRA: the row's induced subgraph, token-node alignment for any batch, the signal's size,
reduction to LoRA, the target edge, the optimiser, the injection layer, variants."""
import copy
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.config import build_config
from bench.errors import BenchError
from bench.method import RunContext
from bench.registry import get_method
from graphlora.config import resolve_inject_layer
from graphlora.encoders import GraphEncoder, NGCFConv, TrainGraph
from graphlora.injection import lora_modules_of_layer

TINY = {"backbone": "tiny-random", "eval_batch_size": 16, "lora_dropout": 0.0}


def prepared(split, backbone, tmp_path, variant="default", trained_b=True, **over):
    cls = get_method("graphlora")
    cfg = build_config(cls.Config, cls.variant_overrides(variant), TINY, over)
    ctx = RunContext("ml100k", 0, "cpu", Path(tmp_path), Path(tmp_path) / "a", split.fingerprint, progress=False,
                     random_cf=True)  # embedding values play no part here
    m = cls(cfg, ctx)
    m.prepare(split, copy.deepcopy(backbone))
    m.prompt = "id"
    if trained_b:
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


def a_outputs(m, batch):
    """What each hooked lora_A hands to B, with the injection and without it."""
    a_mod = {name: mod.lora_A["default"]
             for name, mod in lora_modules_of_layer(m.model, m.layer, ("q_proj", "v_proj")).items()}
    seen = {}
    hooks = [a.register_forward_hook(lambda mod, i, o, n=n: seen.__setitem__(n, o.detach().clone()))
             for n, a in a_mod.items()]
    keep = m.before_forward
    try:
        with torch.no_grad():
            m.forward_scores(batch)
            injected = dict(seen)
            m.injector.clear()
            m.before_forward = lambda b: None  # same forward, injection off
            m.forward_scores(batch)
            plain = dict(seen)
    finally:
        m.before_forward = keep
        for h in hooks:
            h.remove()
    return injected, plain


# --- a hand-built graph: users 0..3, items 0..4 (global ids 4..8) ------------------------------
#   u0 - i0, u0 - i1, u1 - i1, u1 - i2, u2 - i2, u2 - i3, u3 - i4
HAND = np.array([(0, 0), (0, 1), (1, 1), (1, 2), (2, 2), (2, 3), (3, 4)])
NU, NI = 4, 5


def item(i):
    return NU + i


def global_edges(gb):
    ids, ei = gb.ids, gb.edge_index
    return {(int(ids[a]), int(ids[b])) for a, b in ei.t().tolist()}


def both_ways(pairs):
    return {p for a, b in pairs for p in ((a, b), (b, a))}


def test_induced_subgraph_holds_exactly_u_i_their_neighbours_and_every_edge_between_them():
    g = TrainGraph(HAND, NU, NI)
    # row (u0, i2): not an edge; N(u0) = {i0, i1}, N(i2) = {u1, u2}
    gb = g.induced(torch.tensor([0]), torch.tensor([item(2)]))
    assert sorted(gb.ids.tolist()) == [0, 1, 2, item(0), item(1), item(2)]
    # u1 - i1 joins N(i2) and N(u0): the u0 - i1 - u1 - i2 path; u2 - i3 leaves the node set
    assert global_edges(gb) == both_ways({(0, item(0)), (0, item(1)), (1, item(1)), (1, item(2)), (2, item(2))})
    assert gb.ids[gb.anchors[0]].tolist() == [0, item(2)]
    # weights: 1/sqrt(deg deg) of the whole train graph
    deg = {0: 2, 1: 2, 2: 2, item(0): 1, item(1): 2, item(2): 2}
    for (a, b), w in zip(gb.edge_index.t().tolist(), gb.edge_weight.tolist()):
        assert w == pytest.approx((deg[int(gb.ids[a])] * deg[int(gb.ids[b])]) ** -0.5)
    # a batch is a disjoint union of its rows' own subgraphs: a row's part never changes with company
    two = g.induced(torch.tensor([3, 0]), torch.tensor([item(4), item(2)]))
    assert len(two.ids) == 2 + 6 and global_edges(two) == both_ways({(3, item(4))}) | global_edges(gb)
    assert two.ids[two.anchors].tolist() == [[3, item(4)], [0, item(2)]]
    # the star of u0 alone: no path to i2
    star = g.stars(torch.tensor([0]))
    assert sorted(star.ids.tolist()) == [0, item(0), item(1)]
    assert global_edges(star) == both_ways({(0, item(0)), (0, item(1))})


def test_dropping_the_target_edge_removes_it_and_its_degree_count():
    g = TrainGraph(HAND, NU, NI)
    users, items = torch.tensor([1]), torch.tensor([item(2)])  # (u1, i2) is a train edge
    keep, drop = g.induced(users, items), g.induced(users, items, drop_target=True)
    assert sorted(keep.ids.tolist()) == sorted(drop.ids.tolist()) == [1, 2, item(1), item(2)]
    assert global_edges(keep) == both_ways({(1, item(1)), (1, item(2)), (2, item(2))})
    assert global_edges(drop) == both_ways({(1, item(1)), (2, item(2))})
    w = {(int(drop.ids[a]), int(drop.ids[b])): x for (a, b), x in zip(drop.edge_index.t().tolist(), drop.edge_weight.tolist())}
    assert w[(1, item(1))] == pytest.approx((1 * 2) ** -0.5)  # u1 now has degree 1
    assert w[(2, item(2))] == pytest.approx((2 * 1) ** -0.5)  # and i2 too
    # a pair that is no edge: nothing to drop
    assert global_edges(g.induced(torch.tensor([0]), torch.tensor([item(2)]), drop_target=True)) == \
        global_edges(g.induced(torch.tensor([0]), torch.tensor([item(2)])))
    # the star form cuts the partner from the centre's star
    star = g.stars(torch.tensor([1]), cut=torch.tensor([item(2)]))
    assert global_edges(star) == both_ways({(1, item(1))})
    assert star.edge_weight[0].item() == pytest.approx((1 * 2) ** -0.5)


@pytest.mark.parametrize("layers,reaches", [(3, True), (2, False)])
def test_a_u_j_v_i_path_reaches_u_in_three_ngcf_layers_on_the_induced_subgraph_only(layers, reaches):
    torch.manual_seed(0)
    g = TrainGraph(HAND, NU, NI)
    enc = GraphEncoder("ngcf", 6, 6, 4, layers, 0.0)
    x = torch.randn(NU + NI, 6)
    x2 = x.clone()
    x2[item(2)] += 1.0  # only the target item's embedding moves

    def u_out(feats, gb, at):
        return enc(feats[gb.ids], gb.edge_index, gb.edge_weight)[at]

    gb = g.induced(torch.tensor([0]), torch.tensor([item(2)]))
    moved = not torch.allclose(u_out(x, gb, gb.anchors[0, 0]), u_out(x2, gb, gb.anchors[0, 0]))
    assert moved == reaches  # u0 and i2 are 3 hops apart: u0 - i1 - u1 - i2
    star = g.stars(torch.tensor([0]))
    assert torch.equal(u_out(x, star, star.anchors[0]), u_out(x2, star, star.anchors[0]))


@pytest.mark.parametrize("form", ["paper", "published"])
def test_ngcf_layer_computes_its_formula(form):
    torch.manual_seed(0)
    conv = NGCFConv(5, 3, 0.0, form)
    x = torch.randn(4, 5)
    ei = torch.tensor([[0, 1, 1, 2, 3, 0], [1, 0, 2, 1, 0, 3]])
    w = torch.rand(6)
    out = conv(x, ei, w)
    for i in range(4):
        acc = conv.w1(x[i])
        if form == "published":  # W1 (A e) + W2 (A (e * e)), biases once
            acc = acc + conv.w1(sum(w[k] * x[ei[0, k]] for k in range(6) if ei[1, k] == i))
            acc = acc + conv.w2(sum(w[k] * x[ei[0, k]] ** 2 for k in range(6) if ei[1, k] == i))
        else:  # sum_j n_ij (W1 e_j + W2 (e_j * e_i))
            acc = acc + sum(w[k] * (conv.w1(x[ei[0, k]]) + conv.w2(x[ei[0, k]] * x[i])) for k in range(6) if ei[1, k] == i)
        assert torch.allclose(out[i], torch.nn.functional.leaky_relu(acc, 0.2), atol=1e-5)


@pytest.mark.parametrize("variant", ["lora-trainable-mf", "legacy-lora-trainable-mf"])
def test_each_slot_gets_its_own_nodes_signal_for_batch_gt_1(split, backbone, tmp_path, variant):
    m = prepared(split, backbone, tmp_path, variant, beta_f=0.5)  # identity GNN: g from MF(node) alone
    rows = rows_with_distinct_nodes(split)
    batch = next(m.scorer.batches(rows, "id", len(rows), shuffle=False))
    assert len(batch.rows) == len(rows) > 1
    injected, plain = a_outputs(m, batch)
    enc, proj = m.modules["encoder"], m.injector.proj
    for name in injected:
        delta = injected[name] - plain[name]
        mask = torch.zeros(delta.shape[:2], dtype=torch.bool)
        mask[batch.slot_rows, batch.slot_cols] = True
        assert delta[~mask].abs().max() == 0  # plain LoRA everywhere else
        for s in range(len(batch.slot_rows)):
            r, c = int(batch.slot_rows[s]), int(batch.slot_cols[s])
            row = rows.iloc[int(batch.rows[r])]
            node_emb = (m.modules["user_emb"].weight[row["user"]] if batch.slot_is_user[s]
                        else m.modules["item_emb"].weight[row["item"]])
            with torch.no_grad():
                if variant == "lora-trainable-mf":  # published form: Linear d -> r, normalised, x 0.1, no P
                    expect = 0.5 * 0.1 * torch.nn.functional.normalize(enc.readout(node_emb), dim=-1)
                else:  # before: normalised MF embedding, then a P per module
                    expect = 0.5 * proj[name](torch.nn.functional.normalize(node_emb, dim=-1))
            assert torch.allclose(delta[r, c], expect, atol=1e-5), (name, s)


def test_g_is_l2_normalised_then_scaled_by_a_tenth_and_added_without_p(split, backbone, tmp_path):
    m = prepared(split, backbone, tmp_path, "default")
    rows = rows_with_distinct_nodes(split)
    batch = next(m.scorer.batches(rows, "id", len(rows), shuffle=False))
    assert len(m.injector.proj) == 0 and m.modules["encoder"].out_dim == m.config.lora_r
    with torch.no_grad():
        g = m.graph_signal(batch)
    assert torch.allclose(g.norm(dim=-1), torch.full((len(g),), 0.1))
    injected, plain = a_outputs(m, batch)
    for name in injected:  # z = alpha A x + beta g at the slots: the change is beta * g exactly
        delta = (injected[name] - plain[name])[batch.slot_rows, batch.slot_cols]
        assert torch.allclose(delta, m.config.beta_f * g, atol=1e-6)
    old = prepared(split, backbone, tmp_path / "p", "with-P")
    with torch.no_grad():
        assert torch.allclose(old.graph_signal(batch).norm(dim=-1), torch.ones(len(g)))
    assert old.injector.proj["q_proj"].weight.shape == (m.config.lora_r, m.config.lora_r)


@pytest.mark.parametrize("variant", ["default", "star"])
def test_scores_do_not_depend_on_batch_company_or_order(split, backbone, tmp_path, variant):
    m = prepared(split, backbone, tmp_path, variant, beta_f=1.0, g_scale=1.0)  # NGCF, a loud signal
    rows = rows_with_distinct_nodes(split, 5)
    together = m.scorer.score(rows, "id")
    reversed_ = m.scorer.score(rows.iloc[::-1].reset_index(drop=True), "id")[::-1]
    alone = np.array([m.scorer.score(rows.iloc[[i]].reset_index(drop=True), "id")[0] for i in range(len(rows))])
    assert np.allclose(together, reversed_, atol=1e-5)
    assert np.allclose(together, alone, atol=1e-4)
    # and the graph does matter: a different beta changes the scores
    m.injector.beta_f = 0.0
    assert not np.allclose(m.scorer.score(rows, "id"), together, atol=1e-4)


def test_the_user_slot_sees_the_target_item_on_the_induced_subgraph_not_on_the_star(split, backbone, tmp_path):
    g = TrainGraph(split.train_graph(), split.n_users, split.n_items)
    t = split.train  # this subset's test users are all cold: no train neighbours

    def three_hops(u, i):  # not an edge, yet joined by a u - j - v - i path
        nu = set(g.all_neighbors(u).tolist())
        return not g.has_edge(u, i) and any(nu & set(g.all_neighbors(v).tolist()) for v in g.all_neighbors(i).tolist())

    row = next(k for k, (u, i) in enumerate(zip(t["user"], t["item"])) if three_hops(u, split.n_users + i))
    rows = t.iloc[[row]].reset_index(drop=True)
    for variant, sees in (("default", True), ("star", False)):
        m = prepared(split, backbone, tmp_path / variant, variant)
        batch = next(m.scorer.batches(rows, "id", 1, shuffle=False))
        user_slot = int(torch.nonzero(batch.slot_is_user)[0])
        with torch.no_grad():
            before = m.graph_signal(batch)[user_slot].clone()
            m.modules["item_emb"].weight[int(rows["item"][0])] += 1.0
            after = m.graph_signal(batch)[user_slot]
        assert (not torch.allclose(before, after)) == sees, variant


def test_target_edge_is_dropped_in_training_only_and_gnn_dropout_is_off_by_default(split, backbone, tmp_path):
    edges = {(int(u), int(i)) for u, i in split.train_graph()}
    pos = split.train[[(u, i) in edges for u, i in zip(split.train["user"], split.train["item"])]]
    rows = pos.iloc[:4].reset_index(drop=True)  # rows whose own pair is a train edge

    def signals(m):
        batch = next(m.scorer.batches(rows, "id", len(rows), shuffle=False))
        out = []
        with torch.no_grad():
            for training in (True, True, False):
                m.modules.train(training)
                out.append(m.graph_signal(batch))
        m.modules.eval()
        return out

    default = prepared(split, backbone, tmp_path / "d", "default")
    assert default.config.gnn_dropout == 0.0 and not default.config.drop_target_edge
    train1, train2, scoring = signals(default)
    assert torch.equal(train1, train2) and torch.allclose(train1, scoring)  # no dropout, nothing dropped
    cut = prepared(split, backbone, tmp_path / "c", "no-target-edge")
    train1, train2, scoring_cut = signals(cut)
    assert torch.equal(train1, train2)
    assert not torch.allclose(train1, scoring_cut)  # training: the row's own edge is gone
    assert torch.allclose(scoring_cut, scoring)  # scoring: the whole train graph, as the default
    noisy = prepared(split, backbone, tmp_path / "n", "gnn-dropout")
    train1, train2, _ = signals(noisy)
    assert noisy.config.gnn_dropout == 0.1 and not torch.allclose(train1, train2)


def test_zero_init_b_reproduces_the_frozen_model_at_step_zero(split, backbone, tmp_path):
    m = prepared(split, backbone, tmp_path, "default", trained_b=False)
    assert all(float(p.abs().max()) == 0 for n, p in m.model.named_parameters() if "lora_B" in n)
    rows = rows_with_distinct_nodes(split, 4)
    with_injection = m.scorer.score(rows, "id")
    with m.model.disable_adapter():  # the frozen backbone, same soft tokens, no LoRA, no injection
        frozen = m.scorer.score(rows, "id")
    np.testing.assert_allclose(with_injection, frozen, atol=1e-6)
    # and not because nothing was injected: A's output at the slots did change, B = 0 absorbed it
    batch = next(m.scorer.batches(rows, "id", len(rows), shuffle=False))
    injected, plain = a_outputs(m, batch)
    assert all(float((injected[n] - plain[n]).abs().max()) > 0 for n in injected)


def test_identity_gnn_reduces_to_lora_with_trainable_mf(split, backbone, tmp_path):
    m = prepared(split, backbone, tmp_path, "lora-trainable-mf")
    rows = rows_with_distinct_nodes(split, 4)
    base = m.scorer.score(rows, "id")
    # the graph plays no part: scores are the same with every edge removed
    m.graph._ptr = np.zeros_like(m.graph._ptr)
    assert np.allclose(m.scorer.score(rows, "id"), base, atol=1e-6)
    # with beta = 0 the injection path vanishes: exactly LoRA + soft tokens from trainable MF
    m.injector.beta_f = 0.0
    with_zero = m.scorer.score(rows, "id")
    m.injector.remove()
    m.injector = None
    assert np.allclose(m.scorer.score(rows, "id"), with_zero, atol=1e-6)
    assert m.modules["user_emb"].weight.requires_grad


def test_prefix_sharing_is_off_where_the_user_slot_depends_on_the_row(split, backbone, tmp_path):
    default = prepared(split, backbone, tmp_path / "d", "default", inject_layer=0)  # every later layer feels it
    assert not default.prefix_sharing
    for variant in ("star", "lora-trainable-mf", "lora-frozen-mf", "legacy"):
        assert prepared(split, backbone, tmp_path / variant, variant).prefix_sharing, variant
    # why: forced on, a cached prefix would carry the first row's user signal to every row
    from bench.llm.prefix import plan

    rows = split.train[split.train["user"] == split.train["user"].value_counts().index[0]].head(16).reset_index(drop=True)
    groups, _ = plan(default.scorer.encode(rows, "id"), default.user_keys(rows), np.arange(len(rows)))
    assert groups  # rows of a warm user that share a prefix
    default.injector.beta_f = 10.0  # a loud signal: a tiny random LLaMA attends little to one slot
    default.config = dataclasses.replace(default.config, g_scale=1.0)
    whole = default.scorer.score(rows, "id")
    default.prefix_sharing = True
    shared = default.scorer.score(rows, "id")
    assert np.abs(shared - whole).max() > 1e-4  # far beyond test_prefix's exactness bound (1e-5)


def test_injection_sits_in_one_layer_only(split, backbone, tmp_path):
    from peft.tuners.lora import LoraLayer

    m = prepared(split, backbone, tmp_path, "layer-0")
    hooked = [n for n, mod in m.model.named_modules()
              if isinstance(mod, torch.nn.Linear) and (mod._forward_hooks or mod._forward_pre_hooks)]
    assert m.layer == 0 and len(hooked) == 2 and all(".layers.0." in n for n in hooked)
    assert sum(isinstance(mod, LoraLayer) for mod in m.model.modules()) == 2 * backbone.num_layers


def test_injection_layer_auto_is_the_papers_depth_for_the_dataset(split, backbone, tmp_path):
    assert resolve_inject_layer("auto", "ml1m", 32) == 31  # the paper: layer 31 of 32
    assert resolve_inject_layer("auto", "amazon-book", 32) == 15  # the paper: layer 15
    assert resolve_inject_layer("auto", "amazon-book", 30) == 14  # same fraction on SmolLM2's 30
    assert resolve_inject_layer("auto", "ml100k", 30) == 29
    assert resolve_inject_layer("-1", "amazon-book", 30) == 29 and resolve_inject_layer("7", "ml1m", 30) == 7
    with pytest.raises(ValueError, match="outside"):
        resolve_inject_layer("30", "ml1m", 30)
    m = prepared(split, backbone, tmp_path, "default")
    assert m.config.inject_layer == "auto" and m.layer == backbone.num_layers - 1
    with pytest.raises(BenchError, match="neither auto nor a layer index"):
        build_config(get_method("graphlora").Config, {"inject_layer": "top"})


def test_optimiser_published_one_adamw_or_the_papers_text(split, backbone, tmp_path):
    m = prepared(split, backbone, tmp_path / "d", "default")
    (stage,) = m.stages()
    assert not isinstance(stage.params[0], dict)  # one AdamW, one group: every trainable part
    trained = {id(p) for p in stage.params}
    for name in ("user_emb", "item_emb", "projector", "encoder"):
        assert all(id(p) in trained for p in m.modules[name].parameters()), name
    assert all(id(p) in trained for p in m.lora_parameters())
    assert stage.spec.lr == 1e-4 and stage.spec.weight_decay == 1e-3
    text = prepared(split, backbone, tmp_path / "t", "paper-text-optim")
    (stage,) = text.stages()
    llm, collab = stage.params
    assert stage.spec.lr == 1e-3 and "lr" not in llm  # AdamW for LoRA + projector
    assert collab["lr"] == 1e-3 and collab["weight_decay"] == 0.0  # Adam for MF, GNN
    frozen = prepared(split, backbone, tmp_path / "f", "lora-frozen-mf")
    assert id(frozen.modules["user_emb"].weight) not in {id(p) for p in frozen.stages()[0].params}  # frozen MF stays out


def test_variants_and_parameter_shapes(split, backbone, tmp_path):
    cls = get_method("graphlora")
    assert cls.variant_overrides("layer-7") == {"inject_layer": 7}
    for bad in ("layer-x", "legacy-nope", "legacy-star"):
        with pytest.raises(BenchError, match="unknown variant of graphlora"):
            cls.variant_overrides(bad)
    cfg = lambda v: build_config(cls.Config, cls.variant_overrides(v))  # noqa: E731
    legacy = cfg("legacy")
    assert (legacy.subgraph, legacy.g_scale, legacy.projection, legacy.gnn_dropout, legacy.optimizer, legacy.lr,
            legacy.inject_layer) == ("star", 1.0, True, 0.1, "adamw+adam", 1e-3, "-1")
    assert cfg("gcn").gnn_layers == 2 and cfg("legacy-gcn").gnn_layers == 3 and cfg("legacy-gcn").encoder == "gcn"
    assert cfg("legacy-layer-4").inject_layer == "4" and cfg("legacy-layer-4").subgraph == "star"
    assert cfg("ngcf-published").ngcf_message == "published"
    with pytest.raises(BenchError, match="without P"):
        build_config(cls.Config, {"injection": "pre"})
    frozen = prepared(split, backbone, tmp_path / "f", "lora-frozen-mf")
    assert frozen.injector is None and not frozen.modules["user_emb"].weight.requires_grad
    mid = prepared(split, backbone, tmp_path / "m", "default")
    pre = prepared(split, backbone, tmp_path / "p", "pre")
    old = prepared(split, backbone, tmp_path / "o", "legacy")
    gcn = prepared(split, backbone, tmp_path / "g", "gcn")
    r, hidden = mid.config.lora_r, backbone.hidden_size
    assert len(mid.injector.proj) == 0 and mid.modules["encoder"].convs[-1].w1.out_features == r  # NGCF ends at r
    assert old.injector.proj["q_proj"].weight.shape == (r, r)  # before: P after the GNN
    assert pre.injector.proj["q_proj"].weight.shape == (hidden, r)  # pre-A: to the hidden size
    assert len(gcn.modules["encoder"].convs) == 2
    light = prepared(split, backbone, tmp_path / "l", "lightgcn")
    assert light.modules["encoder"].readout.out_features == r and len(light.injector.proj) == 0
    wide = prepared(split, backbone, tmp_path / "w", "pre-hidden")
    assert len(wide.injector.proj) == 0  # the signal already has x's size: no P
    convs = wide.modules["encoder"].convs  # every GNN layer at the hidden size: d -> H -> H -> H
    assert [c.w1.out_features for c in convs] == [hidden] * 3 and wide.modules["encoder"].out_dim == hidden
    rows = rows_with_distinct_nodes(split)
    batch = next(wide.scorer.batches(rows, "id", len(rows), shuffle=False))
    with torch.no_grad():  # the injection changes the score, and only through the slots' signal
        injected = wide.forward_scores(batch)
        wide.injector.beta_f = 0.0
        plain = wide.forward_scores(batch)
    assert not torch.allclose(injected, plain)


def test_stars_with_and_without_a_neighbour_cap(split):
    edges = split.train_graph()
    full = TrainGraph(edges, split.n_users, split.n_items)
    capped = TrainGraph(edges, split.n_users, split.n_items, max_neighbors=3, seed=1)
    user = int(edges[0, 0])
    node = torch.tensor([user, user])
    gb = full.stars(node)
    n_items = int((edges[:, 0] == user).sum())
    assert len(gb.ids) == 2 * (1 + n_items) and gb.anchors.tolist() == [0, 1 + n_items]  # one star per slot
    assert set(gb.ids[1:1 + n_items].tolist()) == {split.n_users + int(i) for i in edges[edges[:, 0] == user, 1]}
    assert float(gb.edge_weight[0]) == pytest.approx((n_items * full.deg[int(gb.ids[1])]) ** -0.5)
    ids_c = capped.stars(node).ids
    assert len(ids_c) == 2 * (1 + min(3, n_items))
    assert ids_c[1:1 + min(3, n_items)].tolist() == capped.stars(node[:1]).ids[1:].tolist()  # fixed sample
    # the cap bounds the induced subgraph's node set too: u, i and at most 3 neighbours each
    it = split.n_users + int(edges[0, 1])
    assert len(capped.induced(torch.tensor([user]), torch.tensor([it])).ids) <= 2 + 2 * 3
