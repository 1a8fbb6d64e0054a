"""The registered GraphLoRA method (and its ablations as named variants)."""
from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

from bench.data.schema import Split
from bench.errors import BenchError, unknown
from bench.llm.batching import Batch
from bench.llm.recommender import LLMRecommender, Stage
from bench.method import CFDependency
from graphlora.config import GraphLoRAConfig, resolve_inject_layer
from graphlora.encoders import GraphEncoder, TrainGraph
from graphlora.injection import SlotInjector, lora_modules_of_layer

_LAYER_VARIANT = re.compile(r"layer-(\d+)")
_LEGACY = "legacy-"

# Today's variants before the published form became the default (issue 15), verbatim: each stays
# reachable as ``legacy-<name>`` (``legacy`` = ``legacy-default``), so older records can be
# compared with a run of the very same configuration.
LEGACY_BASE: dict[str, Any] = {
    "subgraph": "star",  # each slot's own 1-hop star
    "g_scale": 1.0,  # g = normalize(GNN), no 0.1
    "projection": True,  # a P per target module
    "gnn_dropout": 0.1,
    "optimizer": "adamw+adam", "lr": 1e-3, "gnn_lr": 1e-3,
    "inject_layer": -1,  # the last layer on every dataset
    "gnn_layers": 3,  # also for GCN
    "ngcf_message": "paper", "drop_target_edge": False,
}
LEGACY_VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "lora-frozen-mf": {"encoder": "none", "mf_trainable": False},
    "lora-trainable-mf": {"encoder": "identity"},
    "ngcf": {"encoder": "ngcf"},
    "lightgcn": {"encoder": "lightgcn"},
    "gcn": {"encoder": "gcn"},
    "pre": {"injection": "pre"},
    "pre-hidden": {"injection": "pre", "gnn_space": "hidden"},
}


