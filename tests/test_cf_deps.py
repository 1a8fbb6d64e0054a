"""Declared CF dependencies: the planner runs the CF runs an LLM method needs first, as ordinary
runs with their own records, one per distinct config; the LLM run then only loads their
embeddings (one typed file format), and reports that loading and its backbone loading apart
from training. Two processes needing the same embeddings never race."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bench import embeddings
from bench.artifacts import artifact_dir
from bench.errors import BenchError
from bench.llm.cf import cf_artifact_dir
from bench.records import config_hash
from bench.runner import plan, planned_dependencies, run_suite
from bench.suites import load_suite

REPO = Path(__file__).resolve().parent.parent
TINY = "{backbone: tiny-random, max_train_rows: 16, max_valid_rows: 8}"


def _suite(tmp_path: Path, runs: str, datasets: str = "ml100k: {subset_users: 12}", seeds: str = "[0]"):
    path = tmp_path / "deps.yaml"
    path.write_text(f"seeds: {seeds}\ndatasets:\n  {datasets}\nruns:\n{runs}")
    return load_suite(str(path))


def _keys(runs) -> list[tuple[str, str, str, int]]:
    return [(r.key.dataset, r.key.method, r.key.variant, r.key.seed) for r in runs]


# --- the embeddings file -----------------------------------------------------------------------

def test_embeddings_file_round_trips_and_refuses_what_it_did_not_write(tmp_path):
    rng = np.random.default_rng(0)
    table = embeddings.CFEmbeddings("mf-test", rng.normal(size=(5, 4)).astype(np.float32),
                                    rng.normal(size=(3, 4)).astype(np.float32))
    path = tmp_path / "a" / embeddings.FILENAME
    embeddings.save(path, table)
    got = embeddings.load(path)
    assert got.source == "mf-test" and got.path == str(path) and got.dim == 4 and got.rows is None
    assert np.array_equal(got.item, table.item) and np.array_equal(got.user, table.user)
    assert sorted(p.name for p in path.parent.iterdir()) == [embeddings.FILENAME]  # no temp file left

    keys = np.array([[1, 2, 10], [1, 3, 11], [2, 2, 12]], dtype=np.int64)
    seq = embeddings.CFEmbeddings("sasrec-test", table.item, None, {"train": (keys, rng.normal(size=(3, 4)))})
    embeddings.save(path, seq)  # replaces the file in place
    got = embeddings.load(path)
    assert got.user is None and np.array_equal(got.rows["train"][0], keys)
    users, lookup = got.user_table()
    import pandas as pd

    rows = pd.DataFrame({"user": [2, 1], "item": [2, 3], "timestamp": [12, 11]})
    assert np.allclose(users[lookup(rows)], got.rows["train"][1][[2, 1]])

    with pytest.raises(BenchError, match="neither a user table"):
        embeddings.save(path, embeddings.CFEmbeddings("x", table.item, None))
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(BenchError, match="(?s)not a readable CF embeddings file.*delete"):
        embeddings.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "foreign.npz", item=table.item, user=table.user)  # the old unversioned layout
    with pytest.raises(BenchError, match="format 'missing'"):
        embeddings.load(tmp_path / "foreign.npz")
    np.savez(tmp_path / "pickled.npz", format=np.array([{"a": 1}], dtype=object))
    with pytest.raises(BenchError, match="not a readable CF embeddings file"):
        embeddings.load(tmp_path / "pickled.npz")
    full = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(full[: len(full) // 2])  # what a crash mid-write once left
    with pytest.raises(BenchError, match="not a readable CF embeddings file"):
        embeddings.load(tmp_path / "cut.npz")


# --- the planner -------------------------------------------------------------------------------

def test_dependencies_are_planned_first_once_each_and_a_later_suite_entry_moves_up(tmp_path):
    suite = _suite(tmp_path, f"""\
  - {{method: collm-mf, overrides: {TINY}}}
  - {{method: graphlora, overrides: {TINY}}}
  - {{method: binllm, variant: frozen-mf-hash, overrides: {TINY}}}
  - {{method: binllm, overrides: {TINY}}}
  - {{method: tallrec, overrides: {TINY}}}
  - {{method: mf, variant: bce}}
