"""Run records: one JSON file per (suite, dataset, method, variant, seed), written atomically,
and the one versioned record type every writer and reader shares.

A record says who it is: its key (suite, dataset, method, variant, seed), config hash and split
fingerprint are stored inside it, and a record is only believed where its key says it lives
(``<results>/<suite>/<stem>.json``); a copy or a renamed file is named and ignored, never counted.
A finished record (``status: ok``) is never recomputed unless forced; a failed run writes a
``.failed.json`` beside it and never replaces a finished one. Benchmark records
(``results/benchmarks/``) share the same provenance fields and version.
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
from typing import Any, Iterator, Literal, Union

from pydantic import BaseModel, ConfigDict, StrictFloat, StrictInt, StrictStr, ValidationError, model_validator

from bench.errors import BenchError

# 2: the key lives only under ``key``; ``split`` carries the ordered dataset transforms and the
# loader's notes; benchmark records share the provenance fields. Version-1 records are migrated
# on read (``migrate``), so an older results/ still renders.
SCHEMA_VERSION = 2
VERSIONED_PACKAGES = ("numpy", "pandas", "scipy", "scikit-learn", "torch", "recbole", "transformers",
                      "peft", "torch-geometric")
Number = Union[StrictInt, StrictFloat]
REPO = Path(__file__).resolve().parent.parent


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


class RecordError(BenchError):
    """A file under results/ that is not a record this version can believe."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeyModel(_Model):
    suite: StrictStr
    dataset: StrictStr
    method: StrictStr
    variant: StrictStr
    seed: StrictInt

    def run_key(self) -> RunKey:
        return RunKey(self.suite, self.dataset, self.method, self.variant, self.seed)


class SplitInfo(_Model):
    """The data a run saw: the split's content fingerprint, the registered dataset it came from,
    the ordered transforms applied to it (verbatim, e.g. ``{"name": "subset_users", "n": 60,
    "seed": 0}``), its statistics and the loader's notes (e.g. a raw file that is not the release)."""
    fingerprint: StrictStr
    source: StrictStr
    transforms: list[dict[str, Any]] = []
    stats: dict[str, Number | None] = {}
    notes: list[StrictStr] = []


class RunRecord(_Model):
    """One run of one method on one split with one seed: what ``bench run`` writes."""
    schema_version: Literal[2]
    kind: Literal["run"] = "run"
    key: KeyModel
    suite_file: StrictStr | None = None  # the suite's origin ("builtin:<name>" or its path); None: before v2
    status: Literal["ok", "failed"]
    description: StrictStr = ""
    config: dict[str, Any]
    config_hash: StrictStr
    split: SplitInfo
    device: StrictStr
    device_name: StrictStr | None = None
    versions: dict[str, StrictStr] = {}
    git: dict[str, Any] = {}
    started: StrictStr
    finished: StrictStr
    fit: dict[str, Any] | None = None
    metrics: dict[str, dict[str, Number | None]] = {}  # part -> metric -> value (None: undefined)
    per_user_auc: dict[str, dict[str, Number | None]] = {}  # part -> user -> AUC (paired bootstraps)
    # each test row's user, label, not_cold and score, when the suite keeps them (keep_test_scores)
    test_scores: dict[str, list[StrictStr | Number]] | None = None
    params: dict[str, StrictInt] = {}
    timing: dict[str, Number | dict[str, Number]] = {}
    artifacts: dict[str, StrictStr] = {}
    budget: dict[str, Any] | None = None
    matched_config: dict[str, Any] | None = None
    # the CF runs whose embeddings this run read: their key stem -> config hash (None: recorded
    # before dependencies were tracked)
    dependencies: dict[StrictStr, StrictStr] | None = None
    # a tuned run: the study that chose its config (storage, trials, budget, chosen values, each
    # trial's valid AUC); None: the run's config was set by hand
    tuned: dict[str, Any] | None = None
    error: StrictStr | None = None
    traceback: StrictStr | None = None

    @model_validator(mode="after")
    def _finished_has_metrics(self) -> "RunRecord":
        if self.status == "ok":
            for part in ("valid", "test"):
                if not isinstance((self.metrics.get(part) or {}).get("n_rows"), int):
                    raise ValueError(f"a finished record needs metrics.{part} (with n_rows)")
        return self

    @property
    def run_key(self) -> RunKey:
        return self.key.run_key()

    @property
    def identity(self) -> tuple[Any, ...]:
        """What makes two records the same run: key, config and split."""
        return (*dataclasses.astuple(self.run_key), self.config_hash, self.split.fingerprint)

    def misplaced(self, path: Path, results_dir: Path) -> str | None:
        """Why this record may not be believed at ``path`` (None: it sits where its key says)."""
        key = self.run_key
        want = key.failed_path(results_dir) if self.status == "failed" else key.path(results_dir)
        if Path(path).resolve() != want.resolve():
            return (f"its key is {key.suite}/{key.stem} (seed {key.seed}), which belongs at "
                    f"{want.relative_to(results_dir)}: a copied, moved or renamed file")
        return None


