"""Book-Crossing (TALLRec few-shot protocol): the raw BX CSV preprocessor, the TALLRec json
reader and the few-shot sampler, on small hand-built fixtures."""
import json

import numpy as np
import pytest

from bench.data import few_shot, load_split
from bench.data import bookcrossing as bx
from bench.data.schema import COLUMNS
from bench.errors import BenchError

BOOKS_HEADER = ('"ISBN";"Book-Title";"Book-Author";"Year-Of-Publication";"Publisher";'
                '"Image-URL-S";"Image-URL-M";"Image-URL-L"')

# One rating per book for every user who rates it, so a title tells its label (liked = rating > 5).
RATING = {"B01": 8, "B02": 0, "B03": 6, "B04": 3, "B20": 9, "B21": 0, "B22": 6, "B23": 4}
U14_RATINGS = [10, 0, 7, 5, 6, 1, 9, 0, 8, 2, 7, 0, 6, 3, 10]  # user 14's books B05..B19
RATING.update({f"B{5 + k:02d}": r for k, r in enumerate(U14_RATINGS)})


def _title(isbn: str) -> str:
    return "Café Society" if isbn == "B02" else f"Book {isbn[1:]}"


def _write_raw(root):
    d = root / "book-crossing"
    d.mkdir(parents=True)
    books = [BOOKS_HEADER]
    for k in list(range(1, 24)):
        isbn = f"B{k:02d}"
        books.append(f'"{isbn}";"{_title(isbn)}";"Author {k}";"2000";"Pub";"s";"m";"l"')
    # Too many fields: pandas skips it (TALLRec: error_bad_lines=False), so B99 is an unknown book.
    books.append('"B99";"Broken";"Someone";"2001";"Pub";"s";"m";"l";"extra"')
    ratings = ['"User-ID";"ISBN";"Book-Rating"']

    def rate(user, isbn, score=None):
        ratings.append(f'"{user}";"{isbn}";"{RATING[isbn] if score is None else score}"')

    rate(20, "B03")  # B03 is met first here: the join order puts it before B01 for user 10
    for isbn in ("B01", "B02", "B03", "B04"):
        rate(10, isbn)
    for k in range(15):
        rate(14, f"B{5 + k:02d}")
    for u in range(20, 28):
        for isbn in ("B20", "B21", "B22", "B23"):
            rate(u, isbn)
    for isbn in ("B20", "B21", "B22"):  # 3 ratings + a malformed line: dropped (needs > 3)
        rate(11, isbn)
    ratings.append('"11";"B23";"4";"oops"')
    for isbn in ("B20", "B21", "B22"):  # 4th rating is on the skipped book line: dropped
        rate(12, isbn)
    rate(12, "B99", 7)
    for isbn in ("B20", "B21", "B22"):  # 4th rating is on an ISBN not in BX-Books: dropped
        rate(13, isbn)
    rate(13, "B77", 7)
    (d / "BX-Books.csv").write_text("\n".join(books) + "\n", encoding="latin-1")
    (d / "BX-Book-Ratings.csv").write_text("\n".join(ratings) + "\n", encoding="latin-1")
    assert "é".encode("latin-1") in (d / "BX-Books.csv").read_bytes()  # a real latin-1 byte


def _all_rows(split):
    return [r for part in ("train", "valid", "test") for r in getattr(split, part).to_dict("records")]


