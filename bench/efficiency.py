"""``python -m bench efficiency``: trainable parameters, train-step and inference-step time (and
peak memory on CUDA) of every LLM method in ONE process on ONE device, on the same fixed
batches, as ratios to the layout's Table 6 baseline (LoRA-only with trainable MF).

Two parameter counts per method: ``params_trainable``, the live parameters (what the forward
uses and training updates), and ``params_trainable_as_published``, what the method's published
code counts (``param_counts()["trainable_as_published"]`` where a method reports it, e.g.
parameters it holds with ``requires_grad`` but never runs; else the live count). The paper's
Table 6 ratios are the second kind.

A method is measured where it declares ``bench.method.Countable`` (built without training, its
trainable parameters counted) and has a timed step (``Method.step_timings``): the LLM methods.

No training happens: parameter and time ratios do not depend on weight values, so a
``random:<shape>`` backbone measures them at the paper's scale (``random:llama-7b``), and the CF
embeddings are seeded random tables of the right shape (no CF run, no RecBole needed).

Which methods come first, and their labels, are the rows of the layout's ``table6`` table: its
``baseline`` first (every ratio is to it), then its rows."""
from __future__ import annotations

import gc
import logging
import tempfile
from pathlib import Path
from typing import Any

from bench import records
from bench.errors import BenchError

log = logging.getLogger("bench")
KIND = "efficiency"
TITLE = "Table 6 — efficiency benchmark"  # the report's heading of a record, before its file's stem
TEX = "table6"  # the stem of its LaTeX table beside the report (None: Markdown only)
LAYOUT_KIND = "table6"  # the layout table whose baseline and rows this benchmark measures first


def layout_rows(layout: Any) -> list[Any]:
    """The baseline row, then the rows, of the layout's first ``LAYOUT_KIND`` table."""
    t = layout.table(LAYOUT_KIND)
    return ([t.baseline] if t and t.baseline else []) + list(t.rows if t else ())


def entries(layout_path: Path | None = None) -> list[tuple[str, str]]:
    """(method, variant): the layout's Table 6 rows (baseline first), then every other registered
    method that declares ``Countable`` and has a timed step, at its default variant."""
    from bench.method import Countable, Method, supports
    from bench.registry import get_method, method_table
    from bench.report.layout import DEFAULT_LAYOUT, load_layout

    out = [(r.method, r.variants[0]) for r in layout_rows(load_layout(layout_path or DEFAULT_LAYOUT))]
    for name in method_table():
        cls = get_method(name)
        if supports(cls, Countable) and cls.step_timings is not Method.step_timings:
            out.append((name, cls.default_variant))
    seen: set[tuple[str, str]] = set()
    return [e for e in out if not (e in seen or seen.add(e))]


def measure(backbone: str, device: str, dataset: str, data_dir: str | None, batch_size: int, eval_batch_size: int,
            warmup: int, repeats: int, methods: list[str] | None = None, seed: int = 0,
            subset_users: int | None = None, layout_path: Path | None = None, dtype: str = "auto",
            params_only: bool = False) -> dict[str, Any]:
    """The payload of an efficiency record. ``params_only``: trainable-parameter counts alone, every model built on PyTorch's meta
    device (shapes without storage), so the 7B shape's Table 6 parameter ratios need neither a
    GPU nor its memory; nothing is timed."""
    import torch

    from bench.config import build_config
    from bench.data import load_split
    from bench.method import Countable, RunContext, supports
    from bench.registry import get_method

    split = load_split(dataset, data_dir, subset_users, seed)
    todo = [e for e in entries(layout_path) if not methods or e[0] in methods]
    if not todo:
        raise BenchError(f"no LLM method left to measure (methods={methods})", "drop --methods or name registered LLM methods")
    from bench.llm.backbone import dtype_name, pick_dtype

    if params_only:
        device = "meta"
    precision = dtype_name(pick_dtype(torch.device(device), dtype))
    default = dtype_name(pick_dtype(torch.device(device)))
    results = []
    for method, variant in todo:
        cls = get_method(method)
        if not supports(cls, Countable):
            raise BenchError(f"{method} cannot be measured: it is not built and counted without training",
                             "measure only methods that declare bench.method.Countable (the LLM methods)")
        cfg = build_config(cls.Config, cls.variant_overrides(variant),
                           {"backbone": backbone, "batch_size": batch_size, "eval_batch_size": eval_batch_size,
                            "dtype": dtype})
        with tempfile.TemporaryDirectory(prefix="recbench-eff-") as work:
            ctx = RunContext(dataset=dataset, seed=seed, device=device, work_dir=Path(work), artifact_dir=Path(work) / "a",
                             split_fingerprint=split.fingerprint, run_name=f"efficiency:{method}:{variant}", progress=False,
                             random_cf=True)  # ratios depend on shapes only: no CF run needed
            m = cls(cfg, ctx)
            m.prepare(split)
            if device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            t = {} if params_only else m.step_timings(split.train, warmup, repeats)
            peak = torch.cuda.max_memory_allocated() if device.startswith("cuda") else None
            counts, live = m.param_counts(), m.trainable_count()
            # "as published": what the method's published code counts as trainable (every
            # requires_grad parameter, unused ones included), where a method reports it
            row = {"method": method, "variant": variant, "params_trainable": live,
                   "params_trainable_as_published": counts.get("trainable_as_published", live),
                   "params_total": counts["total"], **t, "peak_mem_bytes": peak}
            log.info("%s (%s): %s", method, variant, {k: v for k, v in row.items() if k not in ("method", "variant")})
            results.append(row)
            del m
        gc.collect()
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    base = results[0]
    for r in results:
        r["ratio"] = {"params": r["params_trainable"] / base["params_trainable"],
                      "params_as_published": r["params_trainable_as_published"] / base["params_trainable_as_published"]}
        if not params_only:
            r["ratio"].update(train_step=r["train_step_s"] / base["train_step_s"],
                              infer_step=r["infer_step_s"] / base["infer_step_s"])
    return {"backbone": backbone, "device": device, "device_name": "meta device (shapes only)" if params_only else None,
            "params_only": params_only, "dtype": None if params_only else precision,
            "default_dtype": not params_only and precision == default, "dataset": dataset,
            "split_fingerprint": split.fingerprint, "batch_size": batch_size, "eval_batch_size": eval_batch_size,
            "warmup": warmup, "repeats": repeats,
            "baseline": {"method": base["method"], "variant": base["variant"]}, "entries": results}


def write(record: dict[str, Any], out_dir: Path) -> Path:
    # a precision other than the device's default gets its own file beside the default record
    if record.get("params_only"):
        return records.write_benchmark(record, out_dir, KIND, tag="params")
    return records.write_benchmark(record, out_dir, KIND, tag="" if record.get("default_dtype", True) else record["dtype"])


def table(rec: dict[str, Any], layout: Any, tex: bool = False) -> tuple[list[str], list[list[str]], list[str]]:
    """One efficiency record: every LLM method's ratios to the baseline, measured in one process.
    Two parameter counts side by side: live (what the forward uses) and as published (what the
    method's published code counts as trainable, unused parameters included: the paper's kind)."""
    from bench.report.stats import MISSING
    from bench.report.tables import esc

    labels = {}
    for r in layout_rows(layout):
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
