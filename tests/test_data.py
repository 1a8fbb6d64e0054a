import gzip
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from bench.data import load_split, subset
from bench.data import amazon_book, ml1m
from bench.data import ml1m as ml1m_module
from bench.data.schema import COLUMNS, Split
from bench.errors import BenchError


def test_ml1m_published_split(ml1m):
    assert {p: len(df) for p, df in ml1m.parts()} == ml1m_rows()
    assert (ml1m.n_users, ml1m.n_items) == (839, 3256)
    assert ml1m.train["user"].nunique() == 740 and ml1m.train["item"].nunique() == 3087
    assert ml1m.test["not_cold"].sum() == 4153 and (ml1m.test["not_cold"] == 0).sum() == 3178
    for _, df in ml1m.parts():
        assert list(df.columns)[: len(COLUMNS)] == list(COLUMNS)
        assert 0.52 < df["label"].mean() < 0.56
        assert not any(0 in h for h in df["history"])
    # warm (>3 train interactions) is stricter than not_cold
    assert (ml1m.test["warm"] <= ml1m.test["not_cold"]).all()
    assert set(ml1m.valid_small.index) <= set(range(len(ml1m.valid)))
    assert len(ml1m.train_graph()) == ml1m.train.query("label == 1")[["user", "item"]].drop_duplicates().shape[0]


def ml1m_rows():
    return {"train": 33891, "valid": 10401, "valid_small": 5200, "test": 7331}


def test_ml1m_fingerprint_is_stable_and_cached(data_dir, ml1m):
    again = load_split("ml1m", data_dir)
    fresh = load_split("ml1m", data_dir, use_cache=False)
    assert again.fingerprint == fresh.fingerprint == ml1m.fingerprint


def test_ml1m_checksum_mismatch_and_missing_dir(tmp_path, data_dir):
    (tmp_path / "ml-1m-collm").mkdir()
    bad = tmp_path / "ml-1m-collm" / "ml-1m.zip"
    shutil.copy(data_dir / "ml-1m-collm" / "ml-1m.zip", bad)
    with open(bad, "ab") as f:
        f.write(b"x")
    with pytest.raises(BenchError, match="checksum mismatch"):
        ml1m.load_collm(tmp_path)
    with pytest.raises(BenchError, match="not found.*\n.*--data-dir"):
        ml1m.load_collm(tmp_path / "nowhere")
    with pytest.raises(BenchError, match="does not exist"):
        load_split("ml1m", tmp_path / "nowhere", use_cache=False)


def test_missing_column_is_named(ml1m):
    with pytest.raises(BenchError, match=r"missing column\(s\) \['title'\]"):
        Split("x", ml1m.train.drop(columns=["title"]), ml1m.valid, ml1m.valid_small, ml1m.test, 839, 3256)


def _published_movie_order(raw):
    """Raw movie ids in an order in which every user's same-second ratings (raw rows in published
    order) come in their published order. The published split admits such an order (CoLLM sorted
    its merge output, grouped by movie, with a stable sort; ``ml1m.merge_order``): 15,262 "comes
    before" pairs over 3,255 movies and no cycle. The same ties in a random order give cycles."""
    from graphlib import TopologicalSorter

    before = TopologicalSorter({m: () for m in raw["item"].unique().tolist()})
    for _, movies in raw.groupby(["user", "timestamp"], sort=False)["item"]:
        movies = movies.tolist()
        for a, b in zip(movies, movies[1:]):
            before.add(b, a)
    return list(before.static_order())


