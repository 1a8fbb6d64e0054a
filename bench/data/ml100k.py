"""ML-100K, the embedded default: read from the copy inside the installed ``recbole`` wheel
(located with importlib, RecBole itself is not imported), split with the CoLLM rules.

Its ratings span 1997-09-20 .. 1998-04-22, so the cut points (month 0 = Sep 1997) are:
train = Sep 1997 .. Jan 1998 (months 0..4, ~67k rows), valid = Feb 1998 (month 5, ~11k),
test = Mar .. Apr 1998 (months 6..7, ~22k); label rating >= 4; valid_small = 50% of valid.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

from bench.data.protocol import build_split, by_month
from bench.data.schema import Split
from bench.errors import BenchError


def recbole_ml100k_dir() -> Path:
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        raise BenchError("the embedded ML-100K needs the recbole wheel installed",
                         "pip install -c constraints.txt 'recbole==1.2.1'")
    path = Path(list(spec.submodule_search_locations)[0]) / "dataset_example" / "ml-100k"
    if not (path / "ml-100k.inter").exists():
        raise BenchError(f"ML-100K not found in the recbole wheel at {path}", "reinstall recbole==1.2.1")
    return path


def load(data_dir: Path | None = None) -> Split:
    path = recbole_ml100k_dir()
    inter = pd.read_csv(path / "ml-100k.inter", sep="\t")
    inter.columns = [c.split(":")[0] for c in inter.columns]
    items = pd.read_csv(path / "ml-100k.item", sep="\t")
    items.columns = [c.split(":")[0] for c in items.columns]
    titles = {
        i: f"{t} ({int(y)})" if pd.notna(y) else str(t)
        for i, t, y in zip(items["item_id"], items["movie_title"], pd.to_numeric(items["release_year"], errors="coerce"))
    }
    ratings = inter.rename(columns={"user_id": "user", "item_id": "item"})
    return build_split("ml100k", ratings, titles,
                       by_month("1997-09", train=(0, 4), valid=(5, 5), test=(6, 7)),
                       label_threshold=4, valid_small_frac=0.5, domain="movie")
