"""Book-Crossing in the TALLRec few-shot protocol (GraphLoRA Table 7: 16 / 64 / 256 training
prompts, AUC), from the raw BX CSV dump or from TALLRec's processed json prompts.

Every row is one TALLRec prompt: one user, a target book, ``label`` = liked, and the user's other
rated books (at most 10) split into ``history`` / ``history_titles`` (liked) and the extra columns
``disliked`` / ``disliked_titles`` (not liked). ``author``, ``history_authors`` and
``disliked_authors`` keep the authors TALLRec writes into its prompts ("written by ..."). The
schema allows extra columns after the required ones, so no schema change is needed.

Raw rules (``load_raw``, files in ``<data-dir>/book-crossing/``), from TALLRec's
``preprocess_book.py`` (github.com/SAI990323/TALLRec, commit 28dca7b):

* ``BX-Book-Ratings.csv`` and ``BX-Books.csv`` are read as ';'-separated, '"'-quoted latin-1 text;
  book lines with too many fields are skipped (TALLRec: ``error_bad_lines=False``). TALLRec reads
  the ratings file without that option; we skip malformed rating lines too, and drop ratings that
  are not numbers (both would crash TALLRec's script; neither occurs in the real dump).
* Ratings are inner-joined to the books on the exact ISBN string: ratings of unknown ISBNs go.
  Every rating is kept, *including the implicit 0s*: the script never filters them.
* Liked = rating > 5 (``int(rating > 5)``), so implicit 0 ratings count as disliked.
* Users with more than 3 joined ratings are kept (``len <= 3`` dropped).
* Each user's books, in join order, are shuffled by the permutation that ``random.seed(42);
  random.shuffle`` gives a list of that length (TALLRec reseeds before shuffling every aligned
  list); the last shuffled book is the target, the first ``min(n - 1, 10)`` form the history,
  which is split into liked / disliked keeping the shuffled order; books in between are unused.
* Join order: TALLRec ran pandas < 2.0 (it uses ``error_bad_lines``, removed in 2.0), whose inner
  merge returned rows grouped by ISBN, ISBNs in order of first appearance in the ratings file and
  file order within an ISBN (pandas 2.2 changed this to plain left order, pandas issue 55774). The
  order decides which books the shuffle puts first, so we rebuild the old order explicitly.
* Users are split 80 / 10 / 10 % into train / valid / test by position in a shuffled user list
  (``int(0.8 n)``, ``int(0.9 n)`` cut points), one prompt per user.

Rules we could not establish, and our documented choices:

* TALLRec shuffles the user list with an *unseeded* ``random.shuffle``, so its split cannot be
  rebuilt. We shuffle the list (users in order of first appearance in the join) with
  ``random.Random(42)`` -- 42 being the seed the script uses everywhere else.
* The published script does not run as written (``mx`` is used before assignment) and its target
  text differs from the released json (``"T"written byA`` vs ``""T" written by A"``), so the
  released files came from an unpublished variant; we follow the rules it shows and the prompt
  layout of the released files.
* Missing titles / authors (a few in the dump) become ''; TALLRec's string concatenation would
  fail on them.

TALLRec json (``load_tallrec``, ``train.json`` / ``valid.json`` / ``test.json`` in
``<data-dir>/book-crossing-tallrec/``, e.g. ``data/book/`` of the TALLRec repo plus the
``train.json`` its script writes): rows are parsed in file order; "Yes." -> label 1, "No." -> 0.
Both the released layout (``"T" written by A`` entries, target wrapped in an extra pair of quotes)
and bare quoted titles (``"T1", "T2"``) are read; a row that does not parse back to its own text
is an error, never guessed at. Books are identified by (title, author) since the files hold no
ISBNs; users are one per prompt (TALLRec's split is user-disjoint).

Shared by both: user and item ids are 1..N in order of first appearance over train, valid, test
(per prompt: liked, disliked, target); ``timestamp`` is 0 (Book-Crossing has no times);
``valid_small`` is the whole valid part, as TALLRec validates on all of ``valid.json``; because
users are disjoint across parts, ``not_cold`` is 0 on every valid / test row and ``warm`` is 0
everywhere (one train row per user). The train graph (``Split.train_graph``) holds the liked
train targets only; history interactions live in ``history`` / ``disliked``.

``few_shot(split, n, seed)`` draws TALLRec's training sample: TALLRec (``finetune_rec.py``) calls
HuggingFace ``Dataset.shuffle(seed).select(range(n))`` and shuffles the result again with the same
seed; ``Dataset.shuffle`` is ``np.random.default_rng(seed).permutation``, so with the rows in
``train.json`` order the same seed picks the same prompts.
"""
from __future__ import annotations

