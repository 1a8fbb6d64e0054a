"""`bench overhead`: a whole harness run of a CF baseline against RecBole's own quick start on the
same split and config. Both must train the same model (same test AUC), and the record carries
both wall times and their ratio."""
import json

from bench.cli import main
from bench.report import DEFAULT_LAYOUT, render_all


def test_harness_and_quick_start_train_the_same_model(tmp_path, data_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "results" / "benchmarks"
    rc = main(["overhead", "--methods", "mf", "--subset-users", "60", "--device", "cpu", "--data-dir", str(data_dir),
               "--set", "epochs=3", "--set", "stopping_step=3", "--set", "embedding_size=32", "--out", str(out)])
    assert rc == 0
    rec = json.loads((out / "overhead__ml1m__cpu.json").read_text())
    assert rec["overrides"] == {"epochs": 3, "stopping_step": 3, "embedding_size": 32}
    (e,) = rec["entries"]
    assert (e["method"], e["variant"]) == ("mf", "recbole")
    # RecBole rounds its AUC to 4 places; the two paths trained one model from one seed
    assert abs(e["harness_test_auc"] - e["reference_test_auc"]) < 1e-4 and e["same_model"]
    assert e["harness_s"] > 0 and e["reference_s"] > 0
    assert abs(e["ratio"] - e["harness_s"] / e["reference_s"]) < 1e-12
    assert not (tmp_path / "log").exists()  # RecBole's ./log/ went to its work dir, not our cwd
    # the report renders it, and names a broken benchmark file instead of failing
    (out / "overhead__broken__cpu.json").write_text('{"kind": "overhead"}')
    render_all(tmp_path / "results", tmp_path / "reports", DEFAULT_LAYOUT)
    md = (tmp_path / "reports" / "results.md").read_text()
    assert "## Harness overhead `overhead__ml1m__cpu`" in md
    row = next(line for line in md.splitlines() if line.startswith("| mf "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # tabulate prints 0.170 as 0.17: compare the number, not its text
    assert cells[1] == "recbole" and float(cells[4]) == round(e["ratio"], 3)
    assert "overhead__broken__cpu.json: not a valid recbench record: schema_version None" in md


def test_overhead_rejects_methods_without_a_reference_and_bad_overrides(tmp_path, capsys):
    assert main(["overhead", "--methods", "tallrec", "--out", str(tmp_path)]) == 2
    assert "tallrec has no reference entry point" in capsys.readouterr().err
    assert main(["overhead", "--methods", "mf", "--set", "epochs", "--out", str(tmp_path)]) == 2
    assert "is not KEY=VALUE" in capsys.readouterr().err
    assert main(["overhead", "--methods", "nosuch", "--out", str(tmp_path)]) == 2
    assert "unknown method 'nosuch'" in capsys.readouterr().err