def _write_raw_ml1m(ml1m_split, data_dir, out_dir):
    """Raw-format ratings.dat rebuilt from the published rows (label 1 -> 5 stars, 0 -> 2) plus
    rows outside the kept months, and the real movies.dat.

    The file order is NOT the published order: each user's ratings are written newest first, so
    every group of same-second ratings (9,570 groups, 26,379 of 51,623 rows) is in the reverse of
    its published order. What puts them back is CoLLM's merge order: movies in order of first
    appearance in the file. A user with one rating per movie in April 2000 (month 0, dropped
    by the protocol) opens the file and makes that order one that rebuilds the published ties."""
    movies = pd.read_csv(data_dir / "ml-1m-collm" / "movies.dat", sep="::", engine="python", header=None,
                         names=["item", "title", "genres"], encoding="latin-1")
    movie_id = dict(zip(movies["title"], movies["item"]))
    rows = pd.concat([df for p, df in ml1m_split.parts() if p != "valid_small"])
    raw = pd.DataFrame({"user": rows["user"] * 3 + 5, "item": rows["title"].map(movie_id),
                        "rating": np.where(rows["label"] == 1, 5, 2), "timestamp": rows["timestamp"]})
    order = _published_movie_order(raw)
    opener = pd.DataFrame({"user": 1, "item": order, "rating": 3, "timestamp": 956_000_000})  # month 0
    late = raw.head(50).assign(timestamp=1_050_000_000)  # April 2003: month 36, dropped
    # Users in descending id order, each user's rows newest first (ties reversed).
    body = pd.concat([raw, late]).iloc[::-1].sort_values("user", ascending=False, kind="stable")
    raw = pd.concat([opener, body])
    (out_dir / "ml-1m").mkdir(parents=True)
    with open(out_dir / "ml-1m" / "ratings.dat", "w", encoding="latin-1") as f:
        for r in raw.itertuples(index=False):
            f.write(f"{r.user}::{r.item}::{r.rating}::{r.timestamp}\n")
    shutil.copy(data_dir / "ml-1m-collm" / "movies.dat", out_dir / "ml-1m" / "movies.dat")


def _row_keys(df):
    return sorted(zip(df["user"], df["item"], df["timestamp"], df["label"]))


def test_ml1m_raw_preprocessor_rebuilds_the_published_split(tmp_path, data_dir, ml1m, monkeypatch):
    _write_raw_ml1m(ml1m, data_dir, tmp_path)
    rebuilt = load_split("ml1m-raw", tmp_path, use_cache=False)
    assert (rebuilt.n_users, rebuilt.n_items) == (839, 3256)
    for part in ("train", "valid", "test"):
        ours, theirs = getattr(rebuilt, part), getattr(ml1m, part)
        assert len(ours) == len(theirs)
        for col in ("user", "item", "label", "timestamp", "title", "not_cold", "warm"):
            assert (ours[col].to_numpy() == theirs[col].to_numpy()).all(), (part, col)
        assert ours["history"].tolist() == theirs["history"].tolist()
        assert ours["history_titles"].tolist() == theirs["history_titles"].tolist()
    # The same seeded draw of valid positions picks the same rows; recbench keeps them in valid's
    # order, the pickle in draw order.
    assert len(rebuilt.valid_small) == 5200
    assert _row_keys(rebuilt.valid_small) == _row_keys(ml1m.valid_small)

    # The fixture does test the tie order: in file order (no merge order) the split differs.
    monkeypatch.setattr(ml1m_module, "merge_order", lambda ratings: ratings)
    file_order = ml1m_module.load_raw(tmp_path)
    theirs = pd.concat([ml1m.train, ml1m.valid, ml1m.test])
    ours = pd.concat([file_order.train, file_order.valid, file_order.test])
    last10 = [df["history_titles"].map(lambda titles: tuple(titles[-10:])).to_numpy() for df in (ours, theirs)]
    assert (last10[0] != last10[1]).mean() > 0.5  # 71% of the rows get other prompt titles
    assert _row_keys(file_order.valid_small) != _row_keys(ml1m.valid_small)


