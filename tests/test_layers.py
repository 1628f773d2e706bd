"""The layering of harness/: a package imports only from the layers below it (pyproject's [tool.importlinter]).

Checked with import-linter over the real import graph, so a feature cannot quietly re-create a circle
or reach up a stage. The second test shows the contract can fail: the same check over a copy of the
package with one upward import added.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                              "sys.exit(lint_imports_command())", "--config", str(ROOT / "pyproject.toml"), "--no-cache"]


def _lint(package_parent: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run(LINT, cwd=package_parent, env=env, capture_output=True, text=True, timeout=120)


def test_every_package_imports_only_from_the_layers_below_it():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_the_layering_contract(tmp_path):
    shutil.copytree(ROOT / "harness", tmp_path / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    session = tmp_path / "harness" / "run" / "session.py"
    session.write_text(session.read_text() + "\nfrom harness.report import write_report  # upward: run -> report\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "harness.run is not allowed to import harness.report" in result.stdout
    assert "harness.run.session -> harness.report" in result.stdout


def _strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module: the import circles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
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
                circles.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return circles


def test_no_module_of_the_harness_takes_part_in_an_import_circle():
    import grimp

    graph = grimp.build_graph("harness")
    # A package's __init__ re-exporting its children is no circle unless a child imports its parent back.
    edges = {m: {i for i in graph.find_modules_directly_imported_by(m) if not i.startswith(m + ".")}
             for m in graph.modules}
    assert _strongly_connected(edges) == []


def test_no_private_name_of_the_harness_is_imported_from_another_module():
    import ast

    borrowed = []
    for folder in ("harness", "tests", "scenarios", "benchmarks", "scripts"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.ImportFrom):
                    continue
                if (node.module or "").startswith("harness") or (folder == "harness" and node.level):
                    private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                    if private or any(part.startswith("_") for part in (node.module or "").split(".")):
                        borrowed.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.module} {private}")
    assert borrowed == []
