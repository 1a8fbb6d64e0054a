"""One training loop for every LLM method: AdamW, cosine schedule with warm-up, gradient
accumulation, early stopping on valid AUC with the best trainable state restored, bf16
autocast when the backbone runs in bf16 (the config's ``dtype``), NaN/inf loss stops the run
with a clear error."""
from __future__ import annotations

import dataclasses
import logging
import math
from typing import Callable, Iterable

import torch

from bench import distributed
from bench.errors import BenchError
from bench.llm.backbone import autocast

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

