"""A trained state's folder, in the one format every method's saved state shares: the files a
method writes and ``state.json``, its manifest (the format, the method, its effective config, the
split fingerprint, every file with its size, and the method's own fields). ``bench run`` writes it
into the run's artifact directory (in the cache, never the repository) and names it in the record
as ``artifacts["trained_state"]``; ``python -m bench score`` and a tuned run restoring its winning
trial read it back. The LLM recommenders' files are ``bench.llm.saved``'s; a CF baseline's are
its weights. Imports nothing heavy: a CF-only install uses it too.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from bench.errors import BenchError

FORMAT = 1
DIRNAME = "trained_state"
MANIFEST = "state.json"
ENV = "RECBENCH_SAVE_STATE"  # 0: never | always | N: states up to N MB (default)
DEFAULT_MAX_MB = 64  # every method's state on SmolLM2 / ML-1M but CoRA's (190-260 MB)


def max_bytes() -> float:
    """The largest state a run saves: ``RECBENCH_SAVE_STATE`` = ``0`` (none), ``always`` (any
    size) or a number of MB (default 64, so e.g. CoRA's 190 MB Q-Former is kept only on request)."""
    value = os.environ.get(ENV, "").strip().lower()
    if value in ("", "1", "auto", "on", "yes", "true"):
        return DEFAULT_MAX_MB * 1e6
    if value in ("always", "all"):
        return float("inf")
    if value in ("0", "off", "no", "false", "never"):
        return 0.0
    try:
        mb = float(value)
    except ValueError:
        raise BenchError(f"{ENV}={value!r} is not 0, always or a size in MB",
                         f"e.g. {ENV}=always (keep every trained state) or {ENV}=256") from None
    if mb < 0:
        raise BenchError(f"{ENV}={value!r} is negative", f"0 (none), always, or a size in MB such as {DEFAULT_MAX_MB}")
    return mb * 1e6


def enabled() -> bool:
    """Whether runs save their trained state at all (``RECBENCH_SAVE_STATE=0`` turns it off)."""
    return max_bytes() > 0


def write_state(directory: Path, write: Callable[[Path], dict[str, Any]]) -> Path:
    """Write a trained state into ``directory``, replacing an earlier one atomically (a reader
    sees the old folder or the new one, never half of one): ``write(tmp)`` puts the files in a
    fresh folder and returns the manifest's fields; the manifest gets the format and every file
    with its size. Any method's ``save_state`` may use it, so ``bench score`` reads them alike."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        fields = write(tmp)
        files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
        manifest = {"format": FORMAT, **fields, "files": {f: (tmp / f).stat().st_size for f in files}}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, default=str))
        old = directory.with_name(f".{directory.name}-old-{os.getpid()}")
        if directory.exists():
            directory.rename(old)
        tmp.rename(directory)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def read_manifest(directory: Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    fix = "rerun the run with `python -m bench run ... --force` to save its state again"
    if not path.is_file():
        raise BenchError(f"{directory} holds no saved state ({MANIFEST} is missing)", fix)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise BenchError(f"{path} cannot be read ({e})", fix) from None
    if manifest.get("format") != FORMAT:
        raise BenchError(f"{path} has state format {manifest.get('format')!r}; this recbench reads {FORMAT}", fix)
    for name in manifest.get("files", {}):
        if not (Path(directory) / name).is_file():
            raise BenchError(f"{directory} is incomplete: {name} is missing", fix)
    return manifest


def size(directory: Path) -> int:
    """Bytes of a saved state's files."""
    return sum(p.stat().st_size for p in Path(directory).rglob("*") if p.is_file())
