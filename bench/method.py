"""The contract every method (CF baseline or LLM recommender) implements.

A method is a class with a frozen ``Config`` dataclass (every field a default), a table of
named ``variants`` (config overrides, never flags the harness reads), and four calls. The
harness owns splits, metrics, timing and records; a method only fits and scores.

Beyond that contract a method may offer optional capabilities (``CAPABILITIES``: typed
protocols below). It declares one by defining every member of its protocol, and the harness
asks ``supports(cls, capability)``, never ``hasattr``, before it relies on one.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Protocol

import numpy as np
import pandas as pd

from bench.data.schema import Split

if TYPE_CHECKING:  # torch stays out of this module
    from bench.llm.backbone import Backbone


@dataclasses.dataclass
class RunContext:
    """What the harness hands a method: where to work, which seed and device, where artifacts go."""

    dataset: str
    seed: int
    device: str
    work_dir: Path  # scratch space, deleted after the run
    artifact_dir: Path  # persistent cache (embeddings other methods reuse)
    split_fingerprint: str
    run_name: str = ""
    progress: bool = True
    # CF embeddings are seeded random tables of the CF model's shape, not a CF run's: for
    # measurements where values do not matter (parameter counts, step times), so no CF run (nor
    # RecBole) is needed. Said here, per run, rather than by a process-wide switch.
    random_cf: bool = False
    # called after each evaluation on valid during ``fit`` with (step, valid AUC), step being the
    # method's own unit (epochs, optimiser steps). It may raise to stop the fit: the tuner's
    # pruner stops a hopeless trial this way (``bench.tuning``). None: nobody listens.
    on_eval: Callable[[int, float], None] | None = None
    # False in a tuning trial: what only later runs read (a CF model's exported embeddings) is
    # not written, as nothing reads a trial's artifacts (SASRec's per-row export costs 20 s at d = 256)
    export_artifacts: bool = True
    log: logging.Logger = dataclasses.field(default_factory=lambda: logging.getLogger("bench"))


@dataclasses.dataclass(frozen=True)
class CFDependency:
    """A CF run a method needs before it can fit (its embeddings): the registered CF method, the
    variant and config overrides on top of it. The planner runs it first as an ordinary run."""

    method: str
    variant: str
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)


class Method:
    Config: ClassVar[type]
    variants: ClassVar[dict[str, dict[str, Any]]] = {"default": {}}
    default_variant: ClassVar[str] = "default"
    description: ClassVar[str] = ""
    wants_accelerator: ClassVar[bool] = False  # the Ray executor gives such runs a GPU when it has one
    # under torchrun / accelerate: train on every rank with split batches (else rank 0 runs it alone)
    data_parallel: ClassVar[bool] = False
    # the variant whose training the underlying library's own entry point reproduces (None: the
    # method has no such reference, so the overhead benchmark skips it)
    reference_variant: ClassVar[str | None] = None
    # config field -> the values ``python -m bench tune`` searches (the published grids where a
    # paper gives one); a suite's ``tuning.spaces`` replaces or adds fields. Empty: not tunable.
    search_space: ClassVar[dict[str, list[Any]]] = {}

    def __init__(self, config: Any, ctx: RunContext) -> None:
        self.config = config
        self.ctx = ctx

    @classmethod
    def variant_overrides(cls, name: str) -> dict[str, Any]:
        """Config overrides of the named variant (a method may add parametric names)."""
        if name not in cls.variants:
            from bench.errors import unknown

            raise unknown(f"variant of {cls.__name__}", name, cls.variants)
        return cls.variants[name]

    @classmethod
    def cf_dependencies(cls, config: Any) -> list[CFDependency]:
        """The CF runs whose embeddings ``fit`` with this config reads (from the config, never
        hard-coded), so the planner can run them first, as runs with their own records."""
        return []

    @classmethod
    def cf_runs(cls, config: Any) -> list[CFDependency]:
        """``cf_dependencies`` with the config's ``cf_overrides`` (where it has that field) laid
        over each one's own overrides: what the planner runs and what ``fit`` loads, so a suite
        can e.g. cap the epochs of the CF runs a smoke test needs without touching the method."""
        extra = dict(getattr(config, "cf_overrides", None) or {})
        return [dataclasses.replace(d, overrides={**d.overrides, **extra}) for d in cls.cf_dependencies(config)]

    def fit(self, split: Split) -> dict[str, Any]:
        """Train on ``split.train`` selecting on ``split.valid``/``valid_small``; return fit info.

        Seconds spent on set-up rather than training (loading a backbone, loading or training the
        CF embeddings) go in ``info["setup_s"]`` by kind (``backbone_load``, ``cf_embeddings``):
        the runner records them apart and keeps them out of ``train_s``."""
        raise NotImplementedError

    def score(self, rows: pd.DataFrame) -> np.ndarray:
        """One real-valued score per row (higher = more likely positive)."""
        raise NotImplementedError

    def param_counts(self) -> dict[str, int]:
        """``trainable`` and ``total`` parameter counts, measured the same way for all methods."""
        raise NotImplementedError

    def step_timings(self, rows: pd.DataFrame, warmup: int, repeats: int) -> dict[str, float] | None:
        """Median seconds of one train step and one inference step on a fixed batch of ``rows``
        after ``warmup`` untimed steps (Table 6); None where a method has no such step."""
        return None

    def reference_run(self, split: Split) -> dict[str, float]:
        """Train and test with the underlying library's own entry point (its quick start) on the
        same split and settings as ``fit``, nothing of the harness around it; returns its test
        metrics. ``python -m bench overhead`` times this against the harness's run."""
        raise NotImplementedError

    def artifacts(self) -> dict[str, str]:
        """Paths of persistent outputs (e.g. embeddings), recorded in the run record."""
        return {}

    def save_state(self, directory: Path) -> Path | None:
        """After ``fit``: write what ``restore`` needs to score as this fitted method does into
        ``directory`` (in the run's artifact directory) and return where it went; None: the
        method keeps no such state. The runner records it as ``artifacts["trained_state"]``."""
        return None

    def restore(self, split: Split, directory: Path) -> None:
        """Instead of ``fit``: rebuild the fitted method from what ``save_state`` wrote, no
        training (``python -m bench score``)."""
        from bench.errors import BenchError

        raise BenchError(f"{type(self).__name__} cannot be restored from a saved state",
                         "only methods that save their trained state (the LLM recommenders) can re-score rows")


