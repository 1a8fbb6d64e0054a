"""Raw ML-1M files (issue 14): every bad input is a BenchError naming the file and the line, a file
that is not the GroupLens release leaves a note on the split, and the split cache never unpickles
or trusts an entry whose rows do not match its fingerprint."""
from __future__ import annotations

import io
import json
import logging
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.data import cap_eval_rows, few_shot, load_full, load_split, split_cache, subset, top_items
from bench.data import ml1m
from bench.data.schema import Split
from bench.errors import BenchError

# One UTC timestamp inside each window of the CoLLM protocol (months after April 2000).
TRAIN_T = int(pd.Timestamp("2001-07-10", tz="UTC").timestamp())  # month 15
VALID_T = int(pd.Timestamp("2002-05-10", tz="UTC").timestamp())  # month 25
TEST_T = int(pd.Timestamp("2002-10-10", tz="UTC").timestamp())  # month 30
EARLY_T = int(pd.Timestamp("2000-06-10", tz="UTC").timestamp())  # month 2: dropped by the protocol

MOVIES = [
    "1::Toy Story (1995)::Animation|Children's|Comedy",
    "2::Jumanji (1995)::Adventure|Children's|Fantasy",
    "3::Grumpier Old Men (1995)::Comedy|Romance",
    "4::Waiting to Exhale (1995)::Comedy|Drama",
    "5::Father of the Bride Part II (1995)::Comedy",
    "6::Heat (1995)::Action|Crime|Thriller",
    "7::Sabrina (1995)::Comedy|Romance",
    "73::Misérables, Les (1995)::Drama|Musical",
]


def rating_lines() -> list[str]:
    """Four users rating movies in every window (and one early row), GroupLens format."""
    lines = []
    for user in (1, 2, 3, 4):
        for k, (movie, t) in enumerate([(1, TRAIN_T), (2, TRAIN_T), (3, TRAIN_T), (73, TRAIN_T), (4, VALID_T),
                                        (5, VALID_T), (6, TEST_T), (7, TEST_T), (1, EARLY_T)]):
            lines.append(f"{user}::{movie}::{1 + (user + k) % 5}::{t + 60 * k + user}")
    return lines


def write_raw(root: Path, ratings: list[str] | bytes | None = None, movies: list[str] | bytes | None = None) -> Path:
    """<root>/ml-1m/{ratings,movies}.dat, latin-1 like GroupLens's, from lines or raw bytes."""
    d = root / "ml-1m"
    d.mkdir(parents=True, exist_ok=True)
    for name, content in (("ratings.dat", rating_lines() if ratings is None else ratings),
                          ("movies.dat", MOVIES if movies is None else movies)):
        data = content if isinstance(content, bytes) else "".join(f"{line}\n" for line in content).encode("latin-1")
        (d / name).write_bytes(data)
    return d


def replace_line(lines: list[str], number: int, text: str) -> list[str]:
    out = list(lines)
    out[number - 1] = text
    return out


