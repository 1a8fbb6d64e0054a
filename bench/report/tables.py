"""The paper's tables from one suite's records: Table 2 (data), 3 (main), 4 (matched budget),
5 (ablations), 6 (efficiency ratios). Each returns (header, body, notes); ``tex=True`` gives
LaTeX-ready cells (bold as ``\\textbf``, labels escaped). Missing cells are "–", never zero."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from bench.report.layout import Layout
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
    rows = [r for s in layout.table3 + layout.table5 + layout.table6 for r in s.rows] + list(layout.table4)
    if layout.table6_baseline:
        rows.append(layout.table6_baseline)
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


def table3_rows(df: pd.DataFrame, layout: Layout) -> list[tuple[str, str, pd.DataFrame]]:
    """(group, label, records) for every layout row, then every unplaced run under "Other runs".
    Few-shot runs belong to Table 7 only."""
    df = df[~_few_shot(df)]
    out = []
    for section in layout.table3:
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


def table3(df: pd.DataFrame, layout: Layout, tex: bool = False, metrics: tuple[str, ...] = ("auc", "uauc")) -> Table:
    df = df[~_few_shot(df)]
    datasets = sorted(df["dataset"].unique())
    rows = table3_rows(df, layout)
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
def table4(df: pd.DataFrame, layout: Layout, tex: bool = False) -> Table:
    """Matched budget, laid out as the paper: one row per (dataset, metric), one column per method."""
    df = df[~_few_shot(df)]
    picked = [row.pick(df) for row in layout.table4]
    header = ["Dataset", "Metric"] + [esc(label, tex) for label, _ in picked]
    body, notes = [], []
    for d in sorted(df["dataset"].unique()):
        for i, m in enumerate(layout.table4_metrics + ("params",)):
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
def table5(df: pd.DataFrame, layout: Layout, tex: bool = False) -> Table:
    df = df[~_few_shot(df)]
    datasets = sorted(df["dataset"].unique())
    header = ["Setting"] + [f"{d} {METRIC_LABELS[m]}" for d in datasets for m in ("auc", "uauc")]
    body = []
    for section in layout.table5:
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


def table6(df: pd.DataFrame, layout: Layout, tex: bool = False) -> Table:
    """Trainable params, train and inference time as ratios to the baseline row (LoRA-only with
    trainable MF) of the same suite and dataset, plus test AUC / UAUC. Times are the medians of
    timed steps on a fixed batch when the records have them, else whole-run wall times (marked)."""
    df = df[~_few_shot(df)]
    header = ["Dataset", "Method", "Params", "Tr.", "Inf.", "AUC", "UAUC"]
    body, notes = [], []
    if layout.table6_baseline is None:
        return header, body, ["the layout names no Table 6 baseline"]
    for d in sorted(df["dataset"].unique()):
        dd = df[df["dataset"] == d]
        _, base = layout.table6_baseline.pick(dd)
        for section in layout.table6:
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
    notes.append(f"Measured on: {', '.join(devices) or 'unknown device'}. Ratios to {layout.table6_baseline.label} "
                 "of the same suite and dataset; ʷ = whole-run wall time (the record has no step timings).")
    return header, body, notes


# ---- Table 7 --------------------------------------------------------------------------------
def table7(df: pd.DataFrame, layout: Layout, tex: bool = False) -> Table:
    """Few-shot (TALLRec protocol): one row per (dataset, training-sample count), test AUC per method."""
    fs = df[_few_shot(df)]
    header = ["Dataset", "Few-shot"] + [esc(r.label, tex) for r in layout.table7]
    body = []
    for (source, n), g in sorted(fs.groupby(["source", "few_shot"])):
        body.append([esc(str(source), tex), str(int(n))]
                    + [_cell(row.pick(g)[1], "test/auc") for row in layout.table7])
    return header, body, ["Test AUC; train = a seeded sample of that many rows (valid / test untouched)."] if body else []


# ---- Table 6 from `bench efficiency` --------------------------------------------------------
def table6_benchmark(rec: dict[str, Any], layout: Layout, tex: bool = False) -> Table:
    """One efficiency record: every LLM method's ratios to the baseline, measured in one process.
    Two parameter counts side by side: live (what the forward uses) and as published (what the
    method's published code counts as trainable, unused parameters included: the paper's kind)."""
    labels = {}
    for r in ([layout.table6_baseline] if layout.table6_baseline else []) + [r for s in layout.table6 for r in s.rows]:
        labels.setdefault((r.method, r.variants[0]), r.label)
    header = ["Method", "Trainable params (live)", "Params (live)", "Trainable params (as published)",
              "Params (as published)", "Tr.", "Inf.", "train step ms", "infer step ms", "peak GiB"]
    body = []
    for e in rec["entries"]:
        label = labels.get((e["method"], e["variant"]), f"{e['method']} ({e['variant']})")
        peak = e.get("peak_mem_bytes")
        timed = "train_step_s" in e
        published = e.get("params_trainable_as_published")  # records before both counts: missing
        body.append([esc(label, tex), f"{e['params_trainable']:,}", f"{e['ratio']['params']:.3f}",
                     MISSING if published is None else f"{published:,}",
                     MISSING if published is None else f"{e['ratio']['params_as_published']:.3f}",
                     f"{e['ratio']['train_step']:.3f}" if timed else MISSING,
                     f"{e['ratio']['infer_step']:.3f}" if timed else MISSING,
                     f"{1000 * e['train_step_s']:.1f}" if timed else MISSING,
                     f"{1000 * e['infer_step_s']:.1f}" if timed else MISSING,
                     f"{peak / 2**30:.2f}" if peak else MISSING])
    counts = ("Live parameters are those the forward uses; as published adds what a method's published code "
              "holds with requires_grad but never runs (e.g. a Q-Former's unused word / position embeddings and "
              "text feed-forwards), as the paper's Table 6 counts.")
    if rec.get("params_only"):
        return header, body, [f"Backbone {rec['backbone']}, trainable parameters only: every model built on PyTorch's "
                              "meta device (shapes, no storage), nothing timed; ratios to the first row; CF "
                              "embeddings of the CF models' shapes.", counts]
    precision = f" ({rec['dtype']})" if "dtype" in rec else ""
    note = (f"Backbone {rec['backbone']} on {rec['device_name']}{precision}; fixed batches of {rec['batch_size']} (train) / "
            f"{rec['eval_batch_size']} (inference) {rec['dataset']} prompts; median of {rec['repeats']} timed steps "
            f"after {rec['warmup']} warm-up steps{', synchronised on CUDA' if str(rec['device']).startswith('cuda') else ''}; "
            "ratios to the first row; no step updates the weights"
            f"{' (random: ratios do not depend on weight values)' if str(rec['backbone']).startswith('random:') else ''}"
            "; CF embeddings are seeded random tables of the CF models' shapes.")
    return header, body, [note, counts]


def scoring_speed_benchmark(rec: dict[str, Any]) -> Table:
    """One scoring-speed record: the harness scorer against a plain Hugging Face loop, each at
    every precision measured; speed-ups against the plain loop at the device's default precision
    and against the plain loop at the same precision."""
    header = ["Path", "Precision", "Batch", "Prompts/s", "Seconds", "Speed-up", "Same-precision speed-up",
              "Max abs score diff", "Spearman"]
    anchor = rec["plain"]
    plains = rec.get("plain_by_dtype") or {anchor.get("dtype", ""): anchor}
    body = [["plain HF loop", name, str(p["batch"]), f"{p['prompts_per_s']:.2f}", f"{p['seconds']:.1f}",
             f"x{anchor['seconds'] / p['seconds']:.2f}", "x1.00", f"{p.get('max_abs_score_diff', 0.0):.2g}", ""]
            for name, p in plains.items()]
    harness = rec["harness"] if isinstance(rec["harness"], list) else [  # records before precisions were listed
        {**rec["harness"], "speedup": rec["speedup"], "max_abs_score_diff": rec["max_abs_score_diff"]}]
    body += [["harness scorer", e.get("dtype", ""), str(e["batch"]), f"{e['prompts_per_s']:.2f}", f"{e['seconds']:.1f}",
              f"x{e['speedup']:.2f}", f"x{e['speedup_same_precision']:.2f}" if "speedup_same_precision" in e else "",
              f"{e['max_abs_score_diff']:.2g}", f"{e['spearman_vs_plain']:.4f}" if "spearman_vs_plain" in e else ""]
             for e in harness]
    shared = rec.get("rows_sharing_a_prefix")
    users = "" if shared is None else f" of {rec['users']} whole users, {shared} of them sharing a cached prefix"
    prompt = f"{rec['prompt']} prompt, " if "prompt" in rec else ""
    notes = [f"Backbone {rec['backbone']} on {rec['device_name']}: {rec['n_prompts']} {rec['dataset']} test "
             f"prompts ({prompt}mean {rec['mean_tokens']:.0f} tokens){users}. Speed-ups, score differences and rank "
             f"correlation are against the plain loop in {anchor.get('dtype', 'its default precision')}."]
    pos = rec.get("token_positions")
    if pos:
        notes.append(f"Token positions run: plain loop {pos['plain_padded']:,} (padded), harness "
                     f"{pos['harness_unpadded']:,} (before padding); any prefix sharing runs at least "
                     f"{pos['prefix_trie_bound']:,}.")
    return header, body, notes


def overhead_benchmark(rec: dict[str, Any]) -> Table:
    """One overhead record: a whole harness run of each method against the library's own entry point."""
    header = ["Method", "Variant", "Harness s", "Quick start s", "Ratio", "Test AUC (harness / quick start)"]
    body = [[e["method"], e["variant"], f"{e['harness_s']:.1f}", f"{e['reference_s']:.1f}", f"{e['ratio']:.3f}",
             f"{e['harness_test_auc']:.4f} / {e['reference_test_auc']:.4f}"] for e in rec["entries"]]
    sets = ", ".join(f"{k}={v}" for k, v in rec.get("overrides", {}).items()) or "the methods' own configs"
    note = (f"{rec['dataset']} on {rec['device_name']}, {sets}; the harness run includes scoring valid and test, "
            "metrics, the embedding cache and the record; the first method's two paths ran once untimed first.")
    return header, body, [note]