def test_raw_book_crossing_follows_tallrec_rules(tmp_path):
    _write_raw(tmp_path)
    split = load_split("bookcrossing", tmp_path, use_cache=False)
    # Kept users: 10, 14 and 20..27 (11, 12, 13 have 3 usable ratings) -> 80/10/10: 8 / 1 / 1.
    assert {p: len(df) for p, df in split.parts()} == {"train": 8, "valid": 1, "valid_small": 1, "test": 1}
    assert split.domain == "book" and split.n_users == 11
    # Ids only for books shown in a prompt: user 10's 4, user 14's 10 + target, B20..B23.
    assert split.n_items == 1 + 4 + 11 + 4
    for _, df in split.parts():
        assert list(df.columns)[: len(COLUMNS)] == list(COLUMNS)
        assert (df["timestamp"] == 0).all()
    rows = _all_rows(split)
    for r in rows:
        assert len(r["history_titles"]) + len(r["disliked_titles"]) <= 10
        assert all(RATING[_isbn(t)] > 5 for t in r["history_titles"])
        assert all(RATING[_isbn(t)] <= 5 for t in r["disliked_titles"])
        assert r["label"] == int(RATING[_isbn(r["title"])] > 5)
        assert len(r["history"]) == len(r["history_titles"]) and len(r["disliked"]) == len(r["disliked_titles"])
        assert r["author"] == f"Author {int(_isbn(r['title'])[1:])}"
    # Users 11/12/13 are gone, so no prompt mentions B77/B99 and all users have 3+1 books at least.
    assert all(len(r["history_titles"]) + len(r["disliked_titles"]) >= 3 for r in rows)

    # User 10: join order B03 (met first via user 20), B01, B02, B04; seed-42 shuffle of 4 items
    # is [2, 1, 3, 0] -> B02, B01, B04 | target B03. The implicit 0 (B02) counts as disliked.
    (u10,) = [r for r in rows if "Café Society" in r["disliked_titles"] + r["history_titles"] + [r["title"]]]
    assert u10["history_titles"] == ["Book 01"]
    assert u10["disliked_titles"] == ["Café Society", "Book 04"]  # latin-1 decoded
    assert (u10["title"], u10["label"]) == ("Book 03", 1)

    # User 14 (15 books B05..B19): the seed-42 shuffle of 15 items is
    # [8, 13, 7, 6, 14, 12, 5, 2, 9, 3, 4, 11, 0, 1, 10]: the first 10 are the history, the last
    # (10 -> B15, rating 7) the target; positions 4, 11, 0, 1 are not used.
    (u14,) = [r for r in rows if r["title"] == "Book 15"]
    assert u14["history_titles"] == ["Book 13", "Book 11", "Book 19", "Book 17", "Book 07"]
    assert u14["disliked_titles"] == ["Book 18", "Book 12", "Book 10", "Book 14", "Book 08"]  # B08 = 5: not liked
    assert u14["label"] == 1 and len(u14["history"]) + len(u14["disliked"]) == 10

    # Users are disjoint across parts: every valid / test row is cold, nobody is warm.
    assert (split.test["not_cold"] == 0).all() and (split.valid["not_cold"] == 0).all()
    assert (split.train["not_cold"] == 1).all()
    # Deterministic: a rebuild gives the same split.
    assert load_split("bookcrossing", tmp_path, use_cache=False).fingerprint == split.fingerprint


def _isbn(title: str) -> str:
    return "B02" if title == "Café Society" else f"B{title.split()[-1]}"


def test_tallrec_permutation_is_pythons_seeded_shuffle():
    assert bx.tallrec_permutation(4) == [2, 1, 3, 0]
    assert bx.tallrec_permutation(15) == [8, 13, 7, 6, 14, 12, 5, 2, 9, 3, 4, 11, 0, 1, 10]


def _entry(title, author):
    return f'"{title}" written by {author}'


def _record(liked, disliked, target, answer, authors=True):
    """A prompt in the layout of TALLRec's released data/book/*.json (authors=True) or with bare
    quoted titles (authors=False)."""
    fmt = (lambda t: _entry(*t)) if authors else (lambda t: f'"{t[0]}"')
    tgt = f'"{_entry(*target)}"' if authors else f'"{target[0]}"'
    text = (f"User Preference: {', '.join(map(fmt, liked))}\nUser Unpreference: {', '.join(map(fmt, disliked))}\n"
            f"Whether the user will like the target book {tgt}?")
    return {"instruction": "Given the user's preference and unpreference, identify whether the user will "
                           "like the target book by answering \"Yes.\" or \"No.\".",
            "input": text, "output": "Yes." if answer else "No."}


def _write_tallrec(root):
    d = root / "book-crossing-tallrec"
    d.mkdir(parents=True)
    tricky = ('Called \\Me\\": A "Story", Told"', "Einzig, Pearce")  # quotes, commas, backslashes
    train = [_record([tricky, ("Book 1", "Ann")], [("Book 2", "Bob")], ("Target 0", "Cy"), True)]
    for i in range(1, 40):
        liked = [(f"Book {i}", "Ann"), (f"Book {i + 1}", "Ann")]
        disliked = [(f"Book {i + 2}", "Bob")] if i % 2 else []
        train.append(_record(liked, disliked, (f"Target {i}", "Cy"), i % 3 == 0))
    valid = [_record([("A", ""), ("B", "")], [("C", "")], ("X", ""), True, authors=False),
             _record([], [("C", "")], ("Y", ""), False, authors=False)]
    test = [_record([], [("Book 3", "Bob")], ("Book 1", "Ann"), False),
            _record([("Target 0", "Cy")], [], ("Book 5", "Ann"), True),
            _record([("Book 7", "Ann")], [("Book 2", "Bob"), ("Book 9", "Ann")], ("Book 40", "Ann"), False)]
    for name, recs in (("train", train), ("valid", valid), ("test", test)):
        (d / f"{name}.json").write_text(json.dumps(recs, indent=4), encoding="utf-8")
    return d


