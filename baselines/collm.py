"""CoLLM: a frozen CF model's user/item embeddings -> MLP projector ``Linear(d, 10d) - ReLU -
Linear(10d, hidden)`` -> soft tokens at ``<UserID>`` / ``<TargetItemID>`` of the ID prompt.

Named schedules (variants): ``two-stage`` as published (1: LoRA on the text prompt, i.e.
TALLRec, at ``lr``; 2: LoRA frozen, projector trained on the ID prompt at ``projector_lr``) and
``one-stage`` (LoRA and projector together on the ID prompt, at ``projector_lr``).

Learning rates per source dataset (``per_dataset``, applied on the split's dataset), from CoLLM's
``train_configs`` (commit 48042b1): stage 1 at 1e-3 on ML-1M (``collm_pretrain_mf_ood.yaml``,
the TALLRec-prompt LoRA stage; also ``0924-tallrec-qwen-ml.yaml``), 1e-4 elsewhere (Amazon-Book:
``0924-tallrec-qwen-book.yaml``; no Vicuna stage-1 config for it was published); stage 2 at 1e-3
on ML-1M (``collm_pretrain_lgcn_ood_cc.yaml``, ``collm_pretrain_sasrec_ood_cc.yaml``) and 1e-2 on
Amazon-Book with MF / LightGCN (``collm_pretrain_mf_ood_amazon.yaml``,
``collm_pretrain_lgcn_ood_amazon_cc.yaml``), 1e-4 with SASRec
(``collm_pretrain_sasrec_ood_cc_amazon.yaml``). A dataset's values win over ``lr`` /
``projector_lr``; a suite that wants others there overrides ``per_dataset``. The CF embeddings come from the CF run the
config names (``cf_method`` / ``cf_variant``), declared in ``cf_dependencies`` so a suite runs it
first; called directly, it is trained on demand when RecBole is installed.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from bench.data.schema import Split
from bench.llm.batching import Batch
from bench.llm.recommender import LLMConfig, LLMRecommender, Stage
from bench.method import CFDependency
from bench.config import check_per_dataset, on_dataset, require

SCHEDULES = ("two-stage", "one-stage")


@dataclasses.dataclass(frozen=True)
class CoLLMConfig(LLMConfig):
    cf_method: str = "mf"  # registered CF baseline whose embeddings are projected
    cf_variant: str = "bce"
    schedule: str = "two-stage"
    projector_lr: float = 1e-3  # stage 2 (CoLLM: 1e-3, cosine to 8e-5)
    projector_mult: int = 10  # hidden width of the projector, in multiples of d
    # source dataset -> this config's fields on it (the published per-dataset learning rates)
    per_dataset: dict[str, dict[str, Any]] = dataclasses.field(default_factory=lambda: {
        "ml1m": {"lr": 1e-3}, "ml1m-raw": {"lr": 1e-3}, "amazon-book": {"projector_lr": 1e-2}})

    def validate(self) -> None:
        super().validate()
        check_per_dataset(self)
        require(self.schedule in SCHEDULES, "CoLLMConfig", f"schedule {self.schedule!r} is unknown", f"use one of {SCHEDULES}")
        require(self.projector_lr > 0 and self.projector_mult > 0, "CoLLMConfig",
                "projector_lr and projector_mult must be > 0", "e.g. 1e-3 and 10")


class CoLLM(LLMRecommender):
    Config = CoLLMConfig
    variants = {s: {"schedule": s} for s in SCHEDULES}
    default_variant = "two-stage"
    description = "CoLLM: frozen CF embeddings -> MLP -> soft ID tokens"
    shares_prefix = True  # static adapters; slots filled per user / item

    @classmethod
    def cf_dependencies(cls, config: CoLLMConfig) -> list[CFDependency]:
        return [CFDependency(config.cf_method, config.cf_variant)]

    def fit(self, split: Split) -> dict[str, Any]:
        self.config = on_dataset(self.config, split.dataset)
        info = super().fit(split)
        info["dataset_settings"] = {k: getattr(self.config, k) for k in self.config.per_dataset.get(split.dataset, {})}
        return info

    def restore(self, split: Split, directory: Path, backbone: Any = None) -> None:
        self.config = on_dataset(self.config, split.dataset)  # as fit trained it
        super().restore(split, directory, backbone)

    def build(self, split: Split) -> None:
        c = self.config
        cf = self.load_cf(split)
        users, self._user_index = cf.user_table()
        self.modules.register_buffer("cf_user", torch.as_tensor(users), persistent=False)
        self.modules.register_buffer("cf_item", torch.as_tensor(cf.item), persistent=False)
        self.modules["projector"] = torch.nn.Sequential(
            torch.nn.Linear(cf.dim, cf.dim * c.projector_mult), torch.nn.ReLU(),
            torch.nn.Linear(cf.dim * c.projector_mult, self.bb.hidden_size))
        self.cf_source = cf.path
        self.model = self.lora(self.model)

    def user_keys(self, rows):
        return self._user_index(rows)

    def slot_embeddings(self, batch: Batch) -> torch.Tensor | None:
        if batch.slot_nodes.numel() == 0:
            return None
        u, nodes = batch.slot_is_user, batch.slot_nodes
        cf = self.modules.cf_item.new_empty((len(nodes), self.modules.cf_item.shape[1]))
        cf[u] = self.modules.cf_user[nodes[u]]
        cf[~u] = self.modules.cf_item[nodes[~u]]
        return self.modules["projector"](cf)

    def stages(self) -> list[Stage]:
        c = self.config
        proj = list(self.modules["projector"].parameters())
        stage2 = c.train_spec(lr=c.projector_lr)
        if c.schedule == "one-stage":
            return [Stage("joint", "id", self.lora_parameters() + proj, stage2)]
        return [Stage("lora", "text", self.lora_parameters(), c.train_spec()),
                Stage("projector", "id", proj, stage2)]

    def artifacts(self) -> dict[str, str]:
        return {"cf_embeddings": self.cf_source}


@dataclasses.dataclass(frozen=True)
class CoLLMLightGCNConfig(CoLLMConfig):
    cf_method: str = "lightgcn"


@dataclasses.dataclass(frozen=True)
class CoLLMSASRecConfig(CoLLMConfig):
    cf_method: str = "sasrec"
    per_dataset: dict[str, dict[str, Any]] = dataclasses.field(default_factory=lambda: {
        "ml1m": {"lr": 1e-3}, "ml1m-raw": {"lr": 1e-3}, "amazon-book": {"projector_lr": 1e-4}})


class CoLLMMF(CoLLM):
    description = "CoLLM with frozen MF embeddings"


class CoLLMLightGCN(CoLLM):
    Config = CoLLMLightGCNConfig
    description = "CoLLM with frozen LightGCN embeddings"


class CoLLMSASRec(CoLLM):
    Config = CoLLMSASRecConfig
    description = "CoLLM with frozen SASRec (sequence encoder) embeddings"
