"""Scratch directories for runs that a kill -9 cannot leak for good.

Each ``recbench-*`` directory holds an advisory lock (``.lock``) for as long as its process
lives; the kernel drops the lock when the process dies, however it dies, so the next
``bench run`` removes every directory whose lock it can take. A directory without a lock
file (made by an older recbench) is removed once it is a day old.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator

PREFIX = "recbench-"
ORPHAN_AGE_S = 24 * 3600


@contextlib.contextmanager
def scratch(tag: str) -> Iterator[Path]:
    """A fresh locked directory, deleted on exit (and by ``clean_stale`` after a crash)."""
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{tag}-"))
    fd = os.open(path / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield path
    finally:
        os.close(fd)
        shutil.rmtree(path, ignore_errors=True)


def clean_stale(root: Path | None = None) -> list[Path]:
    """Remove the scratch directories of dead processes; returns what was removed."""
    root = Path(root or tempfile.gettempdir())
    removed = []
    for path in root.glob(f"{PREFIX}*"):
        if not path.is_dir() or path.is_symlink():
            continue
        lock = path / ".lock"
        try:
            if not lock.exists():
                if time.time() - path.stat().st_mtime > ORPHAN_AGE_S:
                    shutil.rmtree(path, ignore_errors=True)
                    removed.append(path)
                continue
            fd = os.open(lock, os.O_RDWR)
        except OSError:  # someone else's, or gone meanwhile
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a live run holds it
        finally:
            os.close(fd)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed
