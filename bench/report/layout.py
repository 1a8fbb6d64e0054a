"""The paper's table layout (``bench/layouts/*.yaml``): which (method, variant) fills which row.

The layout is data, so the report code never names a method; a row's ``variant`` may be one
name or a list of acceptable ones (the first that has records wins)."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError, field_validator

from bench.config import StrictModel, bad_value, read_yaml, schema_error, schema_field
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


ROW_FIX = "write rows as {label: ..., method: ..., variant: ...} (variant: one name or a list of them)"
FORMAT_FIX = f"see {DEFAULT_LAYOUT.name} beside bench/report/ for the format"


class _Row(StrictModel):
    label: str = schema_field(..., "a row label (a string)", ROW_FIX)
    method: str = schema_field(..., "a method name (a string)", ROW_FIX)
    variant: Any = schema_field(("default",), "a variant name or a list of them",
                                "e.g. variant: bce, or variant: [two-stage, one-stage] (the first with records wins)")

    @classmethod
    def check_mapping(cls, data: dict) -> None:
        if "label" not in data or "method" not in data:
            raise bad_value(f"a row needs `label` and `method`, got {data!r}", ROW_FIX)

    @field_validator("variant")
    @classmethod
    def _variant(cls, v: Any) -> tuple[str, ...]:
        if isinstance(v, str):
            return (v,)
        if isinstance(v, list) and v and all(isinstance(x, str) for x in v):
            return tuple(v)
        raise bad_value()

    def row(self) -> Row:
        return Row(self.label, self.method, self.variant)


class _Section(StrictModel):
    name: str = schema_field("", "a section name (a string)", "e.g. name: (A) Baselines")
    rows: list[_Row] | None = schema_field(None, "a list of rows", ROW_FIX)

    def section(self) -> Section:
        return Section(self.name, tuple(r.row() for r in self.rows or []))


_SECTIONS_FIX = "e.g. - {name: ..., rows: [{label: ..., method: ...}]}"


class _Table3(StrictModel):
    groups: list[_Section] | None = schema_field(None, "a list of sections", _SECTIONS_FIX)


class _Table4(StrictModel):
    metrics: list[str] | None = schema_field(None, "a list of metric names", "e.g. metrics: [auc, uauc, ndcg@10]")
    rows: list[_Row] | None = schema_field(None, "a list of rows", ROW_FIX)


class _Table5(StrictModel):
    sections: list[_Section] | None = schema_field(None, "a list of sections", _SECTIONS_FIX)


class _Table6(StrictModel):
    baseline: _Row | None = schema_field(None, "a row (a mapping)", ROW_FIX)
    sections: list[_Section] | None = schema_field(None, "a list of sections", _SECTIONS_FIX)


class _Table7(StrictModel):
    rows: list[_Row] | None = schema_field(None, "a list of rows", ROW_FIX)


class _Fig4(StrictModel):
    method: str | None = schema_field(None, "a method name (a string)", "e.g. fig4: {method: graphlora}")
    variant_pattern: str = schema_field(r"layer-(\d+)", "a regular expression whose first group is the layer",
                                        r'e.g. variant_pattern: "layer-(\\d+)"')

    @field_validator("variant_pattern")
    @classmethod
    def _pattern(cls, v: str) -> str:
        try:
            groups = re.compile(v).groups
        except re.error:
            raise bad_value() from None
        if not groups:
            raise bad_value()
        return v


def _table(what: str, example: str) -> Any:
    return schema_field(None, what, f"e.g. {example}")


class _LayoutFile(StrictModel):
    table3: _Table3 | None = _table("a mapping with `groups`", "table3: {groups: [{name: ..., rows: [...]}]}")
    table4: _Table4 | None = _table("a mapping with `metrics` and `rows`", "table4: {metrics: [auc], rows: [...]}")
    table5: _Table5 | None = _table("a mapping with `sections`", "table5: {sections: [{name: ..., rows: [...]}]}")
    table6: _Table6 | None = _table("a mapping with `baseline` and `sections`",
                                    "table6: {baseline: {label: ..., method: ...}, sections: [...]}")
    table7: _Table7 | None = _table("a mapping with `rows`", "table7: {rows: [{label: ..., method: ...}]}")
    fig4: _Fig4 | None = _table("a mapping with `method` and `variant_pattern`", "fig4: {method: graphlora}")


def load_layout(path: Path = DEFAULT_LAYOUT) -> Layout:
    path = Path(path)
    if not path.exists():
        raise BenchError(f"report layout {path} not found", f"pass --layout with a file like {DEFAULT_LAYOUT.name}")
    raw = read_yaml(path, "report layout", f"pass --layout with a file like {DEFAULT_LAYOUT.name}")
    if raw is None:
        raw = {}
    try:
        spec = _LayoutFile.model_validate(raw)
    except ValidationError as e:
        raise schema_error(e, _LayoutFile, raw, f"layout {path.name}", FORMAT_FIX) from None
    t3, t4, t5 = spec.table3 or _Table3(), spec.table4 or _Table4(), spec.table5 or _Table5()
    t6, t7, f4 = spec.table6 or _Table6(), spec.table7 or _Table7(), spec.fig4 or _Fig4()
    return Layout(
        table3=tuple(s.section() for s in t3.groups or []),
        table4_metrics=tuple(t4.metrics) if t4.metrics is not None else ("auc", "uauc", "ndcg@10"),
        table4=tuple(r.row() for r in t4.rows or []),
        table5=tuple(s.section() for s in t5.sections or []),
        table6_baseline=t6.baseline.row() if t6.baseline else None,
        table6=tuple(s.section() for s in t6.sections or []),
        table7=tuple(r.row() for r in t7.rows or []),
        fig4_method=f4.method,
        fig4_pattern=f4.variant_pattern,
    )
