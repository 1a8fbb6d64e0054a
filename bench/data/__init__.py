"""Datasets: one registry, one loader signature, cached splits with fingerprints, subsets.

``load_split(name, data_dir, subset_users, seed)`` is all a method ever calls.
"""
from __future__ import annotations

import importlib
import os
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.data import split_cache
from bench.data.schema import COLUMNS, PARTS, Split
from bench.errors import BenchError, unknown

# name -> (loader, needs a data dir, version bumped when the loader changes). The loader is a
# "module:function" string (built-ins, and the "recbench.datasets" entry points merged below), or
# a ``declared.DeclaredDataset`` for a dataset declared in YAML (``register_declared``).
BUILTIN: dict[str, tuple[str, bool, int]] = {
    "ml1m": ("bench.data.ml1m:load_collm", True, 1),
    "ml1m-raw": ("bench.data.ml1m:load_raw", True, 1),
    "amazon-book": ("bench.data.amazon_book:load", True, 1),
    "ml100k": ("bench.data.ml100k:load", False, 1),
    "bookcrossing": ("bench.data.bookcrossing:load_raw", True, 1),
    "bookcrossing-tallrec": ("bench.data.bookcrossing:load_tallrec", True, 1),
}
ENTRY_POINTS = "recbench.datasets"
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
ENTRY_FIX = (f"rename one of them: a [project.entry-points.\"{ENTRY_POINTS}\"] name must not be a built-in "
             "dataset's or another package's")


def entry_point_datasets() -> dict[str, tuple[str, str]]:
    """The ``recbench.datasets`` entry points: name -> ("module:function", where it is declared),
    from this source tree's pyproject.toml and every installed distribution. A loader is called
    with the data dir (``--data-dir`` / RECBENCH_DATA_DIR, which it then needs) and returns a Split.
    A name declared twice with different loaders is a BenchError naming both."""
    found: dict[str, tuple[str, str]] = {}

    def add(name: str, value: str, where: str) -> None:
        if name in found and found[name][0] != value:
            raise BenchError(f"dataset {name!r} is registered twice: {found[name][0]} ({found[name][1]}) and "
                             f"{value} ({where})", ENTRY_FIX)
        found.setdefault(name, (value, where))

    if PYPROJECT.exists():
        import tomllib

        with open(PYPROJECT, "rb") as f:
            table = tomllib.load(f).get("project", {}).get("entry-points", {}).get(ENTRY_POINTS, {})
        for name, value in table.items():
            add(name, value, str(PYPROJECT))
    for ep in metadata.entry_points(group=ENTRY_POINTS):
        dist = getattr(ep, "dist", None)
        add(ep.name, ep.value, f"package {dist.name} {dist.version}" if dist else "an installed package")
    return found


def dataset_table(builtin: dict[str, tuple[str, bool, int]] | None = None,
                  entry_points: dict[str, tuple[str, str]] | None = None) -> dict[str, tuple[Any, bool, Any]]:
    """The built-ins merged with the entry points; a clash with a built-in name is a BenchError."""
    table: dict[str, tuple[Any, bool, Any]] = dict(BUILTIN if builtin is None else builtin)
    for name, (value, where) in (entry_point_datasets() if entry_points is None else entry_points).items():
        if name in table:
            raise BenchError(f"dataset {name!r} from {where} ({value}) clashes with the built-in dataset {name} "
                             f"({table[name][0]})", ENTRY_FIX)
        if value.count(":") != 1 or not all(value.split(":")):
            raise BenchError(f"dataset {name!r} from {where} has loader {value!r}, not 'module:function'",
                             "write the entry point as name = \"package.module:function\"")
        # the version part of the cache key: the package's, so a new release rebuilds the split
        table[name] = (value, True, where.rpartition(" ")[2] if where.startswith("package ") else 1)
    return table


DATASETS: dict[str, tuple[Any, bool, Any]] = dataset_table()

