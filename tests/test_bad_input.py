"""Bad input gets one clear error (a BenchError naming the problem and the fix), raised before
any work starts: no record written, no temp dir left behind, never a traceback."""
from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from bench.cli import main
from bench.config import build_config
from bench.errors import BenchError, did_you_mean
from bench.report.layout import DEFAULT_LAYOUT, load_layout
from bench.suites import DatasetSpec, RunSpec, Suite, load_suite, suite_names

REPO = Path(__file__).resolve().parent.parent
GOOD_DATASETS = "datasets: {ml100k: {subset_users: 12, max_eval_rows: 24}}\n"
GOOD_RUNS = "runs: [{method: mf, variant: bce, overrides: {epochs: 1, stopping_step: 1, embedding_size: 8}}]\n"
GOOD_SUITE = "seeds: [0]\n" + GOOD_DATASETS + GOOD_RUNS


def _suite(tmp_path: Path, text: str | bytes, name: str = "bad") -> str:
    path = tmp_path / f"{name}.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return str(path)


# --- suite files ------------------------------------------------------------------------------

BAD_SUITES = {
    "datasets_list": ("datasets: [ml100k]\n" + GOOD_RUNS,
                      r"suite bad: datasets must be a mapping of dataset name to options, got \['ml100k'\]"),
    "datasets_string": ("datasets: ml100k\n" + GOOD_RUNS,
                        r"suite bad: datasets must be a mapping of dataset name to options, got 'ml100k'"),
    "dataset_options_list": ("datasets: {ml100k: [1]}\n" + GOOD_RUNS,
                             r"suite bad: datasets\.ml100k must be a mapping, got \[1\]"),
    "overrides_list": (GOOD_DATASETS + "runs: [{method: mf, overrides: [epochs, 3]}]\n",
                       r"suite bad: runs\[0\]\.overrides must be a mapping of config key to value, got \['epochs', 3\]"),
    "overrides_string": (GOOD_DATASETS + "runs: [{method: mf, overrides: epochs=3}]\n",
                         r"suite bad: runs\[0\]\.overrides must be a mapping of config key to value, got 'epochs=3'"),
    "runs_mapping": (GOOD_DATASETS + "runs: {method: mf}\n",
                     r"suite bad: runs must be a list of runs, got \{'method': 'mf'\}"),
    "runs_string": (GOOD_DATASETS + "runs: mf\n", r"suite bad: runs must be a list of runs, got 'mf'"),
    "run_string": (GOOD_DATASETS + "runs: [mf]\n", r"suite bad: runs\[0\] must be a mapping, got 'mf'"),
    "run_datasets_string": (GOOD_DATASETS + "runs: [{method: mf, datasets: ml100k}]\n",
                            r"suite bad: runs\[0\]\.datasets must be a list of the suite's dataset names"),
    "run_datasets_unknown": (GOOD_DATASETS + "runs: [{method: mf, datasets: [ml100j]}]\n",
                             r"(?s)suite bad: runs\[0\]\.datasets names 'ml100j'.*did you mean 'ml100k'"),
    "subset_seed_word": ("datasets: {ml100k: {subset_seed: abc}}\n" + GOOD_RUNS,
                         r"suite bad: datasets\.ml100k\.subset_seed must be an int from 0 to 4294967295, got 'abc'"),
    "subset_seed_float": ("datasets: {ml100k: {subset_seed: 1.5}}\n" + GOOD_RUNS,
                          r"suite bad: datasets\.ml100k\.subset_seed must be an int from 0 to 4294967295, got 1\.5"),
    "few_shot_seed_negative": ("datasets: {ml100k: {few_shot: 4, few_shot_seed: -1}}\n" + GOOD_RUNS,
                               r"few_shot_seed must be an int from 0 to 4294967295, got -1"),
    "optional_word": ("datasets: {ml100k: {optional: 'no'}}\n" + GOOD_RUNS,
                      r"suite bad: datasets\.ml100k\.optional must be true or false, got 'no'"),
    "optional_int": ("datasets: {ml100k: {optional: 1}}\n" + GOOD_RUNS,
                     r"datasets\.ml100k\.optional must be true or false, got 1"),
    "seeds_bool": ("seeds: [0, true]\n" + GOOD_DATASETS + GOOD_RUNS,
                   r"suite bad: seeds must be a non-empty list of ints from 0 to 4294967295, got \[0, True\]"),
    "seeds_negative": ("seeds: [-1]\n" + GOOD_DATASETS + GOOD_RUNS,
                       r"suite bad: seeds must be a non-empty list of ints from 0 to 4294967295, got \[-1\]"),
    "seeds_huge": ("seeds: [12345678901234567890]\n" + GOOD_DATASETS + GOOD_RUNS,
                   r"seeds must be a non-empty list of ints from 0 to 4294967295"),
    "seeds_empty": ("seeds: []\n" + GOOD_DATASETS + GOOD_RUNS,
                    r"seeds must be a non-empty list of ints from 0 to 4294967295, got \[\]"),
    "seeds_scalar": ("seeds: 0\n" + GOOD_DATASETS + GOOD_RUNS,
                     r"seeds must be a non-empty list of ints from 0 to 4294967295, got 0"),
    "variant_int": (GOOD_DATASETS + "runs: [{method: mf, variant: 3}]\n",
                    r"suite bad: runs\[0\]\.variant must be a variant name \(a string\), got 3"),
    "variant_list": (GOOD_DATASETS + "runs: [{method: mf, variant: [bce]}]\n",
                     r"suite bad: runs\[0\]\.variant must be a variant name \(a string\), got \['bce'\]"),
    "method_missing": (GOOD_DATASETS + "runs: [{variant: bce}]\n", r"suite bad: runs\[0\]\.method is missing"),
    "method_int": (GOOD_DATASETS + "runs: [{method: 3}]\n", r"runs\[0\]\.method must be a method name"),
    "budget_bool": (GOOD_DATASETS + "runs: [{method: mf, budget: true}]\n",
                    r"runs\[0\]\.budget must be a method name or a positive int, got True"),
    "timing_negative": (GOOD_SUITE + "timing: {warmup: -1}\n", r"suite bad: timing\.warmup must be an int >= 0, got -1"),
    "timing_bool": (GOOD_SUITE + "timing: {repeats: true}\n", r"timing\.repeats must be an int >= 0, got True"),
    "top_level_list": ("- a\n- b\n", r"suite bad must be a mapping .*got \['a', 'b'\]"),
    "empty_file": ("", r"suite bad must be a mapping"),
    "unknown_run_key": (GOOD_DATASETS + "runs: [{method: mf, overide: {}}]\n",
                        r"(?s)suite bad: runs\[0\]: unknown key 'overide'.*did you mean 'overrides'"),
    "dataset_name_int": ("datasets: {1: {}}\n" + GOOD_RUNS, r"suite bad: datasets: the name 1 must be a string"),
}


