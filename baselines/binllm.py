"""BinLLM: collaborative information as text. MF (d=32) -> per side ``Linear + tanh + sign``
with a straight-through gradient -> a 32-character 0/1 string written into the ID prompt's
slots (variant ``plain``), or as dotted decimal, 4 groups of 8 bits (variant ``dotted``).
No projector. Schedule as published: the hashing layers are fitted on the recommendation task
over frozen MF embeddings; then LoRA is trained on the text prompt (TALLRec), and training
continues from that LoRA on the bit prompt with lr 1e-4."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np
import torch

from bench.config import require
from bench.data.schema import Split
from bench.errors import BenchError
from bench.llm.prompts import ITEM_SLOT, USER_SLOT
from bench.llm.recommender import LLMConfig, LLMRecommender, Stage
from bench.method import CFDependency
from bench.metrics import auc

ENCODINGS = ("plain", "dotted")


@dataclasses.dataclass(frozen=True)
class BinLLMConfig(LLMConfig):
    cf_method: str = "mf"  # registered CF baseline with a user table, trained at width cf_dim
    cf_variant: str = "bce"
    cf_dim: int = 32  # MF width = number of bits
    encoding: str = "plain"
    hash_epochs: int = 30  # epochs fitting the hashing layers (best valid_small AUC kept)
    hash_lr: float = 1e-3
    bits_lr: float = 1e-4  # stage on the bit prompt, starting from the TALLRec LoRA

    def validate(self) -> None:
        super().validate()
        require(self.encoding in ENCODINGS, "BinLLMConfig", f"encoding {self.encoding!r} is unknown", f"use one of {ENCODINGS}")
        require(self.cf_dim > 0 and (self.encoding != "dotted" or self.cf_dim % 8 == 0), "BinLLMConfig",
                "cf_dim must be > 0 (a multiple of 8 for dotted)", "e.g. 32")


def straight_through_sign(x: torch.Tensor) -> torch.Tensor:
    t = torch.tanh(x)
    hard = torch.where(t >= 0, torch.ones_like(t), -torch.ones_like(t))
    return t + (hard - t).detach()  # forward: +-1; backward: d tanh


def encode_bits(bits: np.ndarray, encoding: str) -> str:
    s = "".join("1" if b else "0" for b in bits)
    if encoding == "plain":
        return s
    return ".".join(str(int(s[i:i + 8], 2)) for i in range(0, len(s), 8))


class BinLLM(LLMRecommender):
    Config = BinLLMConfig
    variants = {e: {"encoding": e} for e in ENCODINGS}
    default_variant = "plain"
    description = "BinLLM: binarised MF codes written into the prompt as text"
    shares_prefix = True  # static adapters; slots filled per user / item

    @classmethod
    def cf_dependencies(cls, config: BinLLMConfig) -> list[CFDependency]:
        # its own run: one bit per dimension, so a CF model of width cf_dim (not the others' MF)
        return [CFDependency(config.cf_method, config.cf_variant, {"embedding_size": config.cf_dim})]

    def build(self, split: Split) -> None:
        c = self.config
        cf = self.load_cf(split)
        if cf.user is None:
            raise BenchError(f"BinLLM hashes a user table, and {c.cf_method} ({cf.source}) has none",
                             "set cf_method to a CF method with user embeddings (mf, lightgcn, ngcf)")
        self.cf_source = cf.path
        self.modules["hash_user"] = torch.nn.Linear(c.cf_dim, c.cf_dim)
        self.modules["hash_item"] = torch.nn.Linear(c.cf_dim, c.cf_dim)
        self.hash_info = self._fit_hashing(split, torch.as_tensor(cf.user), torch.as_tensor(cf.item))
        with torch.no_grad():
            self.user_bits = (straight_through_sign(self.modules["hash_user"](torch.as_tensor(cf.user))) > 0).numpy()
            self.item_bits = (straight_through_sign(self.modules["hash_item"](torch.as_tensor(cf.item))) > 0).numpy()
        self.model = self.lora(self.model)

    def _fit_hashing(self, split: Split, users: torch.Tensor, items: torch.Tensor) -> dict[str, Any]:
        c = self.config
        hu, hi = self.modules["hash_user"], self.modules["hash_item"]
        scale = torch.nn.Parameter(torch.tensor(1.0))
        opt = torch.optim.Adam(list(hu.parameters()) + list(hi.parameters()) + [scale], lr=c.hash_lr)
        tr = split.train
        u, i, y = (torch.as_tensor(tr[k].to_numpy()) for k in ("user", "item", "label"))
        vu, vi = (torch.as_tensor(split.valid_small[k].to_numpy()) for k in ("user", "item"))

        def score(uu, ii):
            return scale * (straight_through_sign(hu(users[uu])) * straight_through_sign(hi(items[ii]))).mean(-1)

        gen = torch.Generator().manual_seed(self.ctx.seed)
        best = (-1.0, None)
        for _ in range(c.hash_epochs):
            for idx in torch.randperm(len(y), generator=gen).split(1024):
                loss = torch.nn.functional.binary_cross_entropy_with_logits(score(u[idx], i[idx]), y[idx].float())
                opt.zero_grad()
                loss.backward()
                opt.step()
            with torch.no_grad():
                val = auc(split.valid_small["label"].to_numpy(), score(vu, vi).numpy())
            if val > best[0]:
                best = (val, {k: v.clone() for k, v in list(hu.state_dict(prefix="u.").items()) + list(hi.state_dict(prefix="i.").items())})
        hu.load_state_dict({k[2:]: v for k, v in best[1].items() if k.startswith("u.")})
        hi.load_state_dict({k[2:]: v for k, v in best[1].items() if k.startswith("i.")})
        return {"hash_valid_auc": best[0]}

    def slot_text(self, row: Any) -> Mapping[str, str] | None:
        enc = self.config.encoding
        return {USER_SLOT: encode_bits(self.user_bits[row.user], enc), ITEM_SLOT: encode_bits(self.item_bits[row.item], enc)}

    def stages(self) -> list[Stage]:
        c = self.config
        lora = self.lora_parameters()
        return [Stage("lora-text", "text", lora, c.train_spec()),
                Stage("lora-bits", "id", lora, c.train_spec(lr=c.bits_lr))]

    def fit(self, split: Split) -> dict[str, Any]:
        info = super().fit(split)
        info.update(self.hash_info)
        return info

    def param_counts(self) -> dict[str, int]:
        counts = super().param_counts()  # LoRA (trained in both stages)
        counts["trainable"] += sum(p.numel() for p in self.modules.parameters())  # hashing layers, fitted first
        return counts

    def artifacts(self) -> dict[str, str]:
        return {"cf_embeddings": self.cf_source}
