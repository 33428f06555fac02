"""The folders' imports point one way: eventi imports none of the others, devstack (the shared server
processes) imports neither tests nor bench, and no two top-level folders import each other, even through
a third. Read from the source with ast, so an import inside a function counts too."""
from __future__ import annotations

import ast
from pathlib import Path

from devstack.processes import ROOT

PACKAGES = ("eventi", "devstack", "tests", "bench")
"""The top-level packages of the checkout (eventi alone is shipped)."""


def imported_packages(source: str) -> set[str]:
    """The top-level packages of PACKAGES that a module's source imports (relative imports stay inside)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & set(PACKAGES)


def import_graph(root: Path) -> dict[str, dict[str, list[str]]]:
    """{package: {imported package: [files that import it]}}, without a package's imports of itself."""
    graph: dict[str, dict[str, list[str]]] = {package: {} for package in PACKAGES}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            for other in imported_packages(path.read_text()) - {package}:
                graph[package].setdefault(other, []).append(str(path.relative_to(root)))
    return graph


def cycle(graph: dict[str, dict[str, list[str]]]) -> list[str] | None:
    """One cycle of packages importing each other (a list that ends where it starts), or None."""
    def visit(package: str, path: list[str]) -> list[str] | None:
        if package in path:
            return path[path.index(package):] + [package]
        for other in sorted(graph[package]):
            if found := visit(other, path + [package]):
                return found
        return None

    for package in PACKAGES:
        if found := visit(package, []):
            return found
    return None


def test_no_two_top_level_folders_import_each_other() -> None:
    graph = import_graph(ROOT)
    found = cycle(graph)
    assert found is None, " -> ".join(found) + "; " + "; ".join(
        f"{a} -> {b}: {', '.join(graph[a][b])}" for a, b in zip(found, found[1:], strict=False))


def test_eventi_imports_no_test_bench_or_devstack_code() -> None:
    assert import_graph(ROOT)["eventi"] == {}


def test_devstack_imports_neither_tests_nor_bench() -> None:
    assert set(import_graph(ROOT)["devstack"]) <= {"eventi"}


def test_the_checks_see_a_cycle_and_an_import_inside_a_function(tmp_path: Path) -> None:
    """The checks themselves: a test importing bench inside a function, bench importing tests."""
    for package in PACKAGES:
        (tmp_path / package).mkdir()
    (tmp_path / "tests" / "test_x.py").write_text("def test():\n    from bench.run import Config\n")
    (tmp_path / "bench" / "run.py").write_text("from tests.support.api import callback_body\nfrom . import stack\n")
    (tmp_path / "eventi" / "app.py").write_text("import eventi.domain.models\n")
    graph = import_graph(tmp_path)
    assert graph["tests"] == {"bench": ["tests/test_x.py"]} and graph["eventi"] == {}
    assert cycle(graph) == ["tests", "bench", "tests"]


def module_graph(root: Path, package: str = "eventi") -> dict[str, set[str]]:
    """{module: modules of package it imports}: relative imports resolved, `from a import b` naming module a.b
    when b is one, an import of a.b.c counting as an import of a.b.c alone (not of its parent packages)."""
    modules: dict[str, Path] = {}
    for path in (root / package).rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        here = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets: list[str] = []
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = here.split(".")[:len(here.split(".")) - node.level + 1] if node.level else []
                source = ".".join(base + [node.module] if node.module else base)
                targets += [f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                            for alias in node.names]
        graph[module] = {found for target in targets if (found := known(target)) and found != module}
    return graph


def module_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of modules importing each other (a list that ends where it starts), or None."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return path[path.index(module):] + [module]
        if module in done:
            return None
        for other in sorted(graph.get(module, ())):
            if found := visit(other, path + [module]):
                return found
        done.add(module)
        return None

    for module in sorted(graph):
        if found := visit(module, []):
            return found
    return None


def test_no_module_of_eventi_imports_itself_through_others() -> None:
    """A circle means a name lives in the wrong module: move it to the one both sides may import."""
    found = module_cycle(module_graph(ROOT))
    assert found is None, "import circle: " + " -> ".join(found)


def test_the_module_check_sees_a_circle_through_a_relative_import(tmp_path: Path) -> None:
    (tmp_path / "eventi" / "web").mkdir(parents=True)
    (tmp_path / "eventi" / "__init__.py").write_text("")
    (tmp_path / "eventi" / "runtime.py").write_text("from .web.common import EXTENSION\n")
    (tmp_path / "eventi" / "web" / "__init__.py").write_text("")
    (tmp_path / "eventi" / "web" / "common.py").write_text("def f():\n    from ..runtime import Runtime\n")
    graph = module_graph(tmp_path)
    assert graph["eventi.runtime"] == {"eventi.web.common"} and graph["eventi.web.common"] == {"eventi.runtime"}
    assert module_cycle(graph) == ["eventi.runtime", "eventi.web.common", "eventi.runtime"]


def test_routes_reach_the_store_only_through_services() -> None:
    """route -> service -> store: no module of eventi/web imports eventi/storage (health's ping goes through the
    runtime's store, the one exception: readiness is about the store itself)."""
    graph = module_graph(ROOT)
    direct = {module: sorted(found for found in imported if found.startswith("eventi.storage"))
              for module, imported in graph.items() if module.startswith("eventi.web")}
    assert {module: found for module, found in direct.items() if found} == {}
