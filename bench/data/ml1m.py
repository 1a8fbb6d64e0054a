"""ML-1M: the published CoLLM split (verified pickles) and the preprocessor that rebuilds it
from raw ``ratings.dat`` + ``movies.dat`` (PROTOCOLS.md: months 14..23 / 24..28 / 29..33 after
April 2000, label rating >= 4, valid_small = 50% of valid with seed 2023)."""
from __future__ import annotations

import hashlib
import io
import logging
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from bench.data.protocol import add_flags, build_split, by_month, month_index
from bench.data.schema import Split
from bench.errors import BenchError

log = logging.getLogger(__name__)

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


# --------------------------------------------------------------------------- raw GroupLens files
#
# The raw files are checked before pandas sees them: a wrong separator, a cut line or a text
# field where a number belongs would otherwise give a pandas traceback or, worse, a smaller or
# garbage split without a word. Every error names the file and the line(s).

# GroupLens's ML-1M README: 1,000,209 ratings by 6,040 users. No verified sha256 of the release's
# ratings.dat is at hand, so the release is recognised by these counts and the file's own sha256
# is written into the note, where a reader can compare it.
RAW_ROWS, RAW_USERS = 1_000_209, 6_040
# The release's movies.dat (3,883 movies), as checksummed in the shared data's README.
MOVIES_SHA256 = "0140fc2356357c1a851d0f52e893a1e4d3696df632c4141cea8d5bc3d621f0b9"
RATINGS_FIELDS = ("UserID", "MovieID", "Rating", "Timestamp")
MOVIES_FIELDS = ("MovieID", "Title", "Genres")
# The CoLLM protocol: months after April 2000 (inclusive ranges) per part.
ORIGIN = "2000-04"
WINDOWS = {"train": (14, 23), "valid": (24, 28), "test": (29, 33)}
LAST_TIMESTAMP = 4_102_444_800  # 2100-01-01: anything later is not Unix seconds
OTHER_SEPARATORS = ("\t", ",", ";", "|", ":")
ARCHIVES = {b"PK\x03\x04": "a zip archive", b"\x1f\x8b": "a gzip file", b"BZh": "a bzip2 file",
            b"\xfd7zXZ": "an xz file"}
# A whole well-formed ratings.dat in one regex: checking 1M lines this way takes a fraction of a
# second; the per-line diagnosis below only runs when it fails.
_UINT = "[0-9]{1,18}"
_RATING_LINE = "::".join([_UINT] * 4)
_RATINGS_TEXT = re.compile(f"(?:{_RATING_LINE}\n)*{_RATING_LINE}")
FETCH = ("download ml-1m.zip from GroupLens (https://grouplens.org/datasets/movielens/1m/) "
         "and unzip it into <data-dir>/ml-1m/")


def _lines_text(numbers: list[int], total: int | None = None, limit: int = 5) -> str:
    """'3, 7, 9 and 12 more': the first few of ``total`` (default: all listed) numbers."""
    shown = numbers[:limit]
    more = (len(numbers) if total is None else total) - len(shown)
    return ", ".join(str(n) for n in shown) + (f" and {more} more" if more > 0 else "")


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _where(path: Path, numbers: list[int]) -> str:
    return f"{path} line{'s' if len(numbers) > 1 else ''} {_lines_text(numbers)}"


def _check_binary(path: Path, data: bytes) -> None:
    for magic, what in ARCHIVES.items():
        if data.startswith(magic):
            raise BenchError(f"{path} is {what}, not the text file GroupLens ships",
                             f"unzip it: {path} must be the text file from GroupLens's ml-1m.zip itself")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise BenchError(f"{path} is binary, not text: NUL byte on line {_line_of(data, nul)}",
                         f"{path.name} must be the latin-1 text file from ml-1m.zip; {FETCH}")


