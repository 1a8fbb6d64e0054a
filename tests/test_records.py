"""Records that cannot lie: identity checked against location, one versioned type for every
record, failed latest attempts shown, unreadable files named, scratch dirs never leaked for good."""
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench import records, workdirs
from bench.errors import BenchError
from bench.report import render_all
from bench.report.frame import load_frame

from _records import run_record, write

REPO = Path(__file__).resolve().parent.parent


def _results(tmp_path: Path) -> Path:
    res = tmp_path / "results"
    for seed, auc in ((0, 0.70), (1, 0.72)):
        write(res, run_record("smoke", "ml100k", "graphlora", "default", seed, test={"auc": auc, "uauc": 0.6, "n_rows": 16}))
    write(res, run_record("smoke", "ml100k", "mf", "bce", 0, test={"auc": 0.6445, "uauc": 0.6302, "n_rows": 16}))
    return res


def _table3(md: str) -> str:
    return md.split("### Table 3")[1].split("###")[0]


def test_a_copied_suite_folder_is_named_not_counted(tmp_path, caplog):
    res = _results(tmp_path)
    shutil.copytree(res / "smoke", res / "smoke-backup")  # cp -r results/smoke results/smoke-backup
    with caplog.at_level(logging.WARNING, "bench"):
        render_all(res, tmp_path / "out")
    md = (tmp_path / "out" / "results.md").read_text()
    mf_row = next(line for line in _table3(md).splitlines() if "| MF" in line)
    assert "0.6445 (1 seed)" in mf_row and "n=2" not in mf_row  # not a zero-width "n=2" interval
    assert "Suite `smoke-backup`" not in md
    for name in ("ml100k__mf__bce__seed0.json", "ml100k__graphlora__default__seed1.json"):
        assert f"smoke-backup/{name}: ignored, its key is smoke/" in md
        assert any(f"smoke-backup/{name}: ignored" in r.getMessage() for r in caplog.records)  # on the terminal


def test_a_renamed_seed_is_neither_finished_nor_counted_twice(tmp_path):
    res = _results(tmp_path)
    src = res / "smoke" / "ml100k__mf__bce__seed0.json"
    dst = res / "smoke" / "ml100k__mf__bce__seed1.json"
    shutil.copy(src, dst)  # a renamed (here: copied) seed-0 record posing as seed 1
    seed1 = records.RunKey("smoke", "ml100k", "mf", "bce", 1)
    assert not records.is_finished(dst, {}, "fp", key=seed1)  # `bench run --seeds 1` reruns seed 1
    assert records.is_finished(src, {}, "fp", key=records.RunKey("smoke", "ml100k", "mf", "bce", 0))
    df, found = load_frame(res)
    assert len(df[df["method"] == "mf"]) == 1
    assert any("ml100k__mf__bce__seed1.json: ignored" in p and "seed 0" in p for p in found.problems)


def test_a_second_copy_of_a_run_is_named(tmp_path):
    res = _results(tmp_path)
    rec = run_record("smoke", "ml100k", "mf", "bce", 0)
    write(res, rec, res / "smoke" / ".." / "smoke" / "ml100k__mf__bce__seed0.json")  # same place: no copy
    df, found = load_frame(res)
    assert len(df[df["method"] == "mf"]) == 1 and not found.problems


def test_a_failed_latest_attempt_marks_its_cells_and_is_listed(tmp_path, caplog):
    res = _results(tmp_path)
    write(res, run_record("smoke", "ml100k", "mf", "bce", 0, status="failed", config={"lr": 1.0},
                          finished="2026-02-01T00:00:00+00:00", error="BenchError: loss became nan"))
    write(res, run_record("smoke", "ml100k", "tallrec", "default", 0, status="failed",
                          error="RuntimeError: out of memory"))
    with caplog.at_level(logging.WARNING, "bench"):
        render_all(res, tmp_path / "out")
    md = (tmp_path / "out" / "results.md").read_text()
    mf_row = next(line for line in _table3(md).splitlines() if "| MF" in line)
    assert "0.6445 (1 seed)‡" in mf_row
    graphlora_row = next(line for line in _table3(md).splitlines() if "| GraphLoRA" in line)
    assert "‡" not in graphlora_row
    assert "the latest attempt of a run in this cell failed" in md
    assert "smoke/ml100k__mf__bce__seed0: the latest attempt failed (BenchError: loss became nan)" in md
    assert "smoke/ml100k__tallrec__default__seed0: failed, no finished record (RuntimeError: out of memory)" in md
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "loss became nan" in logged and "out of memory" in logged


