"""`bench tune`: Optuna studies over a suite's `tuned: true` runs, stored on disk and resumable,
selecting on valid AUC with the test labels out of reach; `bench run` then scores the chosen
configuration as an ordinary record that reproduces its trial and names its study."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import tuning
from bench.errors import BenchError
from bench.runner import plan, run_suite
from bench.suites import load_suite

pytest.importorskip("recbole")  # the CF baselines (the `cf` extra, which the test command installs)


def _suite(tmp_path: Path, trials: int = 3, extra: str = "", space: str = "{embedding_size: [8, 16], "
           "learning_rate: [1.0e-2, 1.0e-3], weight_decay: [0.0]}", seeds: str = "[0]") -> str:
    path = tmp_path / "tune.yaml"
    path.write_text(f"""
name: tune-test
seeds: {seeds}
datasets:
  ml100k: {{subset_users: 40}}
tuning: {{trials: {trials}, sampler: grid, pruner: none, spaces: {{mf: {space}}}}}
runs:
  - {{method: mf, variant: bce, overrides: {{epochs: 4, stopping_step: 2}}}}
  - {{method: mf, variant: bce, tuned: true, overrides: {{epochs: 4, stopping_step: 2}}}}
{extra}timing: {{warmup: 0, repeats: 0}}
""")
    return str(path)


class _Spy:
    """Wraps MF.fit / MF.score to see what a trial is handed."""

    def __init__(self, monkeypatch, fail_on: int | None = None) -> None:
        from baselines.mf import MF

        self.fits: list = []
        self.scored: list = []
        fit, score = MF.fit, MF.score

        def spy_fit(method, split):  # noqa: ANN001
            self.fits.append((split, method.config))
            if fail_on is not None and len(self.fits) == fail_on:
                raise KeyboardInterrupt  # the process is killed mid-trial
            return fit(method, split)

        def spy_score(method, rows):  # noqa: ANN001
            self.scored.append(rows)
            return score(method, rows)

        monkeypatch.setattr(MF, "fit", spy_fit)
        monkeypatch.setattr(MF, "score", spy_score)


def test_tune_then_run_reproduces_the_chosen_trial_without_touching_test(tmp_path, monkeypatch):
    path, results = _suite(tmp_path), tmp_path / "results"
    spy = _Spy(monkeypatch)
    (info,) = tuning.tune_suite(path, results_dir=results, device="cpu")
    assert (results / "tuning" / "tune-test.db").is_file()
    assert info["study"] == "ml100k/mf/bce+tuned" and info["budget"] == 3 and info["complete"] == 3
    assert len(spy.fits) == 3
    # every trial is handed the split with every test label masked, and scores valid rows only
    for split, _ in spy.fits:
        assert (split.test["label"] == 0).all() and split.valid["label"].nunique() == 2
    valid = spy.fits[0][0].valid
    assert len(spy.scored) == 3 and all(rows.equals(valid) for rows in spy.scored)  # never a test row
    # distinct grid points, each a config the space allows
    points = [(c.embedding_size, c.learning_rate) for _, c in spy.fits]
    assert len(set(points)) == 3 and all(c.weight_decay == 0.0 and c.epochs == 4 for _, c in spy.fits)
    best = max(info["trials"], key=lambda t: t["valid_auc"])
    assert info["params"] == best["params"] and info["best_valid_auc"] == best["valid_auc"]

    counts = run_suite(path, results_dir=results, device="cpu", progress=False)
    assert counts["done"] == 2 and counts["failed"] == 0
    rec = json.loads((results / "tune-test" / "ml100k__mf__bce+tuned__seed0.json").read_text())
    assert rec["tuned"]["study"] == info["study"] and rec["tuned"]["storage"] == "tuning/tune-test.db"
    assert {k: rec["config"][k] for k in info["params"]} == info["params"]
    # the chosen configuration trains exactly as its trial did: the same valid AUC
    assert rec["metrics"]["valid"]["auc"] == pytest.approx(info["best_valid_auc"], abs=1e-12)
    plain = json.loads((results / "tune-test" / "ml100k__mf__bce__seed0.json").read_text())
    assert plain["tuned"] is None and plain["config"]["embedding_size"] == 256

    # the report: budget, chosen values, default vs tuned columns, and the best-so-far figure
    from bench.report import render_all

    written = render_all(results, tmp_path / "reports")
    md = (tmp_path / "reports" / "results.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| ml100k") and "3 of 3" in line)
    chosen = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in info["params"].items())
    assert chosen in row and f"{rec['metrics']['test']['auc']:.4f}" in row
    assert f"{plain['metrics']['test']['auc']:.4f}" in row
    assert any(p.name == "tuning_ml100k.png" for p in written)


def test_the_chosen_run_restores_its_winning_trial_and_scores_as_a_retrain_does(tmp_path, monkeypatch):
    """The best trial keeps its trained state; the chosen run at the tuning seed restores it
    instead of training the same model again, and scores exactly as a fresh retrain does."""
    path, results = _suite(tmp_path, seeds="[0, 1]"), tmp_path / "results"
    (info,) = tuning.tune_suite(path, results_dir=results, device="cpu")
    spy = _Spy(monkeypatch)
    counts = run_suite(path, results_dir=results, methods=["mf:bce+tuned"], device="cpu", progress=False)
    assert counts["done"] == 2
    out = results / "tune-test"
    rec = json.loads((out / "ml100k__mf__bce+tuned__seed0.json").read_text())
    reused = rec["fit"]["reused_trial"]
    assert reused["study"] == info["study"] and reused["trial"] == info["best_trial"]
    best = next(t for t in info["trials"] if t["number"] == info["best_trial"])
    assert rec["timing"]["fit_wall_s"] <= best["seconds"] and rec["timing"]["train_s_from_trial"] == info["best_trial"]
    assert rec["artifacts"]["trained_state"] == reused["state"]
    assert rec["metrics"]["valid"]["auc"] == pytest.approx(info["best_valid_auc"], abs=1e-12)
    # seed 1 is no trial's: it trains
    other = json.loads((out / "ml100k__mf__bce+tuned__seed1.json").read_text())
    assert "reused_trial" not in other["fit"] and len(spy.fits) == 1

    # --force trains it again: every row scores exactly as the restored run scored it
    run_suite(path, results_dir=results, methods=["mf:bce+tuned"], seeds=[0], force=True, device="cpu",
              progress=False)
    again = json.loads((out / "ml100k__mf__bce+tuned__seed0.json").read_text())
    assert "reused_trial" not in again["fit"] and len(spy.fits) == 2
    assert again["metrics"] == rec["metrics"] and again["per_user_auc"] == rec["per_user_auc"]
    assert again["fit"]["best_epoch"] == rec["fit"]["best_epoch"]

    # a damaged kept state costs a retrain, never the run
    (Path(reused["state"]) / "model.pt").unlink()
    (out / "ml100k__mf__bce+tuned__seed0.json").unlink()
    assert run_suite(path, results_dir=results, methods=["mf:bce+tuned"], seeds=[0], device="cpu",
                     progress=False)["done"] == 1
    last = json.loads((out / "ml100k__mf__bce+tuned__seed0.json").read_text())
    assert "reused_trial" not in last["fit"] and len(spy.fits) == 3 and last["metrics"] == rec["metrics"]


def test_a_killed_tune_resumes_without_repeating_finished_trials(tmp_path, monkeypatch):
    path, results = _suite(tmp_path, trials=2), tmp_path / "results"
    spy = _Spy(monkeypatch)
    tuning.tune_suite(path, results_dir=results, device="cpu")
    first = [c for _, c in spy.fits]
    assert len(first) == 2

    monkeypatch.undo()
    path = _suite(tmp_path, trials=4)  # a bigger budget, then the process is killed in its 2nd trial
    spy = _Spy(monkeypatch, fail_on=2)
    with pytest.raises(KeyboardInterrupt):
        tuning.tune_suite(path, results_dir=results, device="cpu")
    assert len(spy.fits) == 2

    monkeypatch.undo()
    spy = _Spy(monkeypatch)
    (info,) = tuning.tune_suite(path, results_dir=results, device="cpu")
    assert len(spy.fits) == 1  # 3 trials were spent before the kill: one is left
    assert info["complete"] == 4
    done_before = {(c.embedding_size, c.learning_rate) for c in first}
    assert (spy.fits[0][1].embedding_size, spy.fits[0][1].learning_rate) not in done_before
    monkeypatch.undo()
    spy = _Spy(monkeypatch)
    tuning.tune_suite(path, results_dir=results, device="cpu")
    assert spy.fits == []  # the budget is spent: nothing runs again


def test_a_tuned_run_without_its_study_says_to_tune_first(tmp_path):
    path = _suite(tmp_path)
    suite = load_suite(path)
    with pytest.raises(BenchError) as e:
        plan(suite, results_dir=tmp_path / "results")
    assert "bench tune --suite" in e.value.fix and "ml100k/mf/bce+tuned" in e.value.problem
    # `bench run` runs the rest of the suite and counts the tuned run as waiting for its study
    counts = run_suite(path, results_dir=tmp_path / "results", device="cpu", progress=False)
    assert counts["done"] == 1 and counts["untuned"] == 1
    assert [p.name for p in (tmp_path / "results" / "tune-test").glob("*.json")] == ["ml100k__mf__bce__seed0.json"]


def test_search_spaces_are_checked_against_the_config(tmp_path):
    path = _suite(tmp_path, space="{embedding_sise: [8]}")
    with pytest.raises(BenchError, match="embedding_sise"):
        tuning.tune_suite(path, results_dir=tmp_path / "results", device="cpu")
    path = _suite(tmp_path, space="{learning_rate: [-1.0]}")
    with pytest.raises(BenchError, match="learning_rate"):
        tuning.tune_suite(path, results_dir=tmp_path / "results", device="cpu")
    path = _suite(tmp_path, space="{learning_rate: []}")
    with pytest.raises(BenchError, match="non-empty list"):
        tuning.tune_suite(path, results_dir=tmp_path / "results", device="cpu")
    # the published grids are declared next to each method's config
    from baselines.lightgcn import LightGCN
    from baselines.ngcf import NGCF

    assert NGCF.search_space["learning_rate"] == [1e-1, 1e-2, 1e-3, 1e-4]
    assert LightGCN.search_space["n_layers"] == [1, 2, 3] and NGCF.search_space["node_dropout"] == [0.0, 0.1, 0.3]


def test_published_per_dataset_settings_never_replace_a_searched_value():
    from baselines.lightgcn import LightGCNConfig
    from bench.config import on_dataset

    cfg = tuning.with_params(LightGCNConfig(), {"learning_rate": 0.1, "n_layers": 3})
    book = on_dataset(cfg, "amazon-book")
    assert book.learning_rate == 0.1 and book.n_layers == 3 and book.embedding_size == 256  # the rest still applies


def test_the_pruner_hook_stops_a_fit_after_the_epoch_it_saw(ml100k, tmp_path):
    from baselines.mf import MF, MFConfig
    from bench.data import subset
    from bench.method import RunContext

    seen: list[tuple[int, float]] = []

    class Stop(Exception):
        pass

    def on_eval(step: int, value: float) -> None:
        seen.append((step, value))
        if step == 1:
            raise Stop

    ctx = RunContext(dataset="ml100k", seed=0, device="cpu", work_dir=tmp_path, artifact_dir=tmp_path / "a",
                     split_fingerprint="x", progress=False, on_eval=on_eval)
    with pytest.raises(Stop):
        MF(MFConfig(embedding_size=8, epochs=6, stopping_step=6), ctx).fit(subset(ml100k, 30, 0))
    assert [s for s, _ in seen] == [0, 1] and all(0.0 <= v <= 1.0 for _, v in seen)

    ctx.on_eval = None  # a plain fit logs the valid (and when asked, train) AUC of every epoch
    info = MF(MFConfig(embedding_size=8, epochs=3, stopping_step=3, log_train_auc=True), ctx).fit(subset(ml100k, 30, 0))
    assert [p["epoch"] for p in info["curve"]] == [0, 1, 2]
    assert all(0.0 <= p["train_auc"] <= 1.0 for p in info["curve"])


def test_parallel_tuners_on_ray_share_one_study(tmp_path):
    ray = pytest.importorskip("ray")
    path, results = _suite(tmp_path, trials=4), tmp_path / "results"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        (info,) = tuning.tune_suite(path, results_dir=results, device="cpu", executor="ray", workers=2)
    finally:
        ray.shutdown()
    # two tuners, one study: the budget is spent once between them (a trial that both started in
    # the same instant may add one), and each point of the 4-point grid is tried
    spent = info["complete"] + info["pruned"]
    assert 4 <= spent <= 5
    assert {(t["params"]["embedding_size"], t["params"]["learning_rate"]) for t in info["trials"]} == \
        {(8, 1e-2), (8, 1e-3), (16, 1e-2), (16, 1e-3)}
    # the chosen configuration still reproduces its trial in `bench run`
    run_suite(path, results_dir=results, device="cpu", progress=False, methods=["mf:bce+tuned"])
    rec = json.loads((results / "tune-test" / "ml100k__mf__bce+tuned__seed0.json").read_text())
    assert rec["metrics"]["valid"]["auc"] == pytest.approx(info["best_valid_auc"], abs=1e-12)


def test_a_method_may_prune_harder_but_keeps_the_suites_budget(tmp_path, monkeypatch):
    """``tuning.methods`` gives one method its own pruner (SASRec's d = 256 trials cost 15x the
    others'); its budget and sampler stay the suite's. A trial exports no artifacts (nothing reads them)."""
    import optuna

    from baselines.mf import MF

    path = _suite(tmp_path, trials=2)
    text = Path(path).read_text().replace("pruner: none,", "pruner: none, methods: {mf: {pruner: halving, warmup_evals: 1}},")
    Path(path).write_text(text)
    suite = load_suite(path)
    assert suite.tuning.for_method("mf").pruner == "halving" and suite.tuning.for_method("mf").trials == 2
    assert suite.tuning.for_method("lightgcn").pruner == "none"
    assert isinstance(tuning._pruner(suite.tuning.for_method("mf")), optuna.pruners.SuccessiveHalvingPruner)

    exported: list[bool] = []
    fit = MF.fit
    monkeypatch.setattr(MF, "fit", lambda m, split: exported.append(m.ctx.export_artifacts) or fit(m, split))
    (info,) = tuning.tune_suite(path, results_dir=tmp_path / "results", device="cpu")
    assert info["pruner"] == "halving" and info["budget"] == 2 and exported == [False, False]

    Path(path).write_text(text.replace("methods: {mf:", "methods: {nope:"))
    with pytest.raises(BenchError, match="nope"):
        load_suite(path)


def test_a_repeated_configuration_is_not_trained_again_nor_spends_budget(tmp_path, monkeypatch):
    """TPE redraws configurations in a small space (and two parallel tuners' seeded samplers draw
    the same first ones): a repeat fails without training and spends nothing, and a space with no
    untried configuration left stops the search instead of looping."""
    path = _suite(tmp_path, trials=3, space="{embedding_size: [8, 16], learning_rate: [1.0e-2], weight_decay: [0.0]}")
    Path(path).write_text(Path(path).read_text().replace("sampler: grid", "sampler: tpe"))
    spy = _Spy(monkeypatch)
    (info,) = tuning.tune_suite(path, results_dir=tmp_path / "results", device="cpu")
    assert len(spy.fits) == 2 and {c.embedding_size for _, c in spy.fits} == {8, 16}  # each config once
    assert info["complete"] == 2 and len(info["trials"]) == 2  # repeats are not listed as spent trials
    study = tuning.open_study(tmp_path / "results", load_suite(path), "ml100k", load_suite(path).runs[1], create=False)
    repeats = [t for t in study.get_trials() if "repeat_of" in t.user_attrs]
    assert 1 <= len(repeats) < tuning.MAX_REPEATS and all(t.state.name == "FAIL" for t in repeats)


def test_the_budget_is_spent_on_distinct_configurations_though_the_sampler_keeps_redrawing(tmp_path, monkeypatch):
    """After a repeat the next trial takes a seeded random untried configuration: TPE's habit of
    redrawing its favourite in a small space never ends a search short of its budget."""
    space = "{embedding_size: [8, 16], learning_rate: [1.0e-2, 1.0e-3, 1.0e-4], weight_decay: [0.0]}"
    path = _suite(tmp_path, trials=6, space=space)
    Path(path).write_text(Path(path).read_text().replace("sampler: grid", "sampler: tpe"))
    monkeypatch.setattr(tuning, "MAX_REPEATS", 2)  # redraws alone would end it at the second repeat in a row
    spy = _Spy(monkeypatch)
    (info,) = tuning.tune_suite(path, results_dir=tmp_path / "results", device="cpu")
    points = {(c.embedding_size, c.learning_rate) for _, c in spy.fits}
    assert len(spy.fits) == 6 and len(points) == 6  # the whole space, each point once
    assert info["complete"] == 6 and len(info["trials"]) == 6


def test_another_suite_takes_a_tuned_configuration_with_its_own_seeds(tmp_path):
    """`tuned: SUITE`: a suite (e.g. `main`, 3 seeds) runs the configuration another suite's
    study chose (e.g. `cf-tuned`'s), trained from that entry's config, with its own seeds."""
    path, results = _suite(tmp_path, trials=2), tmp_path / "results"
    (info,) = tuning.tune_suite(path, results_dir=results, device="cpu")
    other = tmp_path / "main.yaml"
    other.write_text(f"""
name: main-test
seeds: [0, 1]
datasets:
  ml100k: {{subset_users: 40}}
runs:
  - {{method: mf, variant: bce, tuned: {path}}}
timing: {{warmup: 0, repeats: 0}}
""")
    runs = plan(load_suite(str(other)), results_dir=results)
    assert [r.key.stem for r in runs] == ["ml100k__mf__bce+tuned__seed0", "ml100k__mf__bce+tuned__seed1"]
    for r in runs:  # the chosen values over the source entry's config (epochs 4, patience 2)
        assert {k: getattr(r.config, k) for k in info["params"]} == info["params"]
        assert (r.config.epochs, r.config.stopping_step) == (4, 2)
        assert r.tuned["storage"] == "tuning/tune-test.db" and r.tuned["study"] == info["study"]
    other.write_text(other.read_text().replace(f"tuned: {path}", "tuned: no-such-suite"))
    with pytest.raises(BenchError, match="no-such-suite"):
        load_suite(str(other))
    other.write_text(other.read_text().replace("tuned: no-such-suite", f"tuned: {path}").replace("variant: bce", "variant: recbole"))
    with pytest.raises(BenchError, match="tunes no such entry"):
        plan(load_suite(str(other)), results_dir=results)
