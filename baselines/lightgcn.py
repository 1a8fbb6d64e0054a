"""LightGCN through RecBole: d=64, 2 layers, symmetric-normalised train-positive graph."""
from __future__ import annotations

import dataclasses
from typing import Any

from baselines._recbole_cf import CFConfig, RecBoleCF


@dataclasses.dataclass(frozen=True)
class LightGCNConfig(CFConfig):
    embedding_size: int = 64
    n_layers: int = 2  # propagation layers
    reg_weight: float = 1e-5  # RecBole's embedding L2 term (used by the native protocol's loss)

    def model_params(self) -> dict[str, Any]:
        return {"n_layers": self.n_layers, "reg_weight": self.reg_weight}


class LightGCN(RecBoleCF):
    Config = LightGCNConfig
    recbole_model = "LightGCN"
    description = "LightGCN (RecBole), train-positive graph"

    def embedding_tables(self):
        return self.model.forward()  # propagated user / item embeddings
