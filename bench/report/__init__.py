"""Renders run records into the paper's tables and figures: a pure function of ``results/``
(never imports torch). ``reports/results.md`` holds every suite's Markdown tables;
``reports/<suite>/`` its LaTeX tables and PNG / PDF figures.

Every cell is the mean over seeds with a 95% t-interval (a single-seed cell says so). Missing
cells show as "–", never as zero; records of one dataset with different split fingerprints are
refused. Which run fills which row comes from a layout file (``bench/layouts/``).
"""
from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any, Callable

import pandas as pd
from tabulate import tabulate

from bench.errors import BenchError
from bench.records import Scan, writable_dir
from bench.report.frame import load_frame
from bench.report.layout import DEFAULT_LAYOUT, Layout, load_layout
from bench.report.stats import MISSING, fmt_cell, mean_ci
from bench.report import tables

log = logging.getLogger("bench")
__all__ = ["load_frame", "render_all", "fmt_cell", "mean_ci", "MISSING"]


def check_fingerprints(df: pd.DataFrame, suite: str) -> None:
    for dataset, g in df.groupby("dataset"):
        fps = g["fingerprint"].unique()
        if len(fps) > 1:
            raise BenchError(
                f"suite {suite}: records of {dataset} come from {len(fps)} different splits ({', '.join(fps)})",
                "rerun the stale records with --force, or move them out of results/",
            )


DETAIL_COLUMNS = (("valid/auc", "valid AUC"), ("valid/uauc", "valid UAUC"), ("test/auc", "test AUC"),
                  ("test/uauc", "test UAUC"), ("test/ndcg@10", "test NDCG@10"), ("test/n_rows", "test rows"),
                  ("params_trainable", "trainable params"), ("budget_target", "budget target"),
                  ("train_s", "train s"), ("infer_test_s", "test inference s"))


# decimals per column of the every-run table, the same for every row: metrics 4, seconds 1 or 2, counts 0
DETAIL_DECIMALS = {"valid/auc": 4, "valid/uauc": 4, "test/auc": 4, "test/uauc": 4, "test/ndcg@10": 4,
                   "train_s": 1, "infer_test_s": 2}


def _num(v: Any, decimals: int = 0) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return MISSING
    return f"{float(v):,.{decimals}f}" if decimals else f"{int(round(float(v))):,}"