@pytest.mark.parametrize("case", sorted(BAD_SUITES))
def test_bad_suite_is_one_bench_error(tmp_path, case):
    text, message = BAD_SUITES[case]
    with pytest.raises(BenchError, match=message) as info:
        load_suite(_suite(tmp_path, text))
    assert info.value.fix  # every error says what to do


def test_binary_suite_file(tmp_path):
    with pytest.raises(BenchError, match=r"suite .*bad\.yaml is not UTF-8 text \(byte 0xff at offset 0\)") as info:
        load_suite(_suite(tmp_path, b"\xff\xfe\x00"))
    assert "YAML" in info.value.fix
    # a NUL byte inside valid UTF-8 is a YAML error, also one clear line
    with pytest.raises(BenchError, match="not valid YAML"):
        load_suite(_suite(tmp_path, b"seeds: [0]\x00\n"))


def test_suite_path_that_is_a_folder(tmp_path):
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(BenchError, match="cannot be read"):
        load_suite(str(tmp_path / "dir.yaml"))


def test_existing_suite_messages_are_kept(tmp_path):
    with pytest.raises(BenchError, match="(?s)unknown key 'runz'.*did you mean 'runs'"):
        load_suite(_suite(tmp_path, "datasets: {ml100k: {}}\nrunz: []\n"))
    with pytest.raises(BenchError, match="(?s)datasets.ml100k: unknown key 'subset_user'.*did you mean 'subset_users'"):
        load_suite(_suite(tmp_path, "datasets: {ml100k: {subset_user: 3}}\nruns: []\n"))
    with pytest.raises(BenchError, match="top_items must be a positive int, got 0") as info:
        load_suite(_suite(tmp_path, "datasets: {ml1m: {top_items: 0}}\nruns: []\n"))
    assert info.value.fix == "e.g. top_items: 100, or leave it out"
    with pytest.raises(BenchError, match="names no datasets"):
        load_suite(_suite(tmp_path, "runs: []\n"))


