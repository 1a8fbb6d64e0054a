"""Renders run records into the paper's tables and figures: a pure function of ``results/``
(never imports torch). ``reports/results.md`` holds every suite's Markdown tables;
``reports/<suite>/`` its LaTeX tables and PNG / PDF figures.

Every cell is the mean over seeds with a 95% t-interval (a single-seed cell says so). Missing
cells show as "–", never as zero; records of one dataset with different split fingerprints are
refused. Which tables there are, their captions, and which run fills which row come from a
layout file (``bench/layouts/``); every benchmark record (``results/benchmarks/``) is rendered
through its benchmark's own table (``bench.benchmarks``).
"""
from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd
from tabulate import tabulate as _tabulate

from bench.errors import BenchError
from bench.records import Scan, writable_dir
from bench.report.frame import load_frame
from bench.report.layout import DEFAULT_LAYOUT, Layout, load_layout
from bench.report.stats import MISSING, fmt_cell, mean_ci
from bench.report import tables

log = logging.getLogger("bench")
__all__ = ["load_frame", "render_all", "fmt_cell", "mean_ci", "MISSING"]


# a number cell: a number, maybe "± half-width" and a parenthesised note ("0.6490 ± 0.0166 (n=3)")
_NUMBER = re.compile(r"[+\-−]?[\d,]*\.?\d+(e[+\-]?\d+)?( ± [\d.,]+)?( \([^()]*\))?", re.IGNORECASE)
_BLANK = ("", "–", "n/a")  # missing or empty cells fit any column


def _plain(cell: Any) -> str:
    """The cell without its bold markup (Markdown ``**x**``, LaTeX ``\\textbf{x}``) and footnote marks."""
    text = re.sub(r"[†‡§¶]+$", "", str(cell).strip())
    return re.sub(r"^\\textbf\{(.*)\}$", r"\1", text.strip("*")).strip()


def tabulate(body: list, headers: list, tablefmt: str) -> str:
    """A table of the cells exactly as the renderers wrote them (tabulate's number parsing would
    rewrite "0.6410" as 0.641 and "+0.0080" as 0.008); columns of numbers align right."""
    width = max((len(row) for row in body), default=len(headers))
    align = []
    for i in range(width):
        cells = [_plain(row[i]) for row in body if i < len(row)]
        filled = [c for c in cells if c not in _BLANK]
        align.append("right" if filled and all(_NUMBER.fullmatch(c) for c in filled) else "left")
    return _tabulate(body, headers=headers, tablefmt=tablefmt, disable_numparse=True, colalign=align)


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
        for spec in layout.tables:
            kind = tables.KINDS[spec.kind]
            header, body, notes = kind.render(g, spec, layout, False)
            if not body or (kind.runs and _empty(body)):
                md += [f"### {spec.caption}", "", "_No runs of this table in this suite._", ""]
                continue
            md += [f"### {spec.caption}", "", tabulate(body, headers=header, tablefmt="github"), ""]
            if kind.note:
                md += [kind.note, ""]
            if stale and kind.runs:
                notes = [*notes, tables.STALE_NOTE]
            if any(tables.UNTRAINED in c for row in body for c in row):
                notes = [*notes, tables.UNTRAINED_NOTE]
            md += [f"- {n}" for n in notes] + ([""] if notes else [])
            th, tb, _ = kind.render(g, spec, layout, True)
            path = sdir / f"{spec.name}.tex"
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
    from bench.benchmarks import BENCHMARKS

    for kind, bench in BENCHMARKS.items():  # in the registry's order (efficiency first)
        for bpath, rec in (b for b in found.benchmarks if b[1].kind == kind):
            payload = rec.payload()
            try:
                header, body, notes = bench.table(payload, layout, False)
                tex = bench.table(payload, layout, True) if bench.tex else None
            except (KeyError, TypeError, ValueError):  # valid provenance, payload of another shape
                md += [f"Unreadable {kind} record `{bpath}` (ignored).", ""]
                log.warning("%s: a %s record whose payload this report cannot read (ignored)", bpath, kind)
                continue
            md += [f"## {bench.title} `{bpath.stem}`", "", tabulate(body, headers=header, tablefmt="github"), ""] + [
                f"- {n}" for n in notes] + [""]
            if tex:
                path = out_dir / "benchmarks" / f"{bench.tex}_{bpath.stem}.tex"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(tabulate(tex[1], headers=tex[0], tablefmt="latex_raw") + "\n")
                written.append(path)
    path = out_dir / "results.md"
    path.write_text("\n".join(md) + "\n")
    written.insert(0, path)
    return written