def _check_not_utf8(path: Path, data: bytes) -> None:
    """GroupLens files are latin-1. A copy re-saved as UTF-8 still decodes as latin-1, into
    mojibake ('MisÃ©rables' for 'Misérables'), so decoding alone cannot catch it. Non-ASCII
    bytes that are valid UTF-8 give it away: latin-1 accented text almost never is."""
    if data.isascii():
        return
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return  # genuine latin-1
    hits = list(re.finditer(rb"^[^\n]*[\x80-\xff][^\n]*$", data, re.M))
    first = hits[0].group().rstrip(b"\r")
    numbers = [_line_of(data, m.start()) for m in hits[:5]]
    raise BenchError(
        f"{path} looks UTF-8 re-encoded, not latin-1 as GroupLens ships it: line {numbers[0]} "
        f"{first.decode('utf-8')!r} reads as {first.decode('latin-1')!r} in latin-1 "
        f"({len(hits)} line(s) with non-ASCII text: {_lines_text(numbers, len(hits))})",
        f"use the original latin-1 {path.name} from GroupLens's ml-1m.zip "
        f"(or convert this copy back: iconv -f UTF-8 -t LATIN1)",
    )


def _read_text(path: Path) -> str:
    """The file's text, after the checks any GroupLens .dat file passes (text, latin-1, not empty)."""
    data = path.read_bytes()
    if not data.strip():
        raise BenchError(f"{path} is empty ({len(data)} bytes, no data line)", FETCH)
    _check_binary(path, data)
    _check_not_utf8(path, data)
    text = data.decode("latin-1")
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    return text.rstrip("\n")  # trailing newlines end the file; a blank line inside is malformed


def _other_separator(line: str, n_fields: int) -> str | None:
    """The separator a line seems to use instead of '::' (a CSV / TSV conversion), if any."""
    if "::" in line:
        return None
    for sep in OTHER_SEPARATORS:
        if len(line.split(sep)) >= n_fields:
            return sep
    return None


def _split_fields(path: Path, lines: list[str], names: tuple[str, ...]) -> list[list[str]]:
    rows = [line.split("::") for line in lines]
    bad = [n for n, fields in enumerate(rows, 1) if len(fields) != len(names)]
    if not bad:
        return rows
    fmt, first = "::".join(names), lines[bad[0] - 1]
    sep = _other_separator(first, len(names))
    if sep is not None:
        raise BenchError(
            f"{path} is separated by {sep!r}, not '::': line {bad[0]} is {first!r} "
            f"({len(bad)} of {len(lines)} lines are not {fmt})",
            f"GroupLens ML-1M files are {fmt}; use the original {path.name} from ml-1m.zip, "
            f"or convert the separator to '::'",
        )
    raise BenchError(
        f"{_where(path, bad)}: malformed, {len(rows[bad[0] - 1])} field(s) where {fmt} has {len(names)} "
        f"(line {bad[0]} is {first!r})",
        f"the file looks truncated or edited; {FETCH}",
    )


def _is_uint(value: str) -> bool:
    return 0 < len(value) <= 18 and value.isascii() and value.isdigit()


def _check_whole_numbers(path: Path, rows: list[list[str]], names: tuple[str, ...],
                         numeric: tuple[str, ...]) -> None:
    column = {name: names.index(name) for name in numeric}
    bad = {name: [n for n, fields in enumerate(rows, 1) if not _is_uint(fields[k])] for name, k in column.items()}
    bad = {name: lines for name, lines in bad.items() if lines}
    if not bad:
        return
    name = min(bad, key=lambda k: bad[k][0])  # the field of the earliest bad line
    n = bad[name][0]
    lines = sorted(set().union(*bad.values()))
    raise BenchError(
        f"{_where(path, lines)}: non-numeric field, line {n} has {name} "
        f"{rows[n - 1][column[name]]!r} where a whole number belongs",
        f"GroupLens's {path.name} holds whole numbers in {', '.join(numeric)}; {FETCH}",
    )


