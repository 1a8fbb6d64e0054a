"""SASRec through RecBole: 2 blocks, 1 head, dropout 0.2, max length 25, d=64. The sequence is
the row's history of earlier positives (as CoLLM's SASRec baseline)."""
from __future__ import annotations

import dataclasses
from typing import Any

from baselines._recbole_cf import CFConfig, RecBoleCF


@dataclasses.dataclass(frozen=True)
class SASRecConfig(CFConfig):
    embedding_size: int = 64  # hidden size
    n_layers: int = 2
    n_heads: int = 1
    inner_size: int = 256
    dropout: float = 0.2  # hidden and attention dropout
    max_seq_length: int = 25

    def model_params(self) -> dict[str, Any]:
        return {"hidden_size": self.embedding_size, "n_layers": self.n_layers, "n_heads": self.n_heads,
                "inner_size": self.inner_size, "hidden_dropout_prob": self.dropout,
                "attn_dropout_prob": self.dropout, "MAX_ITEM_LIST_LENGTH": self.max_seq_length,
                "loss_type": "CE"}


class SASRec(RecBoleCF):
    Config = SASRecConfig
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
