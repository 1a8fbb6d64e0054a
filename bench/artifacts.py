"""Where a run's persistent artifacts live (e.g. CF embeddings the LLM methods reuse).

Keyed by dataset, split fingerprint, method, variant and seed, so an LLM run finds exactly the
CF run of its own split."""
from __future__ import annotations

from pathlib import Path

from bench.data import cache_dir


def artifact_dir(dataset: str, fingerprint: str, method: str, variant: str, seed: int) -> Path:
    return cache_dir() / "artifacts" / f"{dataset}-{fingerprint}" / f"{method}-{variant}-seed{seed}"
