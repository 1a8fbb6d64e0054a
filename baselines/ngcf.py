"""NGCF through RecBole: d=64, three 64-wide propagation layers (no published baseline exists;
RecBole's defaults otherwise)."""
from __future__ import annotations

import dataclasses
from typing import Any

from baselines._recbole_cf import PUBLISHED_GRID, CFConfig, RecBoleCF


@dataclasses.dataclass(frozen=True)
class NGCFConfig(CFConfig):
    embedding_size: int = 64
    hidden_size_list: tuple[int, ...] = (64, 64, 64)  # width of each propagation layer
    node_dropout: float = 0.0
    message_dropout: float = 0.1
    reg_weight: float = 1e-5

    def model_params(self) -> dict[str, Any]:
        return {"hidden_size_list": list(self.hidden_size_list), "node_dropout": self.node_dropout,
                "message_dropout": self.message_dropout, "reg_weight": self.reg_weight}


class NGCF(RecBoleCF):
    Config = NGCFConfig
    recbole_model = "NGCF"
    # no-own-edge: BCE training without a batch's own positive edges in the graph it propagates
    # over (the train-time label leak; see CFConfig.own_edge). Not a published setting.
    variants = {"bce": {"protocol": "bce"}, "recbole": {"protocol": "recbole"},
                "no-own-edge": {"protocol": "bce", "own_edge": "drop"}}
    search_space = {**PUBLISHED_GRID, "node_dropout": [0.0, 0.1, 0.3]}
    description = "NGCF (RecBole), train-positive graph"

    def embedding_tables(self):
        return self.model.forward()
