"""The base every LLM recommender extends: a frozen causal LM scored by the logit of " Yes" at
the last prompt position (BCE on it), trained in one or more stages.

A subclass decides only what differs between methods: which adapters exist
(``build``), what fills the prompt's ID slots (``slot_embeddings`` for soft tokens, or
``slot_text`` for text), and the training ``stages``. Scoring and batching (its ``Scorer``,
``bench.llm.scorer``), the training driver and step timing (``StageTrainer``,
``bench.llm.trainer``) and parameter counting are shared, so every method is measured the same
way.
"""
from __future__ import annotations

import dataclasses
import logging
import time
import warnings
from pathlib import Path
from typing import Any, ClassVar, Mapping

import numpy as np
import pandas as pd
import torch

from bench.config import require
from bench.data.schema import Split
from bench.llm.backbone import DTYPES, Backbone, load_backbone, synchronize, yes_logit
from bench.llm.batching import Batch
from bench.llm.cf import CFEmbeddings, cf_embeddings
from bench.llm.prompts import Encoded
from bench.llm.scorer import Scorer
from bench.llm.trainer import StageTrainer, TrainSpec, stage_parameters
from bench.method import CFDependency, Method, RunContext

log = logging.getLogger("bench")


@dataclasses.dataclass(frozen=True)
class LLMConfig:
    backbone: str = "smollm2-135m"  # local path, cached HF name, smollm2-135m (packaged) or tiny-random
    dtype: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | float32 | bfloat16
    max_len: int = 1024  # prompt tokens; only the history is truncated
    history_len: int = 10  # last N liked titles in the prompt
    batch_size: int = 8
    eval_batch_size: int = 32
    grad_accum: int = 1
    lr: float = 1e-4
    weight_decay: float = 1e-3
    warmup_steps: int = 200  # capped at 10% of the steps
    min_lr: float = 8e-5  # cosine floor (CoLLM: 8e-5)
    epochs: int = 1
    max_steps: int = 0  # optimiser steps per stage; 0 = no cap
    eval_every: int = 100  # optimiser steps between valid_small evaluations
    patience: int = 3  # evaluations without valid AUC gain before stopping
    max_train_rows: int = 0  # seeded sample of train rows (0 = all)
    max_valid_rows: int = 0  # seeded sample of valid_small for model selection (0 = all)
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    # settings laid over the CF runs this method reads (Method.cf_runs), e.g. {epochs: 10} in smoke
    cf_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)

    def validate(self) -> None:
        owner = type(self).__name__
        for name in ("max_len", "batch_size", "eval_batch_size", "grad_accum", "epochs", "eval_every",
                     "patience", "lora_r", "lora_alpha"):
            require(getattr(self, name) > 0, owner, f"{name} must be > 0", f"set {name} to a positive int")
        for name in ("max_steps", "max_train_rows", "max_valid_rows", "history_len", "warmup_steps"):
            require(getattr(self, name) >= 0, owner, f"{name} must be >= 0", f"set {name} to 0 or more")
        require(self.dtype in ("auto", *DTYPES), owner, f"dtype {self.dtype!r} is not one of auto, {', '.join(DTYPES)}",
                "set dtype to auto (bf16 on CUDA, fp32 on CPU), float32 or bfloat16")
        require(self.lr > 0, owner, "lr must be > 0", "e.g. 1e-4")
        require(0 <= self.lora_dropout < 1, owner, "lora_dropout must be in [0, 1)", "e.g. 0.05")
        require(0 <= self.min_lr <= self.lr, owner, f"min_lr {self.min_lr} must be in [0, lr]", "lower min_lr")

    def train_spec(self, **overrides: Any) -> TrainSpec:
        base = dict(lr=self.lr, weight_decay=self.weight_decay, warmup_steps=self.warmup_steps,
                    min_lr=min(self.min_lr, self.lr), epochs=self.epochs, max_steps=self.max_steps,
                    grad_accum=self.grad_accum, eval_every=self.eval_every, patience=self.patience)
        base.update(overrides)
        if base["min_lr"] > base["lr"]:
            base["min_lr"] = base["lr"]
        return TrainSpec(**base)


@dataclasses.dataclass
class Stage:
    """One training stage: which prompt, which parameters, which optimiser settings."""

    name: str
    prompt: str  # "text" | "id"
    params: list[torch.nn.Parameter] | list[dict]  # parameters, or AdamW param groups
    spec: TrainSpec

    def parameters(self) -> list[torch.nn.Parameter]:
        if self.params and isinstance(self.params[0], dict):
            return [p for g in self.params for p in g["params"]]
        return list(self.params)


