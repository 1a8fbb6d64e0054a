"""Collaborative embeddings for the LLM methods, read from the CF runs' cache.

The LLM path never imports RecBole: it reads ``embeddings.npz`` written by a CF run of the same
split. Where that file is missing it trains the CF model on demand if RecBole is installed, and
otherwise stops with the command that makes it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import logging
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd

from bench import distributed
from bench.artifacts import artifact_dir
from bench.data.schema import PARTS, Split
from bench.errors import BenchError

log = logging.getLogger("bench")


@dataclasses.dataclass
class CFEmbeddings:
    source: str
    item: np.ndarray  # (n_items, d), row = recbench item id
    user: np.ndarray | None  # (n_users, d) or None for sequence models
    rows: dict[tuple[int, int, int], np.ndarray] | None  # per-row user vectors (sequence models)
    path: str

    @property
    def dim(self) -> int:
        return int(self.item.shape[1])

    def user_table(self, split: Split) -> tuple[np.ndarray, Callable[[pd.DataFrame], np.ndarray]]:
        """A user table and the function giving each row's index into it.

        With a user table the index is the user id; for sequence models every row of the split
        has its own vector (the encoder's output for that row's history), found by
        (user, item, timestamp)."""
        if self.user is not None:
            return self.user, lambda rows: rows["user"].to_numpy()
        keys = sorted(self.rows)
        index = {k: n for n, k in enumerate(keys)}
        table = np.stack([self.rows[k] for k in keys]).astype(np.float32)

        def lookup(rows: pd.DataFrame) -> np.ndarray:
            try:
                return np.fromiter((index[(int(u), int(i), int(t))] for u, i, t in
                                    zip(rows["user"], rows["item"], rows["timestamp"])), dtype=np.int64, count=len(rows))
            except KeyError as e:
                raise BenchError(f"{self.source}: no sequence embedding for row {e.args[0]}",
                                 "rerun the CF baseline on this split (the cache is stale)") from None

        return table, lookup


_RANDOM = {"on": False}


@contextlib.contextmanager
def random_cf_embeddings() -> Iterator[None]:
    """Within this block CF embeddings are seeded random tables of the CF model's shape: for
    efficiency measurements, where values do not matter and no CF run (nor RecBole) exists."""
    _RANDOM["on"] = True
    try:
        yield
    finally:
        _RANDOM["on"] = False


def cf_embeddings(split: Split, method: str, variant: str, seed: int, device: str = "cpu",
                  overrides: dict | None = None, train_if_missing: bool = True) -> CFEmbeddings:
    """Embeddings of the CF run (method, variant, overrides) of this split, trained if needed."""
    from bench.config import build_config, config_dict
    from bench.records import config_hash
    from bench.registry import get_method

    cls = get_method(method)
    cfg = build_config(cls.Config, cls.variant_overrides(variant), overrides)
    if _RANDOM["on"]:
        rng = np.random.default_rng(seed)
        d = int(getattr(cfg, "embedding_size", 64) or 64)
        return CFEmbeddings(f"random-{method}", rng.normal(0, 0.1, (split.n_items, d)).astype(np.float32),
                            rng.normal(0, 0.1, (split.n_users, d)).astype(np.float32), None, "random")
    adir = artifact_dir(split.dataset, split.fingerprint, method, variant, seed, config_hash(config_dict(cfg)))
    path = adir / "embeddings.npz"

    def ensure() -> None:
        if path.exists():
            return
        if not (train_if_missing and importlib.util.find_spec("recbole")):
            raise BenchError(
                f"no cached {method} ({variant}, seed {seed}) embeddings for this {split.dataset} split at {path}",
                f"on a machine with RecBole run `python -m bench run --suite <the same suite> --methods {method} "
                f"--datasets {split.dataset} --seeds {seed}` with that config, then copy that folder here",
            )
        _train(split, cls, cfg, seed, device, adir)

    distributed.on_main(ensure)  # under data parallelism one rank fills the cache for all
    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    rows = None
    if "user" not in data:
        rows = {}
        for part in PARTS:
            if f"rows_{part}" in data:
                for key, vec in zip(map(tuple, data[f"keys_{part}"].tolist()), data[f"rows_{part}"]):
                    rows[key] = vec
    return CFEmbeddings(f"{method}-{variant}-seed{seed}", data["item"], data.get("user"), rows, str(path))


def _train(split: Split, cls: type, cfg, seed: int, device: str, adir: Path) -> None:
    from bench.method import RunContext

    method = adir.name
    log.info("training %s on demand for its embeddings", method)
    import random

    import torch

    # training on demand (RecBole reseeds every generator) must not move the caller's random
    # streams: a run's result may not depend on whether the embedding cache existed before it
    states = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(), tempfile.TemporaryDirectory(prefix="recbench-cf-") as work:
            ctx = RunContext(dataset=split.dataset, seed=seed, device=device, work_dir=Path(work), artifact_dir=adir,
                             split_fingerprint=split.fingerprint, run_name=f"{method}-for-embeddings", progress=False)
            cls(cfg, ctx).fit(split)
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