class BenchmarkRecord(_Model):
    """``bench efficiency | scoring-speed | overhead``: shared provenance, a kind-specific payload
    (validated by the subclass), one file per (kind, subject, device, tag)."""
    model_config = ConfigDict(extra="allow", frozen=True)
    schema_version: Literal[2]
    kind: StrictStr
    device: StrictStr
    device_name: StrictStr
    dataset: StrictStr
    split_fingerprint: StrictStr
    versions: dict[str, StrictStr] = {}
    git: dict[str, Any] = {}
    finished: StrictStr

    def payload(self) -> dict[str, Any]:
        return self.model_dump()


class EfficiencyRecord(BenchmarkRecord):
    kind: Literal["efficiency"]
    backbone: StrictStr
    entries: list[dict[str, Any]]


class ScoringSpeedRecord(BenchmarkRecord):
    kind: Literal["scoring_speed"]
    backbone: StrictStr
    plain: dict[str, Any]
    harness: list[dict[str, Any]]


class OverheadRecord(BenchmarkRecord):
    kind: Literal["overhead"]
    entries: list[dict[str, Any]]


BENCHMARK_KINDS: dict[str, type[BenchmarkRecord]] = {
    "efficiency": EfficiencyRecord, "scoring_speed": ScoringSpeedRecord, "overhead": OverheadRecord}
AnyRecord = Union[RunRecord, BenchmarkRecord]


def migrate(raw: dict[str, Any]) -> dict[str, Any]:
    """A version-1 record as version 2: the top-level key copies folded into ``key`` (they must
    agree), the split's subset / top-items / few-shot / eval-cap fields as the ordered transform
    list the runner applied them in."""
    if raw.get("schema_version") != 1:
        return raw
    out = dict(raw, schema_version=2)
    if "kind" in out:  # a benchmark record: same fields, new version
        return out
    key = out.get("key") or {k: out.get(k) for k in ("suite", "dataset", "method", "variant", "seed")}
    for k in ("suite", "dataset", "method", "variant", "seed"):
        if k in out and out.pop(k) != (key or {}).get(k):
            raise ValueError(f"its top-level {k} disagrees with its key")
    out["key"] = key
    split = dict(out.get("split") or {})
    seed = split.pop("subset_seed", 0) or 0
    steps = []
    if split.get("subset_users"):
        steps.append({"name": "subset_users", "n": split["subset_users"], "seed": seed})
    if split.get("top_items"):
        steps.append({"name": "top_items", "n": split["top_items"]})
    if split.get("few_shot"):
        steps.append({"name": "few_shot", "n": split["few_shot"], "seed": 0})
    if split.get("max_eval_rows"):
        steps.append({"name": "max_eval_rows", "n": split["max_eval_rows"], "seed": seed})
    for k in ("subset_users", "top_items", "few_shot", "max_eval_rows"):
        split.pop(k, None)
    split.setdefault("source", key.get("dataset") if isinstance(key, dict) else None)
    split["transforms"] = steps
    out["split"] = split
    return out


