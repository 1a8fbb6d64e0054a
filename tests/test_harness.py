"""Config validation, registry, suites, records and the CLI's errors (no training here)."""
import dataclasses
import json
import subprocess
import sys

from pathlib import Path

import pytest

from bench import records
from bench.cli import main
from bench.config import build_config
from bench.errors import BenchError
from bench.registry import get_method, method_table
from bench.suites import load_suite, suite_names

from _records import run_record

REPO_FILES = ("bench", "baselines")


def test_core_imports_neither_torch_nor_recbole():
    code = ("import sys, bench.cli, bench.runner, bench.report, bench.data, bench.metrics, bench.registry;"
            "bad = [m for m in ('torch', 'recbole', 'transformers') if m in sys.modules]; print(bad); assert not bad")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", sorted(method_table()))
def test_every_registered_method_imports_and_its_variants_build(name):
    cls = get_method(name)
    assert dataclasses.is_dataclass(cls.Config)
    assert cls.default_variant in cls.variants
    for overrides in cls.variants.values():
        build_config(cls.Config, overrides)


def test_unknown_method_gets_did_you_mean():
    with pytest.raises(BenchError, match="unknown method 'lightgnc'.*\n.*did you mean 'lightgcn'"):
        get_method("lightgnc")


def test_config_rejects_unknown_keys_and_bad_values():
    cfg_cls = get_method("mf").Config
    with pytest.raises(BenchError, match="(?s)unknown config key 'learning_rte'.*did you mean 'learning_rate'"):
        build_config(cfg_cls, {"learning_rte": 0.1})
    with pytest.raises(BenchError, match="epochs = 'many' is not a valid int"):
        build_config(cfg_cls, {"epochs": "many"})
    with pytest.raises(BenchError, match="protocol 'pairwise' is unknown"):
        build_config(cfg_cls, {"protocol": "pairwise"})
    with pytest.raises(BenchError, match="learning_rate must be > 0"):
        build_config(cfg_cls, {"learning_rate": 0})
    # precedence: later layers win; YAML's '1e-4' string is coerced
    cfg = build_config(cfg_cls, {"learning_rate": 0.1}, {"learning_rate": "1e-4"})
    assert cfg.learning_rate == 1e-4 and cfg.embedding_size == 256


def test_shipped_suites_parse_and_plan():
    from bench.runner import plan

    results = Path(__file__).resolve().parent.parent / "results"
    assert {"smoke", "main"} <= set(suite_names())
    for name in suite_names():
        suite = load_suite(name)
        waiting: list = []  # tuned runs whose studies are not committed wait for `bench tune`, and say so
        assert plan(suite, results_dir=results, untuned=waiting)
        assert all("bench tune --suite" in e.fix for _, e in waiting)
        assert len(waiting) <= sum(bool(r.tuned) for r in suite.runs) * len(suite.datasets)


def test_suite_errors(tmp_path):
    with pytest.raises(BenchError, match="(?s)unknown suite 'smok'.*did you mean 'smoke'"):
        load_suite("smok")
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: {ml100k: {}}\nrunz: []\n")
    with pytest.raises(BenchError, match="(?s)unknown key 'runz'.*did you mean 'runs'"):
        load_suite(str(bad))
    bad.write_text("datasets: {ml100k: {subset_user: 3}}\nruns: []\n")
    with pytest.raises(BenchError, match="unknown key 'subset_user'"):
        load_suite(str(bad))
    bad.write_text("datasets: {ml1m: {top_items: 0}}\nruns: []\n")
    with pytest.raises(BenchError, match="top_items must be a positive int, got 0"):
        load_suite(str(bad))
    bad.write_text("datasets: [\n")
    with pytest.raises(BenchError, match="not valid YAML"):
        load_suite(str(bad))


def test_cli_errors_are_one_clear_line(capsys, tmp_path):
    assert main(["run", "--suite", "smoke", "--methods", "mff", "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown method 'mff'" in err and "did you mean 'mf'" in err
    assert main(["run", "--suite", "smoke", "--datasets", "ml1n", "--results-dir", str(tmp_path)]) == 2
    assert "did you mean 'ml1m'" in capsys.readouterr().err
    suite = tmp_path / "needs_data.yaml"
    suite.write_text("datasets: {ml1m: {}}\nruns: [{method: mf}]\n")
    assert main(["run", "--suite", str(suite), "--data-dir", str(tmp_path / "nope"),
                 "--results-dir", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["ls"]) == 0
    out = capsys.readouterr().out
    assert "mf" in out and "ml100k" in out and "smoke" in out


def test_records_are_atomic_and_finished_only_when_ok(tmp_path):
    key = records.RunKey("s", "d", "m", "v", 0)
    path = key.path(tmp_path)
    cfg = {"lr": 0.1}
    records.write_record(path, run_record(config=cfg))
    assert records.is_finished(path, cfg, "fp", key=key)
    assert not records.is_finished(path, cfg, "fp", key=records.RunKey("s", "d", "m", "v", 1))  # another run's
    assert records.is_finished(path, cfg, "fp")
    assert not records.is_finished(path, {"lr": 0.2}, "fp")  # config changed -> rerun
    assert not records.is_finished(path, cfg, "other")  # split changed -> rerun
    # a config field added after the record was written: current at its default, stale otherwise
    assert records.is_finished(path, {"lr": 0.1, "dtype": "auto"}, "fp", {"lr": 0.5, "dtype": "auto"})
    assert not records.is_finished(path, {"lr": 0.1, "dtype": "bfloat16"}, "fp", {"lr": 0.5, "dtype": "auto"})
    assert not records.is_finished(path, {"lr": 0.1, "dtype": "auto"}, "fp")  # without defaults: exact
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left
    path.write_text('{"schema_version": 2, "status": "o')  # truncated by a crash
    assert not records.is_finished(path, cfg, "fp")
    with pytest.raises(TypeError):  # a write that fails midway leaves the old file untouched
        records.write_atomic(path, {"x": 1, "y": {1, 2}, "z": object.__new__(type("Unserialisable", (), {"__str__": None}))})
    assert json.loads(path.read_text() + 'k"}')["status"] == "ok"
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_records_store_nan_as_null(tmp_path):
    from bench import records

    path = tmp_path / "r.json"
    records.write_atomic(path, {"fit": {"valid_auc_history": [[1, float("nan")], [2, 0.5]]}, "x": float("inf")})
    assert json.loads(path.read_text()) == {"fit": {"valid_auc_history": [[1, None], [2, 0.5]]}, "x": None}
