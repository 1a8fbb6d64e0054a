"""PersonPrompt (PEPLER, Li, Zhang & Chen, TOIS 2023) as the CoLLM family adapts it (its
``personlized_prompt`` baseline): one learned hidden-size vector per user and one per item, the
soft tokens at ``<UserID>`` / ``<TargetItemID>``, trained from scratch with BCE on the " Yes"
logit. As published the LLM stays frozen: LoRA (r=8, alpha 16 on q, v) is built but frozen
(``freeze_lora: True``, fresh, so B = 0 and it changes nothing). The ``trainable-lora`` variant
trains the LoRA too (at ``lora_lr``), which the published configs do not.

The published prompt file (``prompts/rec_alignment.txt``) was never released: this uses CoLLM's
ID prompt (an assumption). The tables are initialised as the published bias-free
``Linear(n_users + n_items -> hidden)`` on one-hot ids is: U(+-1/sqrt(n_users + n_items)).
Published lr: 1e-2 on ML-1M (the default), 1e-4 on Amazon-Book (set per dataset in the suite).
"""
from __future__ import annotations

import dataclasses

import torch

from bench.config import require
from bench.data.schema import Split
from bench.llm.batching import Batch
from bench.llm.recommender import LLMConfig, LLMRecommender, Stage


@dataclasses.dataclass(frozen=True)
class PersonPromptConfig(LLMConfig):
    lr: float = 1e-2  # the ID vectors' lr (published: 1e-2 on ML-1M, 1e-4 on Amazon-Book)
    freeze_lora: bool = True  # published: LoRA built, frozen
    lora_lr: float = 1e-4  # the LoRA's lr when it trains (freeze_lora: false)

    def validate(self) -> None:
        super().validate()
        require(self.lora_lr > 0, "PersonPromptConfig", "lora_lr must be > 0", "e.g. 1e-4")


class PersonPrompt(LLMRecommender):
    Config = PersonPromptConfig
    variants = {"default": {}, "trainable-lora": {"freeze_lora": False}}
    default_variant = "default"
    description = "PersonPrompt: a learned soft token per user and per item, LLM (and LoRA) frozen"
    shares_prefix = True  # static adapters; slots filled per user / item

    def build(self, split: Split) -> None:
        h = self.bb.hidden_size
        bound = (split.n_users + split.n_items) ** -0.5
        self.modules["user_emb"] = torch.nn.Embedding(split.n_users, h)
        self.modules["item_emb"] = torch.nn.Embedding(split.n_items, h)
        for table in (self.modules["user_emb"], self.modules["item_emb"]):
            torch.nn.init.uniform_(table.weight, -bound, bound)
        self.model = self.lora(self.model)
        if self.config.freeze_lora:  # built as published, but no gradient ever reaches it
            for p in self.lora_parameters():
                p.requires_grad_(False)

    def id_parameters(self) -> list[torch.nn.Parameter]:
        return [self.modules["user_emb"].weight, self.modules["item_emb"].weight]

    def slot_embeddings(self, batch: Batch) -> torch.Tensor | None:
        if batch.slot_nodes.numel() == 0:
            return None
        u, nodes = batch.slot_is_user, batch.slot_nodes
        out = self.modules["item_emb"].weight.new_empty((len(nodes), self.bb.hidden_size))
        out[u] = self.modules["user_emb"](nodes[u])
        out[~u] = self.modules["item_emb"](nodes[~u])
        return out

    def stages(self) -> list[Stage]:
        c = self.config
        if c.freeze_lora:
            return [Stage("ids", "id", self.id_parameters(), c.train_spec())]
        groups = [{"params": self.id_parameters()}, {"params": self.lora_parameters(), "lr": c.lora_lr}]
        return [Stage("joint", "id", groups, c.train_spec())]
