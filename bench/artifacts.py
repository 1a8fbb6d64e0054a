"""Where a run's persistent artifacts live (e.g. CF embeddings the LLM methods reuse).

Keyed by what determines the artifact and nothing else: the split's content fingerprint, the
method, its config hash and the seed. Not by the suite's dataset label (``ml1m-top100`` and the
source name ``ml1m`` name the same data when the fingerprint is the same) nor by the record's
variant label (a planned dependency may carry a label that says why it exists): the runner
writing a CF run's embeddings and an LLM method looking for them derive the same directory
from the same inputs, so what a planned CF run wrote is exactly what the LLM method loads."""
from __future__ import annotations

from pathlib import Path

from bench.data import cache_dir


def artifact_dir(fingerprint: str, method: str, seed: int, config_hash: str) -> Path:
    """``config_hash`` keeps e.g. a d=32 MF (BinLLM's) apart from the d=256 one (CoLLM's)."""
    return cache_dir() / "artifacts" / fingerprint / f"{method}-seed{seed}-{config_hash}"
