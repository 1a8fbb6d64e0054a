"""CoRA (Liu et al., AAAI 2025) as published in ``VanillaCreamer/CoRA``: collaborative query ->
per-sample LoRA.

A BLIP-2-style Q-Former (transformers' ``Blip2QFormerModel``: 8 BERT layers, 8 heads, width
2 x CF dim, cross-attention in every layer) lets 4 learned queries read ONE memory token, the
frozen user and item CF vectors concatenated (no input projection). ``Linear(width -> H*r)`` of
the query outputs, averaged over the queries and L2-normalised over the whole ``H*r`` vector,
is reshaped to one ``H x r`` matrix per sample: the LoRA "A" shared by q, k, v, o of EVERY
layer. Each adapted module keeps its own zero-initialised "B" (r -> out), scaled by alpha / r,
and reads its input through dropout 0.05 (``lora_dropout``). Text-only prompt, frozen CF (all
256-d), lr 1e-3. r / alpha: ML-1M 16/32 with MF, 64/128 with LightGCN and SASRec; Amazon-Book
16/32 with every CF model.

Variant ``decoder``: the generator this benchmark used before (a 2-layer, 256-wide
``nn.TransformerDecoder`` over two projected CF tokens, A normalised per column, no input
dropout, lr 1e-4, the CF runs' own widths).

The per-sample A is not a standard LoRA (peft has no per-sample weights), so it is applied by
forward hooks on the frozen linear layers rather than through peft.

Parameter counts: ``trainable`` counts what the forward uses. The published code also holds,
with ``requires_grad``, a BERT's word and position embeddings and a text feed-forward per
layer that a query-only Q-Former never runs; the paper's Table 6 counts them (7.635 x LoRA-only
at Vicuna-7B), so ``param_counts`` reports that count too, as ``trainable_as_published``.
(Of the live ones, the cross-attention query and key projections get exactly zero gradient:
softmax over ONE memory token is constant. They are the published design, so they stay and
count as live.)
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from bench.config import require
from bench.data.schema import Split
from bench.llm.batching import Batch
from bench.llm.recommender import LLMConfig, LLMRecommender, Stage
from bench.method import CFDependency

_LAYER = re.compile(r"\.layers\.(\d+)\.")
GENERATORS = ("qformer", "decoder")
A_NORMS = ("vector", "column")


@dataclasses.dataclass(frozen=True)
class CoRAConfig(LLMConfig):
    cf_method: str = "mf"
    cf_variant: str = "bce"
    cf_dim: int = 256  # CF width CoRA trains its CF models at (all 256-d); 0: the CF variant's own
    # rank / scale of the per-sample LoRA (CoRA's ML-1M configs: 16/32 with MF, 64/128 otherwise)
    cora_r: int = 16
    cora_alpha: int = 32
    # CoRA's Amazon-Book configs use 16/32 whatever the CF model: on a split of one of these
    # source datasets book_r / book_alpha replace cora_r / cora_alpha
    book_datasets: tuple[str, ...] = ("amazon-book",)
    book_r: int = 16
    book_alpha: int = 32
    generator: str = "qformer"  # qformer (published) | decoder (this benchmark's earlier generator)
    n_queries: int = 4
    qformer_dim: int = 0  # generator width; 0: 2 x CF dim, as published (the budget matcher's coarse knob)
    qformer_layers: int = 8
    qformer_heads: int = 8
    qformer_ffn: int = 3072  # feed-forward width (BERT-base's; the budget matcher's fine knob)
    qformer_dropout: float = 0.1  # hidden and attention dropout (BERT's)
    a_norm: str = "vector"  # vector: unit L2 norm of the whole H*r vector (published) | column: each of the r columns
    cora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    lr: float = 1e-3
    # lora_dropout (0.05) is the dropout on each adapted module's input before A, as published

    def validate(self) -> None:
        super().validate()
        owner = "CoRAConfig"
        for name in ("cora_r", "cora_alpha", "book_r", "book_alpha", "n_queries", "qformer_layers", "qformer_heads",
                     "qformer_ffn"):
            require(getattr(self, name) > 0, owner, f"{name} must be > 0", f"set {name} to a positive int")
        for name in ("cf_dim", "qformer_dim"):
            require(getattr(self, name) >= 0, owner, f"{name} must be >= 0", f"set {name} to 0 (the default rule) or more")
        require(self.generator in GENERATORS, owner, f"generator {self.generator!r} is unknown", f"use one of {GENERATORS}")
        require(self.a_norm in A_NORMS, owner, f"a_norm {self.a_norm!r} is unknown", f"use one of {A_NORMS}")
        require(0 <= self.qformer_dropout < 1, owner, "qformer_dropout must be in [0, 1)", "e.g. 0.1")
        width = self.qformer_dim or 2 * self.cf_dim
        require(width == 0 or width % self.qformer_heads == 0, owner,
                f"the generator width {width} must be divisible by qformer_heads {self.qformer_heads}",
                "change qformer_dim (or cf_dim) or qformer_heads")

    def rank(self, dataset: str) -> tuple[int, int]:
        """(r, alpha) on a split of this source dataset."""
        return (self.book_r, self.book_alpha) if dataset in self.book_datasets else (self.cora_r, self.cora_alpha)


class QFormerGenerator(nn.Module):
    """The published generator: learned queries read the [user; item] token through a Q-Former."""

    def __init__(self, memory_dim: int, out_dim: int, c: CoRAConfig) -> None:
        from transformers import Blip2QFormerConfig, Blip2QFormerModel

        super().__init__()
        width = c.qformer_dim or memory_dim
        # cross-attention reads the memory token at its own width (encoder_hidden_size): the
        # published code has no input projection, and a narrower matched-budget Q-Former needs none
        self.config = Blip2QFormerConfig(
            hidden_size=width, num_hidden_layers=c.qformer_layers, num_attention_heads=c.qformer_heads,
            intermediate_size=c.qformer_ffn, hidden_act="gelu", hidden_dropout_prob=c.qformer_dropout,
            attention_probs_dropout_prob=c.qformer_dropout, cross_attention_frequency=1,
            encoder_hidden_size=memory_dim, use_qformer_text_input=False)
        self.qformer = Blip2QFormerModel(self.config)
        self.queries = nn.Parameter(torch.randn(1, c.n_queries, width) * 0.02)
        self.final = nn.Linear(width, out_dim)  # PyTorch's default init: kaiming-uniform a=sqrt(5), as published

    def forward(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        memory = torch.cat([user, item], -1).unsqueeze(1)  # (B, 1, 2 x cf dim): ONE token
        queries = self.queries.expand(len(user), -1, -1)
        out = self.qformer(query_embeds=queries, encoder_hidden_states=memory).last_hidden_state
        return self.final(out).mean(1)  # (B, H*r)

    def unused_as_published(self) -> int:
        """Parameters the published generator holds with ``requires_grad`` but never runs: its
        ``BertModel`` has word and position embeddings (the queries bypass them) and, in every
        layer, a text feed-forward (dense in, dense out, LayerNorm) that only text tokens use."""
        d, f, n = self.config.hidden_size, self.config.intermediate_size, self.config.num_hidden_layers
        embeddings = (self.config.vocab_size + self.config.max_position_embeddings) * d
        text_ffn = n * ((d * f + f) + (f * d + d) + 2 * d)
        return embeddings + text_ffn


class DecoderGenerator(nn.Module):
    """This benchmark's earlier generator: learned queries cross-attend to the user and item CF
    vectors as two projected tokens (plus a token-type vector) in an ``nn.TransformerDecoder``."""

    def __init__(self, cf_dim: int, out_dim: int, c: CoRAConfig) -> None:
        super().__init__()
        width = c.qformer_dim or 2 * cf_dim
        self.inp = nn.Linear(cf_dim, width)
        self.side = nn.Parameter(torch.zeros(2, width))  # user / item token type
        self.queries = nn.Parameter(torch.randn(c.n_queries, width) * 0.02)
        layer = nn.TransformerDecoderLayer(width, c.qformer_heads, dim_feedforward=c.qformer_ffn,
                                           dropout=c.qformer_dropout, batch_first=True)
        self.decoder = nn.TransformerDecoder(layer, c.qformer_layers)
        self.out = nn.Linear(width, out_dim)

    def forward(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        mem = self.inp(torch.stack([user, item], 1)) + self.side  # (B, 2, width)
        q = self.queries.expand(len(user), -1, -1)
        return self.out(self.decoder(q, mem)).mean(1)  # (B, H*r)

    def unused_as_published(self) -> int:
        return 0  # no published counterpart holds more than it uses


class CoRA(LLMRecommender):
    Config = CoRAConfig
    description = "CoRA: Q-Former -> per-sample LoRA A for q,k,v,o in every layer"
    # the generator's width, then its feed-forward width: at GraphLoRA's budget the published
    # 512-wide Q-Former must shrink (its attention alone outweighs GraphLoRA); r stays published
    budget_knobs = ("qformer_dim", "qformer_ffn")
    variants: ClassVar[dict[str, dict[str, Any]]] = {
        "default": {},
        "decoder": {"generator": "decoder", "a_norm": "column", "cf_dim": 0, "qformer_dim": 256, "qformer_layers": 2,
                    "qformer_heads": 4, "qformer_ffn": 512, "qformer_dropout": 0.0, "lora_dropout": 0.0, "lr": 1e-4},
    }

    @classmethod
    def cf_dependencies(cls, config: CoRAConfig) -> list[CFDependency]:
        return [CFDependency(config.cf_method, config.cf_variant,
                             {"embedding_size": config.cf_dim} if config.cf_dim else {})]

    @classmethod
    def budget_step(cls, config: CoRAConfig, knob: str) -> int:
        """The width must split into the attention heads: the matcher tries its multiples only."""
        return config.qformer_heads if knob == "qformer_dim" else 1

    def build(self, split: Split) -> None:
        c = self.config
        cf = self.load_cf(split)
        self.cf_source = cf.path
        users, self._user_index = cf.user_table()
        self.modules.register_buffer("cf_user", torch.as_tensor(users), persistent=False)
        self.modules.register_buffer("cf_item", torch.as_tensor(cf.item), persistent=False)
        hidden = self.bb.hidden_size
        self.r, self.alpha = c.rank(split.dataset)
        self.hidden = hidden
        if c.generator == "qformer":
            self.modules["generator"] = QFormerGenerator(2 * cf.dim, hidden * self.r, c)
        else:
            self.modules["generator"] = DecoderGenerator(cf.dim, hidden * self.r, c)
        self.modules["input_dropout"] = nn.Dropout(c.lora_dropout)
        self.modules["B"] = nn.ParameterDict()
        self.scaling = self.alpha / self.r
        self._A: torch.Tensor | None = None
        for name, mod in self.model.named_modules():
            short = name.split(".")[-1]
            if short in c.cora_targets and isinstance(mod, nn.Linear) and _LAYER.search(name):
                if mod.in_features != hidden:
                    raise ValueError(f"CoRA's shared A needs {name} to read the hidden size ({mod.in_features} != {hidden})")
                key = name.replace(".", "_")
                self.modules["B"][key] = nn.Parameter(torch.zeros(mod.out_features, self.r))
                mod.register_forward_hook(self._hook(key))

    def sample_A(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        """(B, H, r): each sample's A, from its user and item CF vectors."""
        flat = self.modules["generator"](user, item)
        if self.config.a_norm == "vector":  # one unit norm per sample, as published
            return nn.functional.normalize(flat, dim=-1).view(len(flat), self.hidden, self.r)
        # each of the r columns unit norm: sqrt(r) times the published A's size
        return nn.functional.normalize(flat.view(len(flat), self.hidden, self.r), dim=1)

    def _hook(self, key: str) -> Callable[..., torch.Tensor]:
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> torch.Tensor:
            if self._A is None:
                return out
            x = self.modules["input_dropout"](inputs[0])
            low = torch.einsum("bth,bhr->btr", x, self._A.to(x.dtype))
            return out + self.scaling * (low @ self.modules["B"][key].to(x.dtype).T)

        return hook

    def user_keys(self, rows):
        return self._user_index(rows)

    def before_forward(self, batch: Batch) -> None:
        # once per forward: every adapted module of every layer reads the same A
        self._A = self.sample_A(self.modules.cf_user[batch.users], self.modules.cf_item[batch.items])

    def stages(self) -> list[Stage]:
        params = list(self.modules["generator"].parameters()) + list(self.modules["B"].parameters())
        return [Stage("cora", "text", params, self.config.train_spec())]

    def fit(self, split: Split) -> dict[str, Any]:
        info = super().fit(split)
        info["rank"] = {"r": self.r, "alpha": self.alpha}  # after the dataset rule (Amazon-Book: 16/32)
        return info

    def param_counts(self) -> dict[str, int]:
        counts = super().param_counts()
        counts["trainable_as_published"] = counts["trainable"] + self.modules["generator"].unused_as_published()
        return counts

    def artifacts(self) -> dict[str, str]:
        return {"cf_embeddings": self.cf_source}


@dataclasses.dataclass(frozen=True)
class CoRALightGCNConfig(CoRAConfig):
    cf_method: str = "lightgcn"
    cora_r: int = 64
    cora_alpha: int = 128


@dataclasses.dataclass(frozen=True)
class CoRASASRecConfig(CoRALightGCNConfig):
    cf_method: str = "sasrec"


class CoRAMF(CoRA):
    description = "CoRA with frozen MF embeddings (r=16)"


class CoRALightGCN(CoRA):
    Config = CoRALightGCNConfig
    description = "CoRA with frozen LightGCN embeddings (r=64 on ML-1M, 16 on Amazon-Book)"


class CoRASASRec(CoRA):
    Config = CoRASASRecConfig
    description = "CoRA with frozen SASRec embeddings (r=64 on ML-1M, 16 on Amazon-Book)"