def test_an_older_failure_does_not_mark_a_newer_record(tmp_path):
    res = _results(tmp_path)
    write(res, run_record("smoke", "ml100k", "mf", "bce", 0, status="failed", finished="2025-01-01T00:00:00+00:00",
                          error="x"))
    df, _ = load_frame(res)
    assert df["latest_failed"].isna().all()


@pytest.mark.parametrize("content, why", [
    (b"\xff", "not a JSON record (UnicodeDecodeError"),
    (b'{"schema_version": 2, "status": "o', "not a JSON record (JSONDecodeError"),
    (b"[1, 2]", "not a JSON object but a list"),
    (b'{"schema_version": 7}', "schema_version 7"),
])
def test_unreadable_files_are_named_by_report_and_ignored_by_run(tmp_path, content, why):
    res = _results(tmp_path)
    bad = res / "smoke" / "x.json"
    bad.write_bytes(content)
    render_all(res, tmp_path / "out")
    md = (tmp_path / "out" / "results.md").read_text()
    assert f"{bad}: " in md and why in md
    assert "0.6445 (1 seed)" in md  # the good records still render
    # the same junk where a run's own record belongs: `bench run` reruns it instead of crashing
    own = records.RunKey("smoke", "ml100k", "mf", "bce", 3)
    own.path(res).write_bytes(content)
    assert not records.is_finished(own.path(res), {}, "fp", key=own)


@pytest.mark.parametrize("field, value, why", [
    (("metrics", "test", "auc"), "0.7", "metrics.test.auc"),
    (("metrics",), "oops", "metrics: Input should be a valid dictionary"),
    (("key", "seed"), "0", "key.seed"),
    (("split",), None, "split"),
])
def test_a_record_of_the_wrong_shape_is_named_never_a_traceback(tmp_path, field, value, why):
    res = _results(tmp_path)
    rec = run_record("smoke", "ml100k", "sasrec", "bce", 0)
    node = rec
    for k in field[:-1]:
        node = node[k]
    node[field[-1]] = value
    path = write(res, rec)
    render_all(res, tmp_path / "out")
    md = (tmp_path / "out" / "results.md").read_text()
    assert f"{path}: not a valid recbench record: {why}" in md


def test_results_and_out_must_be_writable_directories(tmp_path, capsys):
    from bench.cli import main

    res = _results(tmp_path)
    afile = tmp_path / "a-file"
    afile.write_text("x")
    assert main(["report", "--results-dir", str(afile)]) == 2
    assert f"--results-dir {afile} is a file, not a directory" in capsys.readouterr().err
    assert main(["report", "--results-dir", str(res), "--out", str(afile)]) == 2
    assert f"--out {afile} is a file, not a directory" in capsys.readouterr().err
    # /proc is a directory no process may create files in (root included): a read-only --out
    assert main(["report", "--results-dir", str(res), "--out", "/proc"]) == 2
    assert "--out /proc is not writable" in capsys.readouterr().err
    suite = tmp_path / "s.yaml"
    suite.write_text("datasets: {ml100k: {subset_users: 5}}\nruns: [{method: mf, variant: bce}]\n")
    for where, msg in ((afile, "is a file, not a directory"), (Path("/proc"), "is not writable")):
        assert main(["run", "--suite", str(suite), "--results-dir", str(where), "--no-progress"]) == 2
        assert f"--results-dir {where} {msg}" in capsys.readouterr().err


def test_every_committed_record_loads_through_the_one_type():
    paths = sorted((REPO / "results").rglob("*.json"))
    assert paths
    for path in paths:
        rec = records.load_record(path)
        assert rec.schema_version == records.SCHEMA_VERSION
        if isinstance(rec, records.RunRecord):
            assert rec.misplaced(path, REPO / "results") is None, path
    found = records.scan(REPO / "results")
    assert not found.problems and len(found.runs) + len(found.benchmarks) == len(paths)


