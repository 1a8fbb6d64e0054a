"""Amazon-Book (reviews 2018): ``Books_5.json.gz`` + ``meta_Books.json.gz``, the CoLLM rules:
year 2017 only, users and items with > 20 interactions (one pass, not iterated), label
rating >= 5, train = Jan..Nov, December sorted by time and halved into valid / test,
valid_small = 25% of valid."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd

from bench.data.protocol import build_split, halve_last_period
from bench.data.schema import Split
from bench.errors import BenchError

SUBDIR = "amazon-book"


def _read_jsonl(path: Path, keys: tuple[str, ...]) -> pd.DataFrame:
    rows = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            rows.append(tuple(rec.get(k) for k in keys))
    return pd.DataFrame(rows, columns=list(keys))


def read_raw(ratings_path: Path, meta_path: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    for p in (ratings_path, meta_path):
        if not p.exists():
            raise BenchError(f"Amazon-Book raw file not found: {p}",
                             f"download Books_5.json.gz and meta_Books.json.gz into <data-dir>/{SUBDIR}/")
    r = _read_jsonl(ratings_path, ("reviewerID", "asin", "overall", "unixReviewTime"))
    r.columns = ["user", "item", "rating", "timestamp"]
    meta = _read_jsonl(meta_path, ("asin", "title"))
    return r, dict(zip(meta["asin"], meta["title"].fillna("")))


def preprocess_raw(ratings: pd.DataFrame, titles: dict, min_count: int = 20) -> Split:
    t = pd.to_datetime(ratings["timestamp"], unit="s", utc=True)
    df = ratings[t.dt.year == 2017]
    ucount = df["user"].map(df["user"].value_counts())
    icount = df["item"].map(df["item"].value_counts())
    df = df[(ucount > min_count) & (icount > min_count)]
    if df.empty:
        raise BenchError("Amazon-Book: no 2017 rows survive the >20-interactions filter",
                         "check that the ratings file is Books_5.json.gz")
    return build_split("amazon-book", df, titles, halve_last_period(pd.Timestamp("2017-12-01", tz="UTC")),
                       label_threshold=5, valid_small_frac=0.25, domain="book")


def load(data_dir: Path) -> Split:
    ratings, titles = read_raw(data_dir / SUBDIR / "Books_5.json.gz", data_dir / SUBDIR / "meta_Books.json.gz")
    return preprocess_raw(ratings, titles)