def details(df: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Every run: valid and test metrics, trainable parameters (and a budget target), times."""
    header = ["dataset", "method (variant)", "seed"] + [label for _, label in DETAIL_COLUMNS]
    body = []
    for _, r in df.sort_values(["dataset", "method", "variant", "seed"]).iterrows():
        untrained = r.get("kept_untrained") == True  # noqa: E712 (None / NaN: no) kept state = untrained start
        body.append([r["dataset"], f"{r['method']} ({r['variant']})" + (tables.UNTRAINED if untrained else ""),
                     str(r["seed"])]
                    + [_num(r.get(col), DETAIL_DECIMALS.get(col, 0)) for col, _ in DETAIL_COLUMNS])
    return header, body


def _data_note(dataset: str, r: pd.Series) -> str:
    return f"{dataset}: {r['data']}"


TABLES: tuple[tuple[str, str, Callable[..., tables.Table]], ...] = (
    ("table2", "Table 2 — dataset statistics (as the runs saw them)", lambda df, lay, tex: tables.table2(df, tex)),
    ("table3", "Table 3 — main results (test; mean ± 95% CI over seeds; best in bold)", tables.table3),
    ("table4", "Table 4 — matched parameter budget (test)", tables.table4),
    ("table5", "Table 5 — ablations (test)", tables.table5),
    ("table6", "Table 6 — efficiency, as ratios to LoRA-only (trainable MF)", tables.table6),
    ("table7", "Table 7 — few-shot (TALLRec protocol; test AUC)", tables.table7),
)
TABLE3_NOTE = ("UAUC = unweighted mean of per-user AUC over users with both classes. Bold = best mean; "
               "\\* = beats the runner-up under a paired t-test over seeds (p < 0.05); † = under a paired "
               "bootstrap of per-user AUC over test users (p < 0.05).")


def _empty(body: list[list[str]]) -> bool:
    """True when no cell holds a number (every data cell missing): such a table is not printed."""
    return not any(re.match(r"^(\*\*|\\textbf\{)?-?\d", c) for row in body for c in row)


def _failures(df: pd.DataFrame, found: Scan) -> list[str]:
    """Every run whose latest attempt failed: newer than its finished record, or never finished."""
    out = []
    if not df.empty:
        for _, r in df[df["latest_failed"].notna()].iterrows():
            out.append(f"{r['suite']}/{r['dataset']}__{r['method']}__{r['variant']}__seed{r['seed']}: the latest "
                       f"attempt failed ({r['latest_failed']}); its cells ({tables.STALE}) show the older finished record")
    for f in found.failed_only():
        out.append(f"{f.key.suite}/{f.run_key.stem}: failed, no finished record ({f.error})")
    return out


def render_all(results_dir: Path, out_dir: Path, layout_path: Path = DEFAULT_LAYOUT) -> list[Path]:
    if not results_dir.exists():
        raise BenchError(f"results directory {results_dir} does not exist", "run `python -m bench run --suite smoke` first")
    if not results_dir.is_dir():
        raise BenchError(f"--results-dir {results_dir} is a file, not a directory",
                         "pass the folder `bench run` wrote into (default: results)")
    layout: Layout = load_layout(layout_path)
    writable_dir(out_dir, "--out")
    df, found = load_frame(results_dir)
    failures = _failures(df, found)
    for line in found.problems + failures:  # on the terminal too, not only in the file
        log.warning("%s", line)
    written: list[Path] = []
    md: list[str] = ["# recbench results", ""]
    if found.problems:
        md += ["Files in results/ that were not counted (unreadable, invalid, copied or misplaced):", ""] + [
            f"- {p}" for p in found.problems] + [""]
    if failures:
        md += ["Runs whose latest attempt failed:", ""] + [f"- {f}" for f in failures] + [""]
    if df.empty:
        md.append("No finished runs yet.")
    for suite, g in (df.groupby("suite") if not df.empty else []):
        check_fingerprints(g, suite)
        sdir = out_dir / suite
        sdir.mkdir(parents=True, exist_ok=True)
        note = "; ".join(_data_note(d, r) for d, r in g.groupby("dataset").first().iterrows())
        md += [f"## Suite `{suite}`", "", f"Data: {note}.", ""]
        for dataset, notes in g.groupby("dataset")["notes"].first().items():
            md += [f"- {dataset}: {n}" for n in notes] + ([""] if notes else [])
        stale = g["latest_failed"].notna().any()
        for name, title, fn in TABLES:
            header, body, notes = fn(g, layout, False)
            if not body or (name != "table2" and _empty(body)):
                md += [f"### {title}", "", "_No runs of this table in this suite._", ""]
                continue
            md += [f"### {title}", "", tabulate(body, headers=header, tablefmt="github"), ""]
            if name == "table3":
                md += [TABLE3_NOTE, ""]
            if stale and name != "table2":
                notes = [*notes, tables.STALE_NOTE]
            if any(tables.UNTRAINED in c for row in body for c in row):
                notes = [*notes, tables.UNTRAINED_NOTE]
            md += [f"- {n}" for n in notes] + ([""] if notes else [])
            th, tb, _ = fn(g, layout, True)
            path = sdir / f"{name}.tex"
            path.write_text(tabulate(tb, headers=th, tablefmt="latex_raw") + "\n")
            written.append(path)
        from bench.report import tuning

        th, tb, tnotes = tuning.table(g)
        if tb:
            md += ["### Tuning — equal budgets, chosen on valid AUC", "",
                   tabulate(tb, headers=th, tablefmt="github"), ""] + [f"- {n}" for n in tnotes] + [""]
        from bench.report import figures  # matplotlib only when there is something to draw

        for dataset in sorted(g["dataset"].unique()):
            for fig_name, fn in (("fig3", figures.fig3), ("fig4", figures.fig4), ("tuning", tuning.figure)):
                paths = fn(g, layout, dataset, sdir / f"{fig_name}_{dataset}")
                written += paths
                png = [p for p in paths if p.suffix == ".png"]
                if png:
                    md += [f"![{fig_name} {dataset}]({png[0].relative_to(out_dir).as_posix()})", ""]
        dh, db = details(g)
        md += [f"### Suite `{suite}` — every run", "", tabulate(db, headers=dh, tablefmt="github"), ""]
        if any(tables.UNTRAINED in row[1] for row in db):
            md += [f"- {tables.UNTRAINED_NOTE}", ""]
    renderers = {"efficiency": None, "scoring_speed": ("Scoring speed", tables.scoring_speed_benchmark),
                 "overhead": ("Harness overhead", tables.overhead_benchmark)}
    for kind in renderers:  # efficiency first, as before
        for bpath, rec in (b for b in found.benchmarks if b[1].kind == kind):
            payload = rec.payload()
            try:
                if kind == "efficiency":
                    header, body, notes = tables.table6_benchmark(payload, layout)
                    title = f"Table 6 — efficiency benchmark `{bpath.stem}`"
                else:
                    header, body, notes = renderers[kind][1](payload)
                    title = f"{renderers[kind][0]} `{bpath.stem}`"
            except (KeyError, TypeError, ValueError):  # valid provenance, payload of another shape
                md += [f"Unreadable {kind} record `{bpath}` (ignored).", ""]
                log.warning("%s: a %s record whose payload this report cannot read (ignored)", bpath, kind)
                continue
            md += [f"## {title}", "", tabulate(body, headers=header, tablefmt="github"), ""] + [
                f"- {n}" for n in notes] + [""]
            if kind == "efficiency":
                th, tb, _ = tables.table6_benchmark(payload, layout, True)
                tex = out_dir / "benchmarks" / f"table6_{bpath.stem}.tex"
                tex.parent.mkdir(parents=True, exist_ok=True)
                tex.write_text(tabulate(tb, headers=th, tablefmt="latex_raw") + "\n")
                written.append(tex)
    path = out_dir / "results.md"
    path.write_text("\n".join(md) + "\n")
    written.insert(0, path)
    return written
