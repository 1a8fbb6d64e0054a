"""Valid version-2 run records for tests, built in one place (the record type rejects anything less)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import records


def run_record(suite: str = "s", dataset: str = "d", method: str = "m", variant: str = "v", seed: int = 0, *,
               config: dict[str, Any] | None = None, fingerprint: str = "fp", status: str = "ok",
               test: dict[str, Any] | None = None, valid: dict[str, Any] | None = None,
               finished: str = "2026-01-01T01:00:00+00:00", **extra: Any) -> dict[str, Any]:
    config = {} if config is None else config
    return {"schema_version": records.SCHEMA_VERSION, "kind": "run",
            "key": {"suite": suite, "dataset": dataset, "method": method, "variant": variant, "seed": seed},
            "status": status, "config": config, "config_hash": records.config_hash(config),
            "split": {"fingerprint": fingerprint, "source": dataset, "transforms": [], "stats": {}},
            "device": "cpu", "started": "2026-01-01T00:00:00+00:00", "finished": finished,
            "metrics": {} if status != "ok" else {"valid": valid or {"auc": 0.6, "uauc": 0.6, "n_rows": 10},
                                                   "test": test or {"auc": 0.6, "uauc": 0.6, "n_rows": 10}},
            **extra}


def write(results: Path, rec: dict[str, Any], path: Path | None = None) -> Path:
    """Write ``rec`` where its key says (or at ``path``, e.g. to misplace it on purpose)."""
    k = rec["key"]
    key = records.RunKey(k["suite"], k["dataset"], k["method"], k["variant"], int(k["seed"]))
    path = path or (key.failed_path(results) if rec["status"] == "failed" else key.path(results))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec))
    return path
