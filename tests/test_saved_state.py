"""Saved trained state (issue 18): a finished LLM run keeps its LoRA adapter and its own trained
parts in the run's artifact directory (a CF baseline its weights), and ``python -m bench score``
re-scores rows with them.

Real tiny runs of the ``ci`` suite (60 ML-1M users, the tiny random LLaMA): TALLRec (LoRA only),
BinLLM (LoRA + joint hash net + binary codes), GraphLoRA (LoRA + trainable MF, projector, GNN,
injector) and CoLLM-MF (LoRA + projector over frozen CF tables re-read from the MF run)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import records, scoring
from bench.data import cache_dir
from bench.cli import main
from bench.errors import BenchError
from bench.llm import saved
from bench.runner import run_suite

RUNS = {"tallrec": "ml1m__tallrec__default__seed0", "binllm": "ml1m__binllm__dotted__seed0",
        "graphlora": "ml1m__graphlora__default__seed0", "collm-mf": "ml1m__collm-mf__two-stage__seed0",
        "mf": "ml1m__mf__bce+defaults__seed0"}  # the MF run CoLLM-MF and BinLLM read: a CF state


@pytest.fixture(scope="module")
def results(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("results")
    counts = run_suite("ci", results_dir=out, data_dir=str(data_dir), device="cpu", progress=False,
                       methods=["tallrec", "binllm", "graphlora:default", "collm-mf"])
    assert counts["failed"] == 0 and counts["done"] == 5  # the four, and the MF run two of them read
    return out / "ci"


def record_path(results: Path, method: str) -> Path:
    return results / f"{RUNS[method]}.json"


@pytest.fixture(scope="module")
def split(results, data_dir):
    return scoring.rebuild_split(records.load_record(record_path(results, "tallrec")), str(data_dir))


def write_rows(path: Path, df: pd.DataFrame) -> Path:
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("method", list(RUNS))
def test_saved_state_rescores_the_runs_test_rows_to_the_recorded_metrics(method, results, split, tmp_path, data_dir):
    rec = records.load_record(record_path(results, method))
    state = Path(rec.artifacts["trained_state"])
    assert state.is_dir() and state.resolve().is_relative_to(cache_dir().resolve())  # in the cache
    manifest = saved.read_manifest(state)
    assert manifest["split_fingerprint"] == rec.split.fingerprint
    rows = write_rows(tmp_path / "test.csv", split.test[["user", "item", "label", "timestamp"]])
    table, summary = scoring.score(record_path(results, method), rows, str(data_dir), "cpu")
    assert summary["in_split"] == len(split.test) == len(table)
    want, got = rec.metrics["test"], summary["metrics"]
    assert got["n_rows"] == want["n_rows"]
    for name in ("auc", "uauc", "warm/auc", "cold/auc"):
        if want.get(name) is not None:
            assert got[name] == pytest.approx(want[name], abs=1e-9), name


def test_saved_state_holds_the_adapter_in_peft_format_and_the_methods_own_parts(results):
    files = {m: saved.read_manifest(Path(records.load_record(record_path(results, m)).artifacts["trained_state"]))["files"]
             for m in RUNS}
    for m, f in files.items():
        if m != "mf":
            assert {"adapter/adapter_config.json", "adapter/adapter_model.safetensors"} <= set(f), m
    assert set(files["mf"]) == {"model.pt"}  # a CF baseline: its best epoch's weights
    assert saved.MODULES not in files["tallrec"]  # LoRA only
    assert {saved.MODULES, saved.EXTRA} <= set(files["binllm"])  # hash net + codes
    assert saved.MODULES in files["graphlora"] and saved.MODULES in files["collm-mf"]
    collm = saved.read_manifest(Path(records.load_record(record_path(results, "collm-mf")).artifacts["trained_state"]))
    assert set(collm["rebuilt_buffers"]) == {"cf_user", "cf_item"}  # frozen: re-read and checked, not copied


def test_cli_score_writes_the_csv_and_prints_the_metrics(results, split, tmp_path, data_dir, capsys):
    rows = write_rows(tmp_path / "rows.csv", split.test[["user", "item", "label"]].head(30))
    out = tmp_path / "scores.csv"
    assert main(["score", "--run", str(record_path(results, "tallrec")), "--rows", str(rows), "--out", str(out),
                 "--data-dir", str(data_dir), "--device", "cpu"]) == 0
    scored = pd.read_csv(out)
    assert list(scored.columns) == ["user", "item", "label", "score", "in_split"]
    assert len(scored) == 30 and np.isfinite(scored["score"]).all() and scored["in_split"].all()
    assert "scored 30 rows (30 of them rows of the run's split): auc=" in capsys.readouterr().err


def test_new_rows_take_the_users_history_after_their_last_train_row(results, split, tmp_path, data_dir):
    train = split.train
    user = int(train["user"].value_counts().index[0])
    mine = train[train["user"] == user].sort_values("timestamp", kind="stable")
    seen = set(pd.concat([d[d["user"] == user]["item"] for _, d in split.parts()]))
    item = int(next(i for i in train["item"].unique() if i not in seen))  # a pair the split never had
    table = pd.DataFrame({"user": [user, user], "item": [item, int(mine["item"].iloc[0])]})
    rows, matched = scoring.prompt_rows(split, table)
    assert matched.tolist() == [False, True]
    last = mine.iloc[-1]
    want = list(last["history"]) + ([int(last["item"])] if last["label"] == 1 else [])
    assert list(rows.loc[0, "history"]) == want
    assert rows.loc[0, "title"] == split.titles()[item] and rows.loc[0, "not_cold"] == 1
    # --history all: after the user's last row in any part
    every = pd.concat([d[d["user"] == user] for d in (split.train, split.valid, split.test)])
    latest = every.sort_values("timestamp", kind="stable").iloc[-1]
    rows_all, _ = scoring.prompt_rows(split, table, "all")
    assert list(rows_all.loc[0, "history"]) == list(latest["history"]) + ([int(latest["item"])] if latest["label"] == 1 else [])
    scored, summary = scoring.score(record_path(results, "graphlora"), write_rows(tmp_path / "new.csv", table),
                                    str(data_dir), "cpu")
    assert scored["in_split"].tolist() == [False, True] and np.isfinite(scored["score"]).all()
    assert "metrics" not in summary  # no labels, no metrics


def test_unknown_users_and_items_are_refused_with_the_list(results, split, tmp_path, data_dir):
    known = set(pd.concat([d["user"] for _, d in split.parts()]))
    stranger = next(u for u in range(1, split.n_users) if u not in known)
    table = pd.DataFrame({"user": [stranger, int(split.test["user"].iloc[0])], "item": [int(split.test["item"].iloc[0]), 10**6]})
    with pytest.raises(BenchError) as e:
        scoring.score(record_path(results, "tallrec"), write_rows(tmp_path / "bad.csv", table), str(data_dir), "cpu")
    assert f"user(s) {stranger}" in e.value.problem and "item(s) 1000000" in e.value.problem


def test_a_csv_without_the_required_columns_or_with_bad_values_is_refused(results, tmp_path, data_dir):
    run = record_path(results, "tallrec")
    bad = tmp_path / "bad.csv"
    bad.write_text("user,movie\n1,2\n")
    with pytest.raises(BenchError, match=r"lacks column\(s\) \['item'\]"):
        scoring.score(run, bad, str(data_dir), "cpu")
    bad.write_text("user,item\n1,x\n")
    with pytest.raises(BenchError, match="column 'item' holds non-integers"):
        scoring.score(run, bad, str(data_dir), "cpu")
    bad.write_text("user,item,label\n1,2,3\n")
    with pytest.raises(BenchError, match="label must be 0 or 1"):
        scoring.score(run, bad, str(data_dir), "cpu")
    with pytest.raises(BenchError, match="no such file"):
        scoring.score(run, tmp_path / "none.csv", str(data_dir), "cpu")
    with pytest.raises(BenchError, match="no such file"):
        scoring.score(tmp_path / "none.json", bad, str(data_dir), "cpu")


def test_a_record_without_saved_state_is_refused(results, split, tmp_path, data_dir, capsys):
    rows = write_rows(tmp_path / "rows.csv", split.test[["user", "item"]].head(3))
    raw = json.loads(record_path(results, "mf").read_text())
    raw["artifacts"].pop("trained_state")  # a record from before runs kept their state
    mf = tmp_path / "old-mf.json"
    mf.write_text(json.dumps(raw))
    with pytest.raises(BenchError, match="names no saved trained state"):
        scoring.score(mf, rows, str(data_dir), "cpu")
    assert main(["score", "--run", str(mf), "--rows", str(rows), "--data-dir", str(data_dir)]) == 2
    assert "names no saved trained state" in capsys.readouterr().err
    # an LLM record whose state folder is gone (cache cleared, another machine)
    raw = json.loads(record_path(results, "tallrec").read_text())
    raw["artifacts"]["trained_state"] = str(tmp_path / "gone")
    moved = tmp_path / "moved.json"
    moved.write_text(json.dumps(raw))
    with pytest.raises(BenchError, match="is not there"):
        scoring.score(moved, rows, str(data_dir), "cpu")


def test_state_that_does_not_match_the_rebuilt_method_is_refused(results, split, tmp_path, data_dir):
    rows = write_rows(tmp_path / "rows.csv", split.test[["user", "item"]].head(3))
    raw = json.loads(record_path(results, "collm-mf").read_text())
    state = tmp_path / "state"
    shutil.copytree(raw["artifacts"]["trained_state"], state)
    manifest = json.loads((state / saved.MANIFEST).read_text())
    manifest["rebuilt_buffers"]["cf_user"] = "0" * 64  # as if the MF run had been redone since
    (state / saved.MANIFEST).write_text(json.dumps(manifest))
    raw["artifacts"]["trained_state"] = str(state)
    rec = tmp_path / "rec.json"
    rec.write_text(json.dumps(raw))
    with pytest.raises(BenchError, match="frozen input 'cf_user' rebuilt here differs"):
        scoring.score(rec, rows, str(data_dir), "cpu")
    raw["split"]["fingerprint"] = "0" * 16  # another split than the one rebuilt from source + transforms
    rec.write_text(json.dumps(raw))
    with pytest.raises(BenchError, match="is not the run's"):
        scoring.score(rec, rows, str(data_dir), "cpu")


def _tiny_tallrec(split, backbone, tmp_path):  # noqa: ANN001
    import copy

    from bench.config import build_config
    from bench.method import RunContext
    from bench.registry import get_method

    cls = get_method("tallrec")
    m = cls(build_config(cls.Config, {"backbone": "tiny-random"}),
            RunContext(dataset="ml1m", seed=0, device="cpu", work_dir=tmp_path, artifact_dir=tmp_path / "a",
                       split_fingerprint=split.fingerprint, run_name="t", progress=False))
    m.prepare(split, copy.deepcopy(backbone))
    return m


def test_saving_can_be_turned_off(split, backbone, tmp_path, monkeypatch):
    monkeypatch.delenv(saved.ENV, raising=False)
    assert saved.enabled()
    m = _tiny_tallrec(split, backbone, tmp_path)
    assert m.save_state(tmp_path / "s") == tmp_path / "s"
    monkeypatch.setenv(saved.ENV, "0")
    assert not saved.enabled()
    # off: nothing is written, and a state an earlier run left there is removed, not kept stale
    assert m.save_state(tmp_path / "s") is None and not (tmp_path / "s").exists()


def test_saving_follows_the_size_limit(split, backbone, tmp_path, monkeypatch, caplog):
    m = _tiny_tallrec(split, backbone, tmp_path)
    monkeypatch.setenv(saved.ENV, "0.001")  # 1 kB: less than the tiny LoRA
    assert m.save_state(tmp_path / "s") is None and not (tmp_path / "s").exists()
    assert "is not saved: over the RECBENCH_SAVE_STATE limit" in caplog.text
    monkeypatch.setenv(saved.ENV, "always")
    assert m.save_state(tmp_path / "s") == tmp_path / "s" and saved.read_manifest(tmp_path / "s")["prompt"] == "text"
    monkeypatch.setenv(saved.ENV, "lots")
    with pytest.raises(BenchError, match="is not 0, always or a size in MB"):
        saved.max_bytes()