def test_good_suite_loads_into_the_public_dataclasses(tmp_path):
    suite = load_suite(_suite(tmp_path, textwrap.dedent("""
        description: d
        seeds: [0, 4294967295]
        datasets:
          ml100k: {subset_users: 12, subset_seed: 3, max_eval_rows: 24, optional: false}
          ml100k-4shot: {dataset: ml100k, few_shot: 4, few_shot_seed: 2, optional: true}
          plain:
        runs:
          - {method: mf, variant: bce, overrides: {epochs: 1}, datasets: [ml100k]}
          - {method: cora-mf, budget: graphlora}
          - {method: cora-mf, budget: 1000, overrides: }
        timing: {warmup: 0, repeats: 0}
        """), name="good"))
    assert suite == Suite(
        "good", "d", (0, 4294967295),
        (DatasetSpec("ml100k", 12, 3, 24, False), DatasetSpec("ml100k-4shot", None, 0, None, True, "ml100k", 4, 2),
         DatasetSpec("plain")),
        (RunSpec("mf", "bce", {"epochs": 1}, ("ml100k",)), RunSpec("cora-mf", None, {}, None, "graphlora"),
         RunSpec("cora-mf", None, {}, None, 1000)),
        (0, 0), str((tmp_path / "good.yaml").resolve()))


def test_every_shipped_suite_still_loads():
    names = suite_names()
    assert {"ci", "main", "smoke"} <= set(names)
    for name in names:
        suite = load_suite(name)
        assert suite.runs and suite.datasets and suite.seeds
        assert all(isinstance(d.optional, bool) for d in suite.datasets)
        assert all(isinstance(r.overrides, dict) for r in suite.runs)
    ci = load_suite("ci")
    assert ci.runs[0] == RunSpec("mf", "bce", {"epochs": 10, "stopping_step": 3})
    assert ci.datasets == (DatasetSpec("ml1m", 60, 0, 200),)


# --- method configs ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Cfg:
    epochs: int = 1
    lr: float = 0.1
    flag: bool = False
    name: str = "x"
    dims: tuple[int, ...] = (1,)
    limit: int | None = None


def test_config_rejects_bool_for_numbers():
    with pytest.raises(BenchError, match=r"_Cfg\.epochs = True is not a valid int \(true/false is not a number\)"):
        build_config(_Cfg, {"epochs": True})
    with pytest.raises(BenchError, match=r"_Cfg\.lr = False is not a valid float"):
        build_config(_Cfg, {"lr": False})
    with pytest.raises(BenchError, match=r"_Cfg\.limit = True is not a valid int"):
        build_config(_Cfg, {"limit": True})
    with pytest.raises(BenchError, match=r"_Cfg\.dims = True is not a valid int"):
        build_config(_Cfg, {"dims": [1, True]})


@pytest.mark.parametrize("value", ["yes", "no", "1", "0", 1, 0, 2.5, "maybe"])
def test_config_bool_takes_only_true_or_false(value):
    with pytest.raises(BenchError, match=rf"_Cfg\.flag = {value!r} is not a valid bool") as info:
        build_config(_Cfg, {"flag": value})
    assert info.value.fix == "set flag to true or false"


def test_config_bool_accepts_bools_and_their_words():
    assert build_config(_Cfg, {"flag": True}).flag is True
    assert build_config(_Cfg, {"flag": "false"}).flag is False
    assert build_config(_Cfg, {"flag": "True"}).flag is True


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, "inf", "nan", "-Infinity"])
def test_config_rejects_non_finite_floats(value):
    with pytest.raises(BenchError, match=r"_Cfg\.lr = .* is not a finite number") as info:
        build_config(_Cfg, {"lr": value})
    assert info.value.fix == "set lr to a finite number (not inf or nan)"


