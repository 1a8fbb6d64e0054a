"""Faults: kill -9 mid-suite then rerun; two `bench run` processes on one results dir; NaN loss."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.runner import run_suite

SUITE = """
seeds: [0, 1, 2, 3]
timing: {warmup: 0, repeats: 1}
datasets:
  ml100k: {subset_users: 12, subset_seed: 1, max_eval_rows: 24}
runs:
  - {method: tallrec, overrides: {backbone: tiny-random, max_train_rows: 64, max_valid_rows: 24, batch_size: 8, eval_every: 4}}
"""


def _bench(suite: Path, results: Path, **kw) -> subprocess.Popen:
    env = dict(os.environ, CI="1")
    return subprocess.Popen([sys.executable, "-m", "bench", "run", "--suite", str(suite), "--results-dir", str(results),
                             "--no-progress", "--device", "cpu"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True, **kw)


def _records(results: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in (results / "rel").glob("*.json")}


@pytest.fixture
def suite(tmp_path):
    path = tmp_path / "rel.yaml"
    path.write_text(SUITE)
    return path


def test_kill_minus_9_mid_suite_then_rerun(suite, tmp_path):
    results = tmp_path / "results"
    proc = _bench(suite, results)
    deadline = time.time() + 300
    while time.time() < deadline and not _records(results):
        time.sleep(0.2)
    assert _records(results), proc.communicate()[0][-2000:]
    os.killpg(proc.pid, signal.SIGKILL)  # mid-suite: the second run is under way
    proc.wait()
    first = _records(results)
    assert 1 <= len(first) < 4
    assert all(r["status"] == "ok" for r in first.values())  # every file on disk is whole JSON
    mtimes = {n: (results / "rel" / n).stat().st_mtime_ns for n in first}
    out = subprocess.run([sys.executable, "-m", "bench", "run", "--suite", str(suite), "--results-dir", str(results),
                          "--no-progress", "--device", "cpu"], capture_output=True, text=True, env=dict(os.environ, CI="1"))
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert f"runs: {4 - len(first)} done, {len(first)} already recorded, 0 failed" in out.stdout
    after = _records(results)
    assert len(after) == 4, out.stdout[-2000:]
    assert not list((results / "rel").glob("*.lock")), sorted(p.name for p in (results / "rel").iterdir())
    assert all((results / "rel" / n).stat().st_mtime_ns == t for n, t in mtimes.items())  # never recomputed


def test_two_processes_on_one_results_dir_run_each_record_once(suite, tmp_path):
    results = tmp_path / "results"
    a, b = _bench(suite, results), _bench(suite, results)
    outs = [p.communicate(timeout=600)[0] for p in (a, b)]
    assert a.returncode == 0 and b.returncode == 0, outs
    done = [int(o.split("runs: ")[1].split(" done")[0]) for o in outs]
    assert sum(done) == 4, outs  # each run executed by exactly one process
    recs = _records(results)
    assert len(recs) == 4 and all(r["status"] == "ok" for r in recs.values())


def test_nan_loss_fails_that_run_with_a_record_and_the_suite_goes_on(tmp_path, data_dir):
    path = tmp_path / "nan.yaml"
    path.write_text("""
seeds: [0]
datasets:
  ml100k: {subset_users: 12, subset_seed: 1, max_eval_rows: 24}
runs:
  - {method: tallrec, variant: default, overrides: {backbone: tiny-random, max_train_rows: 16, lr: 1.0e+30, min_lr: 0}}
  - {method: mf, variant: bce, overrides: {epochs: 2, stopping_step: 1, embedding_size: 8}}
""")
    counts = run_suite(str(path), results_dir=tmp_path / "r", device="cpu", progress=False)
    assert counts["failed"] == 1 and counts["done"] == 1, counts
    failed = json.loads((tmp_path / "r" / "nan" / "ml100k__tallrec__default__seed0.failed.json").read_text())
    assert failed["status"] == "failed" and "loss became" in failed["error"] and "lower the learning rate" in failed["error"]
    assert json.loads((tmp_path / "r" / "nan" / "ml100k__mf__bce__seed0.json").read_text())["status"] == "ok"
