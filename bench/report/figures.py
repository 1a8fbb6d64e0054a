"""Fig. 3 (warm vs cold test AUC / UAUC per method) and Fig. 4 (valid AUC against the injection
layer), written as PNG and PDF. matplotlib runs headless (Agg)."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.report.layout import Layout  # noqa: E402
from bench.report.stats import mean_ci  # noqa: E402
from bench.report.tables import UNTRAINED, table3_rows, untrained  # noqa: E402


def _save(fig: plt.Figure, stem: Path) -> list[Path]:
    out = []
    for ext in ("png", "pdf"):
        path = stem.with_suffix(f".{ext}")
        # no creation date in the PDF: re-rendering unchanged records leaves the file unchanged
        fig.savefig(path, dpi=150, bbox_inches="tight", metadata={"CreationDate": None} if ext == "pdf" else None)
        out.append(path)
    plt.close(fig)
    return out


def fig3(df: pd.DataFrame, layout: Layout, dataset: str, stem: Path) -> list[Path]:
    """Grouped bars: warm and cold test AUC (left) and UAUC (right) for every method with records.
    Warm = user and item both seen in train (``not_cold``); error bars = 95% CI over seeds."""
    d = df[df["dataset"] == dataset]
    # a method whose kept state is its untrained start is labelled ° (as in the tables)
    rows = [(label + (UNTRAINED if untrained(g) else ""), g) for _, label, g in table3_rows(d, layout) if len(g)]
    if not rows:
        return []
    fig, axes = plt.subplots(1, 2, figsize=(max(7.0, 0.9 * len(rows) + 3), 4.2), sharey=False)
    x = np.arange(len(rows))
    for ax, metric, name in zip(axes, ("auc", "uauc"), ("AUC", "UAUC")):
        for k, (subset, colour) in enumerate((("warm", "#3b75af"), ("cold", "#ef8636"))):
            stats = [mean_ci(g[f"test/{subset}/{metric}"].tolist() if f"test/{subset}/{metric}" in g else []) for _, g in rows]
            means = [s[0] for s in stats]
            errs = [s[1] or 0.0 for s in stats]
            ax.bar(x + (k - 0.5) * 0.38, [0 if math.isnan(m) else m for m in means], 0.38,
                   yerr=errs if any(errs) else None, label=subset, color=colour, capsize=2)
            for xi, m in zip(x, means):
                if math.isnan(m):  # a missing bar is labelled, never drawn as zero
                    ax.text(xi + (k - 0.5) * 0.38, 0.02, "n/a", ha="center", rotation=90, fontsize=7)
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        ax.set_xticks(x, [label for label, _ in rows], rotation=45, ha="right", fontsize=8)
        ax.set_ylabel(f"test {name}")
        ax.set_ylim(0, 1)
        ax.set_title(f"{name}: warm vs cold ({dataset})")
        ax.legend(title="test rows", fontsize=8)
    marked = any(label.endswith(UNTRAINED) for label, _ in rows)
    fig.suptitle("Fig. 3 — warm / cold start (dashed: chance)"
                 + (f"; {UNTRAINED} = kept state is the untrained start" if marked else ""), fontsize=10)
    fig.tight_layout()
    return _save(fig, stem)


def fig4(df: pd.DataFrame, layout: Layout, dataset: str, stem: Path) -> list[Path]:
    """Valid AUC of the injection-layer sweep (mean over seeds, 95% CI bars)."""
    d = df[(df["dataset"] == dataset) & ~(df["few_shot"].notna() if "few_shot" in df else False)]
    layers, untrained_layers = {}, set()
    for (method, variant), g in d.groupby(["method", "variant"]):
        k = layout.layer_of(method, variant)
        if k is not None:
            layers[k] = mean_ci(g["valid/auc"].tolist())
            if untrained(g):
                untrained_layers.add(k)
    if not layers:
        return []
    ks = sorted(layers)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.25 * len(ks) + 3), 3.6))
    ax.errorbar(ks, [layers[k][0] for k in ks], yerr=[layers[k][1] or 0.0 for k in ks], marker="o", capsize=2)
    ax.set_xlabel("injection layer (0 = first transformer layer)")
    ax.set_ylabel("valid AUC")
    ax.set_xticks(ks, [f"{k}{UNTRAINED}" if k in untrained_layers else str(k) for k in ks])
    ax.grid(alpha=0.3)
    ax.set_title(f"Fig. 4 — GNN injection layer sweep ({dataset})"
                 + (f"\n{UNTRAINED} = kept state is the untrained start" if untrained_layers else ""))
    fig.tight_layout()
    return _save(fig, stem)
