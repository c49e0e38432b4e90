"""
The package keeps the shape docs/architecture.md draws: every module's imports are edges the
table there allows, the edges form no cycle, each dependency has one door, and importing a
module loads nothing beyond what its edges reach.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "eventor"
TABLE = ROOT / "docs" / "architecture.md"

# third-party package -> the only modules that may import it
DOORS = {
    "sqlalchemy": {"eventor.store.sql", "eventor.store.schema"},
    "typer": {"eventor.cli"},
    "rich": {"eventor.cli"},
    "paramiko": {"eventor.executors.ssh", "eventor.agent"},
    "psycopg": set(),  # SQLAlchemy loads the driver; no module of ours names it
    "distributed": {"eventor.executors.dask"},
    "dask": {"eventor.executors.dask"},
    "cloudpickle": {"eventor.executors.dask"},
    "structlog": {"eventor.context"},  # for ctx.log, when asked for: it loads rich
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def allowed_edges() -> dict[str, set[str]]:
    """The table of docs/architecture.md: module -> the modules of ours it may import."""
    edges: dict[str, set[str]] = {}
    for line in TABLE.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`eventor"):
            name = cells[0].strip("`")
            if cells[2] == "every module above":
                edges[name] = set(edges)
            else:
                edges[name] = set(re.findall(r"`(eventor[\w.]*)`", cells[2]))
    return edges


def imports_of(path: Path) -> set[str]:
    """Every module a source file imports, at any depth of its body (lazy imports too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_the_table_lists_every_module_and_only_those():
    assert set(allowed_edges()) == set(MODULES)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_what_the_table_allows(module):
    allowed = allowed_edges()[module]
    ours = {m for m in imports_of(MODULES[module]) if m == "eventor" or m.startswith("eventor.")}
    assert ours <= allowed, (f"{module} imports {sorted(ours - allowed)}: add the edge to "
                             "docs/architecture.md if it is right, else import the other way")


def test_the_allowed_edges_form_no_cycle():
    try:
        tuple(TopologicalSorter(allowed_edges()).static_order())
    except CycleError as exc:
        pytest.fail(f"import cycle in docs/architecture.md: {' -> '.join(exc.args[1])}")


def test_each_dependency_is_imported_through_its_door_only():
    for module, path in MODULES.items():
        for name in imports_of(path):
            top = name.split(".")[0]
            if top in DOORS:
                assert module in DOORS[top], f"{module} imports {name}"


def reach(edges: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(edges.get(name, ()))
    return seen


def test_importing_a_module_loads_only_what_its_edges_reach():
    # One interpreter: for each module, forget every eventor module, import it, list what loaded.
    script = (
        "import importlib, json, sys\n"
        "loaded = {}\n"
        f"for name in {sorted(MODULES)!r}:\n"
        "    for m in [m for m in sys.modules if m == 'eventor' or m.startswith('eventor.')]:\n"
        "        del sys.modules[m]\n"
        "    importlib.import_module(name)\n"
        "    loaded[name] = sorted(m for m in sys.modules if m.startswith('eventor'))\n"
        "print(json.dumps(loaded))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                         text=True, cwd=ROOT).stdout
    edges = allowed_edges()
    for module, loaded in json.loads(out).items():
        # a package's __init__ runs before any module in it: its edges count too
        parents = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
        expected = set().union(*(reach(edges, m) for m in {module, *parents}))
        assert set(loaded) <= expected, f"import {module} loads {sorted(set(loaded) - expected)}"


def test_the_model_loads_neither_sqlalchemy_nor_the_engine():
    code = ("import sys, eventor.dsl, eventor.validate, eventor.builder; "
            "loaded = [m for m in ('sqlalchemy', 'eventor.engine', 'eventor.store', 'typer', "
            "'eventor.executors.process') if m in sys.modules]; "
            "assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_plain_flow_run_loads_no_console_libraries(tmp_path):
    """structlog loads its dev console and rich when imported: a run that prints through the
    engine's own event logger must not pay for them (ctx.log imports structlog when used)."""
    code = (
        "import sys, eventor as evr\n"
        "class One(evr.Flow):\n"
        "    go = evr.Event(entry=True)\n"
        "    @evr.step(on=go)\n"
        "    def hello(self, ctx):\n"
        "        return 1\n"
        f"assert One(store={str(tmp_path / 'one.db')!r}).run().status == 'success'\n"
        "loaded = [m for m in ('structlog', 'rich', 'typer', 'yaml') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Step completed hello[0], status: success, result 1" in done.stderr
