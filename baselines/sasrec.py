"""SASRec through RecBole: 2 blocks, 1 head, dropout 0.2, max length 25, d=64. The sequence is
the row's history of earlier positives (as CoLLM's SASRec baseline).

Settings of CoLLM's SASRec baselines (PROTOCOLS-BASELINES.md part 2 section 3.2). ML-1M (the
defaults): ``baseline_train_sasrec.py``'s recorded best and saved version, the checkpoint CoLLM
loads (``0920sasrec_ml_1m_best_model_d64lr-0.01wd0.01len25.pth``): lr 1e-2, weight decay 1e-2,
d 64, max length 25, batch 2048, patience 100; its point-wise feed-forward is two d -> d
convolutions, so ``inner_size`` follows d (None: = ``embedding_size``; RecBole's default is
256), at every d the tuner tries and for CoRA's 256-d SASRec. Amazon-Book
(``per_dataset``): ``baseline_train_sasrec_amazon.py``'s saved version: lr 1e-3, weight decay
1e-3, max length 20, batch 10240, patience 100. The ``recbole`` variant keeps recbench's earlier
settings (lr 1e-3, weight decay 1e-4, inner size 256, patience 20) everywhere.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from baselines._recbole_cf import CFConfig
from baselines.lightgcn import PerDatasetCF
from bench.config import check_per_dataset, on_dataset, require

AMAZON_BOOK = {"learning_rate": 1e-3, "weight_decay": 1e-3, "max_seq_length": 20, "train_batch_size": 10240,
               "stopping_step": 100}


@dataclasses.dataclass(frozen=True)
class SASRecConfig(CFConfig):
    embedding_size: int = 64  # hidden size
    learning_rate: float = 1e-2
    weight_decay: float = 1e-2
    stopping_step: int = 100
    n_layers: int = 2
    n_heads: int = 1
    inner_size: int | None = None  # feed-forward width; None: d (CoLLM's d -> d convolutions)
    dropout: float = 0.2  # hidden and attention dropout
    max_seq_length: int = 25
    # source dataset -> this config's fields on it (the published per-dataset settings)
    per_dataset: dict[str, dict[str, Any]] = dataclasses.field(
        default_factory=lambda: {"amazon-book": dict(AMAZON_BOOK)})

    def validate(self) -> None:
        super().validate()
        require(self.inner_size is None or self.inner_size > 0, "SASRecConfig", "inner_size must be > 0",
                "leave it out (the feed-forward is then d wide, as CoLLM's) or give a positive int")
        check_per_dataset(self)

    def on_dataset(self, dataset: str) -> "SASRecConfig":
        return on_dataset(self, dataset)

    def model_params(self) -> dict[str, Any]:
        return {"hidden_size": self.embedding_size, "n_layers": self.n_layers, "n_heads": self.n_heads,
                "inner_size": self.inner_size or self.embedding_size, "hidden_dropout_prob": self.dropout,
                "attn_dropout_prob": self.dropout, "MAX_ITEM_LIST_LENGTH": self.max_seq_length,
                "loss_type": "CE"}


class SASRec(PerDatasetCF):
    Config = SASRecConfig
    variants = {"bce": {"protocol": "bce"},
                "recbole": {"protocol": "recbole", "learning_rate": 1e-3, "weight_decay": 1e-4, "inner_size": 256,
                            "stopping_step": 20, "per_dataset": {}}}
    recbole_model = "SASRec"
    sequential = True
    native_neg_sampling = None  # RecBole's SASRec trains with full-softmax CE on positives
    description = "SASRec (RecBole) over the history of earlier positives"

    def embedding_tables(self):
        return None, self.model.item_embedding.weight

    def row_user_embeddings(self, rows):
        """The sequence encoder's output for each row's history: the "user" CoLLM-SAS projects.
        It depends on the history alone, so each distinct history runs once (rows of one user
        between two of their positives share it: about half the rows on ML-1M)."""
        import numpy as np
        import pandas as pd
        import torch

        keep = self.config.max_seq_length - 1
        codes, _ = pd.factorize(rows["history"].map(lambda h: tuple(h[-keep:])))
        firsts = rows.iloc[np.unique(codes, return_index=True)[1]]
        out = []
        with torch.no_grad():
            for start in range(0, len(firsts), self.config.eval_batch_size):
                inter = self._interaction_for(firsts.iloc[start:start + self.config.eval_batch_size]).to(self._device)
                out.append(self.model.forward(inter["item_id_list"], inter["item_length"]).float().cpu().numpy())
        if not out:
            return np.zeros((0, self.config.embedding_size), dtype=np.float32)
        return np.concatenate(out)[codes]