import dataclasses
import json
import random
import re
from pathlib import Path

import numpy as np
import pandas as pd

from bench.data.protocol import add_flags
from bench.data.schema import COLUMNS, Split
from bench.errors import BenchError

SUBDIR = "book-crossing"
TALLREC_SUBDIR = "book-crossing-tallrec"
RATINGS_FILE = "BX-Book-Ratings.csv"
BOOKS_FILE = "BX-Books.csv"
TALLREC_FILES = {"train": "train.json", "valid": "valid.json", "test": "test.json"}

LIKED_ABOVE = 5  # liked = rating > 5
MIN_RATINGS = 4  # users with more than 3 ratings
HISTORY_LEN = 10
SHUFFLE_SEED = 42  # TALLRec's per-user shuffle seed
USER_SPLIT_SEED = 42  # our choice: TALLRec's user shuffle is unseeded
TRAIN_FRAC, VALID_END_FRAC = 0.8, 0.9

EXTRA_COLUMNS = ("disliked", "disliked_titles", "author", "history_authors", "disliked_authors")


@dataclasses.dataclass(frozen=True)
class Book:
    key: str  # identity: the ISBN (raw) or title + author (json)
    title: str
    author: str


@dataclasses.dataclass
class Prompt:
    """One TALLRec prompt: the user's liked / disliked history books and the target."""

    liked: list[Book]
    disliked: list[Book]
    target: Book
    label: int


# --------------------------------------------------------------------------- shared table builder

def build_prompt_split(name: str, prompts: dict[str, list[Prompt]]) -> Split:
    """The recbench Split of per-part prompt lists (ids assigned in first-appearance order)."""
    item_id: dict[str, int] = {}

    def iid(book: Book) -> int:
        return item_id.setdefault(book.key, len(item_id) + 1)

    parts: dict[str, pd.DataFrame] = {}
    user = 0
    for part in ("train", "valid", "test"):
        rows = []
        for p in prompts[part]:
            user += 1
            liked, disliked = [iid(b) for b in p.liked], [iid(b) for b in p.disliked]
            rows.append({
                "user": user, "item": iid(p.target), "label": int(p.label), "timestamp": 0,
                "history": liked, "history_titles": [b.title for b in p.liked], "title": p.target.title,
                "disliked": disliked, "disliked_titles": [b.title for b in p.disliked],
                "author": p.target.author, "history_authors": [b.author for b in p.liked],
                "disliked_authors": [b.author for b in p.disliked],
            })
        cols = [c for c in COLUMNS if c not in ("not_cold", "warm")] + list(EXTRA_COLUMNS)
        df = pd.DataFrame(rows, columns=cols)
        for c in ("user", "item", "label", "timestamp"):
            df[c] = df[c].astype("int64")
        parts[part] = df
    if parts["train"].empty or parts["test"].empty:
        raise BenchError(f"{name}: the split has an empty train or test part "
                         f"({ {p: len(d) for p, d in parts.items()} })",
                         "check that the input holds enough users / prompts")
    add_flags(parts)
    # Keep the schema's column order first, then the extras.
    parts = {p: df[list(COLUMNS) + list(EXTRA_COLUMNS)] for p, df in parts.items()}
    parts["valid_small"] = parts["valid"].copy()  # TALLRec validates on the whole valid.json
    return Split(dataset=name, n_users=user + 1, n_items=len(item_id) + 1, domain="book", **parts)


# --------------------------------------------------------------------------- raw CSV dump

def _need(path: Path, fix: str) -> None:
    if not path.exists():
        raise BenchError(f"Book-Crossing file not found: {path}", fix)


