"""The one table schema every dataset yields, and the split container every method reads."""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Iterator

import numpy as np
import pandas as pd

from bench.errors import BenchError

# user/item ids are 1..N (0 is padding, as in the CoLLM pickles); history holds the user's
# earlier positive items in time order (no padding entry); warm flags are 0/1 ints.
COLUMNS = (
    "user", "item", "label", "timestamp", "history", "history_titles", "title", "not_cold", "warm",
)
PARTS = ("train", "valid", "valid_small", "test")


def check_columns(df: pd.DataFrame, where: str, required: tuple[str, ...] = COLUMNS) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise BenchError(
            f"{where} is missing column(s) {missing} (has {list(df.columns)})",
            "rebuild the split with the dataset's preprocessor, or rename the columns",
        )


@dataclasses.dataclass
class Split:
    """train / valid / valid_small / test tables plus the id space they share."""

    dataset: str
    train: pd.DataFrame
    valid: pd.DataFrame
    valid_small: pd.DataFrame
    test: pd.DataFrame
    n_users: int  # max user id + 1 (id 0 is padding)
    n_items: int
    domain: str = "movie"  # prompt wording: movie / book
    fingerprint: str = ""
    # Loader warnings a run record must carry (e.g. a raw file that is not the published
    # release); not part of the fingerprint, which hashes only what a method sees.
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for part in PARTS:
            check_columns(getattr(self, part), f"{self.dataset}:{part}")
        if not self.fingerprint:
            self.fingerprint = fingerprint(self)

    def parts(self) -> Iterator[tuple[str, pd.DataFrame]]:
        for part in PARTS:
            yield part, getattr(self, part)

    def train_graph(self) -> np.ndarray:
        """Edges (user, item) of the train positives: the graph every graph method uses."""
        pos = self.train[self.train["label"] == 1]
        return pos[["user", "item"]].drop_duplicates().to_numpy(dtype=np.int64)

    def titles(self) -> dict[int, str]:
        out: dict[int, str] = {}
        for _, df in self.parts():
            out.update(zip(df["item"].tolist(), df["title"].tolist()))
        return out

    def stats(self) -> dict[str, int]:
        return {
            "train": len(self.train), "valid": len(self.valid), "valid_small": len(self.valid_small),
            "test": len(self.test), "n_users": self.n_users, "n_items": self.n_items,
            "users_seen": int(pd.concat([d["user"] for _, d in self.parts()]).nunique()),
            "items_seen": int(pd.concat([d["item"] for _, d in self.parts()]).nunique()),
            **{f"{part}_pos_rate": float(df["label"].mean()) if len(df) else float("nan")
               for part, df in self.parts() if part != "valid_small"},
            "test_warm": int((self.test["not_cold"] == 1).sum()), "test_cold": int((self.test["not_cold"] == 0).sum()),
        }


def fingerprint(split: Split) -> str:
    """Content hash of what a method sees: ids, labels, times and the id space."""
    h = hashlib.sha256(f"{split.n_users}:{split.n_items}".encode())
    for part, df in split.parts():
        h.update(part.encode())
        core = df[["user", "item", "label", "timestamp"]].astype("int64")
        h.update(pd.util.hash_pandas_object(core, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]
