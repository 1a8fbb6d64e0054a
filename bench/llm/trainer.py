"""One training loop for every LLM method: AdamW, cosine schedule with warm-up, gradient
accumulation, early stopping on valid AUC with the best trainable state restored, bf16
autocast when the backbone runs in bf16 (the config's ``dtype``), NaN/inf loss stops the run
with a clear error.

``train`` is the loop; ``StageTrainer`` drives it over a recommender's stages (its ``fit``) and
times one train and one inference step (its ``step_timings``)."""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import torch

from bench import distributed
from bench.errors import BenchError
from bench.llm.backbone import autocast, synchronize
from bench.metrics import auc

if TYPE_CHECKING:
    from bench.data.schema import Split
    from bench.llm.recommender import LLMRecommender, Stage

log = logging.getLogger("bench")


@dataclasses.dataclass(frozen=True)
class TrainSpec:
    lr: float
    weight_decay: float
    warmup_steps: int
    min_lr: float
    epochs: int
    max_steps: int  # optimiser steps; 0 = no cap
    grad_accum: int
    eval_every: int  # optimiser steps between valid evaluations (and at each epoch end)
    patience: int  # evaluations without improvement before stopping


def cosine_with_warmup(opt: torch.optim.Optimizer, warmup: int, total: int, min_ratio: float):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def train(
    params: list[torch.nn.Parameter] | list[dict],
    batches: Callable[[int], Iterable],  # epoch -> iterable of batches
    n_batches: int,
    loss_fn: Callable[[object], torch.Tensor],
    evaluate: Callable[[], float],  # valid AUC (higher is better)
    spec: TrainSpec,
    device: torch.device,
    name: str = "",
    progress: bool = True,
    dtype: torch.dtype = torch.float32,  # the backbone's: bf16 trains under autocast
    on_eval: Callable[[int, float], None] | None = None,  # (step, valid AUC) after each evaluation; may raise
) -> dict:
    """Train ``params`` in place; on return they hold the best evaluated state.

    ``params`` is a list of parameters or of AdamW param groups (e.g. a GNN group with
    ``weight_decay: 0``, i.e. plain Adam, beside the LLM's AdamW group)."""
    groups = params if params and isinstance(params[0], dict) else [{"params": list(params)}]
    params = [p for g in groups for p in g["params"]]
    if not params:
        raise BenchError(f"{name}: nothing to train", "check which parameters the stage unfreezes")
    steps_per_epoch = max(1, n_batches // spec.grad_accum)
    total = steps_per_epoch * spec.epochs
    if spec.max_steps:
        total = min(total, spec.max_steps)
    warmup = min(spec.warmup_steps, max(1, total // 10))
    opt = torch.optim.AdamW(groups, lr=spec.lr, weight_decay=spec.weight_decay)
    sched = cosine_with_warmup(opt, warmup, total, spec.min_lr / spec.lr if spec.lr else 0.0)

    best = {"auc": -1.0, "step": 0, "state": [p.detach().clone() for p in params]}
    history: list[tuple[int, float]] = []
    bad_evals, step, stop = 0, 0, False

    def maybe_eval() -> bool:
        nonlocal bad_evals
        auc = evaluate()
        history.append((step, auc))
        log.info("%s step %d/%d valid auc %.4f", name, step, total, auc)
        if on_eval is not None:  # e.g. the tuner's pruner, which stops a hopeless trial by raising
            on_eval(step, auc)
        if math.isnan(auc):
            # a one-class validation sample cannot rank: keep the latest state, never the
            # untrained one, and do not count it against patience
            log.warning("%s: valid AUC undefined at step %d (one-class validation sample); keeping the latest state",
                        name, step)
            if best["auc"] < 0 or math.isnan(best["auc"]):
                best.update(auc=float("nan"), step=step, state=[p.detach().clone() for p in params])
            return False
        if math.isnan(best["auc"]) or auc > best["auc"]:
            best.update(auc=auc, step=step, state=[p.detach().clone() for p in params])
            bad_evals = 0
        else:
            bad_evals += 1
        return bad_evals >= spec.patience

    from tqdm import tqdm

    bar = tqdm(total=total, desc=name or "train", unit="step", disable=not progress, leave=False)
    losses: list[float] = []
    for epoch in range(spec.epochs):
        opt.zero_grad(set_to_none=True)
        for i, batch in enumerate(batches(epoch)):
            with autocast(device, dtype):
                loss = loss_fn(batch)
            # the mean over ranks: every rank sees the same number, so all stop together on NaN
            loss_value = distributed.mean_scalar(float(loss.detach()))
            if not math.isfinite(loss_value):
                raise BenchError(f"{name}: loss became {loss_value} at step {step}",
                                 "lower the learning rate (or check the inputs); finished runs are kept")
            (loss / spec.grad_accum).backward()
            losses.append(loss_value)
            if (i + 1) % spec.grad_accum:
                continue
            distributed.average_gradients(params)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.4f}")
            if step % spec.eval_every == 0 and maybe_eval():
                stop = True
            if stop or (spec.max_steps and step >= spec.max_steps):
                stop = True
                break
        if stop:
            break
        if step % spec.eval_every and maybe_eval():  # epoch end, unless just evaluated
            break
    bar.close()
    if not history or history[-1][0] != step:
        maybe_eval()
    with torch.no_grad():
        for p, s in zip(params, best["state"]):
            p.copy_(s)
    # best_step counts optimiser steps: 0 is the state before any step (the untrained start; it is
    # kept only when no step ran before the evaluation, since the start itself is never a
    # candidate against an evaluated state). kept_untrained says so in words for the report.
    return {"steps": step, "best_step": best["step"], "kept_untrained": best["step"] == 0,
            "best_valid_auc": best["auc"], "valid_auc_history": history,
            "final_train_loss": (sum(losses[-20:]) / max(1, len(losses[-20:])))}



def sample_rows(df: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """A seeded sample of ``n`` rows of ``df`` (renumbered), or ``df`` itself when ``n`` is 0 or
    not below its length."""
    if not n or n >= len(df):
        return df
    return df.sample(n=n, random_state=seed).reset_index(drop=True)


def stage_parameters(stages: Sequence[Stage]) -> dict[int, torch.nn.Parameter]:
    """Every parameter some stage trains, by id (each once)."""
    return {id(p): p for st in stages for p in st.parameters()}


def bce_loss(method: LLMRecommender, batch: Any) -> torch.Tensor:
    """The training loss of the Yes-logit recommenders: BCE of the Yes logit against the label."""
    return torch.nn.functional.binary_cross_entropy_with_logits(method.forward_scores(batch), batch.labels)


class StageTrainer:
    """Trains a recommender stage after stage with ``train`` (BCE on the Yes logit), and times its
    steps. What it sets on the recommender: ``trained`` (every parameter some stage trains),
    ``prompt`` (the last finished stage's), ``fit_info``."""

    def __init__(self, method: LLMRecommender) -> None:
        self.method = method

    def _mode(self, training: bool) -> None:
        self.method.model.train(training)
        self.method.modules.train(training)

    def fit(self, split: Split) -> dict[str, Any]:
        """``prepare`` the method, then each stage: only its parameters take gradients (a frozen
        earlier LoRA costs no backward), selected on valid AUC of seeded ``valid_small`` rows with
        the stage's prompt. Returns (and keeps as ``fit_info``) the per-stage results."""
        m = self.method
        c = m.config
        m.prepare(split)
        train_rows = sample_rows(split.train, c.max_train_rows, m.ctx.seed + 1)
        valid_rows = sample_rows(split.valid_small, c.max_valid_rows, m.ctx.seed + 2)
        info: dict[str, Any] = {"train_rows": len(train_rows), "valid_rows": len(valid_rows), "stages": {}}
        bs = c.batch_size
        stages = m.stages()
        m.trained = stage_parameters(stages)
        for stage in stages:
            in_stage = {id(p) for p in stage.parameters()}
            for p in m.trained.values():
                p.requires_grad_(id(p) in in_stage)
            n_batches = -(-len(train_rows) // bs)

            def evaluate(prompt: str = stage.prompt) -> float:
                val = auc(valid_rows["label"].to_numpy(), m.scorer.score(valid_rows, prompt))
                self._mode(True)
                return val

            self._mode(True)
            info["stages"][stage.name] = train(
                stage.params,
                lambda epoch, p=stage.prompt: m.scorer.batches(train_rows, p, bs, shuffle=True, seed=m.ctx.seed * 1000 + epoch),
                n_batches, lambda batch: bce_loss(m, batch), evaluate, stage.spec, m.bb.device,
                name=f"{m.ctx.run_name}:{stage.name}", progress=m.ctx.progress, dtype=m.bb.dtype, on_eval=m.ctx.on_eval)
            m.prompt = stage.prompt
        info["setup_s"] = dict(m.setup_s)  # the runner subtracts these from the fit's wall time
        m.fit_info = info
        return info

    def step_timings(self, rows: pd.DataFrame, warmup: int, repeats: int) -> dict[str, float]:
        """Median train step (forward + backward over every trained parameter, no optimiser
        update, so nothing learnt changes) and inference step on one fixed batch of ``rows`` with
        the method's scoring prompt, synchronised on CUDA."""
        m = self.method
        c, dev = m.config, m.bb.device
        fixed = rows.head(max(c.batch_size, c.eval_batch_size)).reset_index(drop=True)
        train_batch = next(m.scorer.batches(fixed.head(c.batch_size), m.prompt, c.batch_size, shuffle=False))
        infer_batch = next(m.scorer.batches(fixed.head(c.eval_batch_size), m.prompt, c.eval_batch_size, shuffle=False))
        trained = list((m.trained or stage_parameters(m.stages())).values())
        was = [p.requires_grad for p in trained]

        def train_step() -> None:
            with autocast(dev, m.bb.dtype):
                loss = bce_loss(m, train_batch)
            loss.backward()
            for p in trained:
                p.grad = None

        def infer_step() -> None:
            with torch.inference_mode(), autocast(dev, m.bb.dtype):
                m.forward_scores(infer_batch)

        def median_time(step: Callable[[], None], training: bool) -> float:
            self._mode(training)
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
            self._mode(False)
        return out
