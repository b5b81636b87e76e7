"""The package's imports go one way and never in a circle (docs/architecture.md, "Layers").

Every module of ``lss_jax`` is parsed with ``ast``: imports at module level and inside functions,
absolute and relative, ``from lss_jax.pkg import name`` resolving to the submodule ``lss_jax.pkg.name``
when there is one. The checker fails on

* a cycle in the module graph (any length, through function-level imports too), and
* an import from a lower layer into a higher one (``LAYERS`` below; the same table is in
  docs/architecture.md).

No module and no import is allow-listed: the package passes both checks as it is.

Importing a submodule runs its parent packages' ``__init__`` first; that implicit edge is not counted
(it would make every module depend on ``lss_jax/__init__.py``). An explicit ``from lss_jax import X``
of a name that is not a submodule is an import of ``lss_jax`` itself, the top layer. Imports under
``if TYPE_CHECKING:`` never run (they name types for annotations only) and are not counted.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "lss_jax"
PACKAGE_DIR = Path(__file__).resolve().parent.parent / PACKAGE

# Layer of every module, by its longest matching dotted prefix (relative to the package). An import may go to
# the same layer or a lower one, never to a higher one; same-layer imports must still form no cycle.
LAYERS: dict[str, int] = {
    # 0: engine and infrastructure (no network, no model)
    "engine": 0,  # train, checkpoint, devices, io, progress
    "_version": 0,
    "config": 0,
    "protocols": 0,  # the configuration chosen from the topology (reads config and a topology only)
    "data": 0,
    # analysis's estimators are pure functions of arrays (they import only each other, engine.io and data.featurize):
    # the decoder's support (analysis.structure) and the model's self-check (analysis.consistency) use them
    "analysis": 0,
    # 1: the three networks
    "encoder": 1,  # the SRV, on encoder.vamp
    "propagator": 1,  # the MDN, its ensembles (propagator.ensemble) and the unit box (propagator.scaling)
    "decoder": 1,
    # the generation package's __init__ (a docstring) and its streaming core: the streaming loop and chunked
    # rollout -> decode (duck-typed on the model; LSSModel.generate runs on it)
    "generation": 1,
    "generation.stream": 1,
    # 2: the fitted simulator
    "model": 2,  # LSSModel and fit_lss, model.io, model.directory (the writer), model.facade (LSS)
    "analysis.consistency": 2,  # the model's self-check, run by fit_lss
    # 3: generation
    "generation.simulate": 3,
    "generation.export": 3,
    # 4: systems, analysis, and what builds on them
    "datasets": 4,
    "systems": 4,  # the systems and their OpenMM runner (systems.md)
    "analysis.molecular": 4,  # the validation report
    "analysis.plots": 4,  # every figure
    "pipelines": 4,
    "adaptive": 4,
    "benchmarking": 4,
    # 5: the command line and the package's front door
    "cli": 5,
    "__main__": 5,
    "": 5,  # lss_jax/__init__.py
}

LAYER_NAMES = {0: "engine", 1: "networks", 2: "model", 3: "generation", 4: "analysis/systems", 5: "cli"}


@dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted
    target: str  # imported module, dotted
    path: str  # file of the importing module
    line: int
    in_function: bool
    implicit: bool = False  # the package __init__ that importing one of its submodules runs

    def where(self) -> str:
        return f"{self.path}:{self.line}"


def discover(package_dir: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under ``package_dir`` (packages as their ``__init__``)."""
    modules: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join([package, *parts])] = path
    return modules


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest existing module that ``name`` names (``a.b.C`` -> ``a.b`` when ``C`` is not a module)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


