"""Datasets: one registry, one loader signature, cached splits with fingerprints, subsets.

``load_split(name, data_dir, subset_users, seed)`` is all a method ever calls.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path

import numpy as np
import pandas as pd

from bench.data import split_cache
from bench.data.schema import COLUMNS, PARTS, Split
from bench.errors import BenchError, unknown

# name -> (loader "module:function", needs a data dir, version bumped when the loader changes)
DATASETS: dict[str, tuple[str, bool, int]] = {
    "ml1m": ("bench.data.ml1m:load_collm", True, 1),
    "ml1m-raw": ("bench.data.ml1m:load_raw", True, 1),
    "amazon-book": ("bench.data.amazon_book:load", True, 1),
    "ml100k": ("bench.data.ml100k:load", False, 1),
    "bookcrossing": ("bench.data.bookcrossing:load_raw", True, 1),
    "bookcrossing-tallrec": ("bench.data.bookcrossing:load_tallrec", True, 1),
}

__all__ = ["COLUMNS", "PARTS", "Split", "DATASETS", "load_split", "subset", "top_items", "few_shot", "cap_eval_rows", "resolve_data_dir", "cache_dir",
           "transform_steps"]


def cache_dir() -> Path:
    return Path(os.environ.get("RECBENCH_CACHE", Path.home() / ".cache" / "recbench"))


def resolve_data_dir(data_dir: str | Path | None) -> Path | None:
    value = data_dir or os.environ.get("RECBENCH_DATA_DIR")
    return Path(value).expanduser().resolve() if value else None


def _source_stamp(data_dir: Path | None) -> str:
    """Sizes and mtimes of the files under data_dir, so an edited source invalidates the cache."""
    if data_dir is None or not data_dir.exists():
        return "embedded"
    parts = []
    for p in sorted(data_dir.rglob("*")):
        if p.is_file():
            st = p.stat()
            parts.append(f"{p.relative_to(data_dir)}:{st.st_size}:{int(st.st_mtime)}")
    import hashlib

    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def _load_uncached(name: str, data_dir: Path | None) -> Split:
    target, needs_dir, _ = DATASETS[name]
    if needs_dir and data_dir is None:
        raise BenchError(
            f"dataset {name!r} needs a data directory",
            "pass --data-dir PATH or set RECBENCH_DATA_DIR (CI uses ../shared/data)",
        )
    if needs_dir and not data_dir.is_dir():
        raise BenchError(f"data directory {data_dir} does not exist",
                         "pass --data-dir / RECBENCH_DATA_DIR pointing at an existing folder")
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)(data_dir)


def load_full(name: str, data_dir: str | Path | None = None, use_cache: bool = True) -> Split:
    if name not in DATASETS:
        raise unknown("dataset", name, DATASETS)
    ddir = resolve_data_dir(data_dir) if DATASETS[name][1] else None
    key = f"{name}-v{DATASETS[name][2]}-{_source_stamp(ddir)}"
    # JSON, never pickle: the cache folder may be writable by others, and reading an entry must
    # not run code. An entry that is corrupt or fails its fingerprint is rebuilt (split_cache).
    path = cache_dir() / "splits" / f"{key}.json"
    if use_cache and (cached := split_cache.read(path)) is not None:
        return cached
    split = _load_uncached(name, ddir)
    if use_cache:
        split_cache.write(path, split)
    return split


def subset(split: Split, n_users: int, seed: int = 0) -> Split:
    """A deterministic user sample: every row of ``n_users`` users drawn with ``seed``.

    Ids are kept (not re-mapped), so embeddings and histories stay valid and the id space is
    the full dataset's.
    """
    users = np.unique(np.concatenate([df["user"].to_numpy() for _, df in split.parts()]))
    if n_users <= 0:
        raise BenchError(f"subset size must be positive, got {n_users}", "use subset_users >= 1")
    if n_users >= len(users):
        return split
    keep = set(np.random.default_rng(seed).choice(users, size=n_users, replace=False).tolist())
    parts = {p: df[df["user"].isin(keep)].reset_index(drop=True) for p, df in split.parts()}
    return Split(dataset=split.dataset, n_users=split.n_users, n_items=split.n_items,
                 domain=split.domain, notes=split.notes, **parts)


def top_items(split: Split, n_items: int) -> Split:
    """Every part restricted to rows of the ``n_items`` most-rated train items (ties: lower id
    first). Histories are untouched: a prompt still lists the user's real liked items. A dense
    subset, where each item recurs often enough for a model to learn it from a short run."""
    if n_items <= 0:
        raise BenchError(f"top_items must be positive, got {n_items}", "use top_items >= 1")
    counts = split.train["item"].value_counts()
    ranked = sorted(counts.index, key=lambda i: (-counts[i], i))
    keep = set(ranked[:n_items])
    parts = {p: df[df["item"].isin(keep)].reset_index(drop=True) for p, df in split.parts()}
    return Split(dataset=split.dataset, n_users=split.n_users, n_items=split.n_items, domain=split.domain,
                 notes=split.notes, **parts)


def cap_eval_rows(split: Split, n: int, seed: int = 0) -> Split:
    """Seeded samples of at most ``n`` valid and test rows, and of at most ``n // 2`` of the
    valid_small rows that stay in the sampled valid (valid_small is part of valid); train is
    kept. For runs whose evaluation must stay cheap on a CPU."""
    def cap(df: pd.DataFrame, k: int) -> pd.DataFrame:
        return df if len(df) <= k else df.sample(n=k, random_state=seed).sort_index().reset_index(drop=True)

    valid = cap(split.valid, n)
    key = ["user", "item", "timestamp"]
    kept = split.valid_small.merge(valid[key].drop_duplicates(), on=key, how="inner")[split.valid_small.columns]
    return Split(dataset=split.dataset, train=split.train, valid=valid,
                 valid_small=cap(kept, max(1, n // 2)), test=cap(split.test, n),
                 n_users=split.n_users, n_items=split.n_items, domain=split.domain, notes=split.notes)


def few_shot(split: Split, n: int, seed: int = 0) -> Split:
    """A split whose train is TALLRec's seeded n-row few-shot sample (any dataset); valid /
    valid_small / test unchanged.

    Same draw as ``Dataset.shuffle(seed).select(range(n)).shuffle(seed)`` in TALLRec's
    ``finetune_rec.py``. The ``not_cold`` / ``warm`` flags still refer to the full train pool (for
    Book-Crossing they are the same either way: users are disjoint across parts).
    """
    total = len(split.train)
    if n <= 0:
        raise BenchError(f"few-shot size must be positive, got {n}", "use n >= 1 (TALLRec: 16, 64, 256)")
    if n > total:
        # A silently smaller sample would report a 256-shot number for fewer prompts.
        raise BenchError(f"few-shot size {n} exceeds the {total} train rows of {split.dataset}",
                         "use a smaller n, or do not subset the split before sampling")
    first = np.random.default_rng(seed).permutation(total)[:n]
    order = first[np.random.default_rng(seed).permutation(n)]
    return Split(dataset=split.dataset, train=split.train.iloc[order].reset_index(drop=True),
                 valid=split.valid, valid_small=split.valid_small, test=split.test,
                 n_users=split.n_users, n_items=split.n_items, domain=split.domain, notes=split.notes)


def load_split(name: str, data_dir: str | Path | None = None, subset_users: int | None = None,
               subset_seed: int = 0, use_cache: bool = True, max_eval_rows: int | None = None,
               few_shot_rows: int | None = None, few_shot_seed: int = 0, top_items_n: int | None = None,
               steps: list[dict] | None = None) -> Split:
    """The registered dataset ``name`` with ``steps`` (``bench.data.transforms``) applied in order;
    the keyword shorthands build the usual steps (subset, top items, few-shot, eval cap)."""
    from bench.data import transforms

    if steps is None:
        steps = transform_steps(subset_users, subset_seed, top_items_n, few_shot_rows, few_shot_seed, max_eval_rows)
    return transforms.apply(load_full(name, data_dir, use_cache), steps)


def transform_steps(subset_users: int | None = None, subset_seed: int = 0, top_items_n: int | None = None,
                    few_shot_rows: int | None = None, few_shot_seed: int = 0,
                    max_eval_rows: int | None = None) -> list[dict]:
    """The suite keys as the ordered transform list: user subset, top items, few-shot sample,
    eval-row cap (seeded like the subset), each only when given."""
    steps: list[dict] = []
    if subset_users:
        steps.append({"name": "subset_users", "n": subset_users, "seed": subset_seed})
    if top_items_n:
        steps.append({"name": "top_items", "n": top_items_n})
    if few_shot_rows:
        steps.append({"name": "few_shot", "n": few_shot_rows, "seed": few_shot_seed})
    if max_eval_rows:
        steps.append({"name": "max_eval_rows", "n": max_eval_rows, "seed": subset_seed})
    return steps
