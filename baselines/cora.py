"""CoRA: collaborative query -> per-sample LoRA. A small query transformer (4 learned queries)
reads concat(user, item) frozen CF embeddings and emits a ``hidden x r`` matrix per sample
(averaged over the queries, L2-normalised) used as the LoRA "A" of q, k, v, o in EVERY layer;
each module keeps its own trainable zero-initialised "B" (r -> out), scaled by alpha / r.
Text-only prompt. r=16 / alpha=32 with MF, r=64 / alpha=128 with LightGCN / SASRec.

The per-sample A is not a standard LoRA, so it is applied by forward hooks on the frozen
linear layers rather than through peft.
"""
from __future__ import annotations

import dataclasses
import re

import torch
from torch import nn

from bench.config import require
from bench.data.schema import Split
from bench.llm.batching import Batch
from bench.llm.recommender import LLMConfig, LLMRecommender, Stage
from bench.method import CFDependency

_LAYER = re.compile(r"\.layers\.(\d+)\.")


@dataclasses.dataclass(frozen=True)
class CoRAConfig(LLMConfig):
    cf_method: str = "mf"
    cf_variant: str = "bce"
    cora_r: int = 16  # rank of the per-sample A
    cora_alpha: int = 32
    n_queries: int = 4
    qformer_dim: int = 256  # width of the query transformer (the budget matcher's fine knob)
    qformer_layers: int = 2
    qformer_heads: int = 4
    cora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")

    def validate(self) -> None:
        super().validate()
        owner = "CoRAConfig"
        for name in ("cora_r", "cora_alpha", "n_queries", "qformer_dim", "qformer_layers", "qformer_heads"):
            require(getattr(self, name) > 0, owner, f"{name} must be > 0", f"set {name} to a positive int")
        require(self.qformer_dim % self.qformer_heads == 0, owner,
                f"qformer_dim {self.qformer_dim} must be divisible by qformer_heads {self.qformer_heads}",
                "change qformer_dim or qformer_heads")


class QueryTransformer(nn.Module):
    """Learned queries cross-attend to the (user, item) tokens; out: (B, hidden, r) per sample."""

    def __init__(self, cf_dim: int, hidden: int, r: int, dim: int, n_queries: int, layers: int, heads: int) -> None:
        super().__init__()
        self.hidden, self.r = hidden, r
        self.inp = nn.Linear(cf_dim, dim)
        self.side = nn.Parameter(torch.zeros(2, dim))  # user / item token type
        self.queries = nn.Parameter(torch.randn(n_queries, dim) * 0.02)
        layer = nn.TransformerDecoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=0.0, batch_first=True)
        self.decoder = nn.TransformerDecoder(layer, layers)
        self.out = nn.Linear(dim, hidden * r)

    def forward(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        mem = self.inp(torch.stack([user, item], 1)) + self.side  # (B, 2, dim)
        q = self.queries.expand(len(user), -1, -1)
        a = self.out(self.decoder(q, mem)).view(len(user), -1, self.hidden, self.r).mean(1)
        return nn.functional.normalize(a, dim=1)  # unit-norm columns


class CoRA(LLMRecommender):
    Config = CoRAConfig
    description = "CoRA: query transformer -> per-sample LoRA A for q,k,v,o in every layer"
    budget_knobs = ("cora_r", "qformer_dim")

    @classmethod
    def cf_dependencies(cls, config: CoRAConfig) -> list[CFDependency]:
        return [CFDependency(config.cf_method, config.cf_variant)]

    def build(self, split: Split) -> None:
        c = self.config
        cf = self.load_cf(split)
        self.cf_source = cf.path
        users, self._user_index = cf.user_table()
        self.modules.register_buffer("cf_user", torch.as_tensor(users), persistent=False)
        self.modules.register_buffer("cf_item", torch.as_tensor(cf.item), persistent=False)
        hidden = self.bb.hidden_size
        self.modules["qformer"] = QueryTransformer(cf.dim, hidden, c.cora_r, c.qformer_dim, c.n_queries,
                                                   c.qformer_layers, c.qformer_heads)
        self.modules["B"] = nn.ParameterDict()
        self.scaling = c.cora_alpha / c.cora_r
        self._A: torch.Tensor | None = None
        for name, mod in self.model.named_modules():
            short = name.split(".")[-1]
            if short in c.cora_targets and isinstance(mod, nn.Linear) and _LAYER.search(name):
                if mod.in_features != hidden:
                    raise ValueError(f"CoRA's shared A needs {name} to read the hidden size ({mod.in_features} != {hidden})")
                key = name.replace(".", "_")
                self.modules["B"][key] = nn.Parameter(torch.zeros(mod.out_features, c.cora_r))
                mod.register_forward_hook(self._hook(key))

    def _hook(self, key: str):
        def hook(module, inputs, out):
            if self._A is None:
                return out
            x = inputs[0]
            low = torch.einsum("bth,bhr->btr", x, self._A.to(x.dtype))
            return out + self.scaling * (low @ self.modules["B"][key].to(x.dtype).T)

        return hook

    def user_keys(self, rows):
        return self._user_index(rows)

    def before_forward(self, batch: Batch) -> None:
        self._A = self.modules["qformer"](self.modules.cf_user[batch.users], self.modules.cf_item[batch.items])

    def stages(self) -> list[Stage]:
        params = list(self.modules["qformer"].parameters()) + list(self.modules["B"].parameters())
        return [Stage("cora", "text", params, self.config.train_spec())]

    def artifacts(self) -> dict[str, str]:
        return {"cf_embeddings": self.cf_source}


@dataclasses.dataclass(frozen=True)
class CoRALightGCNConfig(CoRAConfig):
    cf_method: str = "lightgcn"
    cora_r: int = 64
    cora_alpha: int = 128


@dataclasses.dataclass(frozen=True)
class CoRASASRecConfig(CoRALightGCNConfig):
    cf_method: str = "sasrec"


class CoRAMF(CoRA):
    description = "CoRA with frozen MF embeddings (r=16)"


class CoRALightGCN(CoRA):
    Config = CoRALightGCNConfig
    description = "CoRA with frozen LightGCN embeddings (r=64)"


class CoRASASRec(CoRA):
    Config = CoRASASRecConfig
    description = "CoRA with frozen SASRec embeddings (r=64)"
