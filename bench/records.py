"""Run records: one JSON file per (suite, dataset, method, variant, seed), written atomically.

A finished record (``status: ok``) is never recomputed unless forced; a failed run writes a
``.failed.json`` beside it and never replaces a finished one.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import json
import math
import os
import platform
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

SCHEMA_VERSION = 1
VERSIONED_PACKAGES = ("numpy", "pandas", "scipy", "scikit-learn", "torch", "recbole", "transformers",
                      "peft", "torch-geometric")


@dataclasses.dataclass(frozen=True)
class RunKey:
    suite: str
    dataset: str
    method: str
    variant: str
    seed: int

    @property
    def stem(self) -> str:
        return f"{self.dataset}__{self.method}__{self.variant}__seed{self.seed}"

    def path(self, results_dir: Path) -> Path:
        return results_dir / self.suite / f"{self.stem}.json"

    def failed_path(self, results_dir: Path) -> Path:
        return results_dir / self.suite / f"{self.stem}.failed.json"


def config_hash(obj: Any) -> str:
    return hashlib.sha256(_canon(obj).encode()).hexdigest()[:12]


def _json_safe(obj: Any) -> Any:
    """NaN / inf (e.g. the AUC of a one-class validation sample) become null: strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def write_atomic(path: Path, record: dict[str, Any]) -> None:
    """Write to a temp file in the same folder, fsync, then rename: readers never see half a record."""
    record = _json_safe(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; records are meant to be shared
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=2, sort_keys=False, allow_nan=False, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_record(path: Path) -> dict[str, Any] | None:
    try:
        with open(path) as f:
            rec = json.load(f)
    except (OSError, json.JSONDecodeError):
        return None
    return rec if isinstance(rec, dict) and rec.get("schema_version") == SCHEMA_VERSION else None


def is_finished(path: Path, config: dict[str, Any], fingerprint: str,
                defaults: dict[str, Any] | None = None) -> bool:
    """A finished record of the same method config on the same split (the fingerprint covers
    subsets and caps, so nothing else needs comparing). A config key the record lacks counts as
    its value in ``defaults``: a field added to a config later leaves older records current as
    long as it stays at its default."""
    rec = read_record(path)
    old = rec.get("config") if rec is not None else None
    if isinstance(old, dict) and defaults:
        old = {**{k: v for k, v in defaults.items() if k in config}, **old}
    same_config = rec is not None and _canon(old) == _canon(config)
    return bool(same_config and rec.get("status") == "ok" and rec.get("split", {}).get("fingerprint") == fingerprint)


def _canon(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def iter_records(results_dir: Path) -> Iterator[tuple[Path, dict[str, Any] | None]]:
    """Every ``*.json`` under results_dir (failed ones and benchmarks excluded); None = unreadable."""
    for path in sorted(results_dir.rglob("*.json")):
        if path.name.endswith(".failed.json") or path.name.startswith("."):
            continue
        yield path, read_record(path)


@contextlib.contextmanager
def run_lock(record_path: Path) -> Iterator[bool]:
    """Yields True when this process holds the run (an advisory ``flock`` on ``<record>.lock``),
    False when another live process does. The kernel drops the lock when its holder dies, even by
    kill -9, so a crashed run never blocks a rerun."""
    import fcntl

    lock_path = record_path.with_name(record_path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        try:
            yield True
        finally:
            lock_path.unlink(missing_ok=True)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def write_benchmark(record: dict[str, Any], out_dir: Path, kind: str, field: str = "backbone", tag: str = "") -> Path:
    """``<out_dir>/<kind>__<record[field]>__<cpu|cuda>[-<tag>].json``: one record per benchmark,
    subject (the backbone, or the dataset), device kind and tag (e.g. a non-default precision),
    replaced atomically by a rerun."""
    where = str(record["device"]).split(":")[0] if str(record["device"]).startswith(("cuda", "meta")) else "cpu"
    path = out_dir / f"{kind}__{str(record[field]).replace(':', '-')}__{where}{'-' + tag if tag else ''}.json"
    write_atomic(path, record)
    return path


def clear_stale_lock(record_path: Path) -> None:
    """Remove the lock file a process killed after writing its record left behind (unless a
    live process holds it)."""
    if record_path.with_name(record_path.name + ".lock").exists():
        with run_lock(record_path):
            pass  # acquiring it unlinks it on exit; a held lock is left alone


def device_name(device: str) -> str:
    """What a timing was measured on, in words (the Table 6 caption prints it)."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU: {model}, {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} cores"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in VERSIONED_PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_state(repo: Path) -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
