"""Bring your own data (issue 18): datasets declared in YAML, datasets registered as entry
points, and run sweeps in suite files."""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import records
from bench.data import DATASETS, dataset_table, load_full, load_split
from bench.errors import BenchError
from bench.suites import SUITE_DIR, load_suite

T0 = 1577836800  # 2020-01-01 UTC: month 0


def write_csvs(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """A small book-rating log (uid, iid, stars, ts) over four months and a title table: users
    1..40 rate throughout, users 41..45 only in the last month (cold users)."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(1, 46):
        months = [3] if user > 40 else [0, 1, 2, 3]
        for _ in range(4 if user > 40 else 9):
            month = int(rng.choice(months, p=None if user > 40 else [0.35, 0.3, 0.15, 0.2]))
            rows.append({"uid": f"u{user}", "iid": int(rng.integers(100, 130)), "stars": int(rng.integers(1, 6)),
                         "ts": T0 + month * 31 * 86400 + int(rng.integers(0, 27 * 86400))})
    inter = folder / "ratings.csv"
    pd.DataFrame(rows).to_csv(inter, index=False)
    items = folder / "books.csv"
    pd.DataFrame({"iid": range(100, 130), "name": [f"Book {i}" for i in range(100, 130)],
                  "year": [1990 + i % 20 for i in range(100, 130)]}).to_csv(items, index=False)
    return inter, items


DECLARE = """
    declare:
      interactions: ratings.csv
      items: books.csv
      columns: {user: uid, item: iid, rating: stars, timestamp: ts, title: name, year: year}
      label_rule: rating >= 4
      split: {months: {origin: '2020-01', train: [0, 1], valid: [2, 2], test: [3, 3]}}
      domain: book
"""


def write_suite(folder: Path, declare: str = DECLARE, runs: str = "", name: str = "byo") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(f"seeds: [0]\ndatasets:\n  toy:{declare}\n"
                    + (runs or "runs:\n  - {method: mf, variant: bce, overrides: {epochs: 2, stopping_step: 1, "
                                "embedding_size: 8}}\n"))
    return path


@pytest.fixture(autouse=True)
def _registries():
    """Declarations register into process-wide tables: each test leaves them as it found them."""
    datasets = dict(DATASETS)
    yield
    DATASETS.clear()
    DATASETS.update(datasets)


@pytest.fixture
def toy(tmp_path):
    write_csvs(tmp_path)
    return write_suite(tmp_path)


def test_declared_csv_loads_splits_by_month_with_stats(toy, tmp_path):
    suite = load_suite(str(toy))
    ds = suite.datasets[0]
    assert (ds.name, ds.source) == ("toy", "toy") and "toy" in DATASETS
    split = load_split(ds.source)
    raw = pd.read_csv(tmp_path / "ratings.csv")
    month = (raw["ts"] - T0) // (31 * 86400)
    assert (len(split.train), len(split.valid), len(split.test)) == tuple(int((month.isin(m)).sum())
                                                                          for m in ([0, 1], [2], [3]))
    # temporal: every train row is before every valid row, valid before test
    assert split.train["timestamp"].max() < split.valid["timestamp"].min()
    assert split.valid["timestamp"].max() < split.test["timestamp"].min()
    both = pd.concat([df for _, df in split.parts() if _ != "valid_small"])
    assert int(both["label"].sum()) == int((raw["stars"] >= 4).sum())  # label_rule applied
    assert split.n_users == 46 and split.domain == "book" and split.dataset == "toy"
    assert set(split.titles().values()) <= {f"Book {i} ({1990 + i % 20})" for i in range(100, 130)}
    assert len(split.valid_small) == round(len(split.valid) * 0.5)
    stats = split.stats()  # Table 2's columns
    assert {"train", "valid", "test", "n_users", "n_items", "test_warm", "test_cold", "train_pos_rate"} <= set(stats)
    assert stats["test_warm"] > 0 and stats["test_cold"] > 0  # users 41..45 are cold
    assert stats["test_warm"] + stats["test_cold"] == len(split.test)
    cold = split.test[split.test["not_cold"] == 0]
    assert set(cold["user"]) >= set(split.test["user"]) - set(split.train["user"])
    # history: earlier positives in time order, the CoLLM rule
    row = split.test.iloc[-1]
    assert all(isinstance(t, str) for t in row["history_titles"]) and len(row["history"]) == len(row["history_titles"])


def test_cache_key_covers_declaration_and_file_content(toy, tmp_path):
    load_suite(str(toy))
    first = load_full("toy")
    again = load_full("toy")  # from the cache
    assert again.fingerprint == first.fingerprint
    cached = list((Path(os.environ["RECBENCH_CACHE"]) / "splits").glob("toy-declared-*.json"))
    assert cached
    # an edited file is a new key (and new data), even with the same size
    path = tmp_path / "ratings.csv"
    text = path.read_text()
    path.write_text(text.replace("u1,", "u2,", 1))
    assert load_full("toy").fingerprint != first.fingerprint
    path.write_text(text)
    assert load_full("toy").fingerprint == first.fingerprint
    # an edited declaration (another label rule) is a new key
    write_suite(tmp_path, DECLARE.replace("rating >= 4", "rating >= 3"))
    load_suite(str(toy))
    assert load_full("toy").fingerprint != first.fingerprint


def test_plan_and_one_real_run(toy, tmp_path):
    from bench.runner import plan, run_suite

    runs = plan(load_suite(str(toy)))
    assert [r.key.stem for r in runs] == ["toy__mf__bce__seed0"]
    argv, sys.argv = sys.argv, ["bench"]  # RecBole reads --key=value from sys.argv
    try:
        counts = run_suite(str(toy), results_dir=tmp_path / "results", methods=["mf"], device="cpu", progress=False)
    finally:
        sys.argv = argv
    assert counts == {"done": 1, "skipped": 0, "failed": 0, "unavailable": 0}
    rec = json.loads((tmp_path / "results" / "byo" / "toy__mf__bce__seed0.json").read_text())
    assert rec["status"] == "ok" and rec["split"]["source"] == "toy"
    assert rec["split"]["fingerprint"] == load_split("toy").fingerprint
    assert rec["split"]["stats"]["test_cold"] > 0 and 0 <= rec["metrics"]["test"]["auc"] <= 1


def test_recbole_atomic_files_give_the_builtin_ml100k(tmp_path):
    from bench.data.ml100k import recbole_ml100k_dir

    # a separate dataset file, referenced from the suite (its paths relative to itself)
    (tmp_path / "ml100k-decl.yaml").write_text(
        f"recbole: {recbole_ml100k_dir()}\n"
        "columns: {title: movie_title, year: release_year}\n"
        "label_rule: rating >= 4\n"
        "split: {months: {origin: '1997-09', train: [0, 4], valid: [5, 5], test: [6, 7]}}\n"
        "domain: movie\n")
    suite = write_suite(tmp_path, " {declare: ml100k-decl.yaml}\n")
    load_suite(str(suite))
    mine, builtin = load_full("toy", use_cache=False), load_full("ml100k")
    assert mine.fingerprint == builtin.fingerprint
    assert (mine.n_users, mine.n_items, mine.domain, mine.notes) == (builtin.n_users, builtin.n_items, "movie", ())
    assert mine.stats() == builtin.stats()
    for part, df in mine.parts():
        pd.testing.assert_frame_equal(df, getattr(builtin, part))


def test_premade_split_ratio_and_dates(tmp_path):
    inter, _ = write_csvs(tmp_path)
    raw = pd.read_csv(inter).sort_values("ts", kind="stable")
    raw["clicked"] = (raw["stars"] >= 4).astype(int)
    raw["title"] = "Book " + raw["iid"].astype(str)
    n = len(raw)
    for part, df in (("train", raw.iloc[: n // 2]), ("valid", raw.iloc[n // 2: 3 * n // 4]),
                     ("test", raw.iloc[3 * n // 4:])):
        df.drop(columns=["ts"]).to_csv(tmp_path / f"{part}.tsv", sep="\t", index=False)
    premade = """
    declare:
      train: train.tsv
      valid: valid.tsv
      test: {path: test.tsv, sep: "\\t"}
      columns: {user: uid, item: iid, label: clicked, timestamp: null}
      label_rule: label == 1
      domain: person
      domain_plural: people
"""
    load_suite(str(write_suite(tmp_path, premade)))
    split = load_full("toy", use_cache=False)
    assert (len(split.train), len(split.valid), len(split.test)) == (n // 2, 3 * n // 4 - n // 2, n - 3 * n // 4)
    assert int(split.train["label"].sum()) == int(raw.iloc[: n // 2]["clicked"].sum())
    assert split.domain == "person/people" and split.titles()[1].startswith("Book ")
    from bench.llm.prompts import render, words

    assert words("person/people") == ("person", "people") and words("toy") == ("toy", "toys")
    assert render("{items} / {item}", split.domain, [], "x") == "people / person"

    load_suite(str(write_suite(tmp_path, DECLARE.replace(
        "{months: {origin: '2020-01', train: [0, 1], valid: [2, 2], test: [3, 3]}}", "{ratio: [0.6, 0.2, 0.2]}"))))
    split = load_full("toy", use_cache=False)
    assert (len(split.train), len(split.valid)) == (round(n * 0.6), round(n * 0.2))
    assert split.train["timestamp"].max() <= split.valid["timestamp"].min()

    load_suite(str(write_suite(tmp_path, DECLARE.replace(
        "{months: {origin: '2020-01', train: [0, 1], valid: [2, 2], test: [3, 3]}}",
        "{dates: {valid: 2020-03-01, test: 2020-04-01}}"))))
    by_dates = load_full("toy", use_cache=False)
    load_suite(str(write_suite(tmp_path)))
    assert by_dates.fingerprint == load_full("toy").fingerprint  # the same cut points as months


@pytest.mark.parametrize("declare, problem, fix", [
    (DECLARE.replace("ratings.csv", "nope.csv"), r"interactions file \S*nope\.csv not found", r"fix the path \(relative paths are relative to the declaring file\) in \S*byo\.yaml"),
    (DECLARE.replace("user: uid", "user: user_id"),
     r"interactions file \S*ratings\.csv has no column 'user_id' \(the user column; it has \['uid'",
     r"columns: \{user: <one of its columns>\}"),
    (DECLARE.replace("title: name", "title: book_title"), r"items file \S*books\.csv has no column 'book_title'",
     r"columns: \{title:"),
    (DECLARE.replace("rating: stars, ", ""),
     r"has no column 'rating' \(the rating column that label_rule 'rating >= 4' reads", r"columns: \{rating:"),
    (DECLARE.replace("rating >= 4", "clicks > 0"), r"has no column 'clicks'", r"base label_rule in .*byo\.yaml"),
], ids=["missing-file", "missing-user-column", "missing-title-column", "unmapped-rating", "rule-column"])
def test_missing_file_or_column_is_one_clear_error(tmp_path, declare, problem, fix):
    write_csvs(tmp_path)
    load_suite(str(write_suite(tmp_path, declare)))
    with pytest.raises(BenchError) as e:
        load_split("toy")
    assert re.search(problem, e.value.problem), e.value.problem
    assert re.search(fix, e.value.fix), e.value.fix


@pytest.mark.parametrize("declare, problem", [
    (DECLARE.replace("rating >= 4", "rating is high"), r"label_rule: 'rating is high' is not '<column> <op> <number>'"),
    (DECLARE.replace("      split: {months: {origin: '2020-01', train: [0, 1], valid: [2, 2], test: [3, 3]}}\n", ""),
     r"split is missing"),
    (DECLARE.replace("interactions: ratings.csv", "train: ratings.csv"), r"missing valid, test"),
    (DECLARE.replace("interactions: ratings.csv", "interactions: ratings.csv\n      recbole: x"),
     r"exactly one of interactions, recbole"),
    (DECLARE.replace("months: {origin: '2020-01', train: [0, 1]", "months: {origin: '2020-01', train: [1, 0]"),
     r"months.train = \[1, 0\] ends before it starts"),
    (DECLARE.replace("{months: {origin: '2020-01', train: [0, 1], valid: [2, 2], test: [3, 3]}}", "{ratio: [0.5, 0.1, 0.1]}"),
     r"sums to 0.7"),
    (DECLARE.replace("domain: book", "domian: book"), r"unknown key 'domian'"),
    (" {declare: missing.yaml}\n", r"dataset file \S*missing\.yaml not found"),
    (" {dataset: ml100k, declare: {label_rule: rating >= 4}}\n", r"gives both dataset and declare"),
], ids=["rule-syntax", "no-split", "premade-missing-parts", "two-sources", "month-order", "ratio-sum",
        "unknown-key", "missing-dataset-file", "dataset-and-declare"])
def test_bad_declarations_fail_when_the_suite_loads(tmp_path, declare, problem):
    with pytest.raises(BenchError, match=problem):
        load_suite(str(write_suite(tmp_path, declare)))


def test_a_declaration_cannot_take_a_registered_name(tmp_path):
    write_csvs(tmp_path)
    path = tmp_path / "clash.yaml"
    path.write_text(f"datasets:\n  ml100k:{DECLARE}")
    with pytest.raises(BenchError, match=r"dataset 'ml100k' is declared, but ml100k is already a registered dataset"):
        load_suite(str(path))
    assert DATASETS["ml100k"][0] == "bench.data.ml100k:load"


def load_tiny(data_dir):
    """An entry-point loader (used by the test below)."""
    from bench.data.ml100k import load

    from bench.data import subset

    return subset(load(), 5, 0)


def test_entry_point_datasets_merge_and_clash(tmp_path, monkeypatch):
    merged = dataset_table(entry_points={"tiny": (f"{__name__}:load_tiny", "package acme 1.2")})
    assert merged["tiny"] == (f"{__name__}:load_tiny", True, "1.2") and "ml1m" in merged
    with pytest.raises(BenchError, match=r"dataset 'ml100k' from package acme 1.2 \(acme:load\) clashes with the "
                                         r"built-in dataset ml100k"):
        dataset_table(entry_points={"ml100k": ("acme:load", "package acme 1.2")})
    with pytest.raises(BenchError, match="not 'module:function'"):
        dataset_table(entry_points={"bad": ("acme.load", "package acme 1.2")})
    monkeypatch.setitem(DATASETS, "tiny", merged["tiny"])
    split = load_split("tiny", tmp_path)
    assert split.fingerprint and len(split.train) > 0
    monkeypatch.setitem(DATASETS, "notsplit", (f"{__name__}:write_csvs", True, 1))
    with pytest.raises(BenchError, match=r"returned tuple, not a Split"):
        load_split("notsplit", tmp_path, use_cache=False)
    # the group is in pyproject.toml (empty here) and read from there and from installed packages
    from bench.data import entry_point_datasets

    assert isinstance(entry_point_datasets(), dict)


# --------------------------------------------------------------------------- sweeps

def sweep_suite(tmp_path, runs: str) -> Path:
    path = tmp_path / "sweeps.yaml"
    path.write_text("datasets: {ml100k: {}}\nruns:\n" + runs)
    return path


def test_sweep_forms_expand_to_ordinary_runs(tmp_path):
    runs = load_suite(str(sweep_suite(tmp_path, (
        "  - {method: graphlora, sweep: {variant: 'layer-{0..3}'}, overrides: {epochs: 1}}\n"
        "  - {method: graphlora, sweep: {variant: [pre, star]}}\n"
        "  - {method: mf, variant: bce, sweep: {embedding_size: [8, 16], learning_rate: [1.0e-3, 0.01]}}\n"
        "  - {method: graphlora, sweep: {variant: 'legacy-layer-{2..6..2}', lora_r: '{4..5}'}}\n")))).runs
    got = [(r.method, r.variant, r.overrides) for r in runs]
    assert got == [
        *[("graphlora", f"layer-{k}", {"epochs": 1}) for k in range(4)],
        ("graphlora", "pre", {}), ("graphlora", "star", {}),
        ("mf", "bce+embedding_size=8+learning_rate=0.001", {"embedding_size": 8, "learning_rate": 1e-3}),
        ("mf", "bce+embedding_size=8+learning_rate=0.01", {"embedding_size": 8, "learning_rate": 0.01}),
        ("mf", "bce+embedding_size=16+learning_rate=0.001", {"embedding_size": 16, "learning_rate": 1e-3}),
        ("mf", "bce+embedding_size=16+learning_rate=0.01", {"embedding_size": 16, "learning_rate": 0.01}),
        *[("graphlora", f"legacy-layer-{k}+lora_r={r}", {"lora_r": r}) for k in (2, 4, 6) for r in (4, 5)],
    ]
    # no variant given: the method's default names the override runs
    runs = load_suite(str(sweep_suite(tmp_path, "  - {method: mf, sweep: {epochs: [1, 2]}}\n"))).runs
    assert [r.variant for r in runs] == ["bce+epochs=1", "bce+epochs=2"]


@pytest.mark.parametrize("run, problem", [
    ("{method: mf, sweep: {variant: 'layer-{0..x}'}}", r"runs\[0\]\.sweep: sweep\.variant = 'layer-\{0\.\.x\}' is neither"),
    ("{method: mf, sweep: {}}", r"sweep is empty"),
    ("{method: mf, sweep: {epochs: []}}", r"sweep\.epochs must be a non-empty list"),
    ("{method: mf, sweep: {epochs: [1, 1]}}", r"sweep\.epochs lists '1' twice"),
    ("{method: mf, sweep: {variant: [a/b]}}", r"cannot be part of a record name"),
    ("{method: mf, sweep: {epochs: [[1]]}}", r"values must be strings or numbers"),
    ("{method: mf, variant: bce, sweep: {variant: [bce, recbole]}}", r"runs\[0\] gives both variant and sweep\.variant"),
    ("{method: mf, overrides: {epochs: 1}, sweep: {epochs: [1, 2]}}", r"sets 'epochs' in both overrides and sweep"),
], ids=["bad-range", "empty", "empty-list", "duplicate", "bad-text", "nested", "variant-twice", "override-twice"])
def test_bad_sweeps(tmp_path, run, problem):
    with pytest.raises(BenchError, match=problem):
        load_suite(str(sweep_suite(tmp_path, f"  - {run}\n")))


def test_main_suite_sweep_plans_exactly_the_old_explicit_runs(tmp_path):
    """main.yaml's injection-layer sweep is one entry; written out as the 30 lines it replaced,
    the suite plans the same runs (same keys, same configs, same order)."""
    from bench.runner import plan

    text = (SUITE_DIR / "main.yaml").read_text()
    sweep = re.search(r"^  - \{method: graphlora, sweep: \{variant: \"layer-\{0\.\.29\}\"\}.*\n", text, re.M)
    assert sweep, "main.yaml's layer sweep entry moved"
    explicit = "".join(f"  - {{method: graphlora, variant: layer-{k}, datasets: [ml1m], "
                       f"overrides: {{epochs: 1, eval_every: 500}}}}\n" for k in range(30))
    old = tmp_path / "main-explicit.yaml"
    old.write_text(text.replace(sweep.group(0), explicit))
    new_suite, old_suite = load_suite("main"), load_suite(str(old))
    assert new_suite.runs == old_suite.runs
    assert [r for r in new_suite.runs if r.variant and r.variant.startswith("layer-")] == [
        type(new_suite.runs[0])("graphlora", f"layer-{k}", {"epochs": 1, "eval_every": 500}, ("ml1m",), None)
        for k in range(30)]

    def planned(suite):
        return [(r.key.dataset, r.key.method, r.key.variant, r.key.seed, records.config_hash(r.config_dict))
                for r in plan(suite, results_dir=tmp_path / "results", untuned=[])]  # tuned rows wait: no study

    assert planned(new_suite) == planned(old_suite)


def test_override_sweep_plans_distinct_records(tmp_path):
    from bench.runner import plan

    runs = plan(load_suite(str(sweep_suite(tmp_path, "  - {method: mf, variant: bce, sweep: {embedding_size: [8, 16]}}\n"))))
    assert [r.key.variant for r in runs] == ["bce+embedding_size=8", "bce+embedding_size=16"]
    assert [r.config.embedding_size for r in runs] == [8, 16]


def test_paths_relative_to_the_data_dir(tmp_path, monkeypatch):
    data = tmp_path / "data" / "books"
    data.mkdir(parents=True)
    write_csvs(data)
    declare = DECLARE.replace("ratings.csv", "books/ratings.csv").replace("items: books.csv", "items: books/books.csv")
    load_suite(str(write_suite(tmp_path, declare + "      relative_to: data_dir\n")))
    assert DATASETS["toy"][1] is True  # needs a data dir, like the built-ins that read one
    split = load_split("toy", tmp_path / "data")
    write_csvs(tmp_path)  # the same files beside the suite, declared relative to it: the same data
    load_suite(str(write_suite(tmp_path)))
    assert load_split("toy").fingerprint == split.fingerprint
    load_suite(str(write_suite(tmp_path, declare + "      relative_to: data_dir\n")))
    monkeypatch.delenv("RECBENCH_DATA_DIR", raising=False)
    with pytest.raises(BenchError, match="'toy' needs a data directory"):
        load_split("toy")
    with pytest.raises(BenchError, match=r"interactions file \S*other/books/ratings\.csv not found") as e:
        (tmp_path / "other").mkdir()
        load_split("toy", tmp_path / "other")
    assert "relative to the data dir" in e.value.fix


def test_bad_dates_and_months_are_refused_when_the_suite_loads(tmp_path):
    write_csvs(tmp_path)
    for split, said in (("{dates: {valid: '2020-13-01', test: '2020-04-01'}}", "'2020-13-01' is not a date"),
                        ("{dates: {valid: '2020-04-01', test: '2020-03-01'}}", "comes after dates.test"),
                        ("{months: {origin: '2020-13', train: [0, 1], valid: [2, 2], test: [3, 3]}}", "origin")):
        path = write_suite(tmp_path, DECLARE.replace(
            "{months: {origin: '2020-01', train: [0, 1], valid: [2, 2], test: [3, 3]}}", split))
        with pytest.raises(BenchError, match=re.escape(said)):
            load_suite(str(path))


def test_item_ids_read_as_floats_still_find_their_titles(tmp_path):
    """A blank item cell makes pandas read the id column as floats (101.0): titles still match."""
    inter, items = write_csvs(tmp_path)
    df = pd.read_csv(inter)
    df = pd.concat([df, pd.DataFrame([{"uid": "u1", "iid": None, "stars": 5, "ts": T0 + 10}])])
    df.to_csv(inter, index=False)
    split = load_split(load_suite(str(write_suite(tmp_path))).datasets[0].source)
    titles = split.titles()
    assert titles and all(t.startswith("Book ") for t in titles.values())
    assert not any("have no title" in n for n in split.notes)


def test_a_dataset_file_path_may_start_with_home(tmp_path, monkeypatch):
    write_csvs(tmp_path)
    import textwrap

    (tmp_path / "toy.yaml").write_text(textwrap.dedent(DECLARE.split("declare:\n", 1)[1]))
    monkeypatch.setenv("HOME", str(tmp_path))
    elsewhere = tmp_path / "suites"
    elsewhere.mkdir()
    suite = write_suite(elsewhere, "\n    declare: ~/toy.yaml\n")
    assert load_split(load_suite(str(suite)).datasets[0].source).stats()["train"] > 0
