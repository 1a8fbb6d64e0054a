"""The report's renderers on synthetic records: every table and figure, statistics, missing cells."""
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from bench.errors import BenchError
from bench.report import render_all
from bench.report.layout import load_layout
from bench.report.stats import mean_ci, paired_seed_test, paired_user_bootstrap

STATS = {"train": 33891, "valid": 10401, "valid_small": 2601, "test": 7331, "n_users": 839, "n_items": 3256,
         "train_pos_rate": 0.5368, "valid_pos_rate": 0.5283, "test_pos_rate": 0.5532, "test_warm": 4153, "test_cold": 3178}


def record(root: Path, method: str, variant: str, seed: int, auc: float, uauc: float | None, *, valid_auc=None,
           params=1000, step=(0.1, 0.05), per_user=None, budget=None, suite="paper", dataset="ml1m",
           few_shot=None) -> None:
    test = {"auc": auc, "uauc": uauc, "ndcg@10": 0.8 + auc / 10, "n_rows": 7331,
            "warm/auc": auc + 0.02, "cold/auc": auc - 0.03, "warm/uauc": uauc, "cold/uauc": None if uauc is None else uauc - 0.05}
    rec = {"schema_version": 2, "key": {"suite": suite, "dataset": dataset, "method": method, "variant": variant,
                                         "seed": seed},
           "status": "ok", "config": {}, "config_hash": "c0ffee", "started": "2026-01-01T00:00:00+00:00",
           "finished": "2026-01-01T01:00:00+00:00",
           "split": {"fingerprint": f"fp-{dataset}", "stats": STATS, "source": "ml100k" if few_shot else dataset,
                     "transforms": [{"name": "few_shot", "n": few_shot, "seed": 0}] if few_shot else []},
           "metrics": {"valid": {"auc": valid_auc if valid_auc is not None else auc, "uauc": uauc, "n_rows": 10401},
                       "test": test},
           "per_user_auc": {"test": per_user or {}}, "params": {"trainable": params},
           "timing": {"train_s": 100.0, "infer_test_s": 10.0, "train_step_s": step[0], "infer_step_s": step[1]},
           "device": "cuda", "device_name": "Test GPU 80GB", "budget": budget}
    path = root / suite / f"{dataset}__{method}__{variant}__seed{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    res, out = tmp_path_factory.mktemp("results"), tmp_path_factory.mktemp("reports")
    rng = np.random.default_rng(0)
    users = [str(u) for u in range(60)]
    base_user = {u: float(v) for u, v in zip(users, rng.uniform(0.55, 0.75, len(users)))}
    for seed in (0, 1, 2):
        noise = 0.002 * seed
        # GraphLoRA beats CoRA-MF on every seed and for every user: both tests must say so
        record(res, "graphlora", "default", seed, 0.747 + noise, 0.710 + noise, params=1017, step=(0.1029, 0.0507),
               per_user={u: v + 0.04 for u, v in base_user.items()})
        record(res, "cora-mf", "default", seed, 0.720 + noise, 0.690 + noise / 2, params=7635, step=(0.1086, 0.05045),
               per_user=base_user)
        record(res, "graphlora", "lora-trainable-mf", seed, 0.717 + noise, 0.695, params=1000, step=(0.1, 0.05))
    record(res, "mf", "bce", 0, 0.6445, 0.6302)
    record(res, "collm-mf", "one-stage", 0, 0.70, 0.66)
    record(res, "tallrec", "default", 0, 0.71, None)  # a metric the run could not compute
    record(res, "graphlora", "pre-hidden", 0, 0.733, 0.694, params=5224, step=(0.1058, 0.05165))
    record(res, "cora-mf", "default@budget-graphlora", 0, 0.7227, 0.6794, params=1020,
           budget={"target": 1017, "matched": 1020})
    for layer, v in ((0, 0.62), (15, 0.66), (29, 0.70)):
        record(res, "graphlora", f"layer-{layer}", 0, 0.6, 0.6, valid_auc=v)
    for n, aucs in ((16, (0.50, 0.56, 0.61)), (64, (0.50, 0.60, 0.61))):
        for (method, variant), a in zip((("sasrec", "bce"), ("tallrec", "default"), ("graphlora", "default")), aucs):
            record(res, method, variant, 0, a, 0.5, dataset=f"ml100k-{n}shot", few_shot=n)
    (res / "paper" / "broken.json").write_text("{not json")
    written = render_all(res, out)
    return out, written