# ---- optional capabilities ------------------------------------------------------------------
class Countable(Protocol):
    """Built on a split (a shared backbone reused) without training, then counts what training would update."""

    def prepare(self, split: Split, backbone: Backbone | None = None) -> None: ...

    def trainable_count(self) -> int: ...


class BudgetMatchable(Countable, Protocol):
    """Countable, with the config fields a matched parameter budget may change, coarse first (``bench.budget``)."""

    budget_knobs: ClassVar[tuple[str, ...]]


class SteppedBudget(Protocol):
    """A budget knob takes only multiples of ``budget_step(config, knob)`` (e.g. a width split into heads)."""

    @classmethod
    def budget_step(cls, config: Any, knob: str) -> int: ...


CAPABILITIES: tuple[type, ...] = (Countable, BudgetMatchable, SteppedBudget)


def members(capability: type) -> tuple[str, ...]:
    """The names a class defines to declare ``capability`` (its protocol's own and inherited members)."""
    names: dict[str, None] = {}
    for base in reversed(capability.__mro__):
        if base is Protocol or not getattr(base, "_is_protocol", False):
            continue  # object, Generic, Protocol itself
        names.update(dict.fromkeys(base.__dict__.get("__annotations__", {})))
        names.update(dict.fromkeys(n for n in base.__dict__ if not n.startswith("_")))
    return tuple(names)


def supports(cls: type, capability: type) -> bool:
    """Whether method class ``cls`` declares ``capability`` (one of ``CAPABILITIES``): it defines
    every member of that protocol. What the harness asks instead of probing attributes."""
    if capability not in CAPABILITIES:
        raise ValueError(f"{capability!r} is not a method capability (one of {CAPABILITIES})")
    return all(getattr(cls, name, None) is not None for name in members(capability))
