"""The paper's table layout (``bench/layouts/*.yaml``): which (method, variant) fills which row.

The layout is data, so the report code never names a method; a row's ``variant`` may be one
name or a list of acceptable ones (the first that has records wins)."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from bench.errors import BenchError

LAYOUT_DIR = Path(__file__).resolve().parent.parent / "layouts"
DEFAULT_LAYOUT = LAYOUT_DIR / "graphlora-paper.yaml"


@dataclasses.dataclass(frozen=True)
class Row:
    label: str
    method: str
    variants: tuple[str, ...] = ("default",)

    def pick(self, df: pd.DataFrame) -> tuple[str, pd.DataFrame]:
        """(display label, this row's records) — empty when none of its variants ran."""
        mine = df[df["method"] == self.method] if len(df) else df
        for i, v in enumerate(self.variants):
            g = mine[mine["variant"] == v]
            if len(g):
                return (self.label if i == 0 else f"{self.label} ({v})"), g
        return self.label, mine.iloc[0:0]


@dataclasses.dataclass(frozen=True)
class Section:
    name: str
    rows: tuple[Row, ...]


@dataclasses.dataclass(frozen=True)
class Layout:
    table3: tuple[Section, ...] = ()
    table4_metrics: tuple[str, ...] = ("auc", "uauc", "ndcg@10")
    table4: tuple[Row, ...] = ()
    table5: tuple[Section, ...] = ()
    table6_baseline: Row | None = None
    table6: tuple[Section, ...] = ()
    table7: tuple[Row, ...] = ()
    fig4_method: str | None = None
    fig4_pattern: str = r"layer-(\d+)"

    def layer_of(self, method: str, variant: str) -> int | None:
        if method != self.fig4_method:
            return None
        m = re.fullmatch(self.fig4_pattern, variant)
        return int(m.group(1)) if m else None


def _row(raw: Any, where: str) -> Row:
    if not isinstance(raw, dict) or "label" not in raw or "method" not in raw:
        raise BenchError(f"layout {where}: a row needs `label` and `method`, got {raw!r}",
                         "write rows as {label: ..., method: ..., variant: ...}")
    v = raw.get("variant", "default")
    return Row(str(raw["label"]), str(raw["method"]), tuple(v) if isinstance(v, list) else (str(v),))


def _sections(raw: Any, key: str, where: str) -> tuple[Section, ...]:
    out = []
    for i, s in enumerate(raw or []):
        out.append(Section(str(s.get("name", "")), tuple(_row(r, f"{where}.{key}[{i}]") for r in s.get("rows", []))))
    return tuple(out)


def load_layout(path: Path = DEFAULT_LAYOUT) -> Layout:
    if not path.exists():
        raise BenchError(f"report layout {path} not found", f"pass --layout with a file like {DEFAULT_LAYOUT.name}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise BenchError(f"report layout {path} is not valid YAML: {e}", "fix the YAML syntax") from None
    where = path.name
    t4 = raw.get("table4") or {}
    t6 = raw.get("table6") or {}
    f4 = raw.get("fig4") or {}
    return Layout(
        table3=_sections((raw.get("table3") or {}).get("groups"), "groups", where),
        table4_metrics=tuple(t4.get("metrics", ("auc", "uauc", "ndcg@10"))),
        table4=tuple(_row(r, f"{where}.table4") for r in t4.get("rows", [])),
        table5=_sections((raw.get("table5") or {}).get("sections"), "sections", where),
        table6_baseline=_row(t6["baseline"], f"{where}.table6.baseline") if t6.get("baseline") else None,
        table6=_sections(t6.get("sections"), "sections", where),
        table7=tuple(_row(r, f"{where}.table7") for r in (raw.get("table7") or {}).get("rows", [])),
        fig4_method=f4.get("method"),
        fig4_pattern=f4.get("variant_pattern", r"layer-(\d+)"),
    )