class GraphLoRA(LLMRecommender):
    Config = GraphLoRAConfig
    description = "GraphLoRA: GNN signal injected in the LoRA bottleneck of one layer"
    budget_knobs = ("lora_r", "gnn_hidden")
    # the injection touches slot positions only, so a user's prompt prefix may be cached when the
    # user slot's signal is the same for every row of that user (see ``build``)
    shares_prefix = True
    variants = {
        "default": {},  # the published model (PROTOCOLS.md), with its known defects fixed
        # Table 5(A): training strategy
        "lora-frozen-mf": {"encoder": "none", "mf_trainable": False},
        "lora-trainable-mf": {"encoder": "identity"},  # one Linear d -> r where the GNN was
        # Table 5(B): graph encoder (the published GCN ablation has 2 layers)
        "ngcf": {"encoder": "ngcf"},
        "lightgcn": {"encoder": "lightgcn"},
        "gcn": {"encoder": "gcn", "gnn_layers": 2},
        # Table 6: injection position
        "pre": {"injection": "pre", "projection": True},  # rank-r GNN, P to the hidden size
        "pre-hidden": {"injection": "pre", "gnn_space": "hidden"},  # GNN in the hidden size: the paper's count
        # departures from the published model, one at a time
        "star": {"subgraph": "star"},  # each slot's own 1-hop star instead of the row's induced subgraph
        "no-target-edge": {"drop_target_edge": True},  # the row's (u, i) edge cut from its graph in training
        "with-P": {"projection": True, "g_scale": 1.0},  # the signal before issue 15: P per module, no 0.1
        "gnn-dropout": {"gnn_dropout": 0.1},
        "paper-text-optim": {"optimizer": "adamw+adam", "lr": 1e-3, "gnn_lr": 1e-3},  # AdamW LLM + Adam GNN
        "ngcf-published": {"ngcf_message": "published"},  # A_hat (e * e) instead of e_j * e_i
        "legacy": {**LEGACY_BASE, **LEGACY_VARIANTS["default"]},
    }

    @classmethod
    def variant_overrides(cls, name: str) -> dict[str, Any]:
        """Named variants, ``layer-<k>`` for the injection-layer sweep (Fig. 4), and
        ``legacy-<v>`` for the pre-issue-15 form of variant ``v`` (``legacy-layer-<k>`` too)."""
        if name in cls.variants:
            return cls.variants[name]
        m = _LAYER_VARIANT.fullmatch(name)
        if m:
            return {"inject_layer": int(m.group(1))}
        if name.startswith(_LEGACY):
            rest = name[len(_LEGACY):]
            if rest in LEGACY_VARIANTS:
                return {**LEGACY_BASE, **LEGACY_VARIANTS[rest]}
            m = _LAYER_VARIANT.fullmatch(rest)
            if m:
                return {**LEGACY_BASE, "inject_layer": int(m.group(1))}
        raise unknown("variant of graphlora", name,
                      list(cls.variants) + ["layer-<k>"] + [_LEGACY + v for v in LEGACY_VARIANTS] + ["legacy-layer-<k>"])

    @classmethod
    def cf_dependencies(cls, config: GraphLoRAConfig) -> list[CFDependency]:
        return [CFDependency(config.cf_method, config.cf_variant)]

    def build(self, split: Split) -> None:
        c = self.config
        cf = self.load_cf(split)
        if cf.user is None:
            raise BenchError(f"GraphLoRA's graph nodes need a user table, and {c.cf_method} ({cf.source}) has none",
                             "set cf_method to a CF method with user embeddings (mf, lightgcn, ngcf)")
        self.cf_source = cf.path
        # MF embeddings shared by the input projector and the graph encoder (trainable by default)
        self.modules["user_emb"] = nn.Embedding.from_pretrained(torch.as_tensor(cf.user), freeze=not c.mf_trainable)
        self.modules["item_emb"] = nn.Embedding.from_pretrained(torch.as_tensor(cf.item), freeze=not c.mf_trainable)
        d, hidden = cf.dim, self.bb.hidden_size
        self.modules["projector"] = nn.Sequential(nn.Linear(d, d * c.projector_mult), nn.ReLU(),
                                                  nn.Linear(d * c.projector_mult, hidden))
        self.model = self.lora(self.model)
        self.injector = None
        self.layer = None
        if c.encoder != "none":
            self.graph = TrainGraph(split.train_graph(), split.n_users, split.n_items, c.max_neighbors, self.ctx.seed)
            width, out = (c.gnn_hidden, c.lora_r) if c.gnn_space == "rank" else (hidden, hidden)
            # a hidden-size signal injected before A is already in x's space: never a P
            project = c.projection and not (c.gnn_space == "hidden" and c.injection == "pre")
            self.modules["encoder"] = GraphEncoder(c.encoder, d, width, out, c.gnn_layers, c.gnn_dropout,
                                                   c.ngcf_message, readout=not project)
            try:
                self.layer = resolve_inject_layer(c.inject_layer, split.dataset, self.bb.num_layers)
            except ValueError as e:
                raise BenchError(f"GraphLoRA: {e}", f"pick a layer in 0..{self.bb.num_layers - 1}, or auto") from None
            mods = lora_modules_of_layer(self.model, self.layer, tuple(c.lora_targets))
            self.modules["injector"] = self.injector = SlotInjector(
                mods, self.modules["encoder"].out_dim, c.injection, c.alpha_f, c.beta_f, project)
        # A cached prefix holds the user slot's injected value; it is exact only when that value is
        # the same for every row of the user: no injection, the identity encoder, or the user's
        # own star. On a row's induced subgraph it also depends on the target item.
        self.prefix_sharing = self.shares_prefix and (
            self.injector is None or c.encoder == "identity" or c.subgraph == "star")

    def fit(self, split: Split) -> dict[str, Any]:
        info = super().fit(split)
        if self.layer is not None:  # what inject_layer (e.g. auto) resolved to on this backbone
            info["inject_layer"] = self.layer
        return info

    def _mf(self, is_user: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        out = self.modules["item_emb"].weight.new_empty((len(ids), self.modules["item_emb"].embedding_dim))
        out[is_user] = self.modules["user_emb"](ids[is_user])
        out[~is_user] = self.modules["item_emb"](ids[~is_user])
        return out

    def node_features(self, nodes: torch.Tensor) -> torch.Tensor:
        """MF embeddings of global node ids (users, then items offset by n_users)."""
        is_user = nodes < self.graph.n_users
        return self._mf(is_user, torch.where(is_user, nodes, nodes - self.graph.n_users))

    def graph_signal(self, batch: Batch) -> torch.Tensor:
        """g for every slot of the batch: ``g_scale * normalize(GNN(node))``, where the GNN runs
        on the slot's row's own subgraph (its induced subgraph, or the slot node's star), so a
        row's signal never depends on the rows batched with it."""
        c, enc = self.config, self.modules["encoder"]
        dev = batch.slot_nodes.device
        is_user, slot_rows = batch.slot_is_user.cpu(), batch.slot_rows.cpu()
        users = batch.users.cpu()
        items = batch.items.cpu() + self.graph.n_users
        nodes = torch.where(is_user, users[slot_rows], items[slot_rows])
        # cutting the target edge is a training device: scoring always sees the whole train graph
        drop = c.drop_target_edge and self.modules.training
        if enc.kind == "identity":  # no graph: the node's own embedding
            none = torch.empty((2, 0), dtype=torch.long, device=dev)
            h = enc(self.node_features(nodes.to(dev)), none, torch.empty(0, device=dev))
        elif c.subgraph == "star":
            partner = torch.where(is_user, items[slot_rows], users[slot_rows]) if drop else None
            gb = self.graph.stars(nodes, partner)
            h = enc(self.node_features(gb.ids.to(dev)), gb.edge_index.to(dev), gb.edge_weight.to(dev))
            h = h[gb.anchors.to(dev)]
        else:
            rows, row_of_slot = torch.unique(slot_rows, return_inverse=True)
            gb = self.graph.induced(users[rows], items[rows], drop)
            h = enc(self.node_features(gb.ids.to(dev)), gb.edge_index.to(dev), gb.edge_weight.to(dev))
            h = h[gb.anchors[row_of_slot, (~is_user).long()].to(dev)]
        return c.g_scale * nn.functional.normalize(h, dim=-1)

    def slot_embeddings(self, batch: Batch) -> torch.Tensor | None:
        if batch.slot_nodes.numel() == 0:
            return None
        return self.modules["projector"](self._mf(batch.slot_is_user, batch.slot_nodes))

    def before_forward(self, batch: Batch) -> None:
        if self.injector is None:
            return
        if batch.slot_nodes.numel() == 0:
            self.injector.clear()
        else:
            self.injector.set(batch.slot_rows, batch.slot_cols, self.graph_signal(batch))

    def stages(self) -> list[Stage]:
        c = self.config
        llm = self.lora_parameters() + list(self.modules["projector"].parameters())
        collab = [p for name in ("user_emb", "item_emb", "encoder", "injector") if name in self.modules
                  for p in self.modules[name].parameters() if p.requires_grad]  # frozen MF stays out
        if c.optimizer == "one-adamw":  # the published config: one AdamW over every trainable part
            return [Stage("joint", "id", llm + collab, c.train_spec())]
        groups = [{"params": llm}]
        if collab:  # the paper's text: Adam (AdamW without weight decay) for the collaborative side
            groups.append({"params": collab, "lr": c.gnn_lr, "weight_decay": 0.0})
        return [Stage("joint", "id", groups, c.train_spec())]

    def artifacts(self) -> dict[str, str]:
        return {"cf_embeddings": self.cf_source}
