"""The CF embeddings file: one typed format, one writer, one reader, one lock.

A CF run (``baselines``) writes what an LLM method (``bench.llm.cf``) later reads, possibly in
another process or on another machine, so the layout is stated here once instead of being an
unwritten agreement between the two. numpy only (no torch, no pandas): the LLM path and the
tests read it without RecBole.

File layout (``.npz``, no pickled objects):
- ``format``: :data:`FORMAT` (a foreign or older file is refused, never misread)
- ``source``: who wrote it (e.g. the CF run's name)
- ``item``: (n_items, d) float32, row = recbench item id
- ``user``: (n_users, d) float32, row = recbench user id; absent for sequence models, which have
- ``keys_<part>`` (n, 3) int64 (user, item, timestamp) and ``rows_<part>`` (n, d) float32: one
  user vector per row of that part, found by value (rows have no stable index across loads)
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from bench.errors import BenchError

if TYPE_CHECKING:
    import pandas as pd

FORMAT = "recbench-cf-embeddings/1"
FILENAME = "embeddings.npz"


@dataclasses.dataclass
class CFEmbeddings:
    source: str
    item: np.ndarray  # (n_items, d), row = recbench item id
    user: np.ndarray | None  # (n_users, d), row = recbench user id; None for sequence models
    # per part: ((n, 3) int64 (user, item, timestamp) keys, (n, d) user vectors) (sequence models)
    rows: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
    path: str = ""  # where it was loaded from ("" when built in memory)

    @property
    def dim(self) -> int:
        return int(self.item.shape[1])

    def validate(self) -> None:
        """Shapes and dtypes the reader relies on; a writer checks them before writing."""
        where = self.path or self.source
        if self.item.ndim != 2:
            raise BenchError(f"CF embeddings {where}: item table has shape {self.item.shape}, not (n_items, d)",
                             "write a 2-D item table")
        if self.user is None and not self.rows:
            raise BenchError(f"CF embeddings {where}: neither a user table nor per-row user vectors",
                             "write a user table, or per-row vectors for a sequence model")
        if self.user is not None and (self.user.ndim != 2 or self.user.shape[1] != self.dim):
            raise BenchError(f"CF embeddings {where}: user table {self.user.shape} does not match d={self.dim}",
                             "write user and item tables of the same width")
        for part, (keys, vecs) in (self.rows or {}).items():
            if keys.shape != (len(vecs), 3) or vecs.ndim != 2 or vecs.shape[1] != self.dim:
                raise BenchError(f"CF embeddings {where}: part {part} has keys {keys.shape} and vectors {vecs.shape}",
                                 "write (n, 3) (user, item, timestamp) keys and (n, d) vectors per part")

    def user_table(self) -> tuple[np.ndarray, Callable[["pd.DataFrame"], np.ndarray]]:
        """A user table and the function giving each row's index into it.

        With a user table the index is the user id; for sequence models every row of the split
        has its own vector (the encoder's output for that row's history), found by
        (user, item, timestamp)."""
        if self.user is not None:
            return self.user, lambda rows: rows["user"].to_numpy()
        parts = list((self.rows or {}).values())
        keys = np.concatenate([k for k, _ in parts])
        table = np.concatenate([v for _, v in parts]).astype(np.float32)
        # a key seen in two parts keeps its last vector, as a dict built part by part would
        index = {k: n for n, k in enumerate(map(tuple, keys.tolist()))}

        def lookup(rows: "pd.DataFrame") -> np.ndarray:
            try:
                return np.fromiter((index[(int(u), int(i), int(t))] for u, i, t in
                                    zip(rows["user"], rows["item"], rows["timestamp"])), dtype=np.int64, count=len(rows))
            except KeyError as e:
                raise BenchError(f"{self.source}: no sequence embedding for row {e.args[0]}",
                                 "rerun the CF baseline on this split (the cache is stale)") from None

        return table, lookup


def embeddings_path(artifact_dir: Path) -> Path:
    """Where a CF run keeps its embeddings inside its artifact directory."""
    return Path(artifact_dir) / FILENAME


def save(path: Path, emb: CFEmbeddings) -> None:
    """Write ``emb`` to ``path`` atomically: a reader sees the old file, the new one, or none,
    never a partial one. The temp file's name is unique (mkstemp), so two writers of the same
    file cannot delete or rename each other's half-written data: the last complete one wins."""
    emb.validate()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {"format": np.array(FORMAT), "source": np.array(emb.source),
                                     "item": np.asarray(emb.item, dtype=np.float32)}
    if emb.user is not None:
        arrays["user"] = np.asarray(emb.user, dtype=np.float32)
    for part, (keys, vecs) in (emb.rows or {}).items():
        arrays[f"keys_{part}"] = np.asarray(keys, dtype=np.int64)
        arrays[f"rows_{part}"] = np.asarray(vecs, dtype=np.float32)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
    try:
        # a file object, not a name: numpy appends ".npz" to a name that lacks it
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **arrays)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the rename makes it visible
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: Path) -> CFEmbeddings:
    """Read a file :func:`save` wrote; anything else (corrupt, truncated, foreign) is a BenchError."""
    path = Path(path)
    fix = f"delete {path} (the next run that needs it retrains it)"
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise BenchError(f"{path} is not a readable CF embeddings file ({type(e).__name__}: {e})", fix) from None
    fmt = str(data.get("format", ""))
    if fmt != FORMAT:
        raise BenchError(f"{path} is not a CF embeddings file of this recbench (format {fmt or 'missing'!r}, "
                         f"expected {FORMAT!r})", fix)
    if "item" not in data:
        raise BenchError(f"{path} has no item table", fix)
    rows = {}
    for name in data:
        if name.startswith("rows_"):
            part = name[len("rows_"):]
            if f"keys_{part}" not in data:
                raise BenchError(f"{path}: per-row vectors of part {part} without their keys", fix)
            rows[part] = (data[f"keys_{part}"], data[name])
    emb = CFEmbeddings(str(data["source"]), data["item"], data.get("user"), rows or None, str(path))
    try:
        emb.validate()
    except BenchError as e:
        raise BenchError(e.problem, fix) from None
    return emb


@contextlib.contextmanager
def lock(path: Path) -> Iterator[None]:
    """Wait for, then hold, the exclusive lock of the embeddings file ``path`` (an advisory
    ``flock`` on ``<path>.lock``), so one process trains them while the others wait and then
    read its result. The kernel drops the lock when its holder dies, even by kill -9. The lock
    file is left in place: removing it while another process waits on it would let a third
    process lock a new file of the same name, and two would hold "the" lock."""
    lock_path = Path(path).with_name(Path(path).name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