def zipped(text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ratings.dat", text)
    return buf.getvalue()


R = rating_lines()
# name -> (ratings.dat, movies.dat, file the error names, regex the message must match)
BAD_INPUTS = {
    "comma separator": ([line.replace("::", ",") for line in R], None, "ratings.dat",
                        r"is separated by ',', not '::': line 1 is '1,1,2,\d+' \(36 of 36 lines"),
    "tab separator": ([line.replace("::", "\t") for line in R], None, "ratings.dat",
                      r"is separated by '\\t', not '::': line 1 "),
    "malformed line": (replace_line(R, 5, "1::3::4"), None, "ratings.dat",
                       r"ratings.dat line 5: malformed, 3 field\(s\) where UserID::MovieID::Rating::Timestamp has 4"),
    "truncated file": (R[:-1] + [R[-1][:5]], None, "ratings.dat", r"ratings.dat line 36: malformed, 2 field\(s\)"),
    "blank line inside": (R[:3] + [""] + R[3:], None, "ratings.dat", r"ratings.dat line 4: malformed, 1 field"),
    "non-numeric rating": (replace_line(R, 3, "1::3::five::993000000"), None, "ratings.dat",
                           r"ratings.dat line 3: non-numeric field, line 3 has Rating 'five'"),
    "non-numeric ids": (replace_line(replace_line(R, 7, "u1::3::4::993000000"), 9, "1::m9::4::993000000"), None,
                        "ratings.dat", r"ratings.dat lines 7, 9: non-numeric field, line 7 has UserID 'u1'"),
    "float timestamp": (replace_line(R, 2, "1::2::4::993000000.5"), None, "ratings.dat",
                        r"line 2 has Timestamp '993000000.5'"),
    "rating out of range": (replace_line(R, 4, "1::73::7::993000000"), None, "ratings.dat",
                            r"ratings.dat line 4: Rating outside GroupLens's 1..5 stars, line 4 has 7"),
    "millisecond timestamps": (replace_line(R, 6, f"1::5::3::{VALID_T}000"), None, "ratings.dat",
                               r"ratings.dat line 6: Timestamp outside Unix seconds before 2100 \(milliseconds\?\), "
                               r"line 6 has \d{13}"),
    "no row in the time window": ([line.rsplit("::", 1)[0] + f"::{EARLY_T}" for line in R], None, "ratings.dat",
                                  r"has no row in the protocol's time window \(train 2001-06..2002-03, valid "
                                  r"2002-04..2002-08, test 2002-09..2003-01, UTC\): its timestamps run from "
                                  r"2000-06-10 \(line \d+\) to 2000-06-10 \(line \d+\)"),
    "no row in the test window": ([line for line in R if line.split("::")[1] not in ("6", "7")], None,
                                  "ratings.dat", r"ratings.dat has no row in the test window \(train 2001-06"),
    "empty ratings.dat": (b"", None, "ratings.dat", r"ratings.dat is empty \(0 bytes, no data line\)"),
    "blank ratings.dat": (b"\n\n", None, "ratings.dat", r"ratings.dat is empty \(2 bytes"),
    "binary ratings.dat": (b"1::1::5::993000000\n\x00\x17\xff\x00garbage", None, "ratings.dat",
                           r"ratings.dat is binary, not text: NUL byte on line 2"),
    "zipped ratings.dat": (zipped("\n".join(R)), None, "ratings.dat", r"ratings.dat is a zip archive"),
    "unknown movie": (replace_line(R, 8, "1::999::4::993000000"), None, "ratings.dat",
                      r"ratings.dat line 8: MovieID\(s\) 999 not in \S*movies.dat \(1 rating\(s\) in all\)"),
    "empty movies.dat": (None, b"", "movies.dat", r"movies.dat is empty"),
    "binary movies.dat": (None, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "movies.dat",
                          r"movies.dat is binary, not text: NUL byte on line 3"),
    "UTF-8 movies.dat": (None, "\n".join(MOVIES).encode("utf-8"), "movies.dat",
                         r"movies.dat looks UTF-8 re-encoded, not latin-1 as GroupLens ships it: line 8 "
                         r"'73::Misérables, Les \(1995\)::Drama\|Musical' reads as "
                         r"'73::MisÃ©rables, Les \(1995\)::Drama\|Musical' in latin-1"),
    "CSV movies.dat": (None, ["movieId,title,genres", "1,Toy Story (1995),Animation"], "movies.dat",
                       r"movies.dat is separated by ',', not '::': line 1 is 'movieId,title,genres'"),
    "malformed movies.dat": (None, replace_line(MOVIES, 3, "3::Grumpier Old Men (1995)"), "movies.dat",
                             r"movies.dat line 3: malformed, 2 field\(s\) where MovieID::Title::Genres has 3"),
    "non-numeric movie id": (None, replace_line(MOVIES, 2, "two::Jumanji (1995)::Adventure"), "movies.dat",
                             r"movies.dat line 2: non-numeric field, line 2 has MovieID 'two'"),
    "repeated movie id": (None, MOVIES + ["6::Heat, again (1995)::Action"], "movies.dat",
                          r"movies.dat lines 6 and 9 both list MovieID 6"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_raw_input_is_a_bench_error_naming_file_and_line(tmp_path, case):
    ratings, movies, culprit, message = BAD_INPUTS[case]
    d = write_raw(tmp_path, ratings, movies)
    with pytest.raises(BenchError) as err:
        load_split("ml1m-raw", tmp_path, use_cache=False)
    text = str(err.value)
    assert str(d / culprit) in text and re.search(message, text), text
    assert re.search(r"\bline|\bempty\b|zip archive", err.value.problem), text  # a line, or a file without any
    assert err.value.fix


def test_missing_raw_file_is_named(tmp_path):
    write_raw(tmp_path)
    (tmp_path / "ml-1m" / "movies.dat").unlink()
    with pytest.raises(BenchError, match=r"raw ML-1M file not found: \S*movies.dat\n  fix: download ml-1m.zip"):
        load_split("ml1m-raw", tmp_path, use_cache=False)


def test_small_raw_files_give_a_split_with_notes(tmp_path, caplog):
    write_raw(tmp_path)
    with caplog.at_level(logging.WARNING, logger="bench.data.ml1m"):
        split = load_split("ml1m-raw", tmp_path, use_cache=False)
    assert (len(split.train), len(split.valid), len(split.test)) == (16, 8, 8)  # the early rows are dropped
    assert "Misérables, Les (1995)" in split.titles().values()  # latin-1 decoded, no mojibake
    digest = ml1m.sha256_file(tmp_path / "ml-1m" / "ratings.dat")
    assert split.notes[0] == (f"ratings.dat is not the GroupLens ML-1M release (36 rows by 4 users, sha256 {digest}; "
                              f"the release has 1,000,209 rows by 6,040 users): its split will not match the "
                              f"published one")
    assert split.notes[1].startswith("movies.dat is not the GroupLens ML-1M release (sha256 ")
    assert split.notes[2].startswith("the rebuilt split has 16 / 8 / 8 train / valid / test rows")
    assert [r.getMessage() for r in caplog.records if r.name == "bench.data.ml1m"] == list(split.notes)


def test_release_movies_file_gives_no_movie_note(tmp_path, data_dir):
    write_raw(tmp_path, movies=(data_dir / "ml-1m-collm" / "movies.dat").read_bytes())
    split = load_split("ml1m-raw", tmp_path, use_cache=False)
    assert [n.split(" ")[0] for n in split.notes] == ["ratings.dat", "the"]
    assert "Misérables, Les (1995)" in split.titles().values()


def test_notes_survive_the_cache_and_every_transform(tmp_path, monkeypatch):
    monkeypatch.setenv("RECBENCH_CACHE", str(tmp_path / "cache"))
    write_raw(tmp_path / "data")
    built = load_full("ml1m-raw", tmp_path / "data")
    cached = load_full("ml1m-raw", tmp_path / "data")
    assert len(built.notes) == 3 and cached.notes == built.notes
    for derived in (subset(cached, 2, 0), top_items(cached, 3), few_shot(cached, 4), cap_eval_rows(cached, 2)):
        assert derived.notes == built.notes


def test_same_second_ratings_follow_the_published_merge_order_not_the_file(tmp_path):
    """CoLLM merged ratings with movies first (pandas < 2.2: rows grouped by movie, movies in order
    of first appearance in the file), then sorted by (user, time) with a stable sort. So a user's
    same-second ratings come in the order their movies first appear in ratings.dat, whatever
    order the user's own lines are in."""
    lines = [
        f"9::5::4::{EARLY_T}",  # month 2, dropped; but movie 5 first appears here ...
        f"9::3::4::{EARLY_T}",  # ... before movie 3
        f"1::3::5::{TRAIN_T}",  # user 1 rates 3, then 5, in the same second
        f"1::5::5::{TRAIN_T}",
        f"1::1::4::{TRAIN_T + 60}",
        f"1::2::2::{VALID_T}",
        f"1::4::5::{VALID_T}",
        f"1::6::5::{TEST_T}",
    ]
    write_raw(tmp_path, ratings=lines)
    split = load_split("ml1m-raw", tmp_path, use_cache=False)
    father, grumpier, toy = "Father of the Bride Part II (1995)", "Grumpier Old Men (1995)", "Toy Story (1995)"
    assert split.train["title"].tolist() == [father, grumpier, toy]
    assert split.train["item"].tolist() == [1, 2, 3]  # ids follow the same order
    assert split.train["history_titles"].tolist() == [[], [father], [father, grumpier]]
    assert split.test["history_titles"].tolist() == [[father, grumpier, toy, "Waiting to Exhale (1995)"]]
    # The order of first appearance counts over the whole file: with user 9's rows the other way
    # round, the file order wins.
    write_raw(tmp_path, ratings=[lines[1], lines[0]] + lines[2:])
    split = load_split("ml1m-raw", tmp_path, use_cache=False)
    assert split.train["title"].tolist() == [grumpier, father, toy]


# --------------------------------------------------------------------------- split cache


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private cache, raw files for ml1m-raw, and a counter of real (uncached) loads."""
    import bench.data as data

    monkeypatch.setenv("RECBENCH_CACHE", str(tmp_path / "cache"))
    write_raw(tmp_path / "data")
    builds = []
    real = data._load_uncached

    def counting(name, ddir):
        builds.append(name)
        return real(name, ddir)

    monkeypatch.setattr(data, "_load_uncached", counting)
    first = load_full("ml1m-raw", tmp_path / "data")
    (entry,) = (tmp_path / "cache" / "splits").glob("*.json")
    return {"data": tmp_path / "data", "entry": entry, "builds": builds, "first": first, "tmp": tmp_path}


def assert_same(a: Split, b: Split) -> None:
    assert (a.dataset, a.n_users, a.n_items, a.domain, a.fingerprint, a.notes) == \
           (b.dataset, b.n_users, b.n_items, b.domain, b.fingerprint, b.notes)
    for part, df in a.parts():
        other = getattr(b, part)
        assert list(df.columns) == list(other.columns) and (df.dtypes == other.dtypes).all(), part
        assert df.index.equals(other.index) and df.equals(other), part


def test_cache_entry_is_json_and_round_trips(cache):
    doc = json.loads(cache["entry"].read_text(encoding="utf-8"))
    assert doc["format"] == "recbench-split" and doc["fingerprint"] == cache["first"].fingerprint
    again = load_full("ml1m-raw", cache["data"])
    assert cache["builds"] == ["ml1m-raw"]  # the second load came from the cache
    assert_same(again, cache["first"])
    assert [p.name for p in cache["entry"].parent.iterdir()] == [cache["entry"].name]  # no temp file left


class _Exploit:
    """Unpickling this creates a marker file: proof that a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pickle_in_the_cache_is_never_unpickled(cache):
    marker = cache["tmp"] / "pwned"
    payload = pickle.dumps(_Exploit(marker))
    cache["entry"].write_bytes(payload)
    cache["entry"].with_suffix(".pkl").write_bytes(payload)  # where the old cache kept splits
    split = load_full("ml1m-raw", cache["data"])
    assert not marker.exists()
    assert cache["builds"] == ["ml1m-raw", "ml1m-raw"]  # rebuilt ...
    assert_same(split, cache["first"])
    assert json.loads(cache["entry"].read_text(encoding="utf-8"))["format"] == "recbench-split"  # ... and rewritten


def _flip_a_label(text: str) -> str:
    """Edit one row but keep the stored fingerprint: the recomputed one gives it away."""
    doc = json.loads(text)
    labels = next(c for c in doc["parts"]["test"]["columns"] if c[0] == "label")[2]["values"]
    labels[0] = 1 - labels[0]
    return json.dumps(doc)


DAMAGE = {
    "truncated": lambda text: text[: len(text) // 2],
    "empty": lambda text: "",
    "fingerprint edited": lambda text: json.dumps({**json.loads(text), "fingerprint": "0" * 16}),
    "label edited": _flip_a_label,
    "other version": lambda text: json.dumps({**json.loads(text), "version": 99}),
    "not a split": lambda text: json.dumps([1, 2, 3]),
    "no fingerprint": lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "fingerprint"}),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_cache_entry_is_rebuilt(cache, damage, caplog):
    cache["entry"].write_text(DAMAGE[damage](cache["entry"].read_text(encoding="utf-8")), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="bench.data.split_cache"):
        split = load_full("ml1m-raw", cache["data"])
    assert cache["builds"] == ["ml1m-raw", "ml1m-raw"]
    assert_same(split, cache["first"])
    assert any("rebuilding" in r.getMessage() for r in caplog.records)
    load_full("ml1m-raw", cache["data"])
    assert len(cache["builds"]) == 2  # the rewritten entry is trusted again


def test_cache_format_keeps_extra_columns_dtypes_and_index(tmp_path):
    def part(n: int) -> pd.DataFrame:
        return pd.DataFrame({
            "user": np.arange(1, n + 1, dtype="int64"), "item": np.arange(n, dtype="int64") % 3 + 1,
            "label": np.arange(n, dtype="int64") % 2, "timestamp": np.arange(n, dtype="int64") * 10,
            "history": [list(range(1, k % 4 + 1)) for k in range(n)],
            "history_titles": [[f"Book {j}" for j in range(1, k % 4 + 1)] for k in range(n)],
            "title": [f"Book {k % 3 + 1}" for k in range(n)], "not_cold": np.ones(n, dtype="int64"),
            "warm": np.zeros(n, dtype="int64"), "score": np.where(np.arange(n) % 2, 0.5, np.nan),
            "author": ["Émile Zola"] * n, "disliked": [[] for _ in range(n)],
        })

    valid = part(6)
    split = Split("toy", part(8), valid, valid.sample(n=3, random_state=0), part(0), 9, 4, domain="book",
                  notes=("a note",))
    path = tmp_path / "toy.json"
    split_cache.write(path, split)
    assert_same(split_cache.read(path), split)


def test_a_split_the_format_cannot_hold_is_not_cached(tmp_path, caplog):
    df = pd.DataFrame({"user": [1], "item": [1], "label": [1], "timestamp": [0], "history": [(1, 2)],
                       "history_titles": [["a"]], "title": ["a"], "not_cold": [1], "warm": [1]})
    split = Split("toy", df, df, df, df, 2, 2)
    with caplog.at_level(logging.WARNING, logger="bench.data.split_cache"):
        split_cache.write(tmp_path / "toy.json", split)
    assert not (tmp_path / "toy.json").exists() and "is not cached" in caplog.text
    assert list(tmp_path.iterdir()) == []