def _parse_ratings(path: Path) -> pd.DataFrame:
    text = _read_text(path)
    if not _RATINGS_TEXT.fullmatch(text):  # diagnose line by line: which line, which field
        rows = _split_fields(path, text.split("\n"), RATINGS_FIELDS)
        _check_whole_numbers(path, rows, RATINGS_FIELDS, RATINGS_FIELDS)
        raise BenchError(f"{path} is not in the GroupLens format {'::'.join(RATINGS_FIELDS)}", FETCH)
    ratings = pd.read_csv(io.StringIO(text.replace("::", ",")), header=None, dtype="int64",
                          names=["user", "item", "rating", "timestamp"])
    _check_range(path, ratings, "rating", "Rating", 1, 5, "GroupLens's 1..5 stars")
    _check_range(path, ratings, "timestamp", "Timestamp", 0, LAST_TIMESTAMP,
                 "Unix seconds before 2100 (milliseconds?)")
    return ratings


def _check_range(path: Path, ratings: pd.DataFrame, column: str, name: str, lo: int, hi: int,
                 what: str) -> None:
    bad = (np.flatnonzero(~ratings[column].between(lo, hi)) + 1).tolist()
    if bad:
        raise BenchError(f"{_where(path, bad)}: {name} outside {what}, line {bad[0]} has "
                         f"{ratings[column].iloc[bad[0] - 1]}", f"{path.name} is not the GroupLens file; {FETCH}")


def _parse_movies(path: Path) -> dict[int, str]:
    rows = _split_fields(path, _read_text(path).split("\n"), MOVIES_FIELDS)
    _check_whole_numbers(path, rows, MOVIES_FIELDS, ("MovieID",))
    first_line: dict[int, int] = {}
    for n, fields in enumerate(rows, 1):
        movie = int(fields[0])
        if movie in first_line:  # a dict would silently keep the later title
            raise BenchError(f"{path} lines {first_line[movie]} and {n} both list MovieID {movie}",
                             f"the file looks edited; {FETCH}")
        first_line[movie] = n
    return {int(fields[0]): fields[1] for fields in rows}


def _check_movies_known(ratings_path: Path, movies_path: Path, ratings: pd.DataFrame,
                        titles: dict[int, str]) -> None:
    missing = ~ratings["item"].isin(list(titles))
    if missing.any():
        lines = (np.flatnonzero(missing.to_numpy()) + 1).tolist()
        ids = sorted(set(ratings.loc[missing, "item"].tolist()))
        raise BenchError(
            f"{_where(ratings_path, lines)}: MovieID(s) {_lines_text(ids)} not in {movies_path} "
            f"({len(lines)} rating(s) in all)",
            f"use ratings.dat and movies.dat from the same GroupLens ml-1m.zip; {FETCH}",
        )


def read_raw(ratings_path: Path, movies_path: Path) -> tuple[pd.DataFrame, dict[int, str]]:
    for p in (ratings_path, movies_path):
        if not p.exists():
            raise BenchError(f"raw ML-1M file not found: {p}", FETCH)
    titles = _parse_movies(movies_path)
    ratings = _parse_ratings(ratings_path)
    _check_movies_known(ratings_path, movies_path, ratings, titles)
    return ratings, titles


def _month_name(month: int) -> str:
    return str(pd.Period(ORIGIN, "M") + month)


def _date(timestamp: int) -> str:
    return pd.Timestamp(timestamp, unit="s", tz="UTC").strftime("%Y-%m-%d")


