"""The floors of the code, checked on its import graph (every import statement, at any depth).

* ``search_spaces/``, ``objectives/`` and ``runners/`` (the plug-ins) import only their own package
  and the lower floors of ``nas``.
* The lower floors of ``nas`` import neither a plug-in nor the upper floor.
* No file imports a file that imports it back, directly or around a circle, counting imports inside
  functions and under ``TYPE_CHECKING``.

The upper floor of ``nas`` is :data:`UPPER`; every other module of ``nas`` is a lower floor.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("nas", "search_spaces", "objectives", "runners")
PLUGINS = ("search_spaces", "objectives", "runners")
UPPER = ("nas.engine", "nas.store", "nas.jobs", "nas.deploy", "nas.report", "nas.commands", "nas.cli",
         "nas.__main__")


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the four packages."""
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules a file imports, wherever the import statement stands."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            # ``from a.b import c``: the module a.b.c when c is a module, else a.b
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imports_of(path, modules) - {name} for name, path in modules.items()}


def floor(module: str) -> str:
    top = module.split(".")[0]
    if top in PLUGINS:
        return top
    return "upper" if any(module == u or module.startswith(u + ".") for u in UPPER) else "lower"


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_itself_around_a_circle():
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_circle_through_a_function_level_import(tmp_path):
    a, b, c = tmp_path / "a.py", tmp_path / "b.py", tmp_path / "c.py"
    a.write_text("import b\n")
    b.write_text("def f():\n    from c import x\n")
    c.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import a\n")
    modules = {"a": a, "b": b, "c": c}
    assert cycles({name: imports_of(path, modules) for name, path in modules.items()}) == [["a", "b", "c"]]


def test_plugins_import_only_their_own_package_and_the_lower_floors():
    bad = []
    for module, targets in graph().items():
        if floor(module) in PLUGINS:
            bad += [(module, t) for t in targets if floor(t) not in ("lower", floor(module))]
    assert bad == []


def test_the_lower_floors_import_neither_a_plugin_nor_the_upper_floor():
    bad = [(module, t) for module, targets in graph().items() if floor(module) == "lower"
           for t in targets if floor(t) != "lower"]
    assert bad == []


def test_the_upper_floor_is_what_imports_the_plugins():
    """The rule is not vacuous: the jobs and the engine do import the plug-ins."""
    edges = graph()
    assert {"search_spaces", "objectives", "runners"} <= {floor(t) for t in edges["nas.jobs.setup"]}
