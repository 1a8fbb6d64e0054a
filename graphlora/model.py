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
from graphlora.config import GraphLoRAConfig
from graphlora.encoders import GraphEncoder, Subgraphs
from graphlora.injection import SlotInjector, lora_modules_of_layer

_LAYER_VARIANT = re.compile(r"layer-(\d+)")


class GraphLoRA(LLMRecommender):
    Config = GraphLoRAConfig
    description = "GraphLoRA: GNN signal injected in the LoRA bottleneck of one layer"
    budget_knobs = ("lora_r", "gnn_hidden")
    # the graph signal of a slot is its own node's (ego graph), the injection touches slot
    # positions only: a user's prompt prefix may be cached like any other
    shares_prefix = True
    variants = {
        "default": {},
        # Table 5(A): training strategy
        "lora-frozen-mf": {"encoder": "none", "mf_trainable": False},
        "lora-trainable-mf": {"encoder": "identity"},
        # Table 5(B): graph encoder
        "ngcf": {"encoder": "ngcf"},
        "lightgcn": {"encoder": "lightgcn"},
        "gcn": {"encoder": "gcn"},
        # Table 6: injection position
        "pre": {"injection": "pre"},  # rank-r GNN, P to the hidden size
        "pre-hidden": {"injection": "pre", "gnn_space": "hidden"},  # GNN in the hidden size: the paper's count
    }

    @classmethod
    def variant_overrides(cls, name: str) -> dict[str, Any]:
        """Named variants, plus ``layer-<k>`` for the injection-layer sweep (Fig. 4)."""
        if name in cls.variants:
            return cls.variants[name]
        m = _LAYER_VARIANT.fullmatch(name)
        if m:
            return {"inject_layer": int(m.group(1))}
        raise unknown("variant of graphlora", name, list(cls.variants) + ["layer-<k>"])

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
        if c.encoder != "none":
            self.graph = Subgraphs(split.train_graph(), split.n_users, split.n_items, c.max_neighbors, self.ctx.seed)
            width, out = (c.gnn_hidden, c.lora_r) if c.gnn_space == "rank" else (hidden, hidden)
            self.modules["encoder"] = GraphEncoder(c.encoder, d, width, out, c.gnn_layers, c.gnn_dropout)
            self.layer = c.inject_layer % self.bb.num_layers
            mods = lora_modules_of_layer(self.model, self.layer, tuple(c.lora_targets))
            # a hidden-size signal injected before A is already in x's space: no P
            project = not (c.gnn_space == "hidden" and c.injection == "pre")
            self.modules["injector"] = self.injector = SlotInjector(
                mods, self.modules["encoder"].out_dim, c.injection, c.alpha_f, c.beta_f, project)

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
        """g for every slot of the batch, L2-normalised: slot s gets its own node's output,
        computed on that node's own ego graph (so independent of the batch around it)."""
        nodes = self.graph.node_ids(batch.slot_is_user.cpu(), batch.slot_nodes.cpu())
        ids, ei, weight, centers = self.graph.ego_graphs(nodes)
        dev = batch.slot_nodes.device
        h = self.modules["encoder"](self.node_features(ids.to(dev)), ei.to(dev), weight.to(dev))
        return nn.functional.normalize(h[centers.to(dev)], dim=-1)

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
        graph = [p for name in ("user_emb", "item_emb", "encoder", "injector") if name in self.modules
                 for p in self.modules[name].parameters() if p.requires_grad]  # frozen MF stays out
        groups = [{"params": llm}]
        if graph:  # Adam (no weight decay) for the collaborative side, as the paper
            groups.append({"params": graph, "lr": c.gnn_lr, "weight_decay": 0.0})
        return [Stage("joint", "id", groups, c.train_spec())]

    def artifacts(self) -> dict[str, str]:
        return {"cf_embeddings": self.cf_source}