""")
    runs = plan(suite)
    assert _keys(runs) == [
        ("ml100k", "mf", "bce", 0),  # the suite's own entry: the same config CoLLM and GraphLoRA need
        ("ml100k", "collm-mf", "two-stage", 0),
        ("ml100k", "graphlora", "default", 0),
        ("ml100k", "mf", "bce+embedding_size=32", 0),  # BinLLM's d=32 MF: a run of its own
        ("ml100k", "binllm", "frozen-mf-hash", 0),
        ("ml100k", "binllm", "plain", 0),  # the published joint hashing trains its own MF: no CF run
        ("ml100k", "tallrec", "default", 0),
    ]
    mf, collm, graphlora, mf32, binllm = runs[:5]
    assert mf.spec is suite.runs[-1]  # reused, not a copy
    assert planned_dependencies(collm, runs) == [mf] and planned_dependencies(graphlora, runs) == [mf]
    assert planned_dependencies(binllm, runs) == [mf32] and planned_dependencies(runs[5], runs) == [] and planned_dependencies(mf, runs) == []
    assert mf32.config.embedding_size == 32 and mf.config.embedding_size == 256  # MF's default width
    assert config_hash(mf.config_dict) != config_hash(mf32.config_dict)


def test_a_suite_entry_with_other_overrides_keeps_its_key_and_the_dependency_gets_its_own(tmp_path):
    suite = _suite(tmp_path, f"""\
  - {{method: mf, variant: bce, overrides: {{epochs: 3}}}}
  - {{method: collm-mf, overrides: {TINY}}}
  - {{method: cora-mf, overrides: {TINY}}}
""", seeds="[0, 1]")
    runs = plan(suite)
    assert _keys(runs) == [("ml100k", "mf", "bce", 0), ("ml100k", "mf", "bce", 1),
                           ("ml100k", "mf", "bce+defaults", 0), ("ml100k", "collm-mf", "two-stage", 0),
                           ("ml100k", "mf", "bce+defaults", 1), ("ml100k", "collm-mf", "two-stage", 1),
                           ("ml100k", "cora-mf", "default", 0), ("ml100k", "cora-mf", "default", 1)]
    assert runs[0].config.epochs == 3 and runs[2].config.epochs != 3


def test_a_method_filter_keeps_what_the_filtered_methods_need(tmp_path):
    suite = _suite(tmp_path, f"""\
  - {{method: mf, variant: bce}}
  - {{method: lightgcn, variant: bce}}
  - {{method: collm-mf, overrides: {TINY}}}
  - {{method: collm-sasrec, overrides: {TINY}}}
