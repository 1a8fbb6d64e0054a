"""LightGCN through RecBole: d=64, 2 layers, symmetric-normalised train-positive graph.

Settings of CoLLM's LightGCN baselines (``baseline_train_lightgcn_ood.py``, PROTOCOLS-BASELINES.md
part 2 section 3.1). ML-1M (the defaults): lr 1e-2, weight decay 1e-4, d 64, 2 layers, batch 2048,
patience 100 -- the recorded best run, whose lr / weight decay / d are in the name of the
checkpoint CoLLM loads (``..._d64lr-0.01wd0.0001.pth``); the script's active block (batch 1024,
patience 50) only evaluates that checkpoint. Amazon-Book (``per_dataset``): the saved version of
``baseline_train_lightgcn_ood_amazon.py``: lr 1e-4, weight decay 1e-7, d 256, batch 10240,
patience 100. Other datasets take the defaults. The ``recbole`` variant (RecBole's native
training) keeps recbench's earlier settings: lr 1e-3, batch 2048, patience 20, everywhere.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from baselines._recbole_cf import PUBLISHED_GRID, CFConfig, RecBoleCF
from bench.config import check_per_dataset, on_dataset

# the source datasets the ML-1M values also stand for are the defaults; others listed here
AMAZON_BOOK = {"learning_rate": 1e-4, "weight_decay": 1e-7, "embedding_size": 256, "train_batch_size": 10240,
               "stopping_step": 100}


@dataclasses.dataclass(frozen=True)
class LightGCNConfig(CFConfig):
    embedding_size: int = 64
    learning_rate: float = 1e-2
    train_batch_size: int = 2048
    stopping_step: int = 100
    n_layers: int = 2  # propagation layers
    reg_weight: float = 1e-5  # RecBole's embedding L2 term (used by the native protocol's loss)
    # source dataset -> this config's fields on it (the published per-dataset settings)
    per_dataset: dict[str, dict[str, Any]] = dataclasses.field(
        default_factory=lambda: {"amazon-book": dict(AMAZON_BOOK)})

    def model_params(self) -> dict[str, Any]:
        return {"n_layers": self.n_layers, "reg_weight": self.reg_weight}

    def validate(self) -> None:
        super().validate()
        check_per_dataset(self)

    def on_dataset(self, dataset: str) -> "LightGCNConfig":
        return on_dataset(self, dataset)


class PerDatasetCF(RecBoleCF):
    """A RecBole CF baseline whose config resolves ``per_dataset`` on the split's source dataset."""

    def fit(self, split):  # noqa: ANN001
        self.config = on_dataset(self.config, split.dataset)
        info = super().fit(split)
        info["dataset_settings"] = {k: getattr(self.config, k) for k in self.config.per_dataset.get(split.dataset, {})}
        return info

    def restore(self, split, directory):  # noqa: ANN001
        self.config = on_dataset(self.config, split.dataset)  # as fit trained it
        super().restore(split, directory)


OLD_DEFAULTS = {"learning_rate": 1e-3, "train_batch_size": 2048, "stopping_step": 20, "per_dataset": {}}


class LightGCN(PerDatasetCF):
    Config = LightGCNConfig
    recbole_model = "LightGCN"
    description = "LightGCN (RecBole), train-positive graph"
    variants = {"bce": {"protocol": "bce"}, "recbole": {"protocol": "recbole", **OLD_DEFAULTS},
                "no-own-edge": {"protocol": "bce", "own_edge": "drop"}}  # see CFConfig.own_edge
    search_space = {**PUBLISHED_GRID, "n_layers": [1, 2, 3]}  # CoLLM's LightGCN script adds the depth

    def embedding_tables(self):
        return self.model.forward()  # propagated user / item embeddings