def test_version_1_records_migrate_with_their_transforms():
    v1 = {"schema_version": 1, "suite": "ml1m-cpu", "dataset": "ml1m-top100", "method": "tallrec", "variant": "default",
          "seed": 0, "key": {"suite": "ml1m-cpu", "dataset": "ml1m-top100", "method": "tallrec", "variant": "default",
                             "seed": 0},
          "status": "ok", "config": {}, "config_hash": "x", "device": "cpu", "started": "t", "finished": "t",
          "split": {"fingerprint": "f", "subset_users": None, "subset_seed": 0, "max_eval_rows": 400, "source": "ml1m",
                    "few_shot": None, "top_items": 100, "stats": {}},
          "metrics": {"valid": {"n_rows": 1}, "test": {"n_rows": 1}}}
    rec = records.parse_record(v1)
    assert rec.split.transforms == [{"name": "top_items", "n": 100}, {"name": "max_eval_rows", "n": 400, "seed": 0}]
    with pytest.raises(ValueError, match="top-level seed disagrees with its key"):
        records.parse_record({**v1, "seed": 1})


def test_the_report_describes_the_data_from_the_record(tmp_path):
    res = tmp_path / "results"
    steps = [{"name": "top_items", "n": 100}, {"name": "max_eval_rows", "n": 400, "seed": 0}]
    rec = run_record("cpu", "ml1m-top100", "tallrec", "default", 0)
    rec["split"] = {**rec["split"], "source": "ml1m", "transforms": steps, "notes": ["ratings.dat is not the release"]}
    write(res, rec)
    render_all(res, tmp_path / "out")
    md = (tmp_path / "out" / "results.md").read_text()
    assert ("ml1m-top100: all users, only rows of the 100 most-rated train items, seeded samples of at most 400 "
            "valid / test rows") in md
    assert "ml1m-top100: ratings.dat is not the release" in md


def test_a_writer_cannot_write_what_readers_refuse(tmp_path):
    rec = run_record()
    rec["metrics"]["test"]["auc"] = "0.7"
    with pytest.raises(RuntimeError, match="invalid record"):
        records.write_record(tmp_path / "r.json", rec)
    assert not (tmp_path / "r.json").exists()


def test_a_killed_runs_scratch_dir_is_removed_by_the_next_run(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(REPO)!r})
        from bench import workdirs
        with workdirs.scratch("victim") as d:
            print(d, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    env = dict(os.environ, TMPDIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert out.returncode == -signal.SIGKILL
    leaked = Path(out.stdout.strip())
    assert leaked.is_dir() and leaked.parent == tmp_path
    with workdirs.scratch("alive") as mine:
        mine = Path(mine)
        removed = workdirs.clean_stale(mine.parent)
        assert mine.is_dir() and mine not in removed  # a live run's dir is kept
    assert workdirs.clean_stale(tmp_path) == [leaked] and not leaked.exists()


SUITE = "datasets: {ml100k: {subset_users: 5}}\nruns: [{method: mf, variant: bce}]\n"


def test_a_users_suite_file_cannot_take_a_builtin_suites_records(tmp_path, capsys):
    from bench.cli import main
    from bench.suites import load_suite

    (tmp_path / "ci.yaml").write_text(SUITE)  # /some/dir/ci.yaml would have replaced results/ci/
    assert main(["run", "--suite", str(tmp_path / "ci.yaml"), "--results-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "is named 'ci', like the built-in suite ci" in err and "name: my-ci" in err
    (tmp_path / "ci.yaml").write_text("name: my-ci\n" + SUITE)
    mine = load_suite(str(tmp_path / "ci.yaml"))
    assert (mine.name, mine.origin) == ("my-ci", str((tmp_path / "ci.yaml").resolve()))
    assert load_suite("ci").origin == "builtin:ci"


def test_two_suite_files_of_one_name_never_share_records(tmp_path):
    from bench.runner import run_suite

    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        (d / "mine.yaml").write_text(SUITE)
    res = tmp_path / "results"
    write(res, run_record("mine", "ml100k", "mf", "bce", 0, suite_file=str((a / "mine.yaml").resolve())))
    with pytest.raises(BenchError, match="holds the records of suite file .*a/mine.yaml.*this suite is .*b/mine.yaml"):
        run_suite(str(b / "mine.yaml"), results_dir=res, device="cpu", progress=False)


def test_every_planned_run_carries_its_suite_files_origin(tmp_path):
    from bench.runner import plan
    from bench.suites import load_suite

    (tmp_path / "deps.yaml").write_text("datasets: {ml100k: {subset_users: 5}}\n"
                                        "runs: [{method: collm-mf, overrides: {backbone: tiny-random}}]\n")
    suite = load_suite(str(tmp_path / "deps.yaml"))
    runs = plan(suite)
    assert [r.key.method for r in runs] == ["mf", "collm-mf"]  # the planned CF dependency too
    assert {r.suite_origin for r in runs} == {str((tmp_path / "deps.yaml").resolve())}
