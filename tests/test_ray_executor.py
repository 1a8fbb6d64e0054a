"""`bench run --executor ray` on a local Ray instance: same records as in-process, shared locks."""
import json

import pytest

from bench.runner import run_suite

SUITE = """
seeds: [0, 1]
datasets:
  ml100k: {subset_users: 12, subset_seed: 1, max_eval_rows: 24}
runs:
  - {method: mf, variant: bce, overrides: {epochs: 3, stopping_step: 2, embedding_size: 8}}
  - {method: tallrec, overrides: {backbone: tiny-random, max_train_rows: 16, max_valid_rows: 16, batch_size: 8}}
"""


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")  # installed with RecBole ([cf] extra), which CI installs
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_runs_match_in_process_runs_and_share_the_records(ray_local, tmp_path):
    suite = tmp_path / "rs.yaml"
    suite.write_text(SUITE)
    counts = run_suite(str(suite), results_dir=tmp_path / "ray", executor="ray", device="cpu")
    assert counts == {"done": 4, "skipped": 0, "failed": 0, "unavailable": 0}
    local = run_suite(str(suite), results_dir=tmp_path / "local", device="cpu", progress=False,
                      methods=["mf", "tallrec"], seeds=[1])
    assert local["done"] == 2
    for stem in ("ml100k__mf__bce__seed1", "ml100k__tallrec__default__seed1"):
        a = json.loads((tmp_path / "ray" / "rs" / f"{stem}.json").read_text())
        b = json.loads((tmp_path / "local" / "rs" / f"{stem}.json").read_text())
        assert a["metrics"] == b["metrics"], stem  # same seed, same config: same numbers either way
    again = run_suite(str(suite), results_dir=tmp_path / "ray", device="cpu", progress=False)
    assert again == {"done": 0, "skipped": 4, "failed": 0, "unavailable": 0}
