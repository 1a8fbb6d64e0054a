"""The CoLLM temporal protocol shared by every preprocessor (ML-1M raw, ML-100K, Amazon-Book).

Given raw ratings and a rule that assigns each row to train / valid / test (or drops it), this
builds the split exactly as the published pickles are built: stable sort by (user, time), ids
re-mapped to 1..N by first appearance, label by threshold, history = earlier positives over the
whole kept time line, `not_cold` / `warm` flags from train, and a seeded `valid_small` sample.
The history rule is checked against the published ML-1M pickles in the tests.
"""
from __future__ import annotations

from typing import Callable, Mapping

import pandas as pd

from bench.data.schema import Split

RAW_COLUMNS = ("user", "item", "rating", "timestamp")


def month_index(timestamp: pd.Series, origin: str) -> pd.Series:
    """Months since ``origin`` (e.g. '2000-04' -> April 2000 is 0), in UTC."""
    t = pd.to_datetime(timestamp, unit="s", utc=True)
    o = pd.Timestamp(origin + "-01", tz="UTC")
    return (t.dt.year - o.year) * 12 + (t.dt.month - o.month)


def by_month(origin: str, train: tuple[int, int], valid: tuple[int, int], test: tuple[int, int]):
    """An assignment rule from inclusive month ranges."""

    def assign(df: pd.DataFrame) -> pd.Series:
        m = month_index(df["timestamp"], origin)
        out = pd.Series(pd.NA, index=df.index, dtype="object")
        for name, (lo, hi) in (("train", train), ("valid", valid), ("test", test)):
            out[(m >= lo) & (m <= hi)] = name
        return out

    return assign


def add_history(df: pd.DataFrame) -> pd.Series:
    """Per row: the user's earlier positive items (df sorted by user, then time)."""
    hist: list[list[int]] = []
    last_user = None
    pos: list[int] = []
    for user, item, label in zip(df["user"].to_numpy(), df["item"].to_numpy(), df["label"].to_numpy()):
        if user != last_user:
            pos, last_user = [], user
        hist.append(list(pos))
        if label == 1:
            pos.append(int(item))
    return pd.Series(hist, index=df.index)


def add_flags(parts: dict[str, pd.DataFrame]) -> None:
    train = parts["train"]
    users, items = set(train["user"]), set(train["item"])
    ucount, icount = train["user"].value_counts(), train["item"].value_counts()
    for df in parts.values():
        df["not_cold"] = (df["user"].isin(users) & df["item"].isin(items)).astype("int64")
        # CoLLM loader / MF baseline definition: both sides have > 3 train interactions.
        df["warm"] = (
            (df["user"].map(ucount).fillna(0) > 3) & (df["item"].map(icount).fillna(0) > 3)
        ).astype("int64")


def sample_valid_small(valid: pd.DataFrame, frac: float, seed: int) -> pd.DataFrame:
    n = int(round(len(valid) * frac))
    return valid.sample(n=n, random_state=seed).sort_index().reset_index(drop=True)


def build_split(
    name: str,
    ratings: pd.DataFrame,
    titles: Mapping,
    assign: Callable[[pd.DataFrame], pd.Series],
    *,
    label_threshold: float,
    valid_small_frac: float,
    seed: int = 2023,
    domain: str = "movie",
) -> Split:
    missing = [c for c in RAW_COLUMNS if c not in ratings.columns]
    if missing:
        from bench.errors import BenchError

        raise BenchError(f"{name}: raw ratings lack column(s) {missing}", "check the raw file format")
    df = ratings.loc[:, list(RAW_COLUMNS)].copy()
    df["part"] = assign(df)
    df = df[df["part"].notna()]
    df = df.sort_values(["user", "timestamp"], kind="stable").reset_index(drop=True)
    raw_items = df["item"]
    df["user"] = pd.factorize(df["user"])[0].astype("int64") + 1
    df["item"] = pd.factorize(df["item"])[0].astype("int64") + 1
    df["label"] = (df["rating"] >= label_threshold).astype("int64")
    df["timestamp"] = df["timestamp"].astype("int64")
    title_of = pd.Series(raw_items.map(titles).fillna("").astype(str).to_numpy(), index=df["item"])
    title_of = title_of[~title_of.index.duplicated()].to_dict()
    df["title"] = df["item"].map(title_of)
    df["history"] = add_history(df)
    df["history_titles"] = df["history"].map(lambda h: [title_of[i] for i in h])
    parts = {p: df[df["part"] == p].drop(columns=["part", "rating"]).reset_index(drop=True)
             for p in ("train", "valid", "test")}
    add_flags(parts)
    parts["valid_small"] = sample_valid_small(parts["valid"], valid_small_frac, seed)
    return Split(
        dataset=name, n_users=int(df["user"].max()) + 1, n_items=int(df["item"].max()) + 1,
        domain=domain, **parts,
    )


def halve_last_period(cut: pd.Timestamp) -> Callable[[pd.DataFrame], pd.Series]:
    """Train before ``cut``; rows from ``cut`` on, sorted by time, halved into valid then test."""

    def assign(df: pd.DataFrame) -> pd.Series:
        t = pd.to_datetime(df["timestamp"], unit="s", utc=True)
        out = pd.Series("train", index=df.index, dtype="object")
        late = df.index[t >= cut]
        order = df.loc[late, "timestamp"].sort_values(kind="stable").index
        half = len(order) // 2
        out[order[:half]] = "valid"
        out[order[half:]] = "test"
        return out

    return assign


