"""BinLLM: collaborative information as text. An MF backbone (d=32, no biases) -> per side
``Linear + tanh + sign`` -> a 32-character 0/1 string written into the ID prompt's slots
(encoding ``plain``), or as dotted decimal, 4 groups of 8 bits (encoding ``dotted``). No
projector. Then LoRA is trained on the text prompt (TALLRec), and training continues from that
LoRA on the bit prompt with lr 1e-4; the codes stay fixed during both LLM stages.

Hashing, as published (``hashing: joint``, the default; the variants ``plain`` / ``dotted``):
the MF tables are created from scratch (``nn.Embedding``'s N(0, 1), row 0 the padding row) and
trained *together with* the hash layers, with one loss, BCE-with-logits on the plain inner
product of the user and item outputs. In training each coordinate of the output is the sign
(straight-through) with probability beta and the tanh value otherwise, the same draw for both
sides; beta starts at 0 and grows by ``beta_step`` after every even epoch until it passes 1.01,
then stays at ``beta_after`` (1.0: pure sign). Adam with weight decay over MF and hash layers,
batch 2048, evaluation every epoch on the sign codes' valid AUC, early stopping with patience
100, the best-valid state kept. No CF run is needed.

``hashing: frozen-mf`` (variants ``frozen-mf-hash`` / ``frozen-mf-hash-dotted``) is this
benchmark's earlier reading: only the hash layers are fitted (tanh + straight-through sign from
the first step, a learned scale on the mean product, 30 epochs, lr 1e-3, best ``valid_small``
AUC), over the frozen tables of a separately trained d=32 MF (a declared CF dependency)."""
from __future__ import annotations

import copy
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
HASHING = ("joint", "frozen-mf")
# the benchmark's earlier hashing (issue 16 keeps it as a variant), with its earlier settings
FROZEN_MF = {"hashing": "frozen-mf", "hash_epochs": 30, "hash_lr": 1e-3}


@dataclasses.dataclass(frozen=True)
class BinLLMConfig(LLMConfig):
    hashing: str = "joint"  # joint: MF + hash layers trained together (published) | frozen-mf
    cf_method: str = "mf"  # frozen-mf only: registered CF baseline with a user table, width cf_dim
    cf_variant: str = "bce"
    cf_dim: int = 32  # MF width = number of bits
    encoding: str = "plain"
    # joint hashing: BinLLM hashGNN_ml.py's saved ML-1M run (L403-434); hashGNN.py's Amazon-Book
    # run (L416-446) on a split of a source dataset in book_datasets
    hash_epochs: int = 5000  # at most (frozen-mf: exactly, keeping the best valid_small AUC)
    hash_lr: float = 1e-2
    hash_weight_decay: float = 1e-3  # Adam's L2, on MF tables and hash layers alike
    beta_step: float = 0.001  # beta += step after every even epoch, while beta < 1.01
    beta_after: float = 1.0  # beta once annealed: 1.0 sign (hashGNN_ml.py); hashGNN.py sets 0
    hash_batch_size: int = 2048
    hash_patience: int = 100  # evaluations (one per epoch) without a strict valid-AUC gain
    book_datasets: tuple[str, ...] = ("amazon-book",)
    book_hash_lr: float = 1e-3
    book_hash_weight_decay: float = 1e-4
    book_beta_step: float = 0.02
    bits_lr: float = 1e-4  # stage on the bit prompt, starting from the TALLRec LoRA

    def validate(self) -> None:
        super().validate()
        require(self.encoding in ENCODINGS, "BinLLMConfig", f"encoding {self.encoding!r} is unknown", f"use one of {ENCODINGS}")
        require(self.hashing in HASHING, "BinLLMConfig", f"hashing {self.hashing!r} is unknown", f"use one of {HASHING}")
        require(self.cf_dim > 0 and (self.encoding != "dotted" or self.cf_dim % 8 == 0), "BinLLMConfig",
                "cf_dim must be > 0 (a multiple of 8 for dotted)", "e.g. 32")
        require(self.hash_epochs >= 0 and self.hash_batch_size > 0 and self.hash_patience > 0, "BinLLMConfig",
                "hash_epochs must be >= 0, hash_batch_size and hash_patience > 0", "e.g. 5000, 2048, 100")

    def hash_settings(self, dataset: str) -> tuple[float, float, float]:
        """(lr, weight decay, beta step) of the joint hashing on a split of this source dataset."""
        if dataset in self.book_datasets:
            return self.book_hash_lr, self.book_hash_weight_decay, self.book_beta_step
        return self.hash_lr, self.hash_weight_decay, self.beta_step


def sign_ste(z: torch.Tensor) -> torch.Tensor:
    """sign(z) with sign(0) = +1; the gradient passes through unchanged (straight-through)."""
    hard = torch.where(z >= 0, torch.ones_like(z), -torch.ones_like(z))
    return z + (hard - z).detach()