def _write_amazon(tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "amazon-book"
    d.mkdir()
    reviews = []
    t2017 = pd.Timestamp("2017-01-01", tz="UTC").timestamp()
    year = 365 * 86400
    for u in range(30):  # 30 heavy users x 30 heavy items, all in 2017
        for i in range(30):
            if rng.random() < 0.9:
                reviews.append({"reviewerID": f"U{u}", "asin": f"B{i}", "overall": float(rng.integers(1, 6)),
                                "unixReviewTime": int(t2017 + rng.random() * year)})
    for k in range(25):  # a light user (5 rows) and rows from 2016, both dropped
        reviews.append({"reviewerID": "Ulight" if k < 5 else f"U{k}", "asin": f"B{k}", "overall": 5.0,
                        "unixReviewTime": int(t2017 - 100 * 86400) if k >= 5 else int(t2017 + 1000)})
    with gzip.open(d / "Books_5.json.gz", "wt") as f:
        for r in reviews:
            f.write(json.dumps(r) + "\n")
    with gzip.open(d / "meta_Books.json.gz", "wt") as f:
        for i in range(30):
            f.write(json.dumps({"asin": f"B{i}", "title": f"Book number {i}"}) + "\n")
    return reviews


def test_amazon_book_preprocessor(tmp_path):
    reviews = _write_amazon(tmp_path)
    split = load_split("amazon-book", tmp_path, use_cache=False)
    assert split.domain == "book"
    kept = [r for r in reviews if r["reviewerID"] != "Ulight"
            and pd.Timestamp(r["unixReviewTime"], unit="s", tz="UTC").year == 2017]
    assert len(split.train) + len(split.valid) + len(split.test) == len(kept)
    dec = sum(pd.Timestamp(r["unixReviewTime"], unit="s", tz="UTC").month == 12 for r in kept)
    assert len(split.valid) == dec // 2 and len(split.test) == dec - dec // 2
    assert split.valid["timestamp"].max() <= split.test["timestamp"].min()
    assert pd.to_datetime(split.train["timestamp"], unit="s").dt.month.max() <= 11
    assert len(split.valid_small) == round(len(split.valid) * 0.25)
    pos = sum(r["overall"] >= 5 for r in kept)
    assert sum(df["label"].sum() for df in (split.train, split.valid, split.test)) == pos
    assert split.train["title"].str.startswith("Book number").all()
    with pytest.raises(BenchError, match="Amazon-Book raw file not found"):
        amazon_book.load(tmp_path / "empty")


def test_ml100k_embedded_split(ml100k):
    months = {p: pd.to_datetime(df["timestamp"], unit="s").dt.to_period("M").unique() for p, df in ml100k.parts()}
    assert str(max(months["train"])) == "1998-01" and str(min(months["valid"])) == "1998-02"
    assert str(min(months["test"])) == "1998-03"
    assert len(ml100k.train) > len(ml100k.test) > len(ml100k.valid) > 0
    assert ml100k.train["title"].str.len().gt(0).all()


def test_subset_is_deterministic_and_keeps_ids(ml100k):
    a, b, c = subset(ml100k, 30, seed=1), subset(ml100k, 30, seed=1), subset(ml100k, 30, seed=2)
    assert a.fingerprint == b.fingerprint != c.fingerprint
    users = set().union(*(set(df["user"]) for _, df in a.parts()))
    assert len(users) == 30 and (a.n_users, a.n_items) == (ml100k.n_users, ml100k.n_items)
    assert set(a.test["item"]) <= set(ml100k.test["item"])


def test_capped_eval_rows_keep_valid_small_inside_valid(ml1m):
    from bench.data import cap_eval_rows

    capped = cap_eval_rows(subset(ml1m, 60, 0), 200, seed=0)
    assert len(capped.valid) == len(capped.test) == 200 and 0 < len(capped.valid_small) <= 100
    key = ["user", "item", "timestamp"]
    assert len(capped.valid_small.merge(capped.valid[key], on=key)) == len(capped.valid_small)
    assert len(capped.train) == len(subset(ml1m, 60, 0).train)
    again = cap_eval_rows(subset(ml1m, 60, 0), 200, seed=0)
    assert again.fingerprint == capped.fingerprint


def test_top_items_keeps_the_most_rated_train_items_in_every_part(ml1m, data_dir):
    from bench.data import top_items

    dense = top_items(ml1m, 100)
    counts = ml1m.train["item"].value_counts()
    kept = set(dense.train["item"])
    assert len(kept) == 100 and min(counts[i] for i in kept) >= max(counts[i] for i in set(counts.index) - kept)
    for part, df in dense.parts():
        full = getattr(ml1m, part)
        assert set(df["item"]) <= kept
        assert len(df) == full["item"].isin(kept).sum()  # every row of those items, nothing else
    row = dense.test.iloc[0]  # histories still list the user's real liked items, kept or not
    orig = ml1m.test[(ml1m.test["user"] == row["user"]) & (ml1m.test["item"] == row["item"])].iloc[0]
    assert list(row["history"]) == list(orig["history"])
    assert (dense.n_users, dense.n_items) == (ml1m.n_users, ml1m.n_items)
    via_loader = load_split("ml1m", data_dir, top_items_n=100)
    assert via_loader.fingerprint == dense.fingerprint != ml1m.fingerprint
    with pytest.raises(BenchError, match="top_items must be positive"):
        top_items(ml1m, 0)
