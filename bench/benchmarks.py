"""The benchmarks (``python -m bench efficiency | scoring-speed | overhead``) as one kind of thing.

A benchmark measures something (``measure`` -> a payload: its own fields, and the ``device`` it
ran on), makes the payload a record (``record``: kind, schema version and the provenance every
record carries, from ``bench.records.benchmark_record``), writes it under ``results/benchmarks/``
(``write``) and renders a record as one table (``table`` -> header, body, notes; ``latex`` for
LaTeX-ready cells). The report renders every benchmark record through this one interface, in the
order of ``BENCHMARKS``: a new benchmark is a module and a line here, not a branch in the report."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Protocol

from bench import efficiency, overhead, records, scoring_speed

Table = tuple[list[str], list[list[str]], list[str]]


class Benchmark(Protocol):
    kind: str  # the record's ``kind`` and the first part of its file name
    title: str  # the report's heading of a record, before the record file's stem
    tex: str | None  # the report also writes the table as benchmarks/<tex>_<stem>.tex (None: Markdown only)

    def measure(self, *args: Any, **kwargs: Any) -> dict[str, Any]: ...

    def record(self, payload: dict[str, Any]) -> dict[str, Any]: ...

    def write(self, record: dict[str, Any], out_dir: Path) -> Path: ...

    def table(self, payload: dict[str, Any], layout: Any, latex: bool = False) -> Table: ...


@dataclasses.dataclass(frozen=True)
class ModuleBenchmark:
    """A ``Benchmark`` made of its module's ``KIND``, ``TITLE``, ``TEX``, ``measure``, ``write``
    and ``table``; ``record`` is the same for every benchmark."""
    kind: str
    title: str
    tex: str | None
    measure: Callable[..., dict[str, Any]]
    write: Callable[[dict[str, Any], Path], Path]
    table: Callable[[dict[str, Any], Any, bool], Table]

    @classmethod
    def of(cls, module: ModuleType) -> "ModuleBenchmark":
        return cls(module.KIND, module.TITLE, module.TEX, module.measure, module.write, module.table)

    def record(self, payload: dict[str, Any]) -> dict[str, Any]:
        return records.benchmark_record(self.kind, payload)


BENCHMARKS: dict[str, Benchmark] = {b.kind: b for b in map(ModuleBenchmark.of, (efficiency, scoring_speed, overhead))}


def get(kind: str) -> Benchmark:
    return BENCHMARKS[kind]