""", datasets="ml100k: {subset_users: 12}\n  small: {dataset: ml100k, subset_users: 8}")
    runs = plan(suite, methods=["collm-mf", "collm-sasrec"], datasets=["small"])
    assert _keys(runs) == [("small", "mf", "bce", 0), ("small", "collm-mf", "two-stage", 0),
                           ("small", "sasrec", "bce", 0), ("small", "collm-sasrec", "two-stage", 0)]
    assert plan(suite, methods=["lightgcn"]) == [r for r in plan(suite) if r.key.method == "lightgcn"]


def test_the_runner_and_the_llm_method_derive_the_same_embeddings_directory(tmp_path, ml100k):
    """Under a dataset label (not the source's name) and a dependency label (not the variant)."""
    from bench.data import subset

    suite = _suite(tmp_path, f"""\
  - {{method: mf, variant: bce, overrides: {{epochs: 3}}}}
  - {{method: binllm, variant: frozen-mf-hash, overrides: {TINY}}}
  - {{method: collm-mf, overrides: {TINY}}}
""", datasets="small: {dataset: ml100k, subset_users: 12}")
    split = subset(ml100k, 12, 0)
    for run in plan(suite):
        if run.key.method != "mf":
            continue
        k = run.key
        runner_dir = artifact_dir(split.fingerprint, k.method, k.seed, config_hash(run.config_dict))
        llm_dir = cf_artifact_dir(split, "mf", run.spec.variant, k.seed, run.spec.overrides)
        assert runner_dir == llm_dir, k


def test_cf_overrides_reach_the_planned_cf_run_and_the_run_that_loads_it(tmp_path):
    """A suite caps the CF runs an LLM method reads (smoke: fewer epochs) through the method's
    ``cf_overrides``: the planner's CF run and ``Method.cf_runs`` (what ``fit`` loads) agree."""
    suite = _suite(tmp_path, f"""\
  - {{method: mf, variant: bce, overrides: {{epochs: 3}}}}
  - {{method: collm-mf, overrides: {{backbone: tiny-random, cf_overrides: {{epochs: 3}}}}}}
  - {{method: cora-mf, overrides: {{backbone: tiny-random, cf_overrides: {{epochs: 2, stopping_step: 1}}}}}}
""")
    runs = plan(suite)
    assert _keys(runs) == [("ml100k", "mf", "bce", 0), ("ml100k", "collm-mf", "two-stage", 0),
                           ("ml100k", "mf", "bce+epochs=2+stopping_step=1", 0),
                           ("ml100k", "cora-mf", "default", 0)]  # CoLLM's equals the suite's own MF run
    by_key = {r.key.variant: r for r in runs}
    for llm, cf in (("two-stage", "bce"), ("default", "bce+epochs=2+stopping_step=1")):
        (dep,) = by_key[llm].method_cls.cf_runs(by_key[llm].config)
        assert dep.overrides.items() >= {"epochs": by_key[cf].config.epochs}.items()
        assert by_key[llm].needs == ((by_key[cf].key, config_hash(by_key[cf].config_dict)),)


# --- a real suite: the CF run first, the LLM run loads ----------------------------------------

def test_ci_suite_filtered_to_collm_runs_its_mf_first_and_collm_only_loads_it(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("RECBENCH_CACHE", str(tmp_path / "cache"))
    results = tmp_path / "results"
    counts = run_suite("ci", results_dir=results, data_dir=str(data_dir), methods=["collm-mf"], device="cpu",
                       progress=False)
    assert counts == {"done": 2, "skipped": 0, "failed": 0, "unavailable": 0}
    # the suite's own `mf bce` entry has other overrides (epochs 10): CoLLM's MF is its own run
    mf = json.loads((results / "ci" / "ml1m__mf__bce+defaults__seed0.json").read_text())
    collm = json.loads((results / "ci" / "ml1m__collm-mf__two-stage__seed0.json").read_text())
    assert not (results / "ci" / "ml1m__mf__bce__seed0.json").exists()
    assert mf["status"] == collm["status"] == "ok"
    assert mf["finished"] <= collm["started"]  # planned first, finished before CoLLM began
    assert collm["artifacts"]["cf_embeddings"] == mf["artifacts"]["embeddings"]  # exactly what MF wrote
    setup = collm["fit"]["setup_s"]
    assert set(setup) == {"backbone_load", "cf_embeddings"}
    assert setup["cf_embeddings"] < 1.0 < mf["timing"]["train_s"]  # loaded, not trained
    assert len(list((tmp_path / "cache").rglob(embeddings.FILENAME))) == 1
    again = run_suite("ci", results_dir=results, data_dir=str(data_dir), methods=["collm-mf"], device="cpu",
                      progress=False)
    assert again == {"done": 0, "skipped": 2, "failed": 0, "unavailable": 0}
    assert collm["dependencies"] == {"ml1m__mf__bce+defaults__seed0": mf["config_hash"]}
    # the MF run is redone (say its settings changed): CoLLM's own config is the same, but the
    # embeddings it read are not, so its record is out of date and CoLLM trains again
    mf_path = results / "ci" / "ml1m__mf__bce+defaults__seed0.json"
    mf["finished"] = "2999-01-01T00:00:00+00:00"
    mf_path.write_text(json.dumps(mf))
    after = run_suite("ci", results_dir=results, data_dir=str(data_dir), methods=["collm-mf"], device="cpu",
                      progress=False)
    assert after == {"done": 1, "skipped": 1, "failed": 0, "unavailable": 0}


# --- two processes, one training ---------------------------------------------------------------

RACER = """
import hashlib, logging, sys, time
from pathlib import Path
logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
logging.getLogger("bench").setLevel(logging.INFO)
from bench.data import load_split, subset
from bench.llm.cf import cf_embeddings
split = subset(load_split("ml1m", sys.argv[1]), 60, 0)
Path(sys.argv[2]).touch()  # ready
while not Path(sys.argv[3]).exists():
    time.sleep(0.01)
emb = cf_embeddings(split, "mf", "bce", 0, overrides={"epochs": 5, "stopping_step": 2, "embedding_size": 8})
print("sha", hashlib.sha256(emb.item.tobytes() + emb.user.tobytes()).hexdigest())
"""


def test_two_processes_needing_the_same_embeddings_train_them_once(tmp_path, data_dir, ml1m):
    from bench.data import subset

    # the session's cache, where the ml1m fixture already put the split: the racers only read it
    adir = cf_artifact_dir(subset(ml1m, 60, 0), "mf", "bce", 0, {"epochs": 5, "stopping_step": 2, "embedding_size": 8})
    shutil.rmtree(adir, ignore_errors=True)  # left by an earlier session on a reused cache: missing again
    script = tmp_path / "racer.py"
    script.write_text(RACER)
    go = tmp_path / "go"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, str(script), str(data_dir), str(tmp_path / f"ready{i}"), str(go)],
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    deadline = time.time() + 300
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)):
        assert time.time() < deadline and all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.05)
    go.touch()  # both ask for the missing embeddings at the same moment
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert sum(err.count("on demand") for _, err in outs) == 1, outs  # one trained, the other waited and read
    shas = [out.split("sha ")[1].strip() for out, _ in outs]
    assert shas[0] == shas[1]
    assert sorted(p.name for p in adir.iterdir()) == ["embeddings.npz", "embeddings.npz.lock"]  # no temp file left
