"""A new user's first hour (issue 20): `ls` honours the data dir and lists variants and suite
descriptions in aligned columns, `run --help` explains every flag, ``--methods METHOD:VARIANT``
picks one variant (its CF dependencies still run), and the output stays clean (4-decimal metrics
in log lines, no progress bars off a terminal, log lines routed around bars on one)."""
from __future__ import annotations

import logging
import re
import textwrap
import types

import pytest

from bench import runner
from bench.cli import build_parser, main
from bench.errors import BenchError
from bench.suites import load_suite

SUITE = """\
datasets:
  ml100k: {subset_users: 12, max_eval_rows: 16}
runs:
  - {method: mf, variant: bce}
  - {method: mf, variant: recbole}
  - {method: graphlora}
  - {method: graphlora, variant: lightgcn}
"""


def _suite(tmp_path, text=SUITE, name="hygiene.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def _section(out: str, heading: str) -> list[str]:
    """The table lines under a heading of `ls` (header and rule included)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    body = []
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break
        body.append(line)
    return body


def _row(lines: list[str], name: str) -> str:
    return next(line for line in lines if line.split()[0] == name)


# ---- ls -----------------------------------------------------------------------------------
def test_ls_honours_recbench_data_dir(monkeypatch, capsys, data_dir):
    monkeypatch.setenv("RECBENCH_DATA_DIR", str(data_dir))
    assert main(["ls"]) == 0
    out = capsys.readouterr().out
    datasets = _section(out, "datasets")
    ml1m = _row(datasets, "ml1m")
    assert "needs --data-dir" not in ml1m and "found" in ml1m and "ml-1m-collm" in ml1m
    assert str(data_dir.resolve()) in out and "RECBENCH_DATA_DIR" in out.split("datasets", 1)[1].splitlines()[0]
    assert "embedded" in _row(datasets, "ml100k")


def test_ls_data_dir_flag_and_no_data_dir(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("RECBENCH_DATA_DIR", raising=False)
    assert main(["ls"]) == 0
    assert "needs --data-dir" in _row(_section(capsys.readouterr().out, "datasets"), "ml1m")
    assert main(["ls", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    ml1m = _row(_section(out, "datasets"), "ml1m")
    assert "missing" in ml1m and str(tmp_path / "ml-1m-collm") in ml1m and "(from --data-dir)" in out


def test_ls_lists_variants_and_suite_descriptions(monkeypatch, capsys):
    monkeypatch.delenv("RECBENCH_DATA_DIR", raising=False)
    assert main(["ls"]) == 0
    out = capsys.readouterr().out
    methods = _section(out, "methods")
    mf = _row(methods, "mf")
    assert "bce*" in mf and "recbole" in mf  # the default marked
    graphlora = " ".join(methods)
    assert "lora-frozen-mf" in graphlora and "layer-<k>" in graphlora  # parametric names too
    assert "Every method and variant" in " ".join(_section(out, "suites"))  # smoke's first sentence


def test_ls_columns_line_up_with_long_names(monkeypatch, capsys):
    monkeypatch.delenv("RECBENCH_DATA_DIR", raising=False)
    assert main(["ls"]) == 0
    datasets = _section(capsys.readouterr().out, "datasets")[2:]  # past the header and the rule
    assert any(len(line.split()[0]) > 18 for line in datasets)  # bookcrossing-tallrec
    starts = {re.search(r"\S+\s+", line).end() for line in datasets}
    assert len(starts) == 1, datasets


# ---- run --help, --methods METHOD:VARIANT ----------------------------------------------------
def test_every_run_flag_has_help():
    run = next(a for a in build_parser()._actions if a.dest == "command").choices["run"]
    missing = [a.option_strings for a in run._actions if not a.help]
    assert not missing
    text = run.format_help()
    assert "METHOD:VARIANT" in text and "mf:bce" in text


def test_method_variant_plans_that_variant_only(tmp_path):
    suite = load_suite(_suite(tmp_path))
    assert [r.key.stem for r in runner.plan(suite, ["mf:recbole"])] == ["ml100k__mf__recbole__seed0"]
    assert {r.key.variant for r in runner.plan(suite, ["mf"])} == {"bce", "recbole"}  # bare: all variants
    assert {r.key.variant for r in runner.plan(suite, ["mf:bce", "mf"])} == {"bce", "recbole"}


def test_method_variant_keeps_its_dependencies(tmp_path):
    suite = load_suite(_suite(tmp_path))
    # graphlora's CF run is the suite's own mf:bce entry: filtered out by --methods, run all the same
    stems = [r.key.stem for r in runner.plan(suite, ["graphlora:lightgcn"])]
    assert stems == ["ml100k__mf__bce__seed0", "ml100k__graphlora__lightgcn__seed0"]
    stems = [r.key.stem for r in runner.plan(suite, ["mf:recbole", "graphlora:default"])]
    assert stems == ["ml100k__mf__recbole__seed0", "ml100k__mf__bce__seed0", "ml100k__graphlora__default__seed0"]


@pytest.mark.parametrize("item, problem, fix", [
    ("mf:bcee", "mf has no variant 'bcee'", "did you mean 'bce'"),
    ("graphlora:ngcf", "runs graphlora as default, lightgcn, not 'ngcf'", "--methods graphlora:default"),
    ("mf:", "is not METHOD or METHOD:VARIANT", "mf:bce"),
    ("mff:bce", "unknown method 'mff'", "did you mean 'mf'"),
])
def test_bad_method_variant_is_one_clear_error(tmp_path, item, problem, fix):
    suite = load_suite(_suite(tmp_path))
    with pytest.raises(BenchError) as e:
        runner.plan(suite, [item])
    assert problem in e.value.problem and fix in e.value.fix


def test_bad_variant_stops_the_cli_before_any_work(tmp_path, capsys):
    results = tmp_path / "results"
    rc = main(["run", "--suite", "smoke", "--methods", "mf:bcee", "--results-dir", str(results), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("error:") == 1
    assert "mf has no variant 'bcee'" in err and "did you mean 'bce'" in err
    assert not results.exists()


# ---- output hygiene ----------------------------------------------------------------------
def _planned(tmp_path):
    return runner.plan(load_suite(_suite(tmp_path)), ["mf"])[0]  # ml100k__mf__bce__seed0


@pytest.mark.parametrize("uauc, shown", [(0.6789012345678901, "uauc=0.6789"), (None, "uauc=n/a")])
def test_result_line_has_four_decimals(tmp_path, monkeypatch, caplog, uauc, shown):
    run = _planned(tmp_path)
    rec = {"metrics": {"test": {"auc": 0.71234567891234, "uauc": uauc}}, "timing": {"train_s": 3.2}}
    monkeypatch.setattr(runner, "execute", lambda *a, **k: rec)
    split = types.SimpleNamespace(fingerprint="f" * 16)
    with caplog.at_level(logging.INFO, logger="bench"):
        assert runner.run_one(run, split, tmp_path / "results", "cpu") == "done"
    line = next(r.getMessage() for r in caplog.records if "test auc=" in r.getMessage())
    assert f"test auc=0.7123 {shown} (3s)" in line, line


def test_no_bars_when_stderr_is_not_a_terminal(tmp_path, monkeypatch, capsys):
    def fake_run_one(run, split, results_dir, device, force, progress):
        assert not progress  # the methods' own bars are off too
        return "done"

    monkeypatch.setattr(runner, "run_one", fake_run_one)
    counts = runner.run_suite(_suite(tmp_path), results_dir=tmp_path / "results", methods=["mf"], device="cpu",
                              progress=True)
    assert counts["done"] == 2
    err = capsys.readouterr().err
    assert "\r" not in err and "\x1b[" not in err and "suite hygiene" not in err


def test_log_lines_go_around_the_bars_on_a_terminal(tmp_path, monkeypatch):
    import io
    import sys

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    handler = logging.StreamHandler(tty)
    root = logging.getLogger()
    root.addHandler(handler)
    seen = []

    def fake_run_one(run, split, results_dir, device, force, progress):
        assert progress
        # while the suite's bar is up, a log record goes through tqdm.write, not straight to stderr
        seen.append([type(h).__name__ for h in root.handlers])
        logging.getLogger("bench").warning("a log line from %s", run.key.stem)
        return "done"

    monkeypatch.setattr(runner, "run_one", fake_run_one)
    try:
        runner.run_suite(_suite(tmp_path), results_dir=tmp_path / "results", methods=["mf"], device="cpu",
                         progress=True)
    finally:
        root.removeHandler(handler)
    assert seen and all("_TqdmLoggingHandler" in names and "StreamHandler" not in names for names in seen)
    text = tty.getvalue()
    assert "suite hygiene" in text  # the bar was drawn
    assert "\na log line from ml100k__mf__bce__seed0\n" in text.replace("\r", "\n")

def test_every_run_table_has_fixed_decimals_per_column():
    import pandas as pd

    from bench.report import details

    base = {"dataset": "d", "method": "m", "seed": 0, "test/n_rows": 160, "params_trainable": 123456,
            "budget_target": None, "test/ndcg@10": 0.1}
    df = pd.DataFrame([{**base, "variant": "a", "valid/auc": 1.0, "valid/uauc": 0.71234567, "test/auc": 0.5,
                        "test/uauc": float("nan"), "train_s": 12.0, "infer_test_s": 3.14159},
                       {**base, "variant": "b", "valid/auc": 0.6, "valid/uauc": 0.7, "test/auc": 0.55,
                        "test/uauc": 0.6, "train_s": 3.25, "infer_test_s": 31.4}])
    header, body = details(df)
    col = {name: i for i, name in enumerate(header)}
    assert [r[col["valid AUC"]] for r in body] == ["1.0000", "0.6000"]  # was "1" and "0.6000"
    assert [r[col["valid UAUC"]] for r in body] == ["0.7123", "0.7000"]
    assert [r[col["test UAUC"]] for r in body] == ["–", "0.6000"]
    assert [r[col["train s"]] for r in body] == ["12.0", "3.2"]  # was "12" and "3.2500"
    assert [r[col["test inference s"]] for r in body] == ["3.14", "31.40"]  # was "3.1416" and "31.4"
    assert [r[col["trainable params"]] for r in body] == ["123,456", "123,456"]


def test_wrapping_a_backbone_in_lora_raises_no_future_warning(backbone):
    import copy
    import types
    import warnings

    from bench.llm.recommender import LLMConfig, LLMRecommender

    stub = types.SimpleNamespace(config=LLMConfig())
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        LLMRecommender.lora(stub, copy.deepcopy(backbone.model))
