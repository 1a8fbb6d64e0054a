"""MF: RecBole's ``BPR`` model (a user/item dot product). Published CoLLM MF: d=256, Adam lr 1e-3,
weight decay 1e-4, batch 2048, patience 100, pointwise BCE."""
from __future__ import annotations

import dataclasses

from baselines._recbole_cf import CFConfig, RecBoleCF


@dataclasses.dataclass(frozen=True)
class MFConfig(CFConfig):
    embedding_size: int = 256
    stopping_step: int = 100


class MF(RecBoleCF):
    Config = MFConfig
    recbole_model = "BPR"
    description = "Matrix factorisation (RecBole BPR model class)"
