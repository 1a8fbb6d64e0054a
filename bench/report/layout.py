"""The paper's table layout (``bench/layouts/*.yaml``): which tables the report renders, in which
order, with which caption, and which (method, variant) fills which row.

The layout is data, so the report code never names a method or a paper table: each top-level key
but ``fig4`` is one table (its name is the ``.tex`` file's stem), whose ``kind`` names the
renderer (``bench.report.tables.KINDS``; by default the key itself), with its ``caption`` and its
rows, as ``rows`` or in named ``sections`` (``groups`` is the same), plus what some renderers read
(``baseline``: the row ratios are taken to; ``metrics``). Another paper's tables are another
layout file. A row's ``variant`` may be one name or a list of acceptable ones (the first that has
records wins)."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import ValidationError, create_model, field_validator

from bench.config import StrictModel, bad_value, read_yaml, schema_error, schema_field
from bench.errors import BenchError, did_you_mean

LAYOUT_DIR = Path(__file__).resolve().parent.parent / "layouts"
DEFAULT_LAYOUT = LAYOUT_DIR / "graphlora-paper.yaml"
DEFAULT_METRICS = ("auc", "uauc", "ndcg@10")
FIGURES = ("fig4",)  # top-level keys that are not tables


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
    compare: str = "all"  # what a claims table compares between its two rows (bench.report.claims)


@dataclasses.dataclass(frozen=True)
class TableSpec:
    """One table: ``name`` (its id and ``.tex`` stem), ``kind`` (its renderer), ``caption``, its
    rows in sections (a table of plain ``rows``: one unnamed section), and the options some
    kinds read: ``baseline`` (the row ratios are to) and ``metrics`` (None: the kind's default)."""
    name: str
    kind: str
    caption: str
    sections: tuple[Section, ...] = ()
    baseline: Row | None = None
    metrics: tuple[str, ...] | None = None

    @property
    def rows(self) -> tuple[Row, ...]:
        return tuple(r for s in self.sections for r in s.rows)


@dataclasses.dataclass(frozen=True)
class Layout:
    tables: tuple[TableSpec, ...] = ()
    fig4_method: str | None = None
    fig4_pattern: str = r"layer-(\d+)"

    def table(self, kind: str) -> TableSpec | None:
        """The first table rendered as ``kind`` (None: the layout has none)."""
        return next((t for t in self.tables if t.kind == kind), None)

    def layer_of(self, method: str, variant: str) -> int | None:
        if method != self.fig4_method:
            return None
        m = re.fullmatch(self.fig4_pattern, variant)
        return int(m.group(1)) if m else None

    # views of the first table of each of the GraphLoRA paper's kinds, for callers that ask by kind
    def _sections(self, kind: str) -> tuple[Section, ...]:
        t = self.table(kind)
        return t.sections if t else ()

    def _rows(self, kind: str) -> tuple[Row, ...]:
        t = self.table(kind)
        return t.rows if t else ()

    table3 = property(lambda self: self._sections("table3"))
    table4 = property(lambda self: self._rows("table4"))
    table5 = property(lambda self: self._sections("table5"))
    table6 = property(lambda self: self._sections("table6"))
    table7 = property(lambda self: self._rows("table7"))

    @property
    def table6_baseline(self) -> Row | None:
        t = self.table("table6")
        return t.baseline if t else None

    @property
    def table4_metrics(self) -> tuple[str, ...]:
        t = self.table("table4")
        return t.metrics if t and t.metrics is not None else DEFAULT_METRICS


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
    compare: Literal["all", "cold-minus-warm"] | None = schema_field(
        None, "all or cold-minus-warm", "e.g. compare: cold-minus-warm (claims tables only)")

    def section(self) -> Section:
        return Section(self.name, tuple(r.row() for r in self.rows or []), self.compare or "all")


_SECTIONS_FIX = "e.g. - {name: ..., rows: [{label: ..., method: ...}]}"
_OPTIONS = ("baseline", "metrics")


def _kinds() -> dict[str, Any]:
    from bench.report.tables import KINDS  # the renderers (tables imports this module)

    return KINDS


class _Table(StrictModel):
    kind: str | None = schema_field(None, "a table kind (a string)", "e.g. kind: table3 (default: the table's key)")
    caption: str | None = schema_field(None, "a caption (a string)", "e.g. caption: Table 3 — main results")
    rows: list[_Row] | None = schema_field(None, "a list of rows", ROW_FIX)
    sections: list[_Section] | None = schema_field(None, "a list of sections", _SECTIONS_FIX)
    groups: list[_Section] | None = schema_field(None, "a list of sections", _SECTIONS_FIX)
    baseline: _Row | None = schema_field(None, "a row (a mapping)", ROW_FIX)
    metrics: list[str] | None = schema_field(None, "a list of metric names", "e.g. metrics: [auc, uauc, ndcg@10]")

    @classmethod
    def check_mapping(cls, data: dict) -> None:
        given = [k for k in ("rows", "sections", "groups") if data.get(k) is not None]
        if len(given) > 1:
            raise bad_value(f"a table has `rows` or `sections` (`groups`), not {' and '.join(given)}",
                            "list plain rows under `rows`, or named sections under `sections`")

    def spec(self, name: str) -> TableSpec:
        sections = self.sections or self.groups
        return TableSpec(
            name=name, kind=self.kind or name, caption=self.caption if self.caption is not None else name,
            sections=(tuple(s.section() for s in sections) if sections is not None
                      else (Section("", tuple(r.row() for r in self.rows)),) if self.rows else ()),
            baseline=self.baseline.row() if self.baseline else None,
            metrics=tuple(self.metrics) if self.metrics is not None else None)


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


_TABLE_WHAT = "a mapping with `kind`, `caption` and `rows` or `sections`"
_TABLE_FIX = "e.g. table3: {kind: table3, caption: ..., sections: [{name: ..., rows: [...]}]}"


def _file_model(raw: dict, where: str) -> type[StrictModel]:
    """The schema of this layout file: ``fig4`` and one table per other key, a key without a
    ``kind`` naming a renderer kind itself."""
    kinds = _kinds()
    fields: dict[str, Any] = {"fig4": (_Fig4 | None, schema_field(None, "a mapping with `method` and `variant_pattern`",
                                                                   "e.g. fig4: {method: graphlora}"))}
    for key, value in raw.items():
        if key in FIGURES:
            continue
        if not isinstance(key, str):
            raise BenchError(f"{where}: the table name {key!r} must be a string", "quote it, e.g. '1': {}")
        if key not in kinds and not (isinstance(value, dict) and "kind" in value):
            raise BenchError(f"{where}: unknown key {key!r}",
                             f"{did_you_mean(key, [*kinds, *FIGURES])} (or give the table a `kind`)")
        fields[key] = (_Table | None, schema_field(None, _TABLE_WHAT, _TABLE_FIX))
    return create_model("_LayoutFile", __base__=StrictModel, **fields)


def _check_claims(t: TableSpec, where: str, key: str) -> None:
    """A claims table's sections each compare two rows; ``compare`` belongs to claims tables only."""
    raw_compare = any(s.compare != "all" for s in t.sections)
    if t.kind != "claims":
        if raw_compare:
            raise BenchError(f"{where}: {key}: a {t.kind} table reads no `compare`",
                             "drop compare: (it says what a claims table compares)")
        return
    for s in t.sections:
        if len(s.rows) != 2:
            raise BenchError(f"{where}: {key}: claim {s.name!r} has {len(s.rows)} rows",
                             "give each claim two rows: the claimed winner, then what it is claimed to beat")


def load_layout(path: Path = DEFAULT_LAYOUT) -> Layout:
    path = Path(path)
    if not path.exists():
        raise BenchError(f"report layout {path} not found", f"pass --layout with a file like {DEFAULT_LAYOUT.name}")
    raw = read_yaml(path, "report layout", f"pass --layout with a file like {DEFAULT_LAYOUT.name}")
    if raw is None:
        raw = {}
    where = f"layout {path.name}"
    model = _file_model(raw if isinstance(raw, dict) else {}, where)
    try:
        spec = model.model_validate(raw)
    except ValidationError as e:
        raise schema_error(e, model, raw, where, FORMAT_FIX) from None
    kinds = _kinds()
    tables = []
    for key in raw:
        if key in FIGURES:
            continue
        t = (getattr(spec, key) or _Table()).spec(key)
        if t.kind not in kinds:
            raise BenchError(f"{where}: {key}.kind: unknown table kind {t.kind!r}", did_you_mean(t.kind, kinds))
        unused = [k for k in _OPTIONS if getattr(t, k) is not None and k not in kinds[t.kind].options]
        if unused:
            raise BenchError(f"{where}: {key}: a {t.kind} table reads no `{unused[0]}`",
                             f"{t.kind} reads {', '.join(kinds[t.kind].options) or 'no options'}; drop it")
        _check_claims(t, where, key)
        tables.append(t)
    f4 = spec.fig4 or _Fig4()
    return Layout(tables=tuple(tables), fig4_method=f4.method, fig4_pattern=f4.variant_pattern)
