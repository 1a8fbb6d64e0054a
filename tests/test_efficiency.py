"""`bench efficiency`: every LLM method measured in one process on random weights and random CF
tables (no CF run, no RecBole), as ratios to LoRA-only with trainable MF; `bench report` renders it."""
import json

from bench.cli import main
from bench.efficiency import entries


def test_entries_start_with_the_baseline_and_cover_every_llm_method():
    e = entries()
    assert e[0] == ("graphlora", "lora-trainable-mf")
    assert ("graphlora", "pre") in e and ("graphlora", "pre-hidden") in e and ("graphlora", "default") in e
    assert ("cora-mf", "default") in e
    from bench.method import Countable, Method, supports
    from bench.registry import get_method, method_table

    # the LLM methods: every registered method that declares it is built and counted without
    # training (bench.method.Countable); asked of the registry, never listed by hand
    llm = {n for n in method_table() if supports(get_method(n), Countable)}
    timed = {n for n in method_table() if get_method(n).step_timings is not Method.step_timings}
    assert timed and timed <= llm  # only LLM methods have a timed step (ICL, training nothing, has none)
    assert llm != set(method_table())  # the CF methods declare no count
    assert {m for m, _ in e} == timed
    assert len(e) == len(set(e))


def test_efficiency_command_writes_a_record_the_report_renders(tmp_path, monkeypatch):
    import bench.llm.cf as cf

    def no_cf_training(*a, **k):
        raise AssertionError("efficiency must not train a CF model")

    monkeypatch.setattr(cf, "_train", no_cf_training)
    out = tmp_path / "results" / "benchmarks"
    code = main(["efficiency", "--backbone", "random:tiny", "--dataset", "ml100k", "--subset-users", "12",
                 "--methods", "graphlora,cora-mf", "--batch-size", "4", "--eval-batch-size", "4",
                 "--warmup", "0", "--repeats", "2", "--device", "cpu", "--out", str(out)])
    assert code == 0
    rec = json.loads((out / "efficiency__random-tiny__cpu.json").read_text())
    rows = {(e["method"], e["variant"]): e for e in rec["entries"]}
    assert list(rows)[0] == ("graphlora", "lora-trainable-mf")
    base, full = rows[("graphlora", "lora-trainable-mf")], rows[("graphlora", "default")]
    assert base["ratio"] == {"params": 1.0, "params_as_published": 1.0, "train_step": 1.0, "infer_step": 1.0}
    assert full["params_trainable"] > base["params_trainable"]  # the GNN (and its projection) on top
    assert full["ratio"]["params"] == full["params_trainable"] / base["params_trainable"]
    assert all(e["train_step_s"] > 0 and e["infer_step_s"] > 0 for e in rec["entries"])
    assert rec["device_name"].startswith("CPU") and rec["repeats"] == 2
    assert main(["report", "--results-dir", str(tmp_path / "results"), "--out", str(tmp_path / "reports")]) == 0
    md = (tmp_path / "reports" / "results.md").read_text()
    assert "Table 6 — efficiency benchmark `efficiency__random-tiny__cpu`" in md
    assert "| LoRA-only (trainable MF)" in md and "Pre (GNN before A)" in md