def straight_through_sign(x: torch.Tensor) -> torch.Tensor:
    return sign_ste(torch.tanh(x))  # forward: +-1; backward: d tanh


def encode_bits(bits: np.ndarray, encoding: str) -> str:
    s = "".join("1" if b else "0" for b in bits)
    if encoding == "plain":
        return s
    return ".".join(str(int(s[i:i + 8], 2)) for i in range(0, len(s), 8))


class CollaborativeHash(torch.nn.Module):
    """MF tables and the two hash layers of the joint hashing."""

    def __init__(self, n_users: int, n_items: int, d: int) -> None:
        super().__init__()
        self.user = torch.nn.Embedding(n_users, d, padding_idx=0)  # N(0, 1), row 0 zero
        self.item = torch.nn.Embedding(n_items, d, padding_idx=0)
        self.proj_user = torch.nn.Linear(d, d)
        self.proj_item = torch.nn.Linear(d, d)

    def outputs(self, users: torch.Tensor, items: torch.Tensor, beta: float = 1.0,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        zu = torch.tanh(self.proj_user(self.user(users)))
        zi = torch.tanh(self.proj_item(self.item(items)))
        hu, hi = sign_ste(zu), sign_ste(zi)
        if not self.training:
            return hu, hi  # evaluation and the final codes: pure sign
        # each coordinate: tanh where U > beta, sign otherwise; one draw for both sides of a pair
        keep_tanh = torch.rand(zu.shape, generator=generator, device=zu.device) > beta
        return torch.where(keep_tanh, zu, hu), torch.where(keep_tanh, zi, hi)

    def score(self, users: torch.Tensor, items: torch.Tensor, beta: float = 1.0,
              generator: torch.Generator | None = None) -> torch.Tensor:
        ou, oi = self.outputs(users, items, beta, generator)
        return (ou * oi).sum(-1)  # plain inner product: no scale, no bias

    @torch.no_grad()
    def codes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(users x d, items x d) codes in {-1, +1}."""
        hu = torch.where(self.proj_user(self.user.weight) >= 0, 1.0, -1.0)
        hi = torch.where(self.proj_item(self.item.weight) >= 0, 1.0, -1.0)
        return hu, hi


def next_beta(beta: float, epoch: int, step: float, after: float, done: bool) -> tuple[float, bool]:
    """beta after 0-indexed epoch ``epoch``: +step after each even epoch while below 1.01; the
    first call at or above 1.01 fixes it at ``after`` (hashGNN_ml.py L62-72, L361-362)."""
    if epoch % 2 or done:
        return beta, done
    if beta < 1.01:
        return beta + step, False
    return after, True


def fit_joint_hash(model: CollaborativeHash, split: Split, *, lr: float, weight_decay: float, beta_step: float,
                   beta_after: float, epochs: int, batch_size: int, patience: int, seed: int,
                   device: str | torch.device = "cpu") -> dict[str, Any]:
    """Train MF and hash layers together on the recommendation task; keep the best-valid state."""
    device = torch.device(device)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    u, i, y = (torch.as_tensor(split.train[k].to_numpy(), dtype=torch.long if k != "label" else torch.float32)
               for k in ("user", "item", "label"))
    vu, vi = (torch.as_tensor(split.valid[k].to_numpy(), dtype=torch.long, device=device) for k in ("user", "item"))
    vy = split.valid["label"].to_numpy()
    order_gen = torch.Generator().manual_seed(seed)
    mix_gen = torch.Generator(device=device).manual_seed(seed)
    beta, annealed = 0.0, False
    best_auc, best_state, best_epoch, bad, epoch = -1.0, None, -1, 0, -1
    for epoch in range(epochs):
        model.train()
        for idx in torch.randperm(len(y), generator=order_gen).split(batch_size):
            s = model.score(u[idx].to(device), i[idx].to(device), beta, mix_gen)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(s, y[idx].to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            val = auc(vy, model.score(vu, vi).cpu().numpy())
        if val > best_auc:  # strict gain (an undefined AUC is none)
            best_auc, best_epoch, bad = val, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad += 1
        if bad >= patience or (epoch > 500 and best_auc < 0.52):  # hashGNN_ml.py L348-360
            break
        beta, annealed = next_beta(beta, epoch, beta_step, beta_after, annealed)  # L361-362
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return {"hash_valid_auc": best_auc if best_state is not None else float("nan"), "hash_best_epoch": best_epoch,
            "hash_epochs_run": epoch + 1, "hash_beta_end": beta, "hash_annealed": annealed}


class BinLLM(LLMRecommender):
    Config = BinLLMConfig
    variants = {**{e: {"encoding": e} for e in ENCODINGS},
                "frozen-mf-hash": {**FROZEN_MF, "encoding": "plain"},
                "frozen-mf-hash-dotted": {**FROZEN_MF, "encoding": "dotted"}}
    default_variant = "plain"
    description = "BinLLM: binarised MF codes written into the prompt as text"
    shares_prefix = True  # static adapters; slots filled per user / item
    build_is_seeded = False  # build trains the hashing: a saved state keeps the hash layers whole

    @classmethod
    def cf_dependencies(cls, config: BinLLMConfig) -> list[CFDependency]:
        if config.hashing == "joint":
            return []  # its MF is trained from scratch with the hash layers
        # its own run: one bit per dimension, so a CF model of width cf_dim (not the others' MF)
        return [CFDependency(config.cf_method, config.cf_variant, {"embedding_size": config.cf_dim})]

    def build(self, split: Split) -> None:
        c = self.config
        self.cf_source = None
        if c.hashing == "joint":
            self._build_joint(split)
        else:
            self._build_frozen(split)
        self.model = self.lora(self.model)

    def _build_joint(self, split: Split) -> None:
        c = self.config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.ctx.seed)
            net = CollaborativeHash(split.n_users, split.n_items, c.cf_dim)
        self.modules["hash"] = net
        lr, wd, step = c.hash_settings(split.dataset)
        if self.ctx.random_cf or self.restoring:  # shapes only, or a saved state loads the trained net
            self.hash_info = {"hash_epochs_run": 0}
        else:
            self.hash_info = fit_joint_hash(
                net, split, lr=lr, weight_decay=wd, beta_step=step, beta_after=c.beta_after, epochs=c.hash_epochs,
                batch_size=c.hash_batch_size, patience=c.hash_patience, seed=self.ctx.seed,
                device=self.bb.device if self.bb is not None else self.ctx.device)
        net.eval()
        hu, hi = net.codes()
        self.user_bits, self.item_bits = (hu > 0).cpu().numpy(), (hi > 0).cpu().numpy()

    def _build_frozen(self, split: Split) -> None:
        c = self.config
        cf = self.load_cf(split)
        if cf.user is None:
            raise BenchError(f"BinLLM hashes a user table, and {c.cf_method} ({cf.source}) has none",
                             "set cf_method to a CF method with user embeddings (mf, lightgcn, ngcf)")
        self.cf_source = cf.path
        self.modules["hash_user"] = torch.nn.Linear(c.cf_dim, c.cf_dim)
        self.modules["hash_item"] = torch.nn.Linear(c.cf_dim, c.cf_dim)
        users, items = torch.as_tensor(cf.user), torch.as_tensor(cf.item)
        self.hash_info = ({"hash_epochs_run": 0} if self.ctx.random_cf or self.restoring
                          else self._fit_hashing(split, users, items))
        with torch.no_grad():
            self.user_bits = (straight_through_sign(self.modules["hash_user"](users)) > 0).numpy()
            self.item_bits = (straight_through_sign(self.modules["hash_item"](items)) > 0).numpy()

    def _fit_hashing(self, split: Split, users: torch.Tensor, items: torch.Tensor) -> dict[str, Any]:
        """frozen-mf: the hash layers alone, over fixed CF tables."""
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
        if best[1] is not None:
            hu.load_state_dict({k[2:]: v for k, v in best[1].items() if k.startswith("u.")})
            hi.load_state_dict({k[2:]: v for k, v in best[1].items() if k.startswith("i.")})
        return {"hash_valid_auc": best[0]}

    def slot_text(self, row: Any) -> Mapping[str, str] | None:
        enc = self.config.encoding
        return {USER_SLOT: encode_bits(self.user_bits[row.user], enc), ITEM_SLOT: encode_bits(self.item_bits[row.item], enc)}

    def extra_state(self) -> dict[str, np.ndarray]:
        # the codes written into the prompts (the hash layers are in self.modules; frozen-mf's
        # codes also read the CF tables, which are not kept): saved as they were scored
        return {"user_bits": np.packbits(self.user_bits, axis=-1), "item_bits": np.packbits(self.item_bits, axis=-1),
                "bits": np.asarray(self.user_bits.shape[-1])}

    def load_extra_state(self, arrays: Mapping[str, np.ndarray]) -> None:
        n = int(arrays["bits"])
        self.user_bits, self.item_bits = (np.unpackbits(arrays[k], axis=-1, count=n).astype(bool)
                                          for k in ("user_bits", "item_bits"))

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
        # trained first, in the hashing stage: hash layers (and, joint, the MF tables)
        counts["trainable"] += sum(p.numel() for p in self.modules.parameters())
        return counts

    def artifacts(self) -> dict[str, str]:
        return {"cf_embeddings": self.cf_source} if self.cf_source else {}
