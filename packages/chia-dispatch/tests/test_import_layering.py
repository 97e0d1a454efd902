"""chia-dispatch's imports run one way: the public modules build on the private core.

Read from the sources with ``ast`` (nothing is imported): every module of
chia-dispatch, the import statements in it and the module attributes it reads.
Imports under ``if TYPE_CHECKING:`` count: mypy follows them, and a cycle that
only the type checker sees is still a cycle of the design.

- The module import graph has no cycle, and no module imports a chia module
  inside a function (the way a cycle used to be dodged).
- ``chia.base._dispatch`` (the private core) never imports a public module,
  and every private module of chia-dispatch lives in it.
- No module reads another module's underscore names; only the private core's
  modules may be read beyond their underscore-free names, by chia-dispatch.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PRIVATE_PACKAGE = "chia.base._dispatch"
PUBLIC_MODULES = {
    "chia.base.ChiaFunction",
    "chia.base.dispatch_hooks",
    "chia.base.pid_registry",
    "chia.base.chia_wait",
    "chia.base.dispatch_proxy",
}
NAMESPACES = {"chia", "chia.base"}  # PEP 420: they have no attributes, so `from chia.base import x` names a module


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(SRC.rglob("*.py"))}


def in_private_core(module: str) -> bool:
    return module == PRIVATE_PACKAGE or module.startswith(PRIVATE_PACKAGE + ".")


def is_module(name: str) -> bool:
    return name in MODULES or name.rpartition(".")[0] in NAMESPACES


@dataclass(frozen=True)
class Edge:
    """``importer`` imports chia module ``target`` at ``line``; ``nested`` when inside a function."""

    importer: str
    target: str
    line: int
    nested: bool


@dataclass(frozen=True)
class Read:
    """``reader`` reads ``name`` of chia module ``module`` at ``line``."""

    reader: str
    module: str
    name: str
    line: int


def _with_parents(target: str) -> list[str]:
    """``target`` and the packages (with an ``__init__``) that importing it runs first."""
    parts = target.split(".")
    return [".".join(parts[:i]) for i in range(2, len(parts)) if ".".join(parts[:i]) in MODULES] + [target]


def _statements(node: ast.AST, nested: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(node):
        yield child, nested
        inner = nested or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        yield from _statements(child, inner)


def _from_base(importer: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = importer if MODULES[importer].name == "__init__.py" else importer.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _dotted(node: ast.expr) -> list[str] | None:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return None if head is None else [*head, node.attr]
    return None


@dataclass
class ModuleWalk:
    """The chia imports of ``module`` and the names it reads from chia modules."""

    module: str
    edges: list[Edge] = field(default_factory=list)
    reads: list[Read] = field(default_factory=list)
    bound: dict[str, str] = field(default_factory=dict)  # local name -> the chia module it is bound to

    def walk(self) -> ModuleWalk:
        path = MODULES[self.module]
        for node, nested in _statements(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                self.on_import(node, nested)
            elif isinstance(node, ast.ImportFrom):
                self.on_import_from(node, nested)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
                self.on_attribute(node)
        return self

    def add_edges(self, target: str, node: ast.stmt, nested: bool) -> None:
        self.edges += [Edge(self.module, t, node.lineno, nested) for t in _with_parents(target)]

    def on_import(self, node: ast.Import, nested: bool) -> None:
        for alias in node.names:
            if alias.name.split(".")[0] == "chia":
                self.add_edges(alias.name, node, nested)
                local = alias.asname or alias.name.split(".")[0]
                self.bound[local] = alias.name if alias.asname else local

    def on_import_from(self, node: ast.ImportFrom, nested: bool) -> None:
        base = _from_base(self.module, node)
        if base.split(".")[0] != "chia":
            return
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            if is_module(submodule):
                self.add_edges(submodule, node, nested)
                self.bound[alias.asname or alias.name] = submodule
            else:
                self.add_edges(base, node, nested)
                self.reads.append(Read(self.module, base, alias.name, node.lineno))

    def on_attribute(self, node: ast.Attribute) -> None:
        chain = _dotted(node)
        if chain is None or chain[0] not in self.bound:
            return
        owner = self.bound[chain[0]]
        for part in chain[1:]:  # descend through submodules to the module the name is read from
            if not is_module(f"{owner}.{part}"):
                self.reads.append(Read(self.module, owner, part, node.lineno))
                return
            owner = f"{owner}.{part}"


WALKS = [ModuleWalk(module).walk() for module in MODULES]
EDGES = [edge for walk in WALKS for edge in walk.edges]
READS = [read for walk in WALKS for read in walk.reads]


def where(module: str, line: int) -> str:
    return f"{MODULES[module].relative_to(SRC)}:{line}"


def test_the_walk_sees_every_public_module_and_the_private_core() -> None:
    assert set(MODULES) >= PUBLIC_MODULES | {PRIVATE_PACKAGE, f"{PRIVATE_PACKAGE}.seam"}
    graph = {(edge.importer, edge.target) for edge in EDGES}
    assert ("chia.base.ChiaFunction", f"{PRIVATE_PACKAGE}.seam") in graph
    assert ("chia.base.dispatch_hooks", f"{PRIVATE_PACKAGE}.seam") in graph
    assert any(read.name == "active_hooks" for read in READS)  # ChiaFunction's hot path reads seam.active_hooks


def test_no_chia_module_is_imported_inside_a_function() -> None:
    nested = [f"{where(e.importer, e.line)}: imports {e.target}" for e in EDGES if e.nested]
    assert nested == []


def test_the_module_import_graph_is_acyclic() -> None:
    graph: dict[str, set[str]] = {module: set() for module in MODULES}
    for edge in EDGES:
        if edge.target in MODULES:
            graph[edge.importer].add(edge.target)
    done: set[str] = set()
    path: list[str] = []

    def find_cycle(module: str) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        path.append(module)
        for target in sorted(graph[module]):
            cycle = find_cycle(target)
            if cycle is not None:
                return cycle
        path.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        cycle = find_cycle(module)
        assert cycle is None, "import cycle: " + " -> ".join(cycle or ())


def test_the_private_core_imports_no_public_module_and_holds_every_private_one() -> None:
    upward = [
        f"{where(e.importer, e.line)}: imports {e.target}"
        for e in EDGES
        if in_private_core(e.importer) and e.target in MODULES and not in_private_core(e.target)
    ]
    assert upward == []
    stray = [
        module
        for module in MODULES
        if not in_private_core(module) and any(part.startswith("_") for part in module.split("."))
    ]
    assert stray == []


def test_no_module_reads_another_modules_underscore_names() -> None:
    private_reads = [
        f"{where(r.reader, r.line)}: reads {r.module}.{r.name}"
        for r in READS
        if r.name.startswith("_") and not r.name.startswith("__") and not in_private_core(r.module)
    ]
    assert private_reads == []
