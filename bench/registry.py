"""Method registry: name -> lazy ``"module:Class"`` string, imported only on lookup.

The table is the ``[project.entry-points."recbench.methods"]`` section of pyproject.toml: adding
a method is one module plus one line there. Installed, it is read from the package metadata;
run from a source tree that is not installed (a bare GPU machine), from pyproject.toml itself.
bench/ never names a method.
"""
from __future__ import annotations

import functools
import importlib
from importlib import metadata
from pathlib import Path

from bench.errors import BenchError, unknown

GROUP = "recbench.methods"
PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


@functools.lru_cache(maxsize=1)
def method_table() -> dict[str, str]:
    table: dict[str, str] = {}
    if PYPROJECT.exists():  # the source tree wins: it is what the code beside it expects
        import tomllib

        with open(PYPROJECT, "rb") as f:
            table = dict(tomllib.load(f).get("project", {}).get("entry-points", {}).get(GROUP, {}))
    if not table:
        table = {ep.name: ep.value for ep in metadata.entry_points(group=GROUP)}
    return dict(sorted(table.items()))


def get_method(name: str) -> type:
    table = method_table()
    if name not in table:
        raise unknown("method", name, table)
    module, _, cls = table[name].partition(":")
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise BenchError(
            f"method {name!r} needs a package that is not installed: {e}",
            "pip install -c constraints.txt -e '.[cf,llm]'",
        ) from e
    return getattr(mod, cls)
