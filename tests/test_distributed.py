"""Data parallelism on CPU: the same suite under `torchrun --nproc-per-node 2` (gloo) gives the
same AUC as one process, every valid/test row scored exactly once, one record per run written
by rank 0 only, and the MF run CoLLM declares runs first (on rank 0) and fills the CF embedding
cache the ranks then read."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import distributed

# The global batch (16) splits evenly over 2 ranks and LoRA dropout is off, so one process and
# two compute the same mean gradient; only float summation order differs.
TOLERANCE = 1e-4
SUITE = """
seeds: [0]
timing: {repeats: 0}
datasets:
  ml1m: {subset_users: 60, subset_seed: 0, max_eval_rows: 200}
runs:
  - {method: tallrec, overrides: &t {backbone: tiny-random, max_train_rows: 64, max_valid_rows: 48, batch_size: 16,
                                     lr: 1.0e-3, eval_every: 2, lora_dropout: 0.0}}
  - {method: collm-mf, variant: one-stage, overrides: *t}
"""


def _run(launcher: list[str], suite: Path, results: Path, cache: Path, data_dir: Path) -> str:
    env = dict(os.environ, CI="1", RECBENCH_CACHE=str(cache), RECBENCH_DATA_DIR=str(data_dir), OMP_NUM_THREADS="1")
    out = subprocess.run([*launcher, "-m", "bench", "run", "--suite", str(suite), "--results-dir", str(results),
                          "--device", "cpu", "--no-progress"], env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


def test_two_gloo_ranks_match_one_process(tmp_path, data_dir):
    suite = tmp_path / "ddp.yaml"
    suite.write_text(SUITE)
    one = _run([sys.executable], suite, tmp_path / "one", tmp_path / "cache1", data_dir)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    two = _run(torchrun, suite, tmp_path / "two", tmp_path / "cache2", data_dir)
    # tallrec, collm-mf and the MF run collm-mf declares; rank 1 prints nothing
    assert one.count("runs: 3 done") == 1 and two.count("runs: 3 done") == 1
    # rank 0 trained the MF embeddings CoLLM needs, once, into the shared cache
    assert len(list((tmp_path / "cache2").rglob("embeddings.npz"))) == 1
    for name in ("ml1m__tallrec__default__seed0.json", "ml1m__collm-mf__one-stage__seed0.json"):
        a = json.loads((tmp_path / "one" / "ddp" / name).read_text())
        b = json.loads((tmp_path / "two" / "ddp" / name).read_text())
        assert b["status"] == "ok"
        for part in ("valid", "test"):
            assert b["metrics"][part]["n_rows"] == a["metrics"][part]["n_rows"] == a["split"]["stats"][part]
            assert abs(a["metrics"][part]["auc"] - b["metrics"][part]["auc"]) < TOLERANCE, (name, part)
        hist_a = [v for _, v in a["fit"]["stages"][next(iter(a["fit"]["stages"]))]["valid_auc_history"]]
        hist_b = [v for _, v in b["fit"]["stages"][next(iter(b["fit"]["stages"]))]["valid_auc_history"]]
        assert np.allclose(hist_a, hist_b, atol=TOLERANCE)
        assert b["per_user_auc"]["test"].keys() == a["per_user_auc"]["test"].keys()
    assert sorted(p.name for p in (tmp_path / "two" / "ddp").iterdir() if not p.name.endswith(".lock")) == sorted(
        p.name for p in (tmp_path / "one" / "ddp").iterdir() if not p.name.endswith(".lock"))


def test_gather_rejects_a_row_scored_twice_or_never():
    assert np.array_equal(distributed.gather_rows(3, np.array([2, 0, 1]), np.array([0.2, 0.0, 0.1])), [0.0, 0.1, 0.2])
    with pytest.raises(RuntimeError, match="more than once"):
        distributed.gather_rows(3, np.array([0, 0, 1]), np.zeros(3))
    with pytest.raises(RuntimeError, match="cover 2/3"):
        distributed.gather_rows(3, np.array([0, 1]), np.zeros(2))
