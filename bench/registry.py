"""Method registry: name -> lazy ``"module:Class"`` string, imported only on lookup.

The table is the ``[project.entry-points."recbench.methods"]`` section of pyproject.toml: adding
a method is one module plus one line there. Installed, it is read from the package metadata;
run from a source tree that is not installed (a bare GPU machine), from pyproject.toml itself.
bench/ never names a method.

``check_installed`` tells, before any work, which optional packages a method needs and which
extra has them: it reads the imports of the method's module (and of this project's modules it
imports), without importing any of them.
"""
from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import re
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
        package = (e.name or "").split(".")[0]
        if package and not _installed(package):
            raise BenchError(f"method {name!r} needs {package}, which is not installed",
                             _install_fix(sorted({package} | _needs(module)))) from e
        raise BenchError(f"method {name!r} needs a package that is not installed: {e}",
                         "pip install -c constraints.txt -e '.[cf,llm]'") from e
    return getattr(mod, cls)


def check_installed(name: str) -> None:
    """A BenchError naming the missing packages and the extra to install when ``name``'s module
    imports an optional dependency (one of pyproject's extras) that is not installed."""
    table = method_table()
    if name not in table:
        raise unknown("method", name, table)
    needed = _needs(table[name].partition(":")[0])
    missing = [p for p in sorted(needed) if not _installed(p)]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise BenchError(f"method {name!r} needs {', '.join(missing)}, which {verb} not installed",
                         _install_fix(sorted(needed)))


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # ValueError: a module in sys.modules without a spec
        return False


def _requirement_name(req: str) -> str:
    """The import name of a requirement: ``torch-geometric>=2.5`` -> ``torch_geometric``."""
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
    return m.group(1).lower().replace("-", "_").replace(".", "_") if m else ""


@functools.lru_cache(maxsize=1)
def _extras() -> dict[str, frozenset[str]]:
    """pyproject's optional-dependency extras -> the import names of their packages."""
    found: dict[str, set[str]] = {}
    if PYPROJECT.exists():
        import tomllib

        with open(PYPROJECT, "rb") as f:
            for extra, reqs in tomllib.load(f).get("project", {}).get("optional-dependencies", {}).items():
                found[extra] = {_requirement_name(r) for r in reqs}
    else:
        try:
            requires = metadata.requires("recbench") or []
        except metadata.PackageNotFoundError:
            requires = []
        for req in requires:
            m = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", req)
            if m:
                found.setdefault(m.group(1), set()).add(_requirement_name(req))
    return {extra: frozenset(names - {""}) for extra, names in found.items()}


def _install_fix(needed: list[str]) -> str:
    """The pip command installing the extra(s) that hold ``needed`` (the smallest that holds all)."""
    extras = _extras()
    optional = [p for p in needed if any(p in names for names in extras.values())]
    covering = sorted((e for e, names in extras.items() if set(optional) <= names), key=lambda e: (len(extras[e]), e))
    if covering:
        chosen = [covering[0]]
    else:
        chosen = sorted({min(e for e, names in extras.items() if p in names) for p in optional}) or ["cf", "llm"]
    return f"pip install -c constraints.txt -e '.[{','.join(chosen)}]'"


def _own_packages() -> frozenset[str]:
    return frozenset({"bench"} | {target.split(".")[0].split(":")[0] for target in method_table().values()})


def _needs(module: str) -> frozenset[str]:
    """The optional dependencies (packages of pyproject's extras) ``module`` imports."""
    optional = set().union(*_extras().values())
    return frozenset(p for p in _imports(module) if p in optional)


def _catches_import_error(handler: ast.excepthandler) -> bool:
    names = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}
    t = handler.type
    if t is None:
        return True
    items = t.elts if isinstance(t, ast.Tuple) else [t]
    return any(isinstance(x, ast.Name) and x.id in names for x in items)


def _source(module: str) -> Path | None:
    """The .py file of one of this project's modules, found on disk (importing only its top-level
    package, whose ``__init__`` is light)."""
    top, *rest = module.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    for root in (spec.submodule_search_locations or []) if spec else []:
        base = Path(root, *rest)
        for path in (base / "__init__.py", base.parent / f"{base.name}.py") if rest else (base / "__init__.py",):
            if path.is_file():
                return path
    return None


@functools.lru_cache(maxsize=None)
def _imports(module: str) -> frozenset[str]:
    """Top-level packages ``module`` imports (at any depth, functions included), following its
    imports of this project's own modules. Imports guarded by ``try: ... except ImportError``
    or ``if TYPE_CHECKING:`` are optional and left out. Nothing is imported."""
    own = _own_packages()
    seen: set[str] = set()
    external: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # importing a.b runs a/__init__
        source = _source(name)
        if source is None:  # not a module (``from a.b import some_function``)
            continue
        try:
            tree = ast.parse(source.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnicodeDecodeError):
            continue
        package = name if source.name == "__init__.py" else name.rpartition(".")[0]
        skip: set[int] = set()
        for node in ast.walk(tree):
            guarded = ((isinstance(node, ast.Try) and any(_catches_import_error(h) for h in node.handlers))
                       or (isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)))
            if guarded:
                skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base_parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(base_parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                targets = [base] + [f"{base}.{a.name}" for a in node.names if a.name != "*"]
            for target in targets:
                top = target.split(".")[0]
                if not top or top == "__future__":
                    continue
                if top in own:
                    todo.append(target)
                else:
                    external.add(top)
    return frozenset(external)
