"""Collaborative embeddings for the LLM methods, read from the CF runs' artifacts.

The LLM path never imports RecBole: it reads the embeddings file (``bench.embeddings``) that a
CF run of the same split and config wrote. Under ``bench run`` the planner has already run that
CF run (``Method.cf_dependencies``), so this only loads. Called directly (tests, scripts) with
the file missing, it trains the CF model on demand if RecBole is installed, under a lock so two
processes never train the same embeddings at once, and otherwise stops with the command that
makes them.
"""
from __future__ import annotations

import importlib.util
import logging
import tempfile
from pathlib import Path

import numpy as np

from bench import distributed
from bench.artifacts import artifact_dir
from bench.data.schema import Split
from bench.embeddings import CFEmbeddings, embeddings_path, load, lock
from bench.errors import BenchError

__all__ = ["CFEmbeddings", "cf_artifact_dir", "cf_embeddings"]

log = logging.getLogger("bench")


def _cf_config(method: str, variant: str, overrides: dict | None) -> tuple[type, object]:
    from bench.config import build_config
    from bench.registry import get_method

    cls = get_method(method)
    return cls, build_config(cls.Config, cls.variant_overrides(variant), overrides)


def cf_artifact_dir(split: Split, method: str, variant: str, seed: int, overrides: dict | None = None) -> Path:
    """The artifact directory of the CF run (method, variant, overrides) of this split: the one
    the runner gives that run (same function, same inputs), wherever it sits in a suite."""
    from bench.config import config_dict
    from bench.records import config_hash

    _, cfg = _cf_config(method, variant, overrides)
    return artifact_dir(split.fingerprint, method, seed, config_hash(config_dict(cfg)))


def cf_embeddings(split: Split, method: str, variant: str, seed: int, device: str = "cpu",
                  overrides: dict | None = None, train_if_missing: bool = True, random: bool = False) -> CFEmbeddings:
    """Embeddings of the CF run (method, variant, overrides) of this split, trained if needed.

    ``random``: seeded random tables of the CF model's shape instead (no CF run): for
    measurements that depend on shapes only."""
    cls, cfg = _cf_config(method, variant, overrides)
    if random:
        rng = np.random.default_rng(seed)
        d = int(getattr(cfg, "embedding_size", 64) or 64)
        return CFEmbeddings(f"random-{method}", rng.normal(0, 0.1, (split.n_items, d)).astype(np.float32),
                            rng.normal(0, 0.1, (split.n_users, d)).astype(np.float32), None, "random")
    adir = cf_artifact_dir(split, method, variant, seed, overrides)
    path = embeddings_path(adir)

    def ensure() -> None:
        if path.exists():
            return
        with lock(path):
            if path.exists():  # another process trained them while this one waited for the lock
                return
            if not (train_if_missing and importlib.util.find_spec("recbole")):
                raise BenchError(
                    f"no cached {method} ({variant}, seed {seed}) embeddings for this {split.dataset} split at {path}",
                    f"on a machine with RecBole run `python -m bench run --suite <the same suite> --methods <the LLM "
                    f"method> --datasets {split.dataset} --seeds {seed}` (it runs the {method} run it needs first), "
                    f"then copy {adir} here",
                )
            _train(split, cls, cfg, seed, device, adir, f"{method}-{variant}")

    distributed.on_main(ensure)  # under data parallelism one rank fills the cache for all
    return load(path)


def _train(split: Split, cls: type, cfg: object, seed: int, device: str, adir: Path, name: str) -> None:
    import random

    import torch

    from bench.method import RunContext

    log.info("training %s (seed %d) on demand for its embeddings", name, seed)
    # training on demand (RecBole reseeds every generator) must not move the caller's random
    # streams: a run's result may not depend on whether the embedding cache existed before it
    states = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(), tempfile.TemporaryDirectory(prefix="recbench-cf-") as work:
            ctx = RunContext(dataset=split.dataset, seed=seed, device=device, work_dir=Path(work), artifact_dir=adir,
                             split_fingerprint=split.fingerprint, run_name=f"{name}-for-embeddings", progress=False)
            cls(cfg, ctx).fit(split)
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
    if not embeddings_path(adir).exists():
        raise BenchError(f"{name} trained but wrote no embeddings at {embeddings_path(adir)}",
                         f"{cls.__name__} must write them with bench.embeddings.save")
