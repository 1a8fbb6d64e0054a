from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = Path(os.environ.get("RECBENCH_DATA_DIR", DEFAULT_DATA))
    if not (path / "ml-1m-collm" / "ml-1m.zip").exists():
        pytest.fail(f"the ML-1M split is not at {path}; set RECBENCH_DATA_DIR (CI uses ../shared/data)")
    return path


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory) -> None:
    # Tests never read a developer's split cache; they build (and cache) their own.
    if "RECBENCH_CACHE" not in os.environ:
        os.environ["RECBENCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def ml1m(data_dir):
    from bench.data import load_split

    return load_split("ml1m", data_dir)


@pytest.fixture(scope="session")
def ml100k():
    from bench.data import load_split

    return load_split("ml100k")


@pytest.fixture(scope="session")
def split(ml100k):
    """A 12-user ML-100K subset for the LLM-method tests."""
    from bench.data import subset

    return subset(ml100k, 12, 0)


@pytest.fixture(scope="session")
def backbone():
    """The tiny random LLaMA with the real SmolLM2 tokenizer (deep-copy it before wrapping)."""
    from bench.llm.backbone import load_backbone

    return load_backbone("tiny-random")
