"""ML-1M: the published CoLLM split (verified pickles) and the preprocessor that rebuilds it
from raw ``ratings.dat`` + ``movies.dat`` (PROTOCOLS.md: months 14..23 / 24..28 / 29..33 after
April 2000, label rating >= 4, valid_small = 50% of valid with seed 2023)."""
from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pandas as pd

from bench.data.protocol import add_flags, build_split, by_month
from bench.data.schema import Split
from bench.errors import BenchError

ZIP_SHA256 = "3e24968eca5707fbd0bd14d375ee47ef9a6f281de91bba06ef9fc19b66699503"
ROWS = {"train": 33_891, "valid": 10_401, "test": 7_331, "valid_small": 5_200}
N_USERS, N_ITEMS = 839, 3_256
SUBDIR = "ml-1m-collm"
RAW_SUBDIR = "ml-1m"

# CoLLM pickle column -> recbench column
RENAME = {"uid": "user", "iid": "item", "his": "history", "his_title": "history_titles"}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _from_collm_frame(df: pd.DataFrame, where: str) -> pd.DataFrame:
    need = ["uid", "iid", "label", "timestamp", "his", "his_title", "title", "not_cold"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise BenchError(f"{where} lacks column(s) {missing}", "use the CoLLM ml-1m pickles unchanged")
    out = df.rename(columns=RENAME)[["user", "item", "label", "timestamp", "history",
                                     "history_titles", "title", "not_cold"]].copy()
    # The pickles start every history with padding id 0 (title ''); recbench keeps real items only.
    out["history"] = out["history"].map(lambda h: [int(i) for i in h if i != 0])
    out["history_titles"] = out["history_titles"].map(lambda ts: [t for t in ts if t != ""])
    for c in ("user", "item", "label", "timestamp", "not_cold"):
        out[c] = out[c].astype("int64")
    return out.reset_index(drop=True)


def load_collm(data_dir: Path) -> Split:
    path = data_dir / SUBDIR / "ml-1m.zip"
    if not path.exists():
        raise BenchError(
            f"ML-1M split not found at {path}",
            f"pass --data-dir (or set RECBENCH_DATA_DIR) to the folder holding {SUBDIR}/ml-1m.zip",
        )
    digest = sha256_file(path)
    if digest != ZIP_SHA256:
        raise BenchError(
            f"checksum mismatch for {path}: sha256 {digest[:12]}... != {ZIP_SHA256[:12]}...",
            "re-download the CoLLM ml-1m.zip; a modified split would not be comparable",
        )
    parts: dict[str, pd.DataFrame] = {}
    with zipfile.ZipFile(path) as zf:
        for part in ROWS:
            with zf.open(f"ml-1m/{part}_ood2.pkl") as f:
                parts[part] = _from_collm_frame(pd.read_pickle(io.BytesIO(f.read())), f"{path}:{part}")
    for part, n in ROWS.items():
        if len(parts[part]) != n:
            raise BenchError(f"{path}:{part} has {len(parts[part])} rows, expected {n}",
                             "re-download the CoLLM ml-1m.zip")
    not_cold = {p: df["not_cold"].copy() for p, df in parts.items()}
    add_flags(parts)  # adds `warm`; recompute not_cold and check it matches the published flag
    for p, df in parts.items():
        if not (df["not_cold"] == not_cold[p]).all():
            raise BenchError(f"{path}:{p}: published not_cold disagrees with train membership",
                             "re-download the CoLLM ml-1m.zip")
    return Split(dataset="ml1m", n_users=N_USERS, n_items=N_ITEMS, domain="movie", **parts)


def read_raw(ratings_path: Path, movies_path: Path) -> tuple[pd.DataFrame, dict[int, str]]:
    for p in (ratings_path, movies_path):
        if not p.exists():
            raise BenchError(f"raw ML-1M file not found: {p}",
                             "download ml-1m.zip from GroupLens and unzip it into <data-dir>/ml-1m/")
    ratings = pd.read_csv(ratings_path, sep="::", engine="python", header=None,
                          names=["user", "item", "rating", "timestamp"], encoding="latin-1")
    movies = pd.read_csv(movies_path, sep="::", engine="python", header=None,
                         names=["item", "title", "genres"], encoding="latin-1")
    return ratings, dict(zip(movies["item"], movies["title"]))


def preprocess_raw(ratings: pd.DataFrame, titles: dict, name: str = "ml1m-raw") -> Split:
    return build_split(
        name, ratings, titles, by_month("2000-04", train=(14, 23), valid=(24, 28), test=(29, 33)),
        label_threshold=4, valid_small_frac=ROWS["valid_small"] / ROWS["valid"], domain="movie",
    )


def load_raw(data_dir: Path) -> Split:
    ratings, titles = read_raw(data_dir / RAW_SUBDIR / "ratings.dat", data_dir / RAW_SUBDIR / "movies.dat")
    return preprocess_raw(ratings, titles)