class LLMRecommender(Method):
    Config = LLMConfig
    description = "LLM recommender base"
    budget_knobs: ClassVar[tuple[str, ...]] = ("lora_r",)  # what a matched budget may change
    # the paper: learning rate and weight decay grid-searched on valid AUC (AdamW; 1e-4 published)
    search_space: ClassVar[dict[str, list[Any]]] = {"lr": [1e-4, 1e-3], "weight_decay": [0.0, 1e-3, 1e-2]}
    wants_accelerator: ClassVar[bool] = True
    data_parallel: ClassVar[bool] = True
    # Scoring may run a prompt prefix that rows of one user share once, as a KV cache (see
    # bench.llm.prefix). Only where a position's output depends on nothing row-specific before
    # it but tokens and the user slot: not with per-row adapters or batch-dependent layer hooks.
    shares_prefix: ClassVar[bool] = False
    # ``build`` makes the same ``self.modules`` every time from (split, seed, config, CF runs): a
    # saved state then need not copy what training left as built. False where build itself
    # trains (BinLLM's hashing), which a restore skips.
    build_is_seeded: ClassVar[bool] = True

    def __init__(self, config: LLMConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.bb: Backbone | None = None
        self.model: Any = None  # the (possibly peft-wrapped) causal LM
        self.modules = torch.nn.ModuleDict()  # method-owned trainable parts (projectors, encoders)
        self.prompt = "text"  # prompt used for scoring after training
        self.domain = "movie"
        self.scorer = Scorer(self)  # batched Yes-logit scoring of rows with this method's prompts
        # tokenised prompts per (table, prompt): the scorer's cache, which a method's own
        # ``_encoded`` (ICL's demonstrations, TALLRec's original prompt) fills too
        self._cache = self.scorer.cache
        self.fit_info: dict[str, Any] = {}
        self.trained: dict[int, torch.nn.Parameter] = {}  # every parameter some stage trains (fit / restore)
        self.prefix_sharing = self.shares_prefix  # off: score every prompt whole (tests compare both)
        # seconds of set-up inside fit (backbone loading, CF embeddings), kept out of train time
        self.setup_s: dict[str, float] = {}
        # True while rebuilt from a saved state (``restore``): ``build`` must fit nothing of its
        # own (a hashing run, say), since what it would fit is loaded right after
        self.restoring = False
        self.as_built: dict[str, str] | None = None  # digests of self.modules' tensors after build

    # ---- hooks ------------------------------------------------------------------------
    def build(self, split: Split) -> None:
        """Create adapters / projectors on ``self.model`` and ``self.modules``."""
        raise NotImplementedError

    def stages(self) -> list[Stage]:
        raise NotImplementedError

    def slot_embeddings(self, batch: Batch) -> torch.Tensor | None:
        """(S, hidden) input embeddings for the batch's ID slots, or None (text prompts)."""
        return None

    def slot_text(self, row: Any) -> Mapping[str, str] | None:
        """Text written into the ID slots instead of soft tokens (BinLLM), or None."""
        return None

    def user_keys(self, rows: pd.DataFrame) -> np.ndarray:
        """What a ``user`` slot's node id is for each row (the user id unless a method says)."""
        return rows["user"].to_numpy()

    def before_forward(self, batch: Batch) -> None:
        """Called before each forward (e.g. to hand a layer hook this batch's slots)."""

    def extra_state(self) -> dict[str, np.ndarray]:
        """State scoring needs that is neither the LoRA adapter nor a parameter or buffer of
        ``self.modules`` (arrays by name, e.g. codes ``build`` derived): saved with the rest."""
        return {}

    def load_extra_state(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Put back what ``extra_state`` returned (called on a method rebuilt with ``restoring``)."""

    # ---- shared machinery -------------------------------------------------------------
    def load_cf(self, split: Split, dep: CFDependency | None = None) -> CFEmbeddings:
        """The embeddings of a CF dependency this method declared (by default its only one), so
        what the planner ran first and what is loaded here are the same run by construction.
        Timed as set-up: under a suite this only reads a file; called directly it may train."""
        if dep is None:
            deps = self.cf_runs(self.config)
            if len(deps) != 1:
                raise ValueError(f"{type(self).__name__} declares {len(deps)} CF dependencies: name the one to load")
            dep = deps[0]
        t0 = time.perf_counter()
        # restoring a trained run reads the embeddings it used: never trains other ones
        emb = cf_embeddings(split, dep.method, dep.variant, self.ctx.seed, self.ctx.device, dep.overrides,
                            train_if_missing=not self.restoring, random=self.ctx.random_cf)
        self.setup_s["cf_embeddings"] = self.setup_s.get("cf_embeddings", 0.0) + time.perf_counter() - t0
        return emb

    def lora(self, model: Any, layers: list[int] | None = None) -> Any:
        from peft import LoraConfig, get_peft_model

        c = self.config
        cfg = LoraConfig(r=c.lora_r, lora_alpha=c.lora_alpha, lora_dropout=c.lora_dropout,
                         target_modules=list(c.lora_targets), layers_to_transform=layers, bias="none")
        with warnings.catch_warnings():
            # peft (0.21) reads transformers' deprecated `model.is_gradient_checkpointing` while wrapping
            # (PeftModel.__init__); transformers 5 warns once per wrapped model. Nothing of ours calls it.
            warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated",
                                    category=FutureWarning)
            return get_peft_model(model, cfg)

    def lora_parameters(self) -> list[torch.nn.Parameter]:
        return [p for n, p in self.model.named_parameters() if "lora_" in n]

    def encode(self, rows: pd.DataFrame, prompt: str) -> list[Encoded]:
        """This method's tokenised prompts of ``rows`` (what its scorer runs)."""
        return self._encoded(rows, prompt)

    def _encoded(self, rows: pd.DataFrame, prompt: str) -> list[Encoded]:
        """Hook: the template's prompts (``Scorer.tokenize``, cached per table) unless a method
        writes its own (cached in ``self._cache`` by ``(id(rows), prompt)`` with the table)."""
        return self.scorer.tokenize(rows, prompt)

    def forward_scores(self, batch: Batch, **model_kwargs: Any) -> torch.Tensor:
        """Yes-logit at the last position: its hidden state times the Yes row of the output
        projection, so the vocabulary projection never runs (HF's head on a last-position slice
        even copied the whole weight once per row in bf16 on CPU)."""
        hidden = self.decoder_outputs(batch, **model_kwargs).last_hidden_state[:, -1]
        return yes_logit(self.model, hidden, self.bb.yes_id)

    def decoder_outputs(self, batch: Batch, attention_mask: torch.Tensor | None = None, **model_kwargs: Any) -> Any:
        """The decoder stack's outputs on ``batch`` (soft tokens written into its ID slots;
        ``before_forward`` called first); ``model_kwargs`` go to the decoder (e.g. a KV cache)."""
        self.before_forward(batch)
        embeds = self.model.get_input_embeddings()(batch.input_ids)
        soft = self.slot_embeddings(batch)
        if soft is not None:
            embeds = embeds.index_put((batch.slot_rows, batch.slot_cols), soft.to(embeds.dtype))
        model_kwargs.setdefault("use_cache", False)
        # the decoder stack only (adapters live inside it); forward_scores applies the head
        return self.model.get_decoder()(inputs_embeds=embeds, position_ids=batch.position_ids,
                                        attention_mask=batch.attention_mask if attention_mask is None else attention_mask,
                                        **model_kwargs)

    # ---- Method contract ----------------------------------------------------------------
    def prepare(self, split: Split, backbone: Backbone | None = None) -> None:
        """Load the backbone (or reuse one) and build the method's parts, without training."""
        torch.manual_seed(self.ctx.seed)
        np.random.seed(self.ctx.seed)
        self.domain = split.domain
        self.setup_s = {}
        if backbone is None:
            t0 = time.perf_counter()
            backbone = load_backbone(self.config.backbone, self.ctx.device, self.ctx.seed, self.config.dtype)
            synchronize(backbone.device)  # weights still being copied to the GPU are loading time too
            self.setup_s["backbone_load"] = time.perf_counter() - t0
        self.bb = backbone
        self.model = self.bb.model
        self.build(split)
        self.modules.to(self.bb.device)
        if not self.restoring and self.build_is_seeded:  # a state need not copy what training left as built
            from bench.llm import saved

            self.as_built = saved.digests(self.modules) if saved.enabled() else None
        stages = self.stages()
        if stages:  # prepared but untrained (step timings): score with the prompt training ends on
            self.prompt = stages[-1].prompt

    def fit(self, split: Split) -> dict[str, Any]:
        """Prepare, then train the ``stages`` one after another (``StageTrainer.fit``)."""
        return StageTrainer(self).fit(split)

    def score(self, rows: pd.DataFrame) -> np.ndarray:
        return self.scorer.score(rows, self.prompt)

    def save_state(self, directory: Path) -> Path | None:
        """The trained state (LoRA adapter in peft's format, ``self.modules``, ``extra_state``)
        under ``directory`` (see ``bench.llm.saved``); None when RECBENCH_SAVE_STATE says not to
        (0, or a state over its size limit: 64 MB unless set)."""
        from bench.llm import saved

        return saved.save(self, directory)

    def restore(self, split: Split, directory: Path, backbone: Backbone | None = None) -> None:
        """Build the method as ``fit`` does, without training, and load the state saved in
        ``directory``: it then scores as the run that saved it did."""
        from bench.llm import saved

        manifest = saved.read_manifest(directory)
        self.restoring = True
        try:
            self.prepare(split, backbone)
        finally:
            self.restoring = False
        self.trained = stage_parameters(self.stages())
        saved.load(self, directory, manifest)
        self.model.eval()
        self.modules.eval()

    def step_timings(self, rows: pd.DataFrame, warmup: int, repeats: int) -> dict[str, float]:
        """Median train and inference step on one fixed batch (``StageTrainer.step_timings``)."""
        return StageTrainer(self).step_timings(rows, warmup, repeats)

    def trainable_count(self) -> int:
        """Parameters the stages will train (after ``prepare``, before any training)."""
        return int(sum(p.numel() for p in stage_parameters(self.stages()).values()))

    def param_counts(self) -> dict[str, int]:
        """``trainable``: every parameter some stage trained (a later stage may freeze it again)."""
        params = {id(p): p for p in list(self.model.parameters()) + list(self.modules.parameters())}
        trained = self.trained or {i: p for i, p in params.items() if p.requires_grad}
        return {"trainable": int(sum(p.numel() for p in trained.values())),
                "total": int(sum(p.numel() for p in params.values()))}