class _Visitor(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool, modules: dict[str, Path], path: str, package: str):
        self.module, self.is_package, self.modules, self.path, self.package = module, is_package, modules, path, package
        self.depth = 0
        self.found: list[Import] = []

    def _add(self, target: str | None, line: int) -> None:
        if target is None or target == self.module:
            return
        self.found.append(Import(self.module, target, self.path, line, self.depth > 0))
        # importing a.b.c runs a/b/__init__ first (not the root package's, nor a package the importer is in)
        parts = target.split(".")
        for end in range(2, len(parts)):
            package = ".".join(parts[:end])
            if package in self.modules and not (self.module + ".").startswith(package + "."):
                self.found.append(Import(self.module, package, self.path, line, self.depth > 0, implicit=True))

    def _in_function(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _in_function

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
                isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"):
            for child in node.orelse:  # the guarded body never runs
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name == self.package or alias.name.startswith(self.package + "."):
                self._add(_resolve(alias.name, self.modules), node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            anchor = self.module.split(".")
            if not self.is_package:
                anchor = anchor[:-1]
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join(anchor + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        if base != self.package and not base.startswith(self.package + "."):
            return
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            self._add(sub if sub in self.modules else _resolve(base, self.modules), node.lineno)


def collect_imports(package_dir: Path, package: str = PACKAGE) -> tuple[dict[str, Path], list[Import]]:
    """Every module of the package and every import of one of its modules, with file and line."""
    modules = discover(package_dir, package)
    found: list[Import] = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        where = str(path.relative_to(package_dir.parent))
        visitor = _Visitor(module, path.name == "__init__.py", modules, where, package)
        visitor.visit(tree)
        found.extend(visitor.found)
    return modules, found


def find_cycles(imports: list[Import]) -> list[list[Import]]:
    """One cycle (as its imports, in order) for every strongly connected component of the graph."""
    graph: dict[str, dict[str, Import]] = {}
    for imp in imports:
        graph.setdefault(imp.source, {}).setdefault(imp.target, imp)
    # Tarjan, iterative.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, {}))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    cycles = []
    for component in components:
        members = set(component)
        start = component[0]
        # Shortest path from start back to start inside the component (breadth first).
        previous: dict[str, Import] = {}
        frontier = [start]
        found = None
        while frontier and found is None:
            following = []
            for node in frontier:
                for child, imp in sorted(graph.get(node, {}).items()):
                    if child not in members:
                        continue
                    if child == start:
                        found = imp
                        break
                    if child not in previous:
                        previous[child] = imp
                        following.append(child)
                if found is not None:
                    break
            frontier = following
        path = [found]
        while path[0].source != start:
            path.insert(0, previous[path[0].source])
        cycles.append(path)
    return cycles


def layer_of(module: str, layers: dict[str, int], package: str = PACKAGE) -> int:
    relative = module[len(package) + 1 :] if module.startswith(package + ".") else ""
    parts = relative.split(".") if relative else []
    for end in range(len(parts), -1, -1):
        key = ".".join(parts[:end])
        if key in layers:
            return layers[key]
    raise KeyError(f"{module} has no layer in LAYERS (tests/test_imports.py and docs/architecture.md)")


def upward_imports(imports: list[Import], layers: dict[str, int], package: str = PACKAGE) -> list[Import]:
    found = {}
    for imp in imports:
        if layer_of(imp.target, layers, package) > layer_of(imp.source, layers, package):
            found.setdefault((imp.source, imp.target, imp.line), imp)
    return list(found.values())


def _how(imp: Import) -> str:
    return (", in a function" if imp.in_function else "") + (", its package __init__" if imp.implicit else "")


def describe_cycle(cycle: list[Import]) -> str:
    hops = "\n".join(f"    {imp.source} -> {imp.target}  ({imp.where()}{_how(imp)})" for imp in cycle)
    return f"  import cycle {' -> '.join([c.source for c in cycle] + [cycle[0].source])}:\n{hops}"


def describe_upward(imp: Import, layers: dict[str, int], package: str = PACKAGE) -> str:
    low, high = layer_of(imp.source, layers, package), layer_of(imp.target, layers, package)
    return (
        f"  {imp.where()}: {imp.source} (layer {low}, {LAYER_NAMES.get(low, low)}) imports {imp.target} "
        f"(layer {high}, {LAYER_NAMES.get(high, high)}){_how(imp).replace(',', '', 1)}"
    )


RULE = (
    "Rule (docs/architecture.md, Layers): imports go one way, engine -> networks -> model -> generation -> "
    "analysis/systems -> cli; a module imports only its own layer or lower ones, and never in a circle "
    "(function-level imports count)."
)


# --- the package itself ---------------------------------------------------------------------------------


def test_every_module_has_a_layer():
    modules, _ = collect_imports(PACKAGE_DIR)
    missing = []
    for module in modules:
        try:
            layer_of(module, LAYERS)
        except KeyError as error:
            missing.append(str(error))
    assert not missing, "\n".join(missing)


def test_no_import_cycles():
    _, imports = collect_imports(PACKAGE_DIR)
    cycles = find_cycles(imports)
    assert not cycles, f"{len(cycles)} import cycle(s) in {PACKAGE}:\n" + "\n".join(map(describe_cycle, cycles)) + f"\n{RULE}"


def test_no_upward_imports():
    _, imports = collect_imports(PACKAGE_DIR)
    upward = upward_imports(imports, LAYERS)
    assert not upward, (
        f"{len(upward)} upward import(s) in {PACKAGE}:\n" + "\n".join(describe_upward(i, LAYERS) for i in upward) + f"\n{RULE}"
    )


# --- the checker can fail ---------------------------------------------------------------------------------


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "toy" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "toy"


def test_checker_reports_a_cycle_through_a_function_and_an_upward_import(tmp_path):
    package_dir = _write(
        tmp_path,
        {
            "__init__.py": "from toy.top import run\n",
            "low.py": "def f():\n    from toy import mid\n    return mid\n",  # upward, in a function
            "mid.py": "from . import low\n",  # relative; closes low -> mid -> low
            "top.py": "import toy.sub.leaf\n\ndef run():\n    pass\n",
            "sub/__init__.py": "",
            "sub/leaf.py": "from ..low import f\n",  # relative two levels up, a name (resolves to toy.low)
        },
    )
    layers = {"low": 0, "sub": 0, "mid": 1, "top": 2, "": 2}
    modules, imports = collect_imports(package_dir, "toy")
    assert set(modules) == {"toy", "toy.low", "toy.mid", "toy.top", "toy.sub", "toy.sub.leaf"}
    edges = {(i.source, i.target, i.in_function) for i in imports}
    assert edges == {
        ("toy", "toy.top", False),
        ("toy.low", "toy.mid", True),
        ("toy.mid", "toy.low", False),
        ("toy.top", "toy.sub.leaf", False),
        ("toy.top", "toy.sub", False),  # implicit: importing toy.sub.leaf runs toy/sub/__init__.py
        ("toy.sub.leaf", "toy.low", False),
    }

    cycles = find_cycles(imports)
    assert len(cycles) == 1
    assert {(i.source, i.target) for i in cycles[0]} == {("toy.low", "toy.mid"), ("toy.mid", "toy.low")}
    assert "toy/low.py:2, in a function" in describe_cycle(cycles[0])

    upward = upward_imports(imports, layers, "toy")
    assert [(i.source, i.target, i.line) for i in upward] == [("toy.low", "toy.mid", 2)]
    assert "low.py:2: toy.low (layer 0, engine) imports toy.mid (layer 1, networks) in a function" in describe_upward(
        upward[0], layers, "toy"
    )


def test_checker_accepts_a_clean_package(tmp_path):
    package_dir = _write(
        tmp_path,
        {"__init__.py": "from toy import b\n",
         "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from toy.b import g\nx = 1\n",  # type-only
         "b.py": "def g():\n    from toy.a import x\n    return x\n"},
    )
    _, imports = collect_imports(package_dir, "toy")
    assert not find_cycles(imports)
    assert not upward_imports(imports, {"a": 0, "b": 1, "": 2}, "toy")
