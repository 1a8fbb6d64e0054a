"""The README's "bring your own dataset" walk-through, run as the README writes it: the commands
of its code block, in order, on a copy of examples/byo/ (a generated CSV pair declared in YAML),
through MF and GraphLoRA on the tiny backbone, then `bench report`."""
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Bring your own dataset", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_the_readme_walkthrough_runs_a_csv_pair_through_mf_and_graphlora(tmp_path):
    commands = readme_commands()
    assert [c.split()[:3] for c in commands] == [["python", "examples/byo/make_data.py", "examples/byo/data"],
                                                ["python", "-m", "bench"], ["python", "-m", "bench"]]
    shutil.copytree(REPO / "examples" / "byo", tmp_path / "examples" / "byo",
                    ignore=shutil.ignore_patterns("data"))
    for command in commands:
        argv = shlex.split(command)
        done = subprocess.run([sys.executable, *argv[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-4000:])
    results = tmp_path / "runs" / "byo" / "byo-example"
    recs = {p.name: json.loads(p.read_text()) for p in results.glob("*.json")}
    assert {"my-movies__mf__bce__seed0.json", "my-movies__graphlora__default__seed0.json"} <= set(recs)
    for rec in recs.values():
        assert rec["status"] == "ok" and rec["split"]["source"] == "my-movies"
        assert rec["split"]["stats"]["test_cold"] > 0 and rec["split"]["stats"]["test_warm"] > 0
    report = (tmp_path / "runs" / "byo" / "reports" / "results.md").read_text()
    assert "my-movies" in report and "GraphLoRA" in report
