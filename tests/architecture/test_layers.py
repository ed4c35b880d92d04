"""The import graph of `imgsearch` (the services/ folder): layers only point down, a service never
reaches into another's internals, and no two modules import each other (directly or around a
loop). An upward import coming back fails here, naming the file and line."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "services"
PACKAGE = "imgsearch"

# Each top-level package and what it may import. Read from the bottom up: errors, config and the
# generated stubs import nothing of ours, nor do telemetry (metrics, logs) and reports; types (the
# plain types mirroring the protos, which the server and the client share) sit on the stubs; the
# client imports only types, rpc, the stubs and errors; the CLI sits on top and starts the
# composition root.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "config": {"errors"},
    "protogen": set(),
    "reports": set(),
    "telemetry": set(),
    "types": {"errors", "protogen"},
    "vectorstore": {"config", "errors"},
    "rpc": {"telemetry", "config", "errors", "protogen", "vectorstore"},
    "embedder": {"telemetry", "config", "errors", "protogen", "reports", "rpc", "types"},
    "indexer": {"telemetry", "embedder", "config", "errors", "protogen", "rpc", "types", "vectorstore"},
    "query": {"telemetry", "embedder", "config", "errors", "protogen", "rpc", "types", "vectorstore"},
    "client": {"config", "errors", "protogen", "rpc", "types"},
    "app": {
        "telemetry",
        "embedder",
        "indexer",
        "query",
        "client",
        "config",
        "errors",
        "protogen",
        "rpc",
        "types",
        "vectorstore",
    },
    "cli": {
        "telemetry",
        "app",
        "client",
        "embedder",
        "indexer",
        "config",
        "errors",
        "protogen",
        "reports",
        "rpc",
        "types",
    },
}

# What another package may use of a service: its public, model-free surface.
PUBLIC = {
    "embedder": {"results", "convert", "remote", "tagwords"},
    "indexer": set(),
}
# Packages that build the services (and so may use their internals).
COMPOSERS = {"app", "cli"}


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        if rel.parts[0] == "protogen" and len(rel.parts) > 2:
            continue  # generated stubs
        parts = [p for p in rel.parts if p != "__init__"]
        found[".".join([PACKAGE, *parts])] = path
    return found


def imports(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) for every import of our package in the file, anywhere in it."""
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(parent + ([base] if base else []))
            out += [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return [(line, name) for line, name in out if name.split(".")[0] == PACKAGE]


def resolve(name: str, known: dict[str, Path]) -> str | None:
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


GRAPH = {
    m: {t for _, n in imports(m, p) if (t := resolve(n, modules())) and t != m} for m, p in modules().items()
}


def top(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def test_every_package_is_placed_in_a_layer() -> None:
    assert {top(m) for m in modules() if top(m)} <= set(ALLOWED), "add the new package to ALLOWED"


def test_imports_point_down_and_stay_out_of_other_services_internals() -> None:
    wrong = []
    for module, path in modules().items():
        src = top(module)
        for line, name in imports(module, path):
            dst = top(name)
            if dst == src or not dst:
                continue
            where = f"{path.relative_to(ROOT.parent)}:{line} imports {name}"
            if dst not in ALLOWED.get(src, set()):
                wrong.append(f"{where} ({src} may not import {dst})")
            elif dst in PUBLIC and src not in COMPOSERS:
                sub = name.split(".")[2] if name.count(".") >= 2 else ""
                if sub not in PUBLIC[dst]:
                    wrong.append(f"{where} (only {sorted(PUBLIC[dst])} of {dst} are public)")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles() -> None:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[set[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(component)

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles, "modules that import each other: " + "; ".join(sorted(map(str, cycles)))


@pytest.mark.parametrize("bad", ["imgsearch.app.serve", "imgsearch.cli.main"])
def test_the_check_sees_an_upward_import(bad: str, tmp_path: Path) -> None:
    """The rules are live: a lower module importing the composition root or the CLI is caught."""
    path = tmp_path / "store.py"
    path.write_text(f"import os\nfrom {bad.rpartition('.')[0]} import {bad.rpartition('.')[2]}\n")
    ((line, name),) = imports("imgsearch.vectorstore.store", path)
    assert line == 2 and top(name) not in ALLOWED["vectorstore"]