def test_every_table_and_both_figures_are_written(rendered):
    out, written = rendered
    names = {p.relative_to(out).as_posix() for p in written}
    for t in ("table2", "table3", "table4", "table5", "table6"):
        assert f"paper/{t}.tex" in names
    for f in ("fig3_ml1m", "fig4_ml1m"):
        for ext in ("png", "pdf"):
            p = out / "paper" / f"{f}.{ext}"
            assert p.exists() and p.stat().st_size > 5000
    assert (out / "paper" / "fig3_ml1m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_table3_groups_bold_best_and_both_paired_tests(rendered):
    out, _ = rendered
    md = (out / "results.md").read_text()
    t3 = md.split("### Table 3")[1].split("### Table 4")[0]
    line = next(row for row in t3.splitlines() if "| GraphLoRA " in row)
    assert "**0.7490 ± " in line and "(n=3)**" in line and "*†" in line  # best, significant under both tests
    assert "Parameter-space alignment" in t3 and "Ours" in t3
    assert "| CoLLM-MF (one-stage)" in t3  # the published two-stage was not run: the label says which ran
    cora_lgcn = next(row for row in t3.splitlines() if "CoRA-LightGCN" in row)
    assert cora_lgcn.count("–") == 2 and "0.0" not in cora_lgcn  # missing, never zero
    tallrec = next(row for row in t3.splitlines() if "TALLRec" in row)
    assert "0.7100 (1 seed)" in tallrec and "–" in tallrec
    assert "layer-" not in t3 and "budget" not in t3  # sweep and matched runs live in Fig. 4 / Table 4
    assert "paired t-test over seeds p=" in t3 and "paired bootstrap over test users" in t3
    assert "broken.json" in md  # a corrupt file is reported, never a crash
    assert "\\textbf{" in (out / "paper" / "table3.tex").read_text()


def test_table2_4_5_6_contents(rendered):
    out, _ = rendered
    md = (out / "results.md").read_text()
    t2 = md.split("### Table 2")[1].split("### Table 3")[0]
    assert "33,891" in t2 and "4,153" in t2 and "3,178" in t2
    t4 = md.split("### Table 4")[1].split("### Table 5")[0]
    assert "0.7227 (1 seed)" in t4 and "NDCG@10" in t4 and "1,020" in t4
    assert "budget of 1,017 trainable parameters" in t4
    t5 = md.split("### Table 5")[1].split("### Table 6")[0]
    assert "LoRA-only (frozen MF)" in t5 and "GraphLoRA (GCN)" in t5
    frozen = next(row for row in t5.splitlines() if "frozen MF" in row)
    assert frozen.count("–") == 2
    t6 = md.split("### Table 6")[1].split("![")[0]
    graphlora = [row for row in t6.splitlines() if "| GraphLoRA " in row][0]
    assert "1.017" in graphlora and "1.029" in graphlora and "1.014" in graphlora
    pre = next(row for row in t6.splitlines() if "Pre" in row)
    assert "5.224" in pre and "1.058" in pre and "1.033" in pre
    assert "Measured on: Test GPU 80GB" in t6 and "ʷ" not in graphlora


def test_table7_few_shot_rows_and_nowhere_else(rendered):
    out, _ = rendered
    md = (out / "results.md").read_text()
    t7 = md.split("### Table 7")[1].split("![")[0]
    row16 = next(r for r in t7.splitlines() if r.split("|")[2:3] and r.split("|")[2].strip() == "16")
    assert "0.5000 (1 seed)" in row16 and "0.5600 (1 seed)" in row16 and "0.6100 (1 seed)" in row16
    assert any(r.split("|")[2:3] and r.split("|")[2].strip() == "64" for r in t7.splitlines())
    before7 = md.split("### Table 7")[0]
    assert "ml100k-16shot AUC" not in before7  # few-shot runs are not main results
    assert not (out / "paper" / "fig3_ml100k-16shot.png").exists()


def test_stats_helpers_against_scipy():
    a, b = {0: 0.70, 1: 0.72, 2: 0.71}, {0: 0.68, 1: 0.69, 2: 0.70}
    assert paired_seed_test(a, b) == pytest.approx(sps.ttest_rel([0.70, 0.72, 0.71], [0.68, 0.69, 0.70]).pvalue)
    assert paired_seed_test({0: 0.7}, {0: 0.6}) is None  # one shared seed: no test
    mean, half, n = mean_ci([0.70, 0.72, 0.71])
    assert n == 3 and mean == pytest.approx(0.71)
    assert half == pytest.approx(sps.t.ppf(0.975, 2) * np.std([0.70, 0.72, 0.71], ddof=1) / np.sqrt(3))
    rng = np.random.default_rng(1)
    x = {str(i): float(v) for i, v in enumerate(rng.uniform(0.5, 0.8, 200))}
    better = {u: v + 0.03 + float(rng.normal(0, 0.01)) for u, v in x.items()}
    gap, (lo, hi), p = paired_user_bootstrap(better, x)
    assert lo < gap < hi and lo > 0 and p < 0.01
    noisy = {u: v + float(rng.normal(0, 0.05)) for u, v in x.items()}
    assert paired_user_bootstrap(noisy, x)[2] > 0.05  # no true gap: not significant
    assert paired_user_bootstrap({"1": 0.5}, {"1": 0.4}) is None


def test_bad_layout_row_is_a_clear_error(tmp_path):
    bad = tmp_path / "layout.yaml"
    bad.write_text("table4:\n  rows:\n    - {method: graphlora}\n")
    with pytest.raises(BenchError, match="needs `label` and `method`"):
        load_layout(bad)


def test_cells_keep_the_digits_they_were_rendered_with_and_numbers_align_right():
    from bench.report import tabulate

    out = tabulate([["GraphLoRA", "0.6410", "+0.0080", "[-0.0286, +0.0372]"], ["MF", "–", "-0.0100", "–"]],
                   ["method", "test AUC", "Δ", "CI"], "github")
    assert "0.6410" in out and "+0.0080" in out and "0.641 " not in out
    cells = out.splitlines()[2].split("|")[1:-1]
    # numbers to the right (padding before), text to the left (padding after)
    assert [c.startswith("  ") for c in cells] == [False, True, False, False] and cells[1].endswith("0.6410 ")
    assert cells[2].strip() == "+0.0080" and cells[3].startswith(" [") and cells[3].endswith("] ")