def _check_windows(path: Path, ratings: pd.DataFrame) -> None:
    """Every part needs rows: an empty train (or test) would train (or score) on nothing."""
    months = month_index(ratings["timestamp"], ORIGIN)
    empty = [part for part, (lo, hi) in WINDOWS.items() if not months.between(lo, hi).any()]
    if not empty:
        return
    ts = ratings["timestamp"]
    first, last = int(ts.idxmin()), int(ts.idxmax())  # row i is line i + 1
    span = f"its timestamps run from {_date(ts[first])} (line {first + 1}) to {_date(ts[last])} (line {last + 1})"
    windows = ", ".join(f"{p} {_month_name(lo)}..{_month_name(hi)}" for p, (lo, hi) in WINDOWS.items())
    which = "the protocol's time window" if len(empty) == len(WINDOWS) else f"the {' / '.join(empty)} window"
    raise BenchError(f"{path} has no row in {which} ({windows}, UTC): {span}",
                     f"ml1m-raw rebuilds CoLLM's split from the GroupLens ML-1M ratings; {FETCH}")


def _release_notes(ratings_path: Path, movies_path: Path, ratings: pd.DataFrame) -> list[str]:
    notes = []
    users = ratings["user"].nunique()
    if (len(ratings), users) != (RAW_ROWS, RAW_USERS):
        notes.append(f"{ratings_path.name} is not the GroupLens ML-1M release ({len(ratings):,} rows by "
                     f"{users:,} users, sha256 {sha256_file(ratings_path)}; the release has {RAW_ROWS:,} rows by "
                     f"{RAW_USERS:,} users): its split will not match the published one")
    digest = sha256_file(movies_path)
    if digest != MOVIES_SHA256:
        notes.append(f"{movies_path.name} is not the GroupLens ML-1M release (sha256 {digest}, the release's is "
                     f"{MOVIES_SHA256}): titles may differ from the published split's")
    return notes


def _split_notes(split: Split) -> list[str]:
    got = (len(split.train), len(split.valid), len(split.test), split.n_users, split.n_items)
    want = (ROWS["train"], ROWS["valid"], ROWS["test"], N_USERS, N_ITEMS)
    if got == want:
        return []
    return ["the rebuilt split has {:,} / {:,} / {:,} train / valid / test rows and an id space of {:,} users / "
            "{:,} items; the published CoLLM split has {:,} / {:,} / {:,} and {:,} / {:,}".format(*got, *want)]


def merge_order(ratings: pd.DataFrame) -> pd.DataFrame:
    """The rows in the order CoLLM's ``pd.merge(rating, item_info, on='iid', how='inner')`` left
    them (``dataset/ml-1m/processing_ood.ipynb``, github.com/zyang1580/CoLLM): grouped by movie,
    movies in order of first appearance in ``ratings.dat`` (over the whole file, before any month
    is dropped), file order within a movie. That is the inner-merge order of pandas < 2.2 (pandas
    2.2 keeps plain left order, pandas issue 55774); the notebook ran on the older behaviour: its
    merged frame starts with user 1's and then user 2's rating of movie 1193, the file's first
    movie. The stable (user, timestamp) sort that follows keeps this order among a user's
    same-second ratings, and that order decides histories, item ids and the valid_small draw."""
    first_seen = pd.factorize(ratings["item"])[0]
    return ratings.iloc[np.argsort(first_seen, kind="stable")]


def preprocess_raw(ratings: pd.DataFrame, titles: dict, name: str = "ml1m-raw") -> Split:
    rule = by_month(ORIGIN, train=WINDOWS["train"], valid=WINDOWS["valid"], test=WINDOWS["test"])
    return build_split(name, merge_order(ratings), titles, rule, label_threshold=4,
                       valid_small_frac=ROWS["valid_small"] / ROWS["valid"], domain="movie")


def load_raw(data_dir: Path) -> Split:
    ratings_path, movies_path = data_dir / RAW_SUBDIR / "ratings.dat", data_dir / RAW_SUBDIR / "movies.dat"
    ratings, titles = read_raw(ratings_path, movies_path)
    _check_windows(ratings_path, ratings)
    split = preprocess_raw(ratings, titles)
    # A file that is not the release still gives a split, but every record made from it says so.
    split.notes = tuple(_release_notes(ratings_path, movies_path, ratings) + _split_notes(split))
    for note in split.notes:
        log.warning(note)
    return split