def test_tallrec_json_prompts(tmp_path):
    _write_tallrec(tmp_path)
    split = load_split("bookcrossing-tallrec", tmp_path, use_cache=False)
    assert {p: len(df) for p, df in split.parts()} == {"train": 40, "valid": 2, "valid_small": 2, "test": 3}
    assert split.n_users == 46 and split.domain == "book"
    first = split.train.iloc[0]
    assert first["history_titles"] == ['Called \\Me\\": A "Story", Told"', "Book 1"]
    assert first["history_authors"] == ["Einzig, Pearce", "Ann"]
    assert first["disliked_titles"] == ["Book 2"] and first["disliked_authors"] == ["Bob"]
    assert (first["title"], first["author"], first["label"]) == ("Target 0", "Cy", 1)
    assert split.train["label"].tolist() == [1] + [int(i % 3 == 0) for i in range(1, 40)]
    assert split.train["disliked_titles"].map(len).tolist()[1:] == [i % 2 for i in range(1, 40)]
    v = split.valid.iloc[0]
    assert (v["history_titles"], v["disliked_titles"], v["title"], v["label"]) == (["A", "B"], ["C"], "X", 1)
    assert split.valid.iloc[1]["history_titles"] == []
    t = split.test
    assert t["history_titles"].tolist() == [[], ["Target 0"], ["Book 7"]]
    assert t["label"].tolist() == [0, 1, 0]
    # Same (title, author) -> same item id across files; the history ids follow the liked titles.
    assert t.iloc[0]["item"] == split.train.iloc[0]["history"][1]  # "Book 1" by Ann
    assert t.iloc[1]["history"] == [split.train.iloc[0]["item"]]  # "Target 0" by Cy
    assert t.iloc[0]["disliked"] == [split.train.iloc[1]["disliked"][0]]  # "Book 3" by Bob
    assert split.train["user"].tolist() == list(range(1, 41)) and t["user"].tolist() == [43, 44, 45]


def test_tallrec_json_errors_name_the_problem(tmp_path):
    d = _write_tallrec(tmp_path)
    recs = json.loads((d / "test.json").read_text())
    recs[1]["output"] = "Maybe."
    (d / "test.json").write_text(json.dumps(recs))
    with pytest.raises(BenchError, match=r"test.json\[1\]: output must be"):
        bx.load_tallrec(tmp_path)
    recs[1] = {"instruction": "", "input": "Preference: none", "output": "No."}
    (d / "test.json").write_text(json.dumps(recs))
    with pytest.raises(BenchError, match=r"test.json\[1\]: input does not follow"):
        bx.load_tallrec(tmp_path)


def test_missing_files_name_the_file_and_the_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BenchError, match=r"BX-Book-Ratings.csv(.|\n)*<data-dir>/book-crossing/"):
        load_split("bookcrossing", tmp_path / "empty", use_cache=False)
    with pytest.raises(BenchError, match=r"train.json(.|\n)*<data-dir>/book-crossing-tallrec/"):
        load_split("bookcrossing-tallrec", tmp_path / "empty", use_cache=False)
    d = _write_tallrec(tmp_path / "partial")
    (d / "valid.json").unlink()
    with pytest.raises(BenchError, match=r"not found: .*valid.json"):
        load_split("bookcrossing-tallrec", tmp_path / "partial", use_cache=False)


def test_few_shot_is_tallrecs_seeded_sample(tmp_path):
    _write_tallrec(tmp_path)
    split = load_split("bookcrossing-tallrec", tmp_path, use_cache=False)
    a, b, c = few_shot(split, 16, seed=0), few_shot(split, 16, seed=0), few_shot(split, 16, seed=1)
    assert len(a.train) == 16 and a.fingerprint == b.fingerprint != c.fingerprint
    assert a.train["user"].tolist() == b.train["user"].tolist()
    # HuggingFace Dataset.shuffle(seed) == np.random.default_rng(seed).permutation: same prompts.
    picked = np.random.default_rng(0).permutation(40)[:16]
    assert sorted(a.train["user"]) == sorted(split.train["user"].to_numpy()[picked])
    assert a.train["user"].nunique() == 16
    assert a.valid is split.valid and a.test is split.test and a.valid_small is split.valid_small
    assert (a.n_users, a.n_items) == (split.n_users, split.n_items)
    assert len(few_shot(split, 40, 3).train) == 40
    with pytest.raises(BenchError, match="exceeds the 40 train rows"):
        few_shot(split, 64, 0)
    with pytest.raises(BenchError, match="must be positive"):
        few_shot(split, 0, 0)
