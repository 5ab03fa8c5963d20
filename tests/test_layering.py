"""The package's layering: no import cycles among serac modules, library code never imports a CLI
module, and no module reaches into another package's private names.

The import graph is read from the source (every ``import`` statement, at module level or inside a
function: a lazy import still ties two modules together), and every module is imported for real.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "serac"


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def is_cli(module: str) -> bool:
    """Command-line modules: they parse arguments and call the library, never the other way round."""
    last = module.rsplit(".", 1)[-1]
    return last in ("cli", "__main__", "cli_support") or last.endswith("_cli")


def imports(module: str) -> list[tuple[str, list[str]]]:
    """(imported serac module, names taken from it) for every import statement in ``module``."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names if alias.name in MODULES]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                if f"{base}.{alias.name}" in MODULES:  # `from serac.train import artifacts`
                    found.append((f"{base}.{alias.name}", []))
                elif base in MODULES:
                    found.append((base, [alias.name]))
    return found


def graph() -> dict[str, set[str]]:
    return {module: {target for target, _ in imports(module)} - {module} for module in MODULES}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each a cycle or several."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_cycle_finder_finds_a_cycle():
    """The checker itself: a planted two- and three-module cycle are reported, a chain is not."""
    edges = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": {"a"}}
    assert sorted(cycles(edges)) == [["a", "b"], ["c", "d", "e"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_the_graph_sees_lazy_and_submodule_imports():
    edges = graph()
    assert "serac.eval.cost" in edges["serac.eval.runner"]  # imported inside a method
    assert "serac.train.artifacts" in edges["serac.train.pipeline"]  # `from serac.train import artifacts`


def test_no_import_cycles_among_serac_modules():
    assert cycles(graph()) == []


def test_library_modules_never_import_cli_modules():
    offenders = {module: sorted(t for t in targets if is_cli(t))
                 for module, targets in graph().items() if not is_cli(module)}
    assert {m: t for m, t in offenders.items() if t} == {}


def test_sub_clis_do_not_import_the_main_cli():
    """Sub-commands share `serac.cli_support`; `serac.cli` loads them, never the other way round."""
    assert sorted(m for m, targets in graph().items() if "serac.cli" in targets) == []


def _home(module: str) -> str:
    """Where a private name may travel: within one sub-package (``serac.server`` and its children),
    never between top-level modules (``serac.cli`` -> ``serac.counterfactual``) or sub-packages."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or MODULES[module].name == "__init__.py" else module


def test_no_private_names_imported_across_packages():
    offenders = []
    for module in MODULES:
        for target, names in imports(module):
            offenders += [f"{module}: {target}.{n}" for n in names
                          if n.startswith("_") and not n.startswith("__") and _home(target) != _home(module)]
    assert offenders == []


@pytest.mark.parametrize("module", [m for m in MODULES if not m.endswith("__main__")])
def test_every_module_imports(module):
    importlib.import_module(module)
