"""The on-disk format of cached splits: one JSON document per split, read with ``json`` only.

The cache directory may be shared or writable by others, so loading an entry must never run
code (a pickle would). An entry is trusted only when it parses, rebuilds a valid ``Split`` and
the fingerprint recomputed from its rows equals the one it was written with; anything else is
reported as missing and the caller rebuilds the split from the source data.

Strings (titles, authors) repeat across rows, parts and histories, so they are stored once in a
string table and referenced by index; list columns are stored flat with per-row lengths. Both
keep the file small and quick to parse.
"""
from __future__ import annotations

import contextlib
import gc
import itertools
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.data.schema import PARTS, Split

log = logging.getLogger(__name__)

FORMAT = "recbench-split"
VERSION = 1


class Unsupported(TypeError):
    """A column this format cannot round-trip exactly; the split is then not cached."""


# --------------------------------------------------------------------------- encode

def _encode_column(values: pd.Series, strings: dict[str, int]) -> list:
    if values.dtype.kind in "biuf":
        return ["num", {"dtype": values.dtype.name, "values": values.tolist()}]
    if values.dtype != object:
        raise Unsupported(f"dtype {values.dtype}")
    items = values.tolist()
    # isinstance, not type: the CoLLM pickles hold numpy.str_ titles (read back as plain str).
    if all(isinstance(v, str) for v in items):
        return ["str", {"codes": [strings.setdefault(str(v), len(strings)) for v in items]}]
    if not all(type(v) is list for v in items):
        raise Unsupported("an object column holding neither strings nor lists")
    flat = list(itertools.chain.from_iterable(items))
    lengths = [len(v) for v in items]
    if all(isinstance(v, str) for v in flat):
        return ["list_str", {"lengths": lengths, "codes": [strings.setdefault(str(v), len(strings)) for v in flat]}]
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in flat):
        return ["list_int", {"lengths": lengths, "values": [int(v) for v in flat]}]
    raise Unsupported("a list column holding neither only ints nor only strings")


def _encode_part(df: pd.DataFrame, strings: dict[str, int]) -> dict:
    if not all(type(c) is str for c in df.columns):
        raise Unsupported("a non-string column name")
    out: dict[str, Any] = {"rows": len(df),
                           "columns": [[c, *_encode_column(df[c], strings)] for c in df.columns]}
    if not df.index.equals(pd.RangeIndex(len(df))):  # e.g. a sample that kept its row labels
        if df.index.dtype.kind not in "iu":
            raise Unsupported(f"index dtype {df.index.dtype}")
        out["index"] = df.index.tolist()
    return out


def encode(split: Split) -> dict:
    strings: dict[str, int] = {}
    parts = {part: _encode_part(df, strings) for part, df in split.parts()}
    return {"format": FORMAT, "version": VERSION, "dataset": split.dataset, "n_users": split.n_users,
            "n_items": split.n_items, "domain": split.domain, "fingerprint": split.fingerprint,
            "notes": list(split.notes), "strings": list(strings), "parts": parts}


# --------------------------------------------------------------------------- decode

def _rows(flat: list, lengths: list[int]) -> list[list]:
    if sum(lengths) != len(flat) or min(lengths, default=0) < 0:
        raise ValueError("list lengths do not match the stored values")
    ends = list(itertools.accumulate(lengths))
    return [flat[end - n:end] for n, end in zip(lengths, ends)]


def _decode_column(kind: str, payload: dict, strings: list[str]) -> pd.Series:
    if kind == "num":
        dtype = np.dtype(payload["dtype"])
        if dtype.kind not in "biuf":  # never let the file ask for an object array
            raise ValueError(f"bad numeric dtype {dtype}")
        return pd.Series(np.asarray(payload["values"], dtype=dtype))
    if kind == "str":
        return pd.Series([strings[c] for c in payload["codes"]], dtype=object)
    if kind == "list_str":
        return pd.Series(_rows([strings[c] for c in payload["codes"]], payload["lengths"]), dtype=object)
    if kind == "list_int":
        flat = payload["values"]
        if not set(map(type, flat)) <= {int}:  # map(type): a C-speed check over ~1M values
            raise ValueError("a list_int column holds a non-integer")
        return pd.Series(_rows(flat, payload["lengths"]), dtype=object)
    raise ValueError(f"unknown column kind {kind!r}")


def _decode_part(doc: dict, strings: list[str]) -> pd.DataFrame:
    cols = {name: _decode_column(kind, payload, strings) for name, kind, payload in doc["columns"]}
    if any(len(s) != doc["rows"] for s in cols.values()):
        raise ValueError("columns of unequal length")
    df = pd.DataFrame(cols, index=pd.RangeIndex(doc["rows"]))
    if "index" in doc:
        df.index = pd.Index(np.asarray(doc["index"], dtype=np.int64))
    return df


def decode(doc: dict) -> Split:
    """The Split a document describes, its fingerprint recomputed from the rows."""
    if doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise ValueError("not a recbench split document of this version")
    strings = doc["strings"]
    if not set(map(type, strings)) <= {str}:
        raise ValueError("the string table holds a non-string")
    parts = {part: _decode_part(doc["parts"][part], strings) for part in PARTS}
    return Split(dataset=str(doc["dataset"]), n_users=int(doc["n_users"]), n_items=int(doc["n_items"]),
                 domain=str(doc["domain"]), notes=tuple(str(n) for n in doc["notes"]), **parts)


# --------------------------------------------------------------------------- files

@contextlib.contextmanager
def _no_gc():
    """Millions of small lists (histories) would trigger the cycle collector over and over; they
    hold no cycles, so pausing it cuts the load time by about a third."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read(path: Path) -> Split | None:
    """The cached split at ``path``, or None when there is none or it cannot be trusted."""
    if not path.exists():
        return None
    try:
        with open(path, "rb") as f, _no_gc():
            doc = json.loads(f.read())
            split = decode(doc)
    except Exception as exc:  # JSON runs no code, so any failure just means: rebuild
        log.warning("split cache entry %s is unreadable (%s: %s); rebuilding it", path, type(exc).__name__, exc)
        return None
    if split.fingerprint != doc.get("fingerprint"):  # rows edited, or written by other code
        log.warning("split cache entry %s does not match its fingerprint; rebuilding it", path)
        return None
    return split


def write(path: Path, split: Split) -> None:
    """Store ``split`` at ``path`` atomically: a unique temp file in the same folder, then a
    rename, so concurrent runs never read a half-written entry or clobber each other's temp file.
    A split the format cannot hold, or a cache folder that cannot be written, only costs a rebuild
    next time, so neither stops the run."""
    try:
        text = json.dumps(encode(split), ensure_ascii=False, separators=(",", ":"))
    except (Unsupported, TypeError, ValueError) as exc:
        log.warning("split %s is not cached: %s", split.dataset, exc)
        return
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except (OSError, UnicodeError) as exc:
        log.warning("could not write the split cache entry %s: %s", path, exc)
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
