"""The base every LLM recommender extends: a frozen causal LM scored by the logit of " Yes" at
the last prompt position (BCE on it), trained in one or more stages.

A subclass decides only what differs between methods: which adapters exist
(``build``), what fills the prompt's ID slots (``slot_embeddings`` for soft tokens, or
``slot_text`` for text), and the training ``stages``. Scoring, batching, timing and parameter
counting are shared, so every method is measured the same way.
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

from bench import distributed
from bench.config import require
from bench.data.schema import Split
from bench.llm.backbone import DTYPES, Backbone, autocast, kv_cache_keyword, load_backbone, synchronize, yes_logit
from bench.llm.batching import Batch, bucketed, collate
from bench.llm.cf import CFEmbeddings, cf_embeddings
from bench.llm.prompts import Encoded, PromptBuilder
from bench.llm.trainer import TrainSpec, train
from bench.method import CFDependency, Method, RunContext
from bench.metrics import auc

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
        self._cache: dict[tuple[int, str], tuple[pd.DataFrame, list[Encoded]]] = {}
        self.fit_info: dict[str, Any] = {}
        self.prefix_sharing = self.shares_prefix  # off: score every prompt whole (tests compare both)
        # seconds of set-up inside fit (backbone loading, CF embeddings), kept out of train time
        self.setup_s: dict[str, float] = {}
        # True while rebuilt from a saved state (``restore``): ``build`` must fit nothing of its
        # own (a hashing run, say), since what it would fit is loaded right after
        self.restoring = False
        self._as_built: dict[str, str] | None = None  # digests of self.modules' tensors after build

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

    def _encoded(self, rows: pd.DataFrame, prompt: str) -> list[Encoded]:
        """Tokenised prompts of a table, cached per table object (the entry holds the table, so
        its id cannot be reused by another frame while cached)."""
        key = (id(rows), prompt)
        hit = self._cache.get(key)
        if hit is None or hit[0] is not rows:
            pb = PromptBuilder(self.bb.tokenizer, prompt, self.domain, self.config.history_len, self.config.max_len)
            disliked = rows["disliked_titles"] if "disliked_titles" in rows else [None] * len(rows)
            hit = (rows, [pb.encode(h, t, self.slot_text(r), d) for r, h, t, d in
                          zip(rows.itertuples(index=False), rows["history_titles"], rows["title"], disliked)])
            self._cache[key] = hit
        return hit[1]

    def _batches(self, rows: pd.DataFrame, prompt: str, batch_size: int, shuffle: bool, seed: int = 0,
                 subset: np.ndarray | None = None):
        """Length-bucketed batches over ``rows`` (or its ``subset`` of row indices). Under data
        parallelism a training batch is the global batch: each rank keeps its strided share, and a
        final batch too small to give every rank a row is dropped by all ranks alike."""
        enc = self._encoded(rows, prompt)
        users, items, labels = self.user_keys(rows), rows["item"].to_numpy(), rows["label"].to_numpy()
        pad = self.bb.tokenizer.pad_token_id
        rng = np.random.default_rng(seed)
        pick = np.arange(len(enc)) if subset is None else np.asarray(subset)
        world = distributed.world_size()
        for pos in bucketed([len(enc[i].input_ids) for i in pick], batch_size, shuffle, rng):
            idx = pick[pos]
            if shuffle and world > 1:
                if len(idx) < world:
                    continue
                idx = distributed.shard(idx)
            yield collate([enc[i] for i in idx], idx, users[idx], items[idx], labels[idx], pad).to(self.bb.device)

    def forward_scores(self, batch: Batch, **model_kwargs: Any) -> torch.Tensor:
        """Yes-logit at the last position: its hidden state times the Yes row of the output
        projection, so the vocabulary projection never runs (HF's head on a last-position slice
        even copied the whole weight once per row in bf16 on CPU)."""
        hidden = self._forward(batch, **model_kwargs).last_hidden_state[:, -1]
        return yes_logit(self.model, hidden, self.bb.yes_id)

    def _forward(self, batch: Batch, attention_mask: torch.Tensor | None = None, **model_kwargs: Any) -> Any:
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

    def _score_rows(self, rows: pd.DataFrame, prompt: str) -> np.ndarray:
        # each rank scores its strided share; the gather puts every row back exactly once
        mine = distributed.shard(np.arange(len(rows)))
        done, scores = [], []
        self.model.eval()
        self.modules.eval()
        with torch.inference_mode(), autocast(self.bb.device, self.bb.dtype):
            whole = mine
            if self.prefix_sharing:
                whole = self._score_shared(rows, prompt, mine, done, scores)
            for batch in self._batches(rows, prompt, self.config.eval_batch_size, shuffle=False, subset=whole):
                done.append(batch.rows)
                scores.append(self.forward_scores(batch).float().cpu().numpy())
        return distributed.gather_rows(len(rows), np.concatenate(done) if done else np.empty(0, dtype=np.int64),
                                       np.concatenate(scores) if scores else np.empty(0))

    def _score_shared(self, rows: pd.DataFrame, prompt: str, subset: np.ndarray, done: list, scores: list) -> np.ndarray:
        """Score the rows of ``subset`` that share a prompt prefix with another row: each group's
        prefix runs once (left-padded, cached), then its rows run their own tokens against that
        cache. Returns the rows left to score whole."""
        from bench.llm.prefix import plan, split_encoded

        enc = self._encoded(rows, prompt)
        users, items, labels = self.user_keys(rows), rows["item"].to_numpy(), rows["label"].to_numpy()
        groups, singles = plan(enc, users, subset)
        pad, dev, kv = self.bb.tokenizer.pad_token_id, self.bb.device, kv_cache_keyword(self.model.get_decoder())
        # batches of whole groups, up to eval_batch_size rows each, similar suffix lengths together
        groups.sort(key=lambda g: max(len(enc[i].input_ids) - g.shared for i in g.rows))
        todo: list[list] = [[]]
        n_rows = 0  # rows in todo[-1]
        for g in groups:
            if todo[-1] and n_rows + len(g.rows) > self.config.eval_batch_size:
                todo.append([])
                n_rows = 0
            todo[-1].append(g)
            n_rows += len(g.rows)
        for chunk in filter(None, todo):
            lead = np.asarray([g.rows[0] for g in chunk])
            heads = [split_encoded(enc[g.rows[0]], g.shared)[0] for g in chunk]
            head = collate(heads, lead, users[lead], items[lead], labels[lead], pad).to(dev)
            cache = self._forward(head, use_cache=True)[kv]
            member = np.concatenate([g.rows for g in chunk])
            owner = torch.as_tensor(np.repeat(np.arange(len(chunk)), [len(g.rows) for g in chunk]), device=dev)
            cache.reorder_cache(owner)  # one copy of its group's prefix per row
            starts = np.repeat([g.shared for g in chunk], [len(g.rows) for g in chunk])
            tail = collate([split_encoded(enc[i], at)[1] for i, at in zip(member, starts)], member, users[member],
                           items[member], labels[member], pad).to(dev)
            tail.position_ids = (tail.position_ids + torch.as_tensor(starts, device=dev)[:, None]) * tail.attention_mask
            mask = torch.cat([head.attention_mask[owner], tail.attention_mask], dim=1)
            done.append(member)
            scores.append(self.forward_scores(tail, attention_mask=mask, **{kv: cache}).float().cpu().numpy())
        return singles

    def _sample(self, df: pd.DataFrame, n: int, salt: int) -> pd.DataFrame:
        if not n or n >= len(df):
            return df
        return df.sample(n=n, random_state=self.ctx.seed + salt).reset_index(drop=True)

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

            self._as_built = saved.digests(self.modules) if saved.enabled() else None
        stages = self.stages()
        if stages:  # prepared but untrained (step timings): score with the prompt training ends on
            self.prompt = stages[-1].prompt

    def fit(self, split: Split) -> dict[str, Any]:
        self.prepare(split)
        train_rows = self._sample(split.train, self.config.max_train_rows, 1)
        valid_rows = self._sample(split.valid_small, self.config.max_valid_rows, 2)
        info: dict[str, Any] = {"train_rows": len(train_rows), "valid_rows": len(valid_rows), "stages": {}}
        bs = self.config.batch_size
        stages = self.stages()
        self._trained = self._stage_parameters(stages)
        for stage in stages:
            # only this stage's parameters take gradients (a frozen stage-1 LoRA costs no backward)
            in_stage = {id(p) for p in stage.parameters()}
            for p in self._trained.values():
                p.requires_grad_(id(p) in in_stage)
            n_batches = -(-len(train_rows) // bs)

            def loss_fn(batch: Batch) -> torch.Tensor:
                return torch.nn.functional.binary_cross_entropy_with_logits(self.forward_scores(batch), batch.labels)

            def evaluate(prompt: str = stage.prompt) -> float:
                val = auc(valid_rows["label"].to_numpy(), self._score_rows(valid_rows, prompt))
                self.model.train()
                self.modules.train()
                return val

            self.model.train()
            self.modules.train()
            info["stages"][stage.name] = train(
                stage.params,
                lambda epoch, p=stage.prompt: self._batches(train_rows, p, bs, shuffle=True, seed=self.ctx.seed * 1000 + epoch),
                n_batches, loss_fn, evaluate, stage.spec, self.bb.device, name=f"{self.ctx.run_name}:{stage.name}",
                progress=self.ctx.progress, dtype=self.bb.dtype, on_eval=self.ctx.on_eval)
            self.prompt = stage.prompt
        info["setup_s"] = dict(self.setup_s)  # the runner subtracts these from the fit's wall time
        self.fit_info = info
        return info

    def score(self, rows: pd.DataFrame) -> np.ndarray:
        return self._score_rows(rows, self.prompt)

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
        self._trained = self._stage_parameters(self.stages())
        saved.load(self, directory, manifest)
        self.model.eval()
        self.modules.eval()

    def step_timings(self, rows: pd.DataFrame, warmup: int, repeats: int) -> dict[str, float]:
        """Median train step (forward + backward over every trained parameter, no optimiser update,
        so nothing learnt changes) and inference step on one fixed batch, synchronised on CUDA."""
        dev = self.bb.device
        fixed = rows.head(max(self.config.batch_size, self.config.eval_batch_size)).reset_index(drop=True)
        train_batch = next(self._batches(fixed.head(self.config.batch_size), self.prompt, self.config.batch_size, shuffle=False))
        infer_batch = next(self._batches(fixed.head(self.config.eval_batch_size), self.prompt,
                                         self.config.eval_batch_size, shuffle=False))
        trained = list((getattr(self, "_trained", None) or self._stage_parameters(self.stages())).values())
        was = [p.requires_grad for p in trained]

        def train_step() -> None:
            with autocast(dev, self.bb.dtype):
                loss = torch.nn.functional.binary_cross_entropy_with_logits(self.forward_scores(train_batch), train_batch.labels)
            loss.backward()
            for p in trained:
                p.grad = None

        def infer_step() -> None:
            with torch.inference_mode(), autocast(dev, self.bb.dtype):
                self.forward_scores(infer_batch)

        def median_time(step, train: bool) -> float:
            self.model.train(train)
            self.modules.train(train)
            times = []
            for i in range(warmup + repeats):
                synchronize(dev)
                t0 = time.perf_counter()
                step()
                synchronize(dev)
                if i >= warmup:
                    times.append(time.perf_counter() - t0)
            return float(np.median(times))

        try:
            for p in trained:
                p.requires_grad_(True)
            out = {"train_step_s": median_time(train_step, True), "infer_step_s": median_time(infer_step, False),
                   "step_batch": int(len(train_batch.labels)), "infer_batch": int(len(infer_batch.labels)),
                   "step_warmup": warmup, "step_repeats": repeats}
        finally:
            for p, w in zip(trained, was):
                p.requires_grad_(w)
            self.model.eval()
            self.modules.eval()
        return out

    @staticmethod
    def _stage_parameters(stages: list[Stage]) -> dict[int, torch.nn.Parameter]:
        return {id(p): p for st in stages for p in st.parameters()}

    def trainable_count(self) -> int:
        """Parameters the stages will train (after ``prepare``, before any training)."""
        return int(sum(p.numel() for p in self._stage_parameters(self.stages()).values()))

    def param_counts(self) -> dict[str, int]:
        """``trainable``: every parameter some stage trained (a later stage may freeze it again)."""
        params = {id(p): p for p in list(self.model.parameters()) + list(self.modules.parameters())}
        trained = getattr(self, "_trained", None) or {i: p for i, p in params.items() if p.requires_grad}
        return {"trainable": int(sum(p.numel() for p in trained.values())),
                "total": int(sum(p.numel() for p in params.values()))}
