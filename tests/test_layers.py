"""The layers of the package tree hold: every import of every production module obeys the rules, and no module
cycle exists.

    engine.goport   the Go-compatibility library: imports nothing else from the project
    engine.core     the kernel: imports only engine.goport
    buses, triggers, sources
                    import only the kernel and the Go library (and their own package); buses.jetstream and
                    buses.kafka never import each other
    sensors         the same, and may also read the trigger spec models (triggers.spec)
    engine (the rest: config, registry, assembly, runner, trace, CLI)
                    the composition root: may import everything

Imports are read with `ast`, so imports inside functions and under `if TYPE_CHECKING:` count too. A failure names
each offending import as `file:line: module imports target (rule)`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOP = ("engine", "buses", "sensors", "triggers", "sources")


@dataclass(frozen=True)
class Import:
    """One import statement's target inside the project."""

    source: str
    target: str
    file: Path
    line: int

    def where(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line}: {self.source} imports {self.target}"


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every production module (`pkg/__init__.py` is `pkg`)."""
    modules: dict[str, Path] = {}
    for top in TOP:
        for path in sorted((root / top).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def in_project(name: str) -> bool:
    return name.split(".")[0] in TOP


def _short(name: str) -> str:
    """`sensorium.engine.x` as the layer rules name it: `engine.x`."""
    return name.removeprefix("sensorium.")


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> Iterator[Import]:
    """The project modules `name` imports: `from a import b` counts as `a.b` when that is a module, else `a`.
    Imports are written `sensorium.engine...`; the rules name them without the `sensorium.` prefix."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if in_project(_short(alias.name)):
                    yield Import(name, _short(alias.name), path, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = _short(node.module or "")
            if not in_project(module):
                continue
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                yield Import(name, sub if sub in modules else module, path, node.lineno)


def layer(module: str) -> str:
    """The layer a module belongs to: goport, core, buses, sensors, triggers, sources or root."""
    parts = module.split(".")
    if parts[0] == "engine":
        if len(parts) > 1 and parts[1] in ("goport", "core"):
            return parts[1]
        return "root"
    return parts[0]


ALLOWED: dict[str, set[str]] = {
    "goport": {"goport"},
    "core": {"goport", "core"},
    "buses": {"goport", "core", "buses"},
    "triggers": {"goport", "core", "triggers"},
    "sources": {"goport", "core", "sources"},
    "sensors": {"goport", "core", "sensors"},
}


def violation(imp: Import) -> str | None:
    """Why this import breaks a rule, or None."""
    source, target = layer(imp.source), layer(imp.target)
    if source == "root":
        return None
    if imp.target in ("engine",):
        return "the bare `engine` package is the composition root"
    if source == "sensors" and imp.target == "triggers.spec":
        return None
    if target not in ALLOWED[source]:
        return f"{source} may import only {', '.join(sorted(ALLOWED[source]))}"
    for one, other in (("buses.jetstream", "buses.kafka"), ("buses.kafka", "buses.jetstream")):
        if (imp.source == one or imp.source.startswith(one + ".")) and (
            imp.target == other or imp.target.startswith(other + ".")
        ):
            return f"{one} and {other} never import each other"
    return None


def all_imports(root: Path = ROOT) -> list[Import]:
    modules = project_modules(root)
    found = {imp: None for name, path in modules.items() for imp in imports_of(name, path, modules)}
    return list(found)


def cycles(imports: list[Import]) -> list[list[Import]]:
    """Each strongly connected group of modules (Tarjan), as the imports that join it."""
    graph: dict[str, list[Import]] = {}
    for imp in imports:
        if imp.target != imp.source:
            graph.setdefault(imp.source, []).append(imp)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for imp in graph.get(node, []):
            if imp.target not in index:
                visit(imp.target)
                low[node] = min(low[node], low[imp.target])
            elif imp.target in on_stack:
                low[node] = min(low[node], index[imp.target])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [[imp for imp in imports if imp.source in g and imp.target in g] for g in groups]


def test_no_import_breaks_a_layer_rule() -> None:
    bad = [f"{imp.where()} ({why})" for imp in all_imports() if (why := violation(imp))]
    assert not bad, "imports that break the layer rules:\n" + "\n".join(bad)


def test_no_module_cycles() -> None:
    found = cycles(all_imports())
    text = "\n\n".join("\n".join(imp.where() for imp in group) for group in found)
    assert not found, "module import cycles:\n" + text


def test_the_checks_catch_an_upward_import_and_a_cycle(tmp_path: Path) -> None:
    """The rules bite: a kernel module importing the runner, and two modules importing each other, are found."""
    for package in ("engine", "engine/core", "engine/goport", "buses", "sensors", "triggers", "sources"):
        (tmp_path / package).mkdir(parents=True, exist_ok=True)
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "engine/runner.py").write_text("")
    (tmp_path / "engine/core/errors.py").write_text("def f() -> None:\n    from engine import runner\n")
    (tmp_path / "engine/goport/a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import engine.goport.b\n")
    (tmp_path / "engine/goport/b.py").write_text("from . import a\n")
    imports = all_imports(tmp_path)
    assert [imp.target for imp in imports if violation(imp)] == ["engine.runner"]
    assert [sorted(imp.source for imp in group) for group in cycles(imports)] == [
        ["engine.goport.a", "engine.goport.b"]
    ]
