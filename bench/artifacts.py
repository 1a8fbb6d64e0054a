"""Where a run's persistent artifacts live (e.g. CF embeddings the LLM methods reuse).

Keyed by dataset, split fingerprint, method, variant, seed and config, so an LLM run finds
exactly the CF run of its own split and configuration."""
from __future__ import annotations

from pathlib import Path

from bench.data import cache_dir


def artifact_dir(dataset: str, fingerprint: str, method: str, variant: str, seed: int, config_hash: str) -> Path:
    """``config_hash`` keeps e.g. a d=32 MF (BinLLM's) apart from the d=256 one (CoLLM's)."""
    return cache_dir() / "artifacts" / f"{dataset}-{fingerprint}" / f"{method}-{variant}-seed{seed}-{config_hash}"
