"""`bench scoring-speed`: both paths score the same prompts to the same Yes logits, and the
record it writes carries both throughputs and their ratio."""
import json

import numpy as np

from bench.cli import main


def test_scoring_speed_record_compares_both_paths_on_the_same_prompts(tmp_path, data_dir):
    rc = main(["scoring-speed", "--backbone", "tiny-random", "--device", "cpu", "--data-dir", str(data_dir),
               "--rows", "24", "--plain-batch", "4", "--harness-batch", "8", "--dtypes", "auto,bfloat16",
               "--out", str(tmp_path / "results" / "benchmarks")])
    assert rc == 0
    rec = json.loads((tmp_path / "results" / "benchmarks" / "scoring_speed__tiny-random__cpu.json").read_text())
    assert rec["n_prompts"] == 24 and rec["prompt"] == "id" and rec["mean_tokens"] > 50  # real ML-1M prompts
    assert 0 < rec["rows_sharing_a_prefix"] <= 24 and rec["mean_shared_tokens"] > 32  # whole users share
    plains = rec["plain_by_dtype"]
    assert list(plains) == ["float32", "bfloat16"] and rec["plain"] == plains["float32"]  # the anchor first
    exact, bf16 = rec["harness"]
    assert exact["dtype"] == "float32" and exact["same_precision_as_plain"]
    assert exact["max_abs_score_diff"] < 1e-3  # measure() raises past this; recorded for the reader
    assert exact["spearman_vs_plain"] > 0.999
    assert bf16["dtype"] == "bfloat16" and not bf16["same_precision_as_plain"]
    assert bf16["max_abs_score_diff"] > exact["max_abs_score_diff"]  # bf16 really ran: its scores moved
    assert plains["bfloat16"]["max_abs_score_diff"] > 0  # and so did the plain loop's in bf16
    for e in (exact, bf16):
        assert e["prompts_per_s"] > 0
        assert abs(e["speedup"] - plains["float32"]["seconds"] / e["seconds"]) < 1e-9
        assert abs(e["speedup_same_precision"] - plains[e["dtype"]]["seconds"] / e["seconds"]) < 1e-9
    pos = rec["token_positions"]  # the harness runs fewer positions, never fewer than a perfect trie
    assert pos["prefix_trie_bound"] <= pos["harness_unpadded"] < pos["plain_padded"]
    # the report renders one row per path, each precision named
    assert main(["report", "--results-dir", str(tmp_path / "results"), "--out", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "results.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| harness scorer")]
    assert [r.split("|")[2].strip() for r in rows] == ["float32", "bfloat16"]
    assert f"x{bf16['speedup']:.2f}" in rows[1] and f"x{bf16['speedup_same_precision']:.2f}" in rows[1]
    assert "Token positions run: plain loop" in md


def test_token_positions_count_padding_shared_prefixes_and_the_trie_bound():
    from bench.llm.prefix import Group
    from bench.scoring_speed import token_positions

    prompts = [[1, 2, 3, 4], [1, 2, 3, 5, 6], [1, 2, 7], [8]]
    groups = [Group(np.asarray([0, 1]), 3)]  # rows 0 and 1 share [1, 2, 3]
    pos = token_positions(prompts, groups, plain_batch=2)
    assert pos == {"plain_padded": 2 * 5 + 2 * 3, "harness_unpadded": 4 + 5 + 3 + 1 - 3,
                   # distinct prefixes: 1, 12, 123, 1234, 1235, 12356, 127, 8
                   "prefix_trie_bound": 8}


def test_scoring_speed_rejects_a_bad_row_count(tmp_path, capsys):
    assert main(["scoring-speed", "--rows", "0", "--out", str(tmp_path)]) == 2
    assert "--rows must be > 0" in capsys.readouterr().err
    assert main(["scoring-speed", "--dtypes", "fp16", "--out", str(tmp_path)]) == 2
    assert "unknown precision 'fp16'" in capsys.readouterr().err


def test_prompts_are_whole_users_of_the_test_split(ml1m):
    from bench.scoring_speed import _whole_users

    rows = _whole_users(ml1m.test, 300, seed=0)
    assert len(rows) == 300
    users = rows["user"].drop_duplicates().to_numpy()
    counts = ml1m.test["user"].value_counts()
    for u in users[:-1]:  # every user but the last is complete, and its rows are contiguous
        assert (rows["user"] == u).sum() == counts[u]
    assert (rows["user"] != rows["user"].shift()).sum() == len(users)
    assert not rows.equals(_whole_users(ml1m.test, 300, seed=1))