def test_every_llm_method_steps_in_bf16_on_cpu_with_the_fp32_parameter_counts(tmp_path):
    """The GPU run is bf16 (frozen weights in bf16, adapters in fp32 under autocast); a CPU with
    bf16 runs the very same code paths, so they are checked here for every method."""
    out = tmp_path / "benchmarks"
    common = ["efficiency", "--backbone", "random:tiny", "--dataset", "ml100k", "--subset-users", "12",
              "--batch-size", "4", "--eval-batch-size", "4", "--warmup", "1", "--repeats", "1", "--device", "cpu",
              "--out", str(out)]
    assert main(common + ["--dtype", "bfloat16"]) == 0
    assert main(common + ["--methods", "graphlora,tallrec"]) == 0  # default precision: its own file
    bf16 = json.loads((out / "efficiency__random-tiny__cpu-bfloat16.json").read_text())
    fp32 = json.loads((out / "efficiency__random-tiny__cpu.json").read_text())
    assert bf16["dtype"] == "bfloat16" and not bf16["default_dtype"] and fp32["dtype"] == "float32"
    assert {m for m, _ in entries()} == {e["method"] for e in bf16["entries"]}
    counts = {(e["method"], e["variant"]): e["params_trainable"] for e in fp32["entries"]}
    for e in bf16["entries"]:
        assert e["train_step_s"] > 0 and e["infer_step_s"] > 0
        if (e["method"], e["variant"]) in counts:
            assert e["params_trainable"] == counts[(e["method"], e["variant"])]


def test_params_only_counts_the_7b_shape_on_the_meta_device(tmp_path, data_dir):
    """Table 6's parameter ratios at the paper's scale need no GPU: every model is built on the
    meta device (no storage), nothing is timed."""
    out = tmp_path / "results" / "benchmarks"
    assert main(["efficiency", "--backbone", "random:llama-7b", "--params-only", "--dataset", "ml1m", "--data-dir",
                 str(data_dir), "--methods", "graphlora,tallrec,cora-mf", "--device", "cpu", "--out", str(out)]) == 0
    rec = json.loads((out / "efficiency__random-llama-7b__meta-params.json").read_text())
    rows = {(e["method"], e["variant"]): e for e in rec["entries"]}
    # LoRA r=8 on q and v of 32 layers of width 4096: 32 x 2 x (4096 x 8 + 8 x 4096)
    assert rows[("tallrec", "default")]["params_trainable"] == 32 * 2 * 2 * 4096 * 8
    assert rows[("tallrec", "default")]["params_total"] > 6.7e9  # the whole 7B shape, yet no memory
    graphlora = rows[("graphlora", "default")]["ratio"]
    assert set(graphlora) == {"params", "params_as_published"} and 1.0 < graphlora["params"] < 1.02  # the paper: 1.017
    assert "train_step_s" not in rows[("graphlora", "default")]
    # the paper's Pre-A count (5.224) is a GNN in the hidden size: W1, W2 of 256x4096, 4096x4096,
    # 4096x4096 (+ biases), and no P; within 0.03% of the paper's figure
    assert abs(rows[("graphlora", "pre-hidden")]["ratio"]["params"] - 5.224) < 0.002
    # CoRA-MF as the paper counts it (every requires_grad parameter, its Q-Former's unused BERT
    # embeddings and text feed-forwards included) and, beside it, its live count
    cora = rows[("cora-mf", "default")]
    assert cora["params_trainable"] < cora["params_trainable_as_published"] and 5.0 < cora["ratio"]["params"] < 5.3
    # the paper's three Table 6 ratios, each counted as published, within 0.5%
    for (method, variant), paper in ((("cora-mf", "default"), 7.635), (("graphlora", "default"), 1.017),
                                     (("graphlora", "pre-hidden"), 5.224)):
        assert abs(rows[(method, variant)]["ratio"]["params_as_published"] - paper) <= 0.005 * paper, (method, variant)
    # a method that reports no published count of its own: the live one stands for it
    assert rows[("tallrec", "default")]["params_trainable_as_published"] == rows[("tallrec", "default")]["params_trainable"]
    assert main(["report", "--results-dir", str(tmp_path / "results"), "--out", str(tmp_path / "reports")]) == 0
    md = (tmp_path / "reports" / "results.md").read_text()
    assert "efficiency benchmark `efficiency__random-llama-7b__meta-params`" in md and "meta device" in md
    assert "Params (live)" in md and "Params (as published)" in md
    line = next(row for row in md.splitlines() if row.startswith("| CoRA-MF"))
    assert f"{cora['params_trainable']:,}" in line and f"{cora['params_trainable_as_published']:,}" in line
