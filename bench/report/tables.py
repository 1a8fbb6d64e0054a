"""The table kinds a layout's tables are rendered as, from one suite's records: ``table2`` (data),
``table3`` (main), ``table4`` (matched budget), ``table5`` (ablations), ``table6`` (efficiency
ratios), ``table7`` (few-shot); ``KINDS`` registers them. Each renderer takes (records, the
layout's table, the layout, tex) and returns (header, body, notes); ``tex=True`` gives
LaTeX-ready cells (bold as ``\\textbf``, labels escaped). Missing cells are "–", never zero."""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import numpy as np
import pandas as pd

from bench.report.layout import DEFAULT_METRICS, Layout, TableSpec
from bench.report.stats import (MIN_SHARED_USERS, MISSING, fmt_cell, mean_ci, paired_seed_test,
                                paired_user_bootstrap)

Table = tuple[list[str], list[list[str]], list[str]]
METRIC_LABELS = {"auc": "AUC", "uauc": "UAUC", "ndcg@10": "NDCG@10", "ndcg_full_both_classes": "NDCG (full, both classes)"}
_TEX_ESCAPES = {"&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "$": r"\$", "{": r"\{", "}": r"\}"}


def esc(text: str, tex: bool) -> str:
    return "".join(_TEX_ESCAPES.get(c, c) for c in text) if tex else text


def bold(text: str, tex: bool) -> str:
    return f"\\textbf{{{text}}}" if tex else f"**{text}**"


def _values(g: pd.DataFrame, col: str) -> list[float]:
    return g[col].tolist() if col in g and len(g) else []


STALE = "‡"
STALE_NOTE = f"{STALE} = the latest attempt of a run in this cell failed; the number is from its older finished record."
UNTRAINED = "°"
UNTRAINED_NOTE = (f"{UNTRAINED} = kept state is the untrained start (best valid at step 0; for a multi-stage method, "
                  "in at least one stage, of at least one seed): not a trained result.")


def untrained(g: pd.DataFrame) -> bool:
    """True when a record of ``g`` kept its untrained start (records without the field: False)."""
    return "kept_untrained" in g and bool((g["kept_untrained"] == True).any())  # noqa: E712 (None / NaN: no)


def _cell(g: pd.DataFrame, col: str) -> str:
    """The mean ± CI of ``col`` over ``g``'s seeds, marked when a record kept its untrained
    start (°) and when a newer attempt of one of them failed (‡)."""
    text = fmt_cell(_values(g, col))
    if text == MISSING:
        return text
    if untrained(g):
        text += UNTRAINED
    stale = "latest_failed" in g and g["latest_failed"].notna().any()
    return text + STALE if stale else text


def _given(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def layout_keys(layout: Layout) -> set[tuple[str, str]]:
    """(method, variant) of every row (and baseline) of the layout's main-result tables: the runs
    a table places (few-shot tables place none: their runs are few-shot ones)."""
    rows = [r for t in layout.tables if not KINDS[t.kind].few_shot
            for r in (t.rows + ((t.baseline,) if t.baseline else ()))]
    return {(r.method, v) for r in rows for v in r.variants}


# ---- Table 2 --------------------------------------------------------------------------------
T2_COLUMNS = (("stats/users_seen", "#Users"), ("stats/items_seen", "#Items"), ("stats/train", "#Train"),
              ("stats/valid", "#Valid"), ("stats/test", "#Test"), ("stats/test_warm", "#Test warm"),
              ("stats/test_cold", "#Test cold"), ("stats/train_pos_rate", "Train pos. rate"),
              ("stats/test_pos_rate", "Test pos. rate"))


def _fmt_stat(v: Any) -> str:
    if not _given(v):
        return MISSING
    return f"{v:.3f}" if isinstance(v, float) and not float(v).is_integer() else f"{int(v):,}"


ID_SPACE = {"stats/users_seen": "stats/n_users", "stats/items_seen": "stats/n_items"}  # counted -> id-space size


def _ints(values: Any) -> list[int]:
    return sorted({int(v) for v in values if _given(v)})


def _fmt_ints(values: list[int]) -> str:
    return " / ".join(f"{v:,}" for v in values)


def table2(df: pd.DataFrame, tex: bool = False) -> Table:
    """Dataset statistics as the runs saw them (computed from the splits when each run started,
    after the suite's subset and caps): #Users / #Items count the users and items with a row in
    the split, not the id space a subset keeps from the full dataset."""
    header = ["Dataset"] + [label for _, label in T2_COLUMNS]
    body, notes = [], []
    for dataset, g in sorted(df.groupby("dataset")):
        r = g.iloc[0]
        counted = _given(r.get("stats/users_seen"))
        # records that do not count them: the id space's sizes, said in a note
        body.append([esc(dataset, tex)] + [_fmt_stat(r.get(col if counted or col not in ID_SPACE else ID_SPACE[col]))
                                           for col, _ in T2_COLUMNS])
        if r.get("data") and r["data"] != "all users":
            notes.append(f"{dataset}: {r['data']}")
        n_users, n_items = (r.get(ID_SPACE[c]) for c in ID_SPACE)  # max id + 1 (id 0 is padding)
        if not counted:
            notes.append(f"{dataset}: #Users / #Items are the sizes of the id space (the records do not count the "
                         "users and items in the split's rows)")
        elif _given(n_users) and _given(n_items) and (r["stats/users_seen"], r.get("stats/items_seen")) != (
                n_users - 1, n_items - 1):
            notes.append(f"{dataset}: #Users / #Items count the users and items with a row in the split; its ids keep "
                         f"the full dataset's id space ({int(n_users) - 1:,} users, {int(n_items) - 1:,} items)")
        llm = g[g["kept_untrained"].notna()] if "kept_untrained" in g else g.iloc[0:0]
        tr, va = _ints(llm.get("fit_train_rows", [])), _ints(llm.get("fit_valid_rows", []))
        if tr or va:
            n_train = r.get("stats/train")
            on = ("all #Train rows" if _given(n_train) and tr == [int(n_train)]
                  else f"seeded samples of {_fmt_ints(tr) or MISSING} of the #Train rows")
            notes.append(f"{dataset}: the trained LLM runs train on {on} and select their kept state on "
                         f"{_fmt_ints(va) or MISSING} of the {_fmt_stat(r.get('stats/valid_small'))} valid_small "
                         "rows (part of #Valid)")
    return header, body, notes


# ---- Table 3 --------------------------------------------------------------------------------
def _few_shot(df: pd.DataFrame) -> pd.Series:
    return df["few_shot"].notna() if "few_shot" in df else pd.Series(False, index=df.index)


def table3_rows(df: pd.DataFrame, layout: Layout, spec: TableSpec | None = None) -> list[tuple[str, str, pd.DataFrame]]:
    """(group, label, records) for every row of ``spec`` (default: the layout's first table3),
    then every run no table places under "Other runs". Few-shot runs belong to Table 7 only."""
    df = df[~_few_shot(df)]
    spec = spec or layout.table("table3")
    out = []
    for section in spec.sections if spec else ():
        for row in section.rows:
            label, g = row.pick(df)
            out.append((section.name, label, g))
    placed = layout_keys(layout)
    for (method, variant), g in sorted(df.groupby(["method", "variant"])):
        if (method, variant) in placed or layout.layer_of(method, variant) is not None:
            continue
        out.append(("Other runs", f"{method} ({variant})", g))
    return out


def _per_user_mean(g: pd.DataFrame) -> dict[str, float]:
    """Per-user test AUC averaged over the seeds that recorded it."""
    acc: dict[str, list[float]] = {}
    for d in g["per_user_auc"] if "per_user_auc" in g else []:
        for u, v in (d if isinstance(d, dict) else {}).items():
            if _given(v):
                acc.setdefault(u, []).append(v)
    return {u: float(np.mean(v)) for u, v in acc.items()}


def _per_user_recorded(g: pd.DataFrame) -> bool:
    """True when a record of ``g`` carries per-user test AUCs (an empty map counts: no test user
    had both classes); records from before the field carry none."""
    return "per_user_auc" in g and any(isinstance(d, dict) for d in g["per_user_auc"])


def _no_bootstrap_reason(best: tuple[str, pd.DataFrame], second: tuple[str, pd.DataFrame]) -> str:
    """Why the paired user bootstrap between ``best`` and ``second`` (label, records) did not run."""
    missing = [label for label, g in (best, second) if not _per_user_recorded(g)]
    if missing:
        return f"per-user AUCs not recorded for {' and '.join(missing)}"
    shared = len(set(_per_user_mean(best[1])) & set(_per_user_mean(second[1])))
    return (f"{shared} test user{'' if shared == 1 else 's'} with both classes scored by both; "
            f"{MIN_SHARED_USERS} needed")


def table3(df: pd.DataFrame, spec: TableSpec, layout: Layout, tex: bool = False,
           metrics: tuple[str, ...] = ("auc", "uauc")) -> Table:
    df = df[~_few_shot(df)]
    datasets = sorted(df["dataset"].unique())
    rows = table3_rows(df, layout, spec)
    header = ["Group", "Method"] + [f"{d} {METRIC_LABELS[m]}" for d in datasets for m in metrics]
    cells = [[_cell(g[g["dataset"] == d], f"test/{m}") for d in datasets for m in metrics]
             for _, _, g in rows]
    notes = []
    for j, (d, m) in enumerate((d, m) for d in datasets for m in metrics):
        means = [(mean_ci(_values(g[g["dataset"] == d], f"test/{m}"))[0], i) for i, (_, _, g) in enumerate(rows)]
        ranked = sorted(((v, i) for v, i in means if not math.isnan(v)), reverse=True)
        if not ranked:
            continue
        best = ranked[0][1]
        mark = ""
        if len(ranked) > 1:
            second = ranked[1][1]
            gb, gs = (rows[k][2][rows[k][2]["dataset"] == d] for k in (best, second))
            p_seed = paired_seed_test(dict(zip(gb["seed"], gb[f"test/{m}"])), dict(zip(gs["seed"], gs[f"test/{m}"])))
            boot = paired_user_bootstrap(_per_user_mean(gb), _per_user_mean(gs))
            if p_seed is not None and p_seed < 0.05:
                mark += "*"
            if boot is not None and boot[2] < 0.05:
                mark += "†"
            seed_txt = f"paired t-test over seeds p={p_seed:.3g}" if p_seed is not None else "paired t-test over seeds: n/a (< 2 shared seeds)"
            boot_txt = (f"paired bootstrap over test users (UAUC gap {boot[0]:+.4f}, 95% CI [{boot[1][0]:+.4f}, {boot[1][1]:+.4f}]) p={boot[2]:.3g}"
                        if boot is not None else
                        f"paired user bootstrap: n/a ({_no_bootstrap_reason((rows[best][1], gb), (rows[second][1], gs))})")
            notes.append(f"{d} {METRIC_LABELS[m]}: best {rows[best][1]} vs runner-up {rows[second][1]}: {seed_txt}; {boot_txt}.")
        cells[best][j] = bold(cells[best][j], tex) + mark
    body, last_group = [], None
    for (group, label, _), c in zip(rows, cells):
        body.append([esc(group, tex) if group != last_group else "", esc(label, tex)] + c)
        last_group = group
    return header, body, notes


# ---- Table 4 --------------------------------------------------------------------------------
def table4(df: pd.DataFrame, spec: TableSpec, layout: Layout, tex: bool = False) -> Table:
    """Matched budget, laid out as the paper: one row per (dataset, metric), one column per method."""
    df = df[~_few_shot(df)]
    picked = [row.pick(df) for row in spec.rows]
    metrics = spec.metrics if spec.metrics is not None else DEFAULT_METRICS
    header = ["Dataset", "Metric"] + [esc(label, tex) for label, _ in picked]
    body, notes = [], []
    for d in sorted(df["dataset"].unique()):
        for i, m in enumerate(metrics + ("params",)):
            col = "params_trainable" if m == "params" else f"test/{m}"
            vals = [_values(g[g["dataset"] == d], col) for _, g in picked]
            if m == "params":
                cells = [f"{int(mean_ci(v)[0]):,}" if mean_ci(v)[2] else MISSING for v in vals]
            else:
                cells = [_cell(g[g["dataset"] == d], col) for _, g in picked]
            body.append([esc(d, tex) if i == 0 else "", "trainable params" if m == "params" else METRIC_LABELS.get(m, m)] + cells)
        for label, g in picked:
            g = g[g["dataset"] == d]
            if len(g) and _given(g["budget_target"].iloc[0]):
                notes.append(f"{d}: {label} matched to a budget of {int(g['budget_target'].iloc[0]):,} trainable parameters "
                             f"(its own count: {int(g['params_trainable'].iloc[0]):,}).")
    return header, body, notes


# ---- Table 5 --------------------------------------------------------------------------------
def table5(df: pd.DataFrame, spec: TableSpec, layout: Layout, tex: bool = False) -> Table:
    df = df[~_few_shot(df)]
    datasets = sorted(df["dataset"].unique())
    header = ["Setting"] + [f"{d} {METRIC_LABELS[m]}" for d in datasets for m in ("auc", "uauc")]
    body = []
    for section in spec.sections:
        body.append([esc(section.name, tex)] + [""] * (len(header) - 1))
        for row in section.rows:
            label, g = row.pick(df)
            body.append([esc(label, tex)] + [_cell(g[g["dataset"] == d], f"test/{m}")
                                             for d in datasets for m in ("auc", "uauc")])
    return header, body, []


# ---- Table 6 --------------------------------------------------------------------------------
def _ratio(g: pd.DataFrame, base: pd.DataFrame, col: str) -> float | None:
    a, b = mean_ci(_values(g, col))[0], mean_ci(_values(base, col))[0]
    if math.isnan(a) or math.isnan(b) or b == 0:
        return None
    return a / b


def table6(df: pd.DataFrame, spec: TableSpec, layout: Layout, tex: bool = False) -> Table:
    """Trainable params, train and inference time as ratios to the baseline row (LoRA-only with
    trainable MF) of the same suite and dataset, plus test AUC / UAUC. Times are the medians of
    timed steps on a fixed batch when the records have them, else whole-run wall times (marked)."""
    df = df[~_few_shot(df)]
    header = ["Dataset", "Method", "Params", "Tr.", "Inf.", "AUC", "UAUC"]
    body, notes = [], []
    if spec.baseline is None:
        return header, body, ["the layout names no Table 6 baseline"]
    for d in sorted(df["dataset"].unique()):
        dd = df[df["dataset"] == d]
        _, base = spec.baseline.pick(dd)
        for section in spec.sections:
            body.append([esc(d, tex), esc(section.name, tex)] + [""] * 5)
            for row in section.rows:
                label, g = row.pick(dd)
                step = all(_values(x, c) and all(_given(v) for v in _values(x, c))
                           for x in (g, base) for c in ("train_step_s", "infer_step_s"))
                tr, inf = ("train_step_s", "infer_step_s") if step else ("train_s", "infer_test_s")
                cells = []
                for col in ("params_trainable", tr, inf):
                    r = _ratio(g, base, col) if len(base) and len(g) else None
                    cells.append(MISSING if r is None else f"{r:.3f}" + ("" if step or col == "params_trainable" else "ʷ"))
                body.append(["", esc(label, tex)] + cells + [_cell(g, "test/auc"), _cell(g, "test/uauc")])
    devices = sorted({str(v) for v in df.get("device", pd.Series(dtype=object)).dropna()})
    notes.append(f"Measured on: {', '.join(devices) or 'unknown device'}. Ratios to {spec.baseline.label} "
                 "of the same suite and dataset; ʷ = whole-run wall time (the record has no step timings).")
    return header, body, notes


# ---- Table 7 --------------------------------------------------------------------------------
def table7(df: pd.DataFrame, spec: TableSpec, layout: Layout, tex: bool = False) -> Table:
    """Few-shot (TALLRec protocol): one row per (dataset, training-sample count), test AUC per method."""
    fs = df[_few_shot(df)]
    header = ["Dataset", "Few-shot"] + [esc(r.label, tex) for r in spec.rows]
    body = []
    for (source, n), g in sorted(fs.groupby(["source", "few_shot"])):
        body.append([esc(str(source), tex), str(int(n))]
                    + [_cell(row.pick(g)[1], "test/auc") for row in spec.rows])
    return header, body, ["Test AUC; train = a seeded sample of that many rows (valid / test untouched)."] if body else []


# ---- the kinds -------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Kind:
    """A renderer a layout's table names as its ``kind``. ``runs``: its cells are run results (a
    table without a number is not printed; a stale run is noted); ``few_shot``: its rows hold
    few-shot runs (they place no run of the main tables); ``note``: printed under the table,
    before its notes (what its marks mean); ``options``: the table keys it reads besides its rows."""
    render: Callable[[pd.DataFrame, TableSpec, Layout, bool], Table]
    runs: bool = True
    few_shot: bool = False
    note: str | None = None
    options: tuple[str, ...] = ()


TABLE3_NOTE = ("UAUC = unweighted mean of per-user AUC over users with both classes. Bold = best mean; "
               "\\* = beats the runner-up under a paired t-test over seeds (p < 0.05); † = under a paired "
               "bootstrap of per-user AUC over test users (p < 0.05).")
from bench.report.claims import CLAIMS_NOTE as _CLAIMS_NOTE, claims as _claims  # noqa: E402

KINDS: dict[str, Kind] = {
    "table2": Kind(lambda df, spec, layout, tex: table2(df, tex), runs=False),
    "table3": Kind(table3, note=TABLE3_NOTE),
    "table4": Kind(table4, options=("metrics",)),
    "table5": Kind(table5),
    "table6": Kind(table6, options=("baseline",)),
    "table7": Kind(table7, few_shot=True),
    "claims": Kind(_claims, note=_CLAIMS_NOTE),
}
