"""Datasets declared in YAML, no code: a suite's ``datasets:`` entry with ``declare:`` (inline,
or the path of a dataset YAML file) names the tables, the column mapping, what a positive is,
and how to split; ``load_split`` then treats it like a built-in dataset (same CoLLM protocol,
checks, cache, fingerprints, warm/cold flags, statistics). See docs/datasets.md.

Three sources, exactly one per declaration:

* ``interactions:`` one table (CSV / TSV / Parquet / RecBole atomic), split by time with
  ``split:`` (month ranges as the built-ins, date cut points, or a time-ordered ratio);
* ``train:`` / ``valid:`` / ``test:`` a pre-made split, one table per part;
* ``recbole:`` a folder of RecBole atomic files ``<name>.inter`` / ``<name>.item``.

Titles come from ``items:`` (or the interactions table itself when it has the title column).
Relative paths are relative to the YAML file that holds the declaration.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import Field, ValidationError, field_validator, model_validator

from bench.config import StrictModel, bad_value, read_yaml, schema_error, schema_field
from bench.data.protocol import build_split, by_month
from bench.data.schema import Split
from bench.errors import BenchError

# bumped whenever reading or splitting a declaration changes: part of every declared cache key
VERSION = 1
DOC = "see docs/datasets.md for the format"

# logical column -> the name it has when the declaration maps nothing
DEFAULT_COLUMNS = {"user": "user", "item": "item", "rating": "rating", "label": "label",
                   "timestamp": "timestamp", "title": "title", "year": None}
# RecBole's standard field names (its atomic files: ``user_id:token`` ...)
RECBOLE_COLUMNS = {**DEFAULT_COLUMNS, "user": "user_id", "item": "item_id"}
RULE = re.compile(r"^\s*([A-Za-z_][\w.-]*)\s*(>=|<=|==|!=|>|<)\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*$")
OPS = {">=": "ge", "<=": "le", "==": "eq", "!=": "ne", ">": "gt", "<": "lt"}
READERS = ".csv (comma), .tsv / .tab (tab), .parquet, or RecBole's .inter / .item (tab, name:type headers)"

Fraction = Annotated[float, Field(gt=0, le=1)]


# --------------------------------------------------------------------------- schema

class Columns(StrictModel):
    user: str | None = schema_field(None, "a column name", "e.g. columns: {user: user_id}")
    item: str | None = schema_field(None, "a column name", "e.g. columns: {item: movie_id}")
    rating: str | None = schema_field(None, "a column name", "e.g. columns: {rating: stars}")
    label: str | None = schema_field(None, "a column name", "e.g. columns: {label: clicked}")
    timestamp: str | None = schema_field(
        None, "a column name", "e.g. columns: {timestamp: ts} (unix seconds, or dates)")
    title: str | None = schema_field(None, "a column name", "e.g. columns: {title: movie_title}")
    year: str | None = schema_field(None, "a column name",
                                    "e.g. columns: {year: release_year} (titles become 'Title (1995)')")


class Table(StrictModel):
    path: str = schema_field(..., "a file path (a string)",
                             "e.g. path: ratings.csv (relative to the YAML file that declares it)")
    sep: str | None = schema_field(None, "a one-character separator", "e.g. sep: ';' (default: from the suffix)",
                                   min_length=1, max_length=1)
    columns: Columns | None = schema_field(None, "a mapping of logical column to the file's column",
                                           "e.g. columns: {user: uid} (overrides the declaration's columns here)")


TableSpec = Annotated[str | Table, Field(description="a path, or a mapping {path, sep, columns}")]


class Months(StrictModel):
    origin: str = schema_field(..., "a month 'YYYY-MM'", "e.g. origin: '1997-09' (month 0)",
                               pattern=r"^\d{4}-(0[1-9]|1[0-2])$")
    train: list[int] = schema_field(..., "a pair [first, last] of month numbers", "e.g. train: [0, 4]",
                                min_length=2, max_length=2)
    valid: list[int] = schema_field(..., "a pair [first, last] of month numbers", "e.g. valid: [5, 5]",
                                min_length=2, max_length=2)
    test: list[int] = schema_field(..., "a pair [first, last] of month numbers", "e.g. test: [6, 7]",
                                min_length=2, max_length=2)

    @model_validator(mode="after")
    def _order(self) -> "Months":
        for name in ("train", "valid", "test"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise bad_value(f"months.{name} = [{lo}, {hi}] ends before it starts",
                                f"give [first, last] with first <= last, e.g. {name}: [{hi}, {lo}]")
        return self


Day = str | datetime.date


class Dates(StrictModel):
    valid: Day = schema_field(..., "a date", "e.g. valid: 1998-02-01 (valid starts there, train ends before it)")
    test: Day = schema_field(..., "a date", "e.g. test: 1998-03-01 (test starts there)")
    start: Day | None = schema_field(None, "a date", "e.g. start: 1997-09-01 (rows before it are dropped)")
    end: Day | None = schema_field(None, "a date", "e.g. end: 1998-05-01 (rows from it on are dropped)")

    @field_validator("valid", "test", "start", "end")
    @classmethod
    def _a_day(cls, v: Day | None) -> Day | None:
        """Each date parses when the suite loads (not later, as a traceback, when the data does)."""
        if v is not None:
            try:
                _day(v)
            except (ValueError, TypeError):
                raise bad_value(f"{v!r} is not a date", "give an ISO date, e.g. 1998-02-01") from None
        return v

    @model_validator(mode="after")
    def _order(self) -> "Dates":
        if _day(self.valid) > _day(self.test):
            raise bad_value(f"dates.valid {self.valid} comes after dates.test {self.test}",
                            "valid starts before test: swap them")
        return self


class SplitRule(StrictModel):
    months: Months | None = schema_field(None, "a mapping {origin, train, valid, test}",
                                         "e.g. months: {origin: '1997-09', train: [0, 4], valid: [5, 5], test: [6, 7]}")
    dates: Dates | None = schema_field(None, "a mapping {valid, test[, start, end]}",
                                       "e.g. dates: {valid: 1998-02-01, test: 1998-03-01}")
    ratio: list[Fraction] | None = schema_field(
        None, "three fractions [train, valid, test] summing to 1", "e.g. ratio: [0.8, 0.1, 0.1]",
        min_length=3, max_length=3)

    @model_validator(mode="after")
    def _one(self) -> "SplitRule":
        given = [k for k in ("months", "dates", "ratio") if getattr(self, k) is not None]
        if len(given) != 1:
            raise bad_value(f"split needs exactly one of months, dates, ratio (got {given or 'none'})",
                            "e.g. split: {ratio: [0.8, 0.1, 0.1]} or split: {months: {origin: '1997-09', "
                            "train: [0, 4], valid: [5, 5], test: [6, 7]}}")
        if self.ratio is not None and abs(sum(self.ratio) - 1) > 1e-6:
            raise bad_value(f"split.ratio {list(self.ratio)} sums to {sum(self.ratio):g}, not 1",
                            "e.g. ratio: [0.8, 0.1, 0.1]")
        return self


class Declaration(StrictModel):
    description: str | None = schema_field(None, "a string", "e.g. description: where the data comes from")
    interactions: TableSpec | None = schema_field(
        None, "a path, or a mapping {path, sep, columns}", "e.g. interactions: ratings.csv")
    train: TableSpec | None = schema_field(None, "a path, or a mapping {path, sep, columns}", "e.g. train: train.csv")
    valid: TableSpec | None = schema_field(None, "a path, or a mapping {path, sep, columns}", "e.g. valid: valid.csv")
    test: TableSpec | None = schema_field(None, "a path, or a mapping {path, sep, columns}", "e.g. test: test.csv")
    recbole: str | None = schema_field(None, "a folder path (a string)",
                                       "e.g. recbole: data/ml-100k (holding ml-100k.inter and ml-100k.item)")
    items: TableSpec | None = schema_field(None, "a path, or a mapping {path, sep, columns}",
                                           "e.g. items: items.csv (item id and title columns)")
    columns: Columns | None = schema_field(None, "a mapping of logical column to the file's column",
                                           "e.g. columns: {user: uid, item: iid, rating: stars, timestamp: ts}")
    label_rule: str = schema_field(..., "a rule '<column> <op> <number>'",
                                   "e.g. label_rule: rating >= 4, or label_rule: label == 1")
    split: SplitRule | None = schema_field(None, "a mapping with one of months, dates, ratio",
                                           "e.g. split: {ratio: [0.8, 0.1, 0.1]}")
    valid_small: Fraction = schema_field(0.5, "a fraction in (0, 1]", "e.g. valid_small: 0.5 (of valid, seeded)")
    seed: Annotated[int, Field(ge=0)] = schema_field(2023, "an int >= 0", "e.g. seed: 2023 (the valid_small sample)")
    domain: str = schema_field("movie", "a noun of lowercase letters", "e.g. domain: book (the prompts' word)",
                               pattern=r"^[a-z][a-z ]*[a-z]$")
    domain_plural: str | None = schema_field(None, "a noun of lowercase letters",
                                             "e.g. domain_plural: people (default: the domain + 's')",
                                             pattern=r"^[a-z][a-z ]*[a-z]$")
    timestamp_unit: Literal["s", "ms"] = schema_field("s", "s or ms", "e.g. timestamp_unit: ms (numeric timestamps)")
    relative_to: Literal["file", "data_dir"] = schema_field(
        "file", "file or data_dir",
        "e.g. relative_to: data_dir (relative paths from --data-dir / RECBENCH_DATA_DIR; default: the YAML file)")

    @field_validator("label_rule")
    @classmethod
    def _rule(cls, v: str) -> str:
        if not RULE.match(v):
            raise bad_value(f"{v!r} is not '<column> <op> <number>'",
                            "e.g. label_rule: rating >= 4 (ops: >=, >, <=, <, ==, !=)")
        return v

    @model_validator(mode="after")
    def _sources(self) -> "Declaration":
        parts = [p for p in ("train", "valid", "test") if getattr(self, p) is not None]
        sources = [s for s, on in (("interactions", self.interactions is not None), ("recbole", self.recbole is not None),
                                   ("train/valid/test", bool(parts))) if on]
        if len(sources) != 1:
            raise bad_value(f"a declaration needs exactly one of interactions, recbole, train/valid/test "
                            f"(got {', '.join(sources) or 'none'})",
                            "e.g. interactions: ratings.csv with split:, or train: / valid: / test: files; " + DOC)
        if parts and len(parts) != 3:
            missing = [p for p in ("train", "valid", "test") if p not in parts]
            raise bad_value(f"a pre-made split needs train, valid and test tables (missing {', '.join(missing)})",
                            "give all three, e.g. test: test.csv")
        if parts and self.split is not None:
            raise bad_value("a pre-made split (train / valid / test tables) takes no split rule",
                            "drop split:, or give one interactions: table to split")
        if not parts and self.split is None:
            raise bad_value("split is missing: how the interactions are cut into train / valid / test",
                            "e.g. split: {ratio: [0.8, 0.1, 0.1]} (time-ordered) or split: {months: {origin: "
                            "'1997-09', train: [0, 4], valid: [5, 5], test: [6, 7]}}")
        return self


# --------------------------------------------------------------------------- resolved declaration

@dataclasses.dataclass(frozen=True)
class TableRef:
    role: str  # interactions / train / valid / test / items
    path: Path
    sep: str | None
    columns: tuple[tuple[str, str | None], ...]  # the effective logical -> file column mapping

    def column(self, logical: str) -> str | None:
        return dict(self.columns)[logical]


@dataclasses.dataclass(frozen=True)
class DeclaredDataset:
    """A validated declaration with its paths resolved: what ``DATASETS`` holds for a declared
    dataset (in place of a ``module:function`` loader)."""

    name: str
    decl: Declaration
    tables: tuple[TableRef, ...]
    origin: str  # the YAML file (and key) that declares it

    def __str__(self) -> str:
        return f"declared in {self.origin}"

    @property
    def needs_data_dir(self) -> bool:
        return self.decl.relative_to == "data_dir" and not all(t.path.is_absolute() for t in self.tables)

    def at(self, data_dir: Path | None) -> "DeclaredDataset":
        """This declaration with paths relative to the data dir resolved against ``data_dir``."""
        if not self.needs_data_dir:
            return self
        if data_dir is None:
            raise BenchError(f"dataset {self.name} ({self.origin}) reads files from the data directory, and none is set",
                             "pass --data-dir PATH or set RECBENCH_DATA_DIR")
        return dataclasses.replace(self, tables=tuple(dataclasses.replace(t, path=(Path(data_dir) / t.path).resolve())
                                                      for t in self.tables))

    @property
    def domain(self) -> str:
        """The Split's domain: the noun, or ``noun/plural`` where the plural is not noun + 's'."""
        plural = self.decl.domain_plural
        return self.decl.domain if plural in (None, self.decl.domain + "s") else f"{self.decl.domain}/{plural}"

    def table(self, role: str) -> TableRef | None:
        return next((t for t in self.tables if t.role == role), None)

    def check_files(self) -> None:
        for t in self.tables:
            if not t.path.is_file():
                raise BenchError(f"dataset {self.name}: {t.role} file {t.path} not found"
                                 + (" (it is a folder)" if t.path.is_dir() else ""),
                                 "fix the path (relative paths are relative to "
                                 f"{'the data dir' if self.decl.relative_to == 'data_dir' else 'the declaring file'}) "
                                 f"in {self.origin}, or create the file")

    def stamp(self) -> str:
        """Hash of the declaration and of every file's bytes: the cache key part that makes an
        edited declaration or file a different dataset (where the files lie is not part of it:
        the same files moved are the same dataset)."""
        self.check_files()
        decl = self.decl.model_dump(mode="json", exclude={"description", "relative_to", "interactions", "train",
                                                            "valid", "test", "items", "recbole", "columns"})
        h = hashlib.sha256(json.dumps({"version": VERSION, "declaration": decl,
                                       "tables": [[t.role, t.path.suffix.lower(), t.sep, list(t.columns)]
                                                  for t in self.tables]},
                                      sort_keys=True, default=str).encode())
        for t in self.tables:
            h.update(t.role.encode())
            with open(t.path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        return h.hexdigest()[:16]

    def load(self) -> Split:
        return _build(self)


def parse(name: str, raw: Any, base: Path, where: str, origin: str | None = None) -> DeclaredDataset:
    """The declaration ``raw`` (a mapping, or the path of a YAML file holding one) of dataset
    ``name``, validated, with relative paths resolved against ``base`` (the declaring file's
    folder). ``where`` prefixes errors (e.g. ``suite my: datasets.toy.declare``); ``origin``
    names the declaring file in the fixes of later errors (default: ``where``)."""
    origin = origin or where
    if isinstance(raw, str):
        path = Path(raw).expanduser()
        path = path if path.is_absolute() else base / path
        if not path.is_file():
            raise BenchError(f"{where}: dataset file {path} not found",
                             "give the path of a dataset YAML file (relative to the suite file), or declare it inline")
        raw = read_yaml(path, "dataset file", f"{DOC}")
        base, where, origin = path.resolve().parent, f"dataset file {path}", str(path.resolve())
    try:
        decl = Declaration.model_validate(raw)
    except ValidationError as e:
        raise schema_error(e, Declaration, raw, where, DOC) from None
    top = {**(RECBOLE_COLUMNS if decl.recbole else DEFAULT_COLUMNS),
           **(decl.columns.model_dump(exclude_unset=True) if decl.columns else {})}

    def where_is(path: str | Path) -> Path:
        path = Path(path).expanduser()
        if path.is_absolute():
            return path.resolve()
        return path if decl.relative_to == "data_dir" else (base / path).resolve()  # data dir: at load time

    def ref(role: str, spec: str | Table, default_sep: str | None = None) -> TableRef:
        table = Table(path=spec) if isinstance(spec, str) else spec
        cols = {**top, **(table.columns.model_dump(exclude_unset=True) if table.columns else {})}
        return TableRef(role, where_is(table.path), table.sep or default_sep, tuple(cols.items()))

    tables: list[TableRef] = []
    if decl.recbole:
        folder = where_is(decl.recbole)
        tables.append(ref("interactions", str(folder / f"{folder.name}.inter")))
        tables.append(ref("items", decl.items or str(folder / f"{folder.name}.item")))
    else:
        for role in ("interactions", "train", "valid", "test", "items"):
            spec = getattr(decl, role)
            if spec is not None:
                tables.append(ref(role, spec))
    return DeclaredDataset(name, decl, tuple(tables), origin)


# --------------------------------------------------------------------------- reading

def read_table(t: TableRef, dataset: str) -> pd.DataFrame:
    suffix = t.path.suffix.lower()
    where = f"dataset {dataset}: {t.role} file {t.path}"
    try:
        if suffix == ".parquet" and t.sep is None:
            try:
                return pd.read_parquet(t.path)
            except ImportError as e:
                raise BenchError(f"{where}: reading Parquet needs pyarrow, which is not installed ({e})",
                                 "pip install pyarrow, or give the table as CSV / TSV") from None
        if suffix in (".inter", ".item", ".user") and t.sep is None:
            df = pd.read_csv(t.path, sep="\t")
            df.columns = [str(c).split(":")[0] for c in df.columns]
            return df
        sep = t.sep or {".csv": ",", ".tsv": "\t", ".tab": "\t"}.get(suffix)
        if sep is None:
            raise BenchError(f"{where}: cannot tell the format from the suffix {suffix or '(none)'!r}",
                             f"name it {READERS}, or give the separator: {{path: ..., sep: ','}}")
        return pd.read_csv(t.path, sep=sep)
    except BenchError:
        raise
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise BenchError(f"{where} cannot be read as a table: {type(e).__name__}: {e}",
                         f"give a {READERS} file with a header row") from None


def _column(df: pd.DataFrame, t: TableRef, logical: str, dataset: str, origin: str, why: str = "") -> str:
    name = t.column(logical) if logical in DEFAULT_COLUMNS else logical
    if name is None or name not in df.columns:
        shown = name if name is not None else "(unmapped)"
        fix = (f"map it in {origin}: columns: {{{logical}: <one of its columns>}}, or rename the file's column"
               if logical in DEFAULT_COLUMNS else
               f"base label_rule in {origin} on one of its columns, or on rating / label mapped with "
               "columns: {rating: <column>}")
        raise BenchError(f"dataset {dataset}: {t.role} file {t.path} has no column {shown!r} (the {logical} column"
                         f"{why}; it has {list(df.columns)})", fix)
    return name


def _timestamps(values: pd.Series, unit: str, where: str) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values):
        return values // 1000 if unit == "ms" else values
    try:
        t = pd.to_datetime(values, utc=True)
    except (ValueError, TypeError) as e:
        raise BenchError(f"{where}: timestamps are neither numbers nor dates ({e})",
                         "give unix seconds (or timestamp_unit: ms) or ISO dates such as 1998-02-01") from None
    return (t - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)