__all__ = ["COLUMNS", "PARTS", "Split", "DATASETS", "load_split", "register_declared", "subset", "top_items", "few_shot", "cap_eval_rows", "resolve_data_dir", "cache_dir",
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


def register_declared(dataset: Any) -> None:
    """Put a YAML-declared dataset (``declared.DeclaredDataset``) in ``DATASETS`` under its name,
    so ``load_split`` and the runner treat it like a built-in. Declaring a name again replaces
    the earlier declaration (the cache key covers the declaration, so nothing stale is read);
    a built-in or entry-point name cannot be declared."""
    from bench.data.declared import DeclaredDataset

    current = DATASETS.get(dataset.name)
    if current is not None and not isinstance(current[0], DeclaredDataset):
        raise BenchError(f"{dataset.origin}: dataset {dataset.name!r} is declared, but {dataset.name} is already a "
                         f"registered dataset ({current[0]})",
                         f"give the declared dataset another name, e.g. my-{dataset.name}")
    DATASETS[dataset.name] = (dataset, dataset.needs_data_dir, 0)


def _load_uncached(name: str, data_dir: Path | None) -> Split:
    target, needs_dir, _ = DATASETS[name]
    _check_data_dir(name, needs_dir, data_dir)
    if not isinstance(target, str):  # declared in YAML
        return target.at(data_dir).load()
    module, func = target.split(":")
    split = getattr(importlib.import_module(module), func)(data_dir)
    if not isinstance(split, Split):
        raise BenchError(f"dataset {name!r}: its loader {target} returned {type(split).__name__}, not a Split",
                         "return bench.data.schema.Split (e.g. from bench.data.protocol.build_split)")
    return split


def _check_data_dir(name: str, needs_dir: bool, data_dir: Path | None) -> None:
    if needs_dir and data_dir is None:
        raise BenchError(
            f"dataset {name!r} needs a data directory",
            "pass --data-dir PATH or set RECBENCH_DATA_DIR (CI uses ../shared/data)",
        )
    if needs_dir and not data_dir.is_dir():
        raise BenchError(f"data directory {data_dir} does not exist",
                         "pass --data-dir / RECBENCH_DATA_DIR pointing at an existing folder")


def load_full(name: str, data_dir: str | Path | None = None, use_cache: bool = True) -> Split:
    if name not in DATASETS:
        raise unknown("dataset", name, DATASETS)
    target, needs_dir, version = DATASETS[name]
    ddir = resolve_data_dir(data_dir) if needs_dir else None
    if isinstance(target, str):
        key = f"{name}-v{version}-{_source_stamp(ddir)}"
    else:  # declared: the declaration and its files' bytes (a missing file is reported here)
        _check_data_dir(name, needs_dir, ddir)
        key = f"{name}-declared-{target.at(ddir).stamp()}"
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


def _valid_small_within(split: Split, valid: pd.DataFrame) -> pd.DataFrame:
    """The valid_small rows that a sampled ``valid`` still holds (valid_small is part of valid)."""
    key = ["user", "item", "timestamp"]
    return split.valid_small.merge(valid[key].drop_duplicates(), on=key, how="inner")[split.valid_small.columns]


def cap_eval_rows(split: Split, n: int, seed: int = 0) -> Split:
    """Seeded samples of at most ``n`` valid and test rows, and of at most ``n // 2`` of the
    valid_small rows that stay in the sampled valid (valid_small is part of valid); train is
    kept. For runs whose evaluation must stay cheap on a CPU."""
    def cap(df: pd.DataFrame, k: int) -> pd.DataFrame:
        return df if len(df) <= k else df.sample(n=k, random_state=seed).sort_index().reset_index(drop=True)

    valid = cap(split.valid, n)
    return Split(dataset=split.dataset, train=split.train, valid=valid,
                 valid_small=cap(_valid_small_within(split, valid), max(1, n // 2)), test=cap(split.test, n),
                 n_users=split.n_users, n_items=split.n_items, domain=split.domain, notes=split.notes)


def _whole_users(df: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """Every row of users drawn in a seeded order until they hold at least ``n`` rows."""
    if len(df) <= n:
        return df
    counts = df.groupby("user").size()
    order = np.random.default_rng(seed).permutation(counts.index.to_numpy())
    reached = int(np.searchsorted(counts.loc[order].cumsum().to_numpy(), n)) + 1
    keep = set(order[:reached].tolist())
    return df[df["user"].isin(keep)].reset_index(drop=True)


def eval_by_users(split: Split, valid: int, test: int, seed: int = 0) -> Split:
    """Seeded samples of whole users from valid and from test, each holding at least ``valid`` /
    ``test`` rows; valid_small keeps its rows of the sampled valid users; train is kept. Unlike
    ``cap_eval_rows``, a sampled user keeps every row, so per-user AUC (UAUC) and paired
    bootstraps over users see users with both classes."""
    if valid <= 0 or test <= 0:
        raise BenchError(f"eval_by_users needs positive row counts, got valid {valid} and test {test}",
                         "e.g. eval_by_users: {valid: 240, test: 1000}")
    valid_df = _whole_users(split.valid, valid, seed)
    return Split(dataset=split.dataset, train=split.train, valid=valid_df,
                 valid_small=_valid_small_within(split, valid_df).reset_index(drop=True),
                 test=_whole_users(split.test, test, seed), n_users=split.n_users, n_items=split.n_items,
                 domain=split.domain, notes=split.notes)


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
               steps: list[dict] | None = None, eval_users: tuple[int, int] | None = None) -> Split:
    """The registered dataset ``name`` with ``steps`` (``bench.data.transforms``) applied in order;
    the keyword shorthands build the usual steps (subset, top items, few-shot, eval cap)."""
    from bench.data import transforms

    if steps is None:
        steps = transform_steps(subset_users, subset_seed, top_items_n, few_shot_rows, few_shot_seed, max_eval_rows,
                                eval_users)
    return transforms.apply(load_full(name, data_dir, use_cache), steps)


def transform_steps(subset_users: int | None = None, subset_seed: int = 0, top_items_n: int | None = None,
                    few_shot_rows: int | None = None, few_shot_seed: int = 0,
                    max_eval_rows: int | None = None, eval_users: tuple[int, int] | None = None) -> list[dict]:
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
    if eval_users:
        steps.append({"name": "eval_by_users", "valid": eval_users[0], "test": eval_users[1], "seed": subset_seed})
    return steps
