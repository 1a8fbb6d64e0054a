"""Prompt4NR (Zhang & Wang, SIGIR 2023) as the CoLLM family adapts it (its ``soft_prompt``
baseline): ``soft_tokens`` (3) learned vectors for the user slot and as many for the item slot,
the *same for every sample*, written into Prompt4NR's hybrid template moved to TALLRec's wording
(CoLLM's ``prompts/softprompt.txt``; each slot is ``<unk>.<unk>.<unk>``, the dots real tokens),
plus trainable LoRA (r=8, alpha 16, dropout 0.05 on q, v), BCE on the " Yes" logit.

The vectors are initialised as the published bias-free ``Linear(2 -> hidden * 3)`` on a one-hot
slot id is: U(-1/sqrt(2), 1/sqrt(2)). Published lr: 1e-4 on ML-1M from a fresh LoRA (the
default), 1e-2 on Amazon-Book starting from the TALLRec LoRA: the ``tallrec-init`` variant
trains that LoRA first on the text prompt (TALLRec's stage, ``tallrec_lr``), then LoRA and
soft tokens together on the hybrid prompt (the suite sets lr 1e-2 on Amazon-Book).
"""
from __future__ import annotations

import dataclasses

import torch

from bench.config import require
from bench.data.schema import Split
from bench.llm.batching import Batch
from bench.llm.prompts import ITEM_SLOT, USER_SLOT, register_template
from bench.llm.recommender import LLMConfig, LLMRecommender, Stage

INITS = ("fresh", "tallrec")


def hybrid_template(n: int) -> str:
    """CoLLM's ``softprompt.txt`` with ``n`` soft tokens per slot ("<unk>.<unk>.<unk>" at n=3)."""
    user, item = ".".join([USER_SLOT] * n), ".".join([ITEM_SLOT] * n)
    return (f"#Question: {user} {{history}} [SEP] {item} {{target}} [SEP] Using all available information, "
            'make a prediction about whether the user would enjoy the {item}? Answer with "Yes" or "No". \n#Answer:')


@dataclasses.dataclass(frozen=True)
class Prompt4NRConfig(LLMConfig):
    soft_tokens: int = 3  # learned vectors per slot (user, item), shared by all samples
    init: str = "fresh"  # fresh LoRA (ML-1M) | tallrec: train the TALLRec LoRA first (Amazon-Book)
    tallrec_lr: float = 1e-4  # the TALLRec stage's lr under init=tallrec

    def validate(self) -> None:
        super().validate()
        require(self.soft_tokens > 0, "Prompt4NRConfig", "soft_tokens must be > 0", "e.g. 3 (published)")
        require(self.init in INITS, "Prompt4NRConfig", f"init {self.init!r} is unknown", f"use one of {INITS}")
        require(self.tallrec_lr > 0, "Prompt4NRConfig", "tallrec_lr must be > 0", "e.g. 1e-4")


class Prompt4NR(LLMRecommender):
    Config = Prompt4NRConfig
    variants = {"default": {}, "tallrec-init": {"init": "tallrec"}}
    default_variant = "default"
    description = "Prompt4NR: 3 + 3 shared soft prompt tokens at the user / item slots + LoRA (q, v)"
    shares_prefix = True  # static adapters; the soft tokens depend only on the slot

    def build(self, split: Split) -> None:
        n, h = self.config.soft_tokens, self.bb.hidden_size
        bound = 2 ** -0.5  # nn.Linear's default init at fan_in 2 (the published one-hot projection)
        # soft[0]: the user slot's n vectors, soft[1]: the item slot's
        self.modules["soft"] = torch.nn.ParameterDict(
            {"tokens": torch.nn.Parameter(torch.empty(2, n, h).uniform_(-bound, bound))})
        self.hybrid = register_template(f"hybrid-{n}", hybrid_template(n))
        self.model = self.lora(self.model)

    def soft_tokens(self) -> torch.nn.Parameter:
        return self.modules["soft"]["tokens"]

    def slot_embeddings(self, batch: Batch) -> torch.Tensor | None:
        if batch.slot_nodes.numel() == 0:
            return None
        # the k-th slot of a kind in a row takes that kind's k-th vector (slots are in position order)
        kind = (~batch.slot_is_user).long()
        seen: dict[tuple[int, int], int] = {}
        order = []
        for key in zip(batch.slot_rows.tolist(), kind.tolist()):
            order.append(seen.get(key, 0))
            seen[key] = order[-1] + 1
        tokens = self.soft_tokens()
        if max(order) >= tokens.shape[1]:
            raise ValueError(f"a prompt has more than {tokens.shape[1]} slots of one kind")
        return tokens[kind, torch.as_tensor(order, device=kind.device)]

    def stages(self) -> list[Stage]:
        c = self.config
        joint = Stage("joint", self.hybrid, self.lora_parameters() + [self.soft_tokens()], c.train_spec())
        if c.init == "tallrec":
            return [Stage("lora", "text", self.lora_parameters(), c.train_spec(lr=c.tallrec_lr)), joint]
        return [joint]
