"""Imports only point down the pipeline (the layer table of docs/architecture.md): no module imports
one from a later layer, the database imports nothing that measures, the wiki reads only the
database, and no import circle exists."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS: list[tuple[str, ...]] = [
    ("db.common",),
    ("classifiers",),
    ("db",),
    ("survey.catalog", "survey.corpus"),
    ("survey.adapters",),
    ("survey.loading",),
    ("survey.engine",),
    ("survey.units",),
    ("survey.run",),
    ("survey.wiki",),
    ("survey.docs", "survey.cli", "survey.__main__", "survey"),
]
WIKI_READS_ONLY = ("survey.loading", "survey.engine", "survey.units", "survey.run")


def layer_of(module: str) -> int:
    """The index of the most specific layer prefix that names ``module``."""
    best, length = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > length:
                best, length = index, len(prefix)
    if best < 0:
        raise AssertionError(f"{module} is in no layer")
    return best


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    """Whether ``name`` is a module or package of this repository (``from db.common import settings``)."""
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports(path: Path) -> list[str]:
    """Every project module imported anywhere in the file (function bodies and TYPE_CHECKING too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [
                submodule if is_module(submodule := f"{node.module}.{a.name}") else node.module
                for a in node.names
            ]
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
    return [name for name in found if name.split(".")[0] in {"survey", "db", "classifiers"}]


def sources() -> list[Path]:
    return sorted(p for package in ("survey", "db", "classifiers") for p in (ROOT / package).rglob("*.py"))


def test_no_import_runs_back_up_the_layers() -> None:
    upward = [
        f"{module_name(path)} imports {target}"
        for path in sources()
        for target in imports(path)
        if layer_of(target) > layer_of(module_name(path))
    ]
    assert upward == []


def test_the_wiki_reads_only_the_database() -> None:
    wiki = [p for p in sources() if module_name(p).startswith("survey.wiki")]
    assert wiki
    bad = [f"{module_name(p)} imports {t}" for p in wiki for t in imports(p) if t.startswith(WIKI_READS_ONLY)]
    assert bad == []


def test_the_layer_check_sees_an_upward_import(tmp_path: Path) -> None:
    assert layer_of("db.store") < layer_of("survey.units.heads")
    assert layer_of("survey.units.heads") > layer_of("survey.engine.capture") > layer_of("classifiers.base")
    assert layer_of("survey.run.nightly.plan") > layer_of("survey.units.registry")


def import_graph() -> dict[str, set[str]]:
    """Every project module and the project modules it imports (lazy and TYPE_CHECKING imports too)."""
    return {module_name(path): set(imports(path)) - {module_name(path)} for path in sources()}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan): each is an import circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph.get(module, ())):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return cycles


def test_no_import_circles_lazy_or_not() -> None:
    assert import_cycles(import_graph()) == []


def test_the_circle_check_sees_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(graph) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_each_folder_imports_only_the_folders_below_it() -> None:
    """The folders stack as classifiers/ < db/ < survey/ (db/common/, the ground floor, sits in db/
    and imports nothing of the project)."""
    below = {"classifiers": set(), "db": {"classifiers"}, "survey": {"classifiers", "db"}}
    ground = [f"{module_name(p)} imports {t}" for p in sources() if module_name(p).startswith("db.common")
              for t in imports(p) if not t.startswith("db.common")]  # fmt: skip
    upward = [
        f"{module_name(path)} imports {target}"
        for path in sources()
        for target in imports(path)
        if (folder := module_name(path).split(".")[0]) != (other := target.split(".")[0])
        and other not in below[folder]
    ]
    assert ground == [] and upward == []