def parse_record(raw: Any) -> AnyRecord:
    """A record dict (any supported version) as its typed model; ValueError says why not."""
    if not isinstance(raw, dict):
        raise ValueError(f"not a JSON object but a {type(raw).__name__}")
    version = raw.get("schema_version")
    if version not in (1, SCHEMA_VERSION):
        raise ValueError(f"schema_version {version!r} (this recbench reads 1 and {SCHEMA_VERSION})")
    raw = migrate(raw)
    try:
        if "kind" in raw and raw["kind"] != "run":
            cls = BENCHMARK_KINDS.get(raw["kind"])
            if cls is None:
                raise ValueError(f"unknown record kind {raw['kind']!r}")
            return cls.model_validate(raw)
        return RunRecord.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "record"
        raise ValueError(f"{where}: {first['msg']}" + (f" ({len(e.errors()) - 1} more)" if len(e.errors()) > 1 else "")) from None


def load_record(path: Path) -> AnyRecord:
    """The typed record at ``path``; RecordError names the file and what is wrong with it."""
    try:
        raw = json.loads(Path(path).read_bytes().decode("utf-8"))
    except OSError as e:
        raise RecordError(f"{path}: cannot be read ({e.strerror or e})", "check its permissions") from None
    except (UnicodeDecodeError, ValueError) as e:  # binary junk, half a file, not JSON
        raise RecordError(f"{path}: not a JSON record ({type(e).__name__}: {e})",
                          "delete it or move it out of the results directory") from None
    try:
        return parse_record(raw)
    except ValueError as e:
        raise RecordError(f"{path}: not a valid recbench record: {e}",
                          "delete it, or rerun that run with --force") from None


def read_record(path: Path) -> AnyRecord | None:
    """``load_record``, or None where the file is missing or not a record."""
    try:
        return load_record(path)
    except RecordError:
        return None


def is_finished(path: Path, config: dict[str, Any], fingerprint: str,
                defaults: dict[str, Any] | None = None, key: RunKey | None = None,
                dependencies: dict[str, tuple[str, Path]] | None = None) -> bool:
    """A finished record of the same method config on the same split (the fingerprint covers
    subsets and caps, so nothing else needs comparing), whose own key is ``key`` (a copied or
    renamed file never counts). A config key the record lacks counts as its value in
    ``defaults``: a field added to a config later leaves older records current as long as it
    stays at its default.

    ``dependencies`` (stem -> (config hash, record path)) are the CF runs whose embeddings the
    run reads: a record is out of date when one of them has another config than the record
    names, or was rerun after the record started (its embeddings may have changed, e.g. after
    a CF baseline's settings changed: the dependent's own config does not show that)."""
    rec = read_record(path)
    if not isinstance(rec, RunRecord) or rec.status != "ok" or rec.split.fingerprint != fingerprint:
        return False
    if key is not None and rec.run_key != key:
        return False
    for stem, (dep_hash, dep_path) in (dependencies or {}).items():
        if rec.dependencies is not None and rec.dependencies.get(stem) != dep_hash:
            return False
        dep = read_record(dep_path)
        if isinstance(dep, RunRecord) and dep.status == "ok" and dep.finished > rec.started:
            return False
    old = dict(rec.config)
    if defaults:
        old = {**{k: v for k, v in defaults.items() if k in config}, **old}
    return _canon(old) == _canon(config)


def _canon(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


@dataclasses.dataclass
class Scan:
    """Everything under a results directory, sorted into what may be believed and what not."""
    runs: list[tuple[Path, RunRecord]] = dataclasses.field(default_factory=list)  # finished, in place
    failed: list[tuple[Path, RunRecord]] = dataclasses.field(default_factory=list)  # failed attempts, in place
    benchmarks: list[tuple[Path, BenchmarkRecord]] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)  # unreadable, misplaced, copies

    def latest_failure(self, rec: RunRecord) -> RunRecord | None:
        """The failed attempt of this run newer than its finished record, if any."""
        for _, f in self.failed:
            if f.run_key == rec.run_key and f.finished >= rec.finished:
                return f
        return None

    def failed_only(self) -> list[RunRecord]:
        done = {r.run_key for _, r in self.runs}
        return [f for _, f in self.failed if f.run_key not in done]


