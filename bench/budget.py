"""Matched parameter budgets (paper Table 4): set a method's rank / width so its trainable
parameter count matches a target (a number, or another method's count) within a tolerance.

Counting builds the method on the real backbone and split without training; a method takes a
budget only where it declares ``bench.method.BudgetMatchable``: its knobs in ``budget_knobs``
(coarse first, e.g. a rank; then a finer width).
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any

from bench.config import build_config, config_dict
from bench.errors import BenchError
from bench.method import BudgetMatchable, Countable, RunContext, SteppedBudget, supports
from bench.records import config_hash

TOLERANCE = 0.02


def trainable_count(cls: type, cfg: Any, split, ctx: RunContext, backbone) -> int:
    if not supports(cls, Countable):
        raise BenchError(f"{cls.__name__} cannot count its trainable parameters without training",
                         "use a budget target that declares bench.method.Countable (an LLM method), or a number")
    # a count depends on shapes only: random CF tables of the right width, so matching needs
    # no CF run (the target method's CF run is no dependency of the matched run)
    m = cls(cfg, dataclasses.replace(ctx, random_cf=True))
    m.prepare(split, copy.deepcopy(backbone))  # prepare() may wrap the model (peft): never share it
    return m.trainable_count()


def resolve_target(target: str | int, like: Any, split, ctx: RunContext, backbone) -> tuple[int, str]:
    """A number, or the trainable count of a registered method (default variant) built with the
    fields it shares with ``like`` (so the same backbone and LoRA settings)."""
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        return int(target), "number"
    from bench.registry import get_method

    cls = get_method(str(target))
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    shared = {k: v for k, v in dataclasses.asdict(like).items() if k in fields}
    cfg = build_config(cls.Config, cls.variant_overrides(cls.default_variant), shared)
    return trainable_count(cls, cfg, split, ctx, backbone), str(target)


def _search(cls, cfg, knob: str, target: int, split, ctx, backbone, counts: dict) -> Any:
    """The knob value whose count is closest to target (counts grow with the knob). A method may
    allow only multiples of a step (``budget_step``: e.g. a width that must split into heads)."""
    step = cls.budget_step(cfg, knob) if supports(cls, SteppedBudget) else 1

    def count(k: int) -> int:
        v = k * step
        key = (knob, v, config_hash(config_dict(cfg)))  # a config may hold dicts (cf_overrides)
        if key not in counts:
            counts[key] = trainable_count(cls, dataclasses.replace(cfg, **{knob: v}), split, ctx, backbone)
        return counts[key]

    lo, hi = 1, 1
    while count(hi) < target and hi < 1 << 14:
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # count(lo) < target <= count(hi), or the bounds
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if count(mid) < target else (lo, mid)
    best = min((lo, hi), key=lambda v: abs(count(v) - target))
    return dataclasses.replace(cfg, **{knob: best * step})


def match(cls: type, cfg: Any, target: str | int, split, ctx: RunContext, backbone=None) -> tuple[Any, dict]:
    """``cfg`` with its knobs set so the trainable count is within TOLERANCE of ``target``."""
    knobs = cls.budget_knobs if supports(cls, BudgetMatchable) else ()
    if not knobs:
        raise BenchError(f"{cls.__name__} has no budget knobs", "use `budget` only with LLM methods")
    if backbone is None:
        from bench.llm.backbone import load_backbone

        backbone = load_backbone(cfg.backbone, ctx.device, ctx.seed, cfg.dtype)
    goal, source = resolve_target(target, cfg, split, ctx, backbone)
    counts: dict = {}
    for knob in knobs:
        cfg = _search(cls, cfg, knob, goal, split, ctx, backbone, counts)
        got = trainable_count(cls, cfg, split, ctx, backbone)
        if abs(got - goal) <= TOLERANCE * goal:
            break
    if abs(got - goal) > TOLERANCE * goal:
        raise BenchError(f"{cls.__name__}: no setting of {knobs} reaches {goal:,} trainable parameters within "
                         f"{TOLERANCE:.0%} (closest {got:,})", "pick another budget target")
    info = {"target": goal, "target_from": source, "matched": got,
            "relative_error": (got - goal) / goal, "knobs": {k: getattr(cfg, k) for k in knobs}}
    return cfg, info