def test_config_keeps_its_other_rules():
    with pytest.raises(BenchError, match=r"_Cfg\.epochs = 1\.5 is not a valid int"):
        build_config(_Cfg, {"epochs": 1.5})
    with pytest.raises(BenchError, match=r"_Cfg\.name = \['a'\] is not a valid str"):
        build_config(_Cfg, {"name": ["a"]})
    cfg = build_config(_Cfg, {"epochs": 3.0, "lr": "1e-4", "dims": "2, 3", "name": "y", "limit": None})
    assert (cfg.epochs, cfg.lr, cfg.dims, cfg.name, cfg.limit) == (3, 1e-4, (2, 3), "y", None)
    assert isinstance(cfg.epochs, int)


def test_suite_override_with_a_bool_epochs_stops_the_cli(tmp_path, capsys):
    suite = _suite(tmp_path, GOOD_DATASETS + "runs: [{method: mf, variant: bce, overrides: {epochs: true}}]\n")
    rc, err = _cli(capsys, tmp_path, "--suite", suite)
    assert rc == 2 and "MFConfig.epochs = True is not a valid int" in err


# --- the CLI ----------------------------------------------------------------------------------

def _cli(capsys, tmp_path, *argv: str) -> tuple[int, str]:
    results = tmp_path / "results"
    rc = main(["run", *argv, "--results-dir", str(results), "--no-progress"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if rc == 2:
        assert err.startswith("error: ") and "\n  fix: " in err, err
        assert not results.exists() or not any(results.rglob("*")), sorted(results.rglob("*"))  # no work started
    return rc, err


@pytest.mark.parametrize("seeds, message", [
    ("-1", "--seeds: -1 is not a seed (seeds are ints from 0 to 4294967295)"),
    ("0,-3", "--seeds: -3 is not a seed (seeds are ints from 0 to 4294967295)"),
    ("12345678901234567890", "--seeds: 12345678901234567890 is not a seed (seeds are ints from 0 to 4294967295)"),
    ("4294967296", "--seeds: 4294967296 is not a seed"),
    ("", "--seeds '' names no seeds"),
    (" , ", "--seeds ' , ' names no seeds"),
    ("1.5", "--seeds: '1.5' is not an int"),
    ("a,b", "--seeds: 'a' is not an int"),
])
def test_cli_bad_seeds(tmp_path, capsys, seeds, message):
    rc, err = _cli(capsys, tmp_path, "--suite", _suite(tmp_path, GOOD_SUITE), f"--seeds={seeds}")
    assert rc == 2 and message in err, err
    assert "e.g. --seeds 0,1,2" in err


def test_cli_wrong_case_method_and_dataset_get_a_hint(tmp_path, capsys):
    rc, err = _cli(capsys, tmp_path, "--suite", _suite(tmp_path, GOOD_SUITE), "--methods", "MF")
    assert rc == 2 and "unknown method 'MF'" in err and "did you mean 'mf'" in err, err
    rc, err = _cli(capsys, tmp_path, "--suite", _suite(tmp_path, GOOD_SUITE), "--datasets", "ML100K")
    assert rc == 2 and "did you mean 'ml100k'" in err, err


def test_did_you_mean_ignores_case():
    assert did_you_mean("MF", ["mf", "ngcf", "lightgcn"]).startswith("did you mean 'mf'?")
    assert did_you_mean("LightGCN", ["mf", "lightgcn"]).startswith("did you mean 'lightgcn'?")
    assert did_you_mean("lightgnc", ["mf", "lightgcn"]).startswith("did you mean 'lightgcn'?")
    assert did_you_mean("zzz", ["mf"]) == "known: mf"


def test_key_values_with_bad_yaml_is_one_error(tmp_path, capsys):
    from bench.commands.args import key_values

    with pytest.raises(BenchError, match=r"--set 'epochs=\[1,': the value '\[1,' is not valid YAML") as info:
        key_values(["epochs=[1,"])
    assert "quote" in info.value.fix
    assert key_values(["epochs=3", "lr=0.001", "name=x=y"]) == {"epochs": 3, "lr": 0.001, "name": "x=y"}
    rc = main(["overhead", "--methods", "mf", "--set", "epochs=[1,", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "is not valid YAML" in err and "Traceback" not in err


# --- devices ----------------------------------------------------------------------------------

@pytest.mark.parametrize("device", ["gpu", "cuda:x", "cuda:-1", "CPU ", "", "mps", "cuda:0:1"])
def test_resolve_device_rejects_unknown_names(device):
    from bench.runner import resolve_device

    with pytest.raises(BenchError, match=rf"--device {device!r} is not a device") as info:
        resolve_device(device)
    assert info.value.fix == "use auto, cpu, cuda or cuda:N (N: a visible CUDA device index)"


def _no_cuda(monkeypatch) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


def test_resolve_device_checks_cuda(monkeypatch):
    from bench.runner import resolve_device

    torch = pytest.importorskip("torch")
    _no_cuda(monkeypatch)
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"
    for device in ("cuda", "cuda:0"):
        with pytest.raises(BenchError) as info:
            resolve_device(device)
        assert info.value.problem == f"--device {device}: no CUDA device is visible (torch.cuda.is_available() is False)"
        assert info.value.fix == "use --device cpu or auto"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda") == "cuda" and resolve_device("cuda:1") == "cuda:1"
    assert resolve_device("auto") == "cuda"
    with pytest.raises(BenchError) as info:
        resolve_device("cuda:2")
    assert info.value.problem == "--device cuda:2: only 2 CUDA devices are visible (cuda:0 to cuda:1)"
    assert info.value.fix == "use --device cuda:0 to cuda:1, cuda, cpu or auto"


@pytest.mark.parametrize("device, message", [
    ("gpu", "--device 'gpu' is not a device"),
    ("cuda", "--device cuda: no CUDA device is visible (torch.cuda.is_available() is False)"),
])
def test_cli_bad_device_starts_no_work(tmp_path, capsys, monkeypatch, device, message):
    _no_cuda(monkeypatch)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    rc, err = _cli(capsys, tmp_path, "--suite", _suite(tmp_path, GOOD_SUITE), "--device", device)
    assert rc == 2 and message in err, err
    assert not any(scratch.iterdir()), sorted(scratch.iterdir())  # no temp dir leaked


def test_cli_ray_executor_checks_the_device_name_too(tmp_path, capsys):
    rc, err = _cli(capsys, tmp_path, "--suite", _suite(tmp_path, GOOD_SUITE), "--device", "gpu", "--executor", "ray")
    assert rc == 2 and "--device 'gpu' is not a device" in err, err


# --- a core-only install (no torch) -----------------------------------------------------------

def test_missing_torch_names_the_extra_before_any_work(tmp_path):
    suite = _suite(tmp_path, GOOD_SUITE)
    results = tmp_path / "results"
    code = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # as on a core-only install: `import torch` raises ImportError
        from bench import distributed
        assert distributed.is_main() and distributed.world_size() == 1 and distributed.rank() == 0
        distributed.barrier(); distributed.teardown()
        assert distributed.broadcast(3) == 3 and distributed.mean_scalar(2.0) == 2.0
        from bench.cli import main
        sys.exit(main(["run", "--suite", {suite!r}, "--methods", "mf", "--results-dir", {str(results)!r},
                       "--no-progress"]))
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "error: method 'mf' needs torch, which is not installed" in out.stderr, out.stderr
    assert "fix: pip install -c constraints.txt -e '.[cf]'" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert not results.exists() or not any(results.rglob("*"))


def test_missing_packages_name_the_right_extra(monkeypatch):
    from bench.registry import check_installed

    check_installed("mf")  # all there in the dev venv
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(BenchError) as info:
        check_installed("mf")
    assert info.value.problem == "method 'mf' needs torch, which is not installed"
    assert info.value.fix == "pip install -c constraints.txt -e '.[cf]'"
    with pytest.raises(BenchError) as info:
        check_installed("tallrec")
    assert info.value.problem == "method 'tallrec' needs torch, which is not installed"
    assert info.value.fix == "pip install -c constraints.txt -e '.[llm]'"
    monkeypatch.setitem(sys.modules, "recbole", None)
    with pytest.raises(BenchError, match="method 'sasrec' needs recbole, torch, which are not installed"):
        check_installed("sasrec")


def test_llm_method_does_not_need_recbole(monkeypatch):
    """On a GPU machine without RecBole an LLM method reads the CF runs' cached embeddings."""
    from bench.registry import check_installed

    monkeypatch.setitem(sys.modules, "recbole", None)
    check_installed("collm-mf")
    with pytest.raises(BenchError, match="method 'mf' needs recbole"):
        check_installed("mf")


# --- report layout ----------------------------------------------------------------------------

ROW = "{label: MF, method: mf}"
BAD_LAYOUTS = {
    "top_level": (f"tabel3: {{groups: [{{name: A, rows: [{ROW}]}}]}}\n",
                  r"(?s)layout bad\.yaml: unknown key 'tabel3'.*did you mean 'table3'"),
    "table3": (f"table3: {{group: [{{name: A, rows: [{ROW}]}}]}}\n",
               r"(?s)layout bad\.yaml: table3: unknown key 'group'.*did you mean 'groups'"),
    "table4": (f"table4: {{row: [{ROW}]}}\n", r"(?s)table4: unknown key 'row'.*did you mean 'rows'"),
    "table5_section": (f"table5: {{sections: [{{name: A, row: [{ROW}]}}]}}\n",
                       r"(?s)layout bad\.yaml: table5\.sections\[0\]: unknown key 'row'.*did you mean 'rows'"),
    "table6": (f"table6: {{baseline: {ROW}, section: []}}\n", r"(?s)table6: unknown key 'section'.*did you mean 'sections'"),
    "table7_row": ("table7: {rows: [{label: MF, method: mf, varient: bce}]}\n",
                   r"(?s)layout bad\.yaml: table7\.rows\[0\]: unknown key 'varient'.*did you mean 'variant'"),
    "fig4": ("fig4: {method: graphlora, pattern: x}\n", r"(?s)fig4: unknown key 'pattern'.*did you mean 'variant_pattern'"),
    "fig4_regex": ("fig4: {method: graphlora, variant_pattern: 'layer-('}\n",
                   r"fig4\.variant_pattern must be a regular expression"),
    "variant_int": ("table4: {rows: [{label: MF, method: mf, variant: 3}]}\n",
                    r"layout bad\.yaml: table4\.rows\[0\]\.variant must be a variant name or a list of them, got 3"),
    "variant_mixed_list": ("table4: {rows: [{label: MF, method: mf, variant: [bce, 1]}]}\n",
                           r"table4\.rows\[0\]\.variant must be a variant name or a list of them, got \['bce', 1\]"),
    "variant_mapping": ("table4: {rows: [{label: MF, method: mf, variant: {a: 1}}]}\n",
                        r"variant must be a variant name or a list of them, got \{'a': 1\}"),
    "variant_empty_list": ("table4: {rows: [{label: MF, method: mf, variant: []}]}\n",
                           r"variant must be a variant name or a list of them, got \[\]"),
    "rows_mapping": (f"table7: {{rows: {ROW}}}\n", r"table7\.rows must be a list of rows"),
    "sections_string": ("table5: {sections: A}\n", r"table5\.sections must be a list"),
    "table_list": ("table3: []\n", r"layout bad\.yaml: table3 must be a mapping"),
    "top_level_list": ("- a\n", r"layout bad\.yaml must be a mapping"),
    "missing_label": ("table4:\n  rows:\n    - {method: graphlora}\n", r"table4\.rows\[0\]: a row needs `label` and `method`"),
}


@pytest.mark.parametrize("case", sorted(BAD_LAYOUTS))
def test_bad_layout_is_one_bench_error(tmp_path, case):
    text, message = BAD_LAYOUTS[case]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(BenchError, match=message) as info:
        load_layout(path)
    assert info.value.fix


def test_binary_layout_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(BenchError, match="is not UTF-8 text"):
        load_layout(path)


def test_shipped_layout_still_loads():
    layout = load_layout(DEFAULT_LAYOUT)
    assert [s.name for s in layout.table3][0] == "Collaborative filtering"
    collm = next(r for r in layout.table3[2].rows if r.method == "collm-mf")
    assert collm.variants == ("two-stage", "one-stage")
    assert layout.table3[1].rows[0].variants == ("default",)
    assert layout.table4_metrics == ("auc", "uauc", "ndcg@10")
    assert layout.table6_baseline is not None and layout.table6_baseline.variants == ("lora-trainable-mf",)
    assert layout.fig4_method == "graphlora" and layout.layer_of("graphlora", "layer-7") == 7
    assert load_layout(DEFAULT_LAYOUT) == layout


@pytest.mark.parametrize("flag", ["--methods", "--datasets"])
def test_cli_empty_filter_is_an_error_not_everything(tmp_path, capsys, flag):
    rc, err = _cli(capsys, tmp_path, "--suite", _suite(tmp_path, GOOD_SUITE), f"{flag}=,")
    assert rc == 2 and f"{flag} names nothing" in err, err