def read_raw(ratings_path: Path, books_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The two BX tables as strings (ISBNs keep their leading zeros and 'X')."""
    fix = (f"put {RATINGS_FILE} and {BOOKS_FILE} (from BX-CSV-Dump.zip) into <data-dir>/{SUBDIR}/ "
           "and pass --data-dir / RECBENCH_DATA_DIR")
    _need(ratings_path, fix)
    _need(books_path, fix)
    opts = dict(sep=";", quotechar='"', encoding="latin-1", dtype=str, keep_default_na=False,
                on_bad_lines="skip")
    ratings = pd.read_csv(ratings_path, **opts)
    books = pd.read_csv(books_path, **opts)
    for df, path, need in ((ratings, ratings_path, ("User-ID", "ISBN", "Book-Rating")),
                           (books, books_path, ("ISBN", "Book-Title", "Book-Author"))):
        missing = [c for c in need if c not in df.columns]
        if missing:
            raise BenchError(f"{path} lacks column(s) {missing} (has {list(df.columns)})",
                             "use the original ';'-separated BX-CSV-Dump files")
    return ratings, books


def tallrec_permutation(n: int, seed: int = SHUFFLE_SEED) -> list[int]:
    """The order ``random.seed(seed); random.shuffle(x)`` puts a length-n list in:
    shuffled[i] = x[perm[i]]."""
    perm = list(range(n))
    random.Random(seed).shuffle(perm)
    return perm


def prompts_from_ratings(ratings: pd.DataFrame, books: pd.DataFrame,
                         user_seed: int = USER_SPLIT_SEED) -> dict[str, list[Prompt]]:
    """TALLRec's per-user prompts and user split from the raw tables (rules: module docstring)."""
    books = books.drop_duplicates("ISBN")  # the ISBN is the dump's key; a no-op on the real file
    title = dict(zip(books["ISBN"], books["Book-Title"].fillna("")))
    author = dict(zip(books["ISBN"], books["Book-Author"].fillna("")))
    r = ratings.assign(score=pd.to_numeric(ratings["Book-Rating"], errors="coerce"))
    r = r[r["score"].notna() & r["ISBN"].isin(title.keys()) & r["User-ID"].ne("")]
    # Rebuild the pandas < 2.0 inner-merge order: grouped by ISBN, first-appearance order.
    r = r.iloc[np.argsort(pd.factorize(r["ISBN"])[0], kind="stable")]

    per_user: dict[str, list[tuple[str, int]]] = {}
    for u, isbn, score in zip(r["User-ID"].tolist(), r["ISBN"].tolist(), r["score"].tolist()):
        per_user.setdefault(u, []).append((isbn, int(score > LIKED_ABOVE)))
    users = [u for u, rated in per_user.items() if len(rated) >= MIN_RATINGS]
    random.Random(user_seed).shuffle(users)
    cut1, cut2 = int(len(users) * TRAIN_FRAC), int(len(users) * VALID_END_FRAC)
    groups = {"train": users[:cut1], "valid": users[cut1:cut2], "test": users[cut2:]}

    def prompt(rated: list[tuple[str, int]]) -> Prompt:
        shuffled = [rated[i] for i in tallrec_permutation(len(rated))]
        hist = shuffled[: min(len(shuffled) - 1, HISTORY_LEN)]
        book = {isbn: Book(isbn, title[isbn], author[isbn]) for isbn, _ in shuffled}
        (t_isbn, t_label) = shuffled[-1]
        return Prompt(liked=[book[i] for i, lab in hist if lab == 1],
                      disliked=[book[i] for i, lab in hist if lab == 0],
                      target=book[t_isbn], label=t_label)

    return {part: [prompt(per_user[u]) for u in us] for part, us in groups.items()}


def load_raw(data_dir: Path) -> Split:
    ratings, books = read_raw(data_dir / SUBDIR / RATINGS_FILE, data_dir / SUBDIR / BOOKS_FILE)
    return build_prompt_split("bookcrossing", prompts_from_ratings(ratings, books))


# --------------------------------------------------------------------------- TALLRec json prompts

_INPUT = re.compile(
    r"^User Preference: ?(.*?)\nUser Unpreference: ?(.*?)\n"
    r"Whether the user will like the target book (.*)\?\s*$", re.S)
# List entries: lazy title up to the first '" written by ', author up to the next ', "'. Titles
# may hold quotes and commas; an author holding ', "' would be misread, so every parse is checked
# by rebuilding the text from it.
_ENTRY = re.compile(r'"(.*?)" written by (.*?)(?=, "|$)', re.S)
_TITLE_ONLY = re.compile(r'"(.*?)"(?=, "|$)', re.S)
_WRAPPED_TARGET = re.compile(r'^"(".*"\s?written by\s?.*)"$', re.S)  # released files: ""T" written by A"
_TARGET = re.compile(r'^"(.*)"\s?written by\s?(.*)$', re.S)  # the script: "T"written byA


def _book(title: str, author: str) -> Book:
    return Book(f"{title}\x00{author}", title, author)


def parse_book_list(text: str) -> list[Book] | None:
    """``"T1" written by A1, "T2" written by A2`` or ``"T1", "T2"``; None when neither reads back."""
    if not text.strip():
        return []
    with_author = [(m.group(1), m.group(2)) for m in _ENTRY.finditer(text)]
    if ", ".join(f'"{t}" written by {a}' for t, a in with_author) == text:
        return [_book(t, a) for t, a in with_author]
    titles = [m.group(1) for m in _TITLE_ONLY.finditer(text)]
    if ", ".join(f'"{t}"' for t in titles) == text:
        return [_book(t, "") for t in titles]
    return None


def parse_target(text: str) -> Book | None:
    wrapped = _WRAPPED_TARGET.match(text)
    if wrapped:
        text = wrapped.group(1)
    m = _TARGET.match(text)
    if m:
        return _book(m.group(1), m.group(2))
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return _book(text[1:-1], "")
    return None


def parse_tallrec_record(rec: object, where: str) -> Prompt:
    """One {"instruction", "input", "output"} record as a Prompt."""
    fix = "use TALLRec's book prompts unchanged (preprocess_book.py output or data/book/*.json)"
    if not isinstance(rec, dict) or not isinstance(rec.get("input"), str) or not isinstance(rec.get("output"), str):
        raise BenchError(f"{where}: not an object with string 'input' and 'output'", fix)
    m = _INPUT.match(rec["input"])
    if not m:
        raise BenchError(f"{where}: input does not follow 'User Preference: ...\\nUser Unpreference: "
                         f"...\\nWhether the user will like the target book ...?': {rec['input'][:120]!r}", fix)
    liked, disliked, target = parse_book_list(m.group(1)), parse_book_list(m.group(2)), parse_target(m.group(3))
    for value, what, text in ((liked, "preference list", m.group(1)), (disliked, "unpreference list", m.group(2)),
                              (target, "target book", m.group(3))):
        if value is None:
            raise BenchError(f"{where}: cannot parse the {what}: {text[:120]!r}", fix)
    answer = rec["output"].strip().rstrip(".").lower()
    if answer not in ("yes", "no"):
        raise BenchError(f"{where}: output must be 'Yes.' or 'No.', got {rec['output']!r}", fix)
    return Prompt(liked=liked, disliked=disliked, target=target, label=int(answer == "yes"))


def read_tallrec(folder: Path) -> dict[str, list[Prompt]]:
    prompts: dict[str, list[Prompt]] = {}
    for part, fname in TALLREC_FILES.items():
        path = folder / fname
        if not path.exists():
            raise BenchError(
                f"TALLRec Book-Crossing file not found: {path}",
                f"put TALLRec's train.json, valid.json and test.json into <data-dir>/{TALLREC_SUBDIR}/ "
                "(valid/test: data/book/ of SAI990323/TALLRec; train.json: written by its preprocess_book.py)",
            )
        try:
            with open(path, encoding="utf-8") as f:
                records = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BenchError(f"{path} is not valid json: {e}", "re-download or regenerate the file") from e
        if not isinstance(records, list):
            raise BenchError(f"{path} must hold a json list of prompts", "use TALLRec's files unchanged")
        prompts[part] = [parse_tallrec_record(r, f"{path}[{i}]") for i, r in enumerate(records)]
    return prompts


def load_tallrec(data_dir: Path) -> Split:
    return build_prompt_split("bookcrossing-tallrec", read_tallrec(data_dir / TALLREC_SUBDIR))