def _id_text(value: Any) -> str:
    """An id as text, a whole float written as the int it stands for (101.0 -> "101")."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _day(value: Any) -> pd.Timestamp:
    return pd.Timestamp(str(value), tz="UTC")


def _by_dates(d: Dates):
    valid, test = _day(d.valid), _day(d.test)
    start, end = (_day(d.start) if d.start else None), (_day(d.end) if d.end else None)

    def assign(df: pd.DataFrame) -> pd.Series:
        t = pd.to_datetime(df["timestamp"], unit="s", utc=True)
        out = pd.Series(pd.NA, index=df.index, dtype="object")
        out[t < valid] = "train"
        out[(t >= valid) & (t < test)] = "valid"
        out[t >= test] = "test"
        if start is not None:
            out[t < start] = pd.NA
        if end is not None:
            out[t >= end] = pd.NA
        return out

    return assign


def _by_ratio(ratio: list[float]):
    def assign(df: pd.DataFrame) -> pd.Series:
        order = df["timestamp"].sort_values(kind="stable").index
        n = len(order)
        n_train, n_valid = int(round(n * ratio[0])), int(round(n * ratio[1]))
        out = pd.Series("test", index=df.index, dtype="object")
        out[order[:n_train]] = "train"
        out[order[n_train:n_train + n_valid]] = "valid"
        return out

    return assign


def _build(ds: DeclaredDataset) -> Split:
    decl, name = ds.decl, ds.name
    m = RULE.match(decl.label_rule)
    rule_col, op, threshold = m.group(1), OPS[m.group(2)], float(m.group(3))
    notes: list[str] = []
    roles = ("train", "valid", "test") if ds.table("train") else ("interactions",)
    frames, parts = [], []
    for role in roles:
        t = ds.table(role)
        raw = read_table(t, name)
        cols = {k: _column(raw, t, k, name, ds.origin) for k in ("user", "item")}
        if t.column("timestamp") is None and role != "interactions":
            ts = pd.Series(range(len(raw)), index=raw.index, dtype="int64") + sum(len(f) for f in frames)
        else:
            ts = raw[_column(raw, t, "timestamp", name, ds.origin,
                             ", or columns: {timestamp: null} to order a pre-made split by file order"
                             if role != "interactions" else "")]
            ts = _timestamps(ts, decl.timestamp_unit, f"dataset {name}: {t.role} file {t.path}")
        rcol = _column(raw, t, rule_col, name, ds.origin, f" that label_rule {decl.label_rule!r} reads")
        values = pd.to_numeric(raw[rcol], errors="coerce")
        bad = raw[rcol].notna() & values.isna()
        if bad.any():
            raise BenchError(f"dataset {name}: {t.role} file {t.path}: column {rcol!r} holds non-numbers "
                             f"(e.g. {raw.loc[bad, rcol].iloc[0]!r}) that label_rule {decl.label_rule!r} cannot compare",
                             "make the column numeric, or base label_rule on another column")
        df = pd.DataFrame({"user": raw[cols["user"]], "item": raw[cols["item"]], "timestamp": ts, "value": values})
        if not ds.table("items"):
            df["title"] = raw[_column(raw, t, "title", name, ds.origin, ", or give an items: table")]
        frames.append(df)
        parts.extend([role] * len(df))
    ratings = pd.concat(frames, ignore_index=True)
    part_of = pd.Series(parts, index=ratings.index, dtype="object")
    empty = ratings[["user", "item", "timestamp", "value"]].isna().any(axis=1)
    if empty.any():
        notes.append(f"{int(empty.sum())} rows with an empty user, item, timestamp or {rule_col} dropped")
        ratings, part_of = ratings[~empty].copy(), part_of[~empty]
    # the rule, applied once here: build_split then labels rating >= 1
    ratings["rating"] = getattr(ratings["value"], op)(threshold).astype("int64")
    titles = _titles(ds, ratings, notes)
    if decl.split is None:
        assign = lambda df: part_of.loc[df.index]  # noqa: E731 - the part each row's file names
    elif decl.split.months is not None:
        mo = decl.split.months
        assign = by_month(mo.origin, train=tuple(mo.train), valid=tuple(mo.valid), test=tuple(mo.test))
    elif decl.split.dates is not None:
        assign = _by_dates(decl.split.dates)
    else:
        assign = _by_ratio(decl.split.ratio)
    split = build_split(name, ratings.loc[:, ["user", "item", "rating", "timestamp"]], titles, assign,
                        label_threshold=1, valid_small_frac=decl.valid_small, seed=decl.seed, domain=ds.domain)
    for part in ("train", "valid", "test"):
        if len(getattr(split, part)) == 0:
            raise BenchError(f"dataset {name}: the split leaves {part} empty "
                             f"({len(split.train)} train, {len(split.valid)} valid, {len(split.test)} test rows)",
                             f"move the cut points in {ds.origin} so that every part gets rows")
    return dataclasses.replace(split, notes=tuple(notes)) if notes else split


def _titles(ds: DeclaredDataset, ratings: pd.DataFrame, notes: list[str]) -> dict:
    """raw item id (as in the interactions) -> title; ``Title (Year)`` where a year column is mapped."""
    t = ds.table("items")
    if t is None:
        per = ratings.drop_duplicates("item")
        return dict(zip(per["item"], per["title"].fillna("").astype(str)))
    items = read_table(t, ds.name)
    icol, tcol = (_column(items, t, k, ds.name, ds.origin) for k in ("item", "title"))
    ycol = _column(items, t, "year", ds.name, ds.origin) if t.column("year") else None
    items = items.drop_duplicates(icol)
    if ycol is None:
        text = items[tcol].fillna("").astype(str)
    else:
        years = pd.to_numeric(items[ycol], errors="coerce")
        text = pd.Series([f"{ti} ({int(y)})" if pd.notna(y) else str(ti)
                          for ti, y in zip(items[tcol], years)], index=items.index)
    by_key = dict(zip(items[icol].map(_id_text), text))
    # matched as text, so a table read as ints and one read as strings (or as floats, where a
    # blank cell made pandas read the column so: 101.0) still agree
    raw_ids = ratings["item"].drop_duplicates()
    titles = {i: by_key.get(_id_text(i)) for i in raw_ids}
    missing = [i for i, v in titles.items() if v is None]
    if missing:
        notes.append(f"{len(missing)} of {len(titles)} items have no title in {t.path.name} (e.g. item {missing[0]!r})")
    return {i: v for i, v in titles.items() if v is not None}