def scan(results_dir: Path) -> Scan:
    """Every ``*.json`` under ``results_dir``: finished and failed run records that sit where their
    key says, benchmark records, and a line for each file that is unreadable, invalid, misplaced
    or a second copy of a run already seen."""
    out = Scan()
    seen: dict[tuple[Any, ...], Path] = {}
    for path in sorted(Path(results_dir).rglob("*.json")):
        if path.name.startswith("."):
            continue
        try:
            rec = load_record(path)
        except RecordError as e:
            out.problems.append(e.problem)
            continue
        if isinstance(rec, BenchmarkRecord):
            out.benchmarks.append((path, rec))
            continue
        why = rec.misplaced(path, results_dir)
        if why:
            out.problems.append(f"{path}: ignored, {why}")
            continue
        ident = (*rec.identity, rec.status)
        if ident in seen:
            out.problems.append(f"{path}: ignored, a second copy of the run in {seen[ident]}")
            continue
        seen[ident] = path
        (out.runs if rec.status == "ok" else out.failed).append((path, rec))
    return out


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


def writable_dir(path: Path, what: str) -> Path:
    """``path`` as an existing directory this process can write into (made if missing), or one
    clear error saying which option names it."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise BenchError(f"{what} {path} is a file, not a directory", f"pass a directory as {what}")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".recbench-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise BenchError(f"{what} {path} is not writable ({e.strerror or e})",
                         f"fix its permissions, or pass a writable directory as {what}") from None
    return path


def claim_suite_dir(results_dir: Path, suite: str, origin: str) -> None:
    """Refuse to write into ``<results>/<suite>/`` when its records came from another suite file
    of the same name: two files must never share (and silently replace) each other's records."""
    for path in sorted((Path(results_dir) / suite).glob("*.json")):
        rec = read_record(path)
        if isinstance(rec, RunRecord) and rec.suite_file not in (None, origin):
            raise BenchError(f"{Path(results_dir) / suite} holds the records of suite file {rec.suite_file} "
                             f"(e.g. {path.name}); this suite is {origin}",
                             "give this suite a unique `name:` in its file, or pass another --results-dir")


def write_record(path: Path, record: dict[str, Any]) -> None:
    """Validate ``record`` as the one record type (a writer can no more write a record the
    readers refuse than a reader can load one), then write it atomically."""
    record = _json_safe(record)
    try:
        parse_record(record)
    except ValueError as e:  # a harness bug, never the user's input: fail loudly, write nothing
        raise RuntimeError(f"refusing to write an invalid record to {path}: {e}") from None
    write_atomic(path, record)


def write_benchmark(record: dict[str, Any], out_dir: Path, kind: str, field: str = "backbone", tag: str = "") -> Path:
    """``<out_dir>/<kind>__<record[field]>__<cpu|cuda>[-<tag>].json``: one record per benchmark,
    subject (the backbone, or the dataset), device kind and tag (e.g. a non-default precision),
    replaced atomically by a rerun."""
    where = str(record["device"]).split(":")[0] if str(record["device"]).startswith(("cuda", "meta")) else "cpu"
    path = out_dir / f"{kind}__{str(record[field]).replace(':', '-')}__{where}{'-' + tag if tag else ''}.json"
    write_record(path, {"schema_version": SCHEMA_VERSION, **record, "kind": kind})
    return path


def provenance(device: str, name: str | None = None) -> dict[str, Any]:
    """Where and with what a record was made: device (and its ``name`` in words, else looked up),
    package versions, git state, time. One helper for run and benchmark records alike."""
    return {"device": device, "device_name": name or device_name(device),
            "versions": versions(), "git": git_state(REPO), "finished": now()}


def benchmark_record(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A benchmark's payload (its own fields, its ``device`` and, where it names it in words, its
    ``device_name``) as its record: kind, schema version and ``provenance``, as every record has."""
    payload = dict(payload)
    where = provenance(payload.pop("device"), payload.pop("device_name", None))
    return {"kind": kind, "schema_version": SCHEMA_VERSION, **where, **payload}


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
