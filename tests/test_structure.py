"""The house rules of the ``kvmlab`` package, checked by reading its source with ``ast``.

1. No import cycle among kvmlab's modules. Every ``import`` and ``from ... import`` counts,
   wherever it stands in the module (inside a function too: a lazy import hides a cycle, it
   does not break it), and so does ``importlib.import_module("kvmlab....")`` with a literal
   name. ``from kvmlab.x import name`` is an edge to ``kvmlab.x.name`` when that is a
   submodule, else to ``kvmlab.x``. Importing ``kvmlab.x.y`` is an edge to ``kvmlab.x.y``
   only, not to the packages ``kvmlab`` and ``kvmlab.x`` that Python runs first. Imports
   under ``if TYPE_CHECKING:`` are left out of this rule (they never run).
2. No module over :data:`MAX_LINES` lines.
3. No module uses another module's private name: no ``from kvmlab.x import _name``, no
   ``import kvmlab.x._module``, no ``x._name`` on a kvmlab module bound by an import.
4. Every lab in :data:`kvmlab.lab.LABS` has every room of :data:`kvmlab.lab.ROOMS`.
5. The rooms keep to their jobs: ``model.py`` never imports libvirt, subprocess or the host
   layer (``kvmlab.host``); ``twin.py`` never imports simpy or its lab's ``model``;
   ``plot.py`` never imports simpy or its lab's ``model``. These count every import,
   ``TYPE_CHECKING`` ones included.

The tests themselves are not checked here.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import kvmlab
from kvmlab.lab import LABS, ROOMS

PACKAGE = Path(kvmlab.__file__).parent
MAX_LINES = 600


@dataclass
class Module:
    """What one module of the package imports, as read from its source."""

    name: str
    path: Path
    lines: int
    is_package: bool
    edges: dict[str, int] = field(default_factory=dict)     # kvmlab module -> first line
    typing_edges: dict[str, int] = field(default_factory=dict)   # under TYPE_CHECKING
    outside: dict[str, int] = field(default_factory=dict)   # other top-level imports
    private: list[str] = field(default_factory=list)        # "line N: what"

    def imports(self, *, typing: bool = True) -> dict[str, int]:
        """Every kvmlab module imported (with ``TYPE_CHECKING`` ones unless told not)."""
        return {**self.typing_edges, **self.edges} if typing else dict(self.edges)


def module_name(path: Path) -> str:
    """``kvmlab/cpu/model.py`` -> ``kvmlab.cpu.model``; a package's ``__init__`` -> its name."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def is_type_checking(test: ast.expr) -> bool:
    return ((isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def statements(node: ast.AST, typing: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    """Every node below ``node``, each with whether it sits under ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and is_type_checking(child.test):
            for part in child.body:
                yield part, True
                yield from statements(part, True)
            for part in child.orelse:
                yield part, typing
                yield from statements(part, typing)
            continue
        yield child, typing
        yield from statements(child, typing)


def dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a chain of attributes over a name, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def literal_module(call: ast.Call) -> str | None:
    """The kvmlab module named by ``importlib.import_module("kvmlab....")``, if it is that."""
    if dotted(call.func) not in ("importlib.import_module", "import_module") or not call.args:
        return None
    first = call.args[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str) \
            and first.value.split(".")[0] == "kvmlab":
        return first.value
    return None


@cache
def modules() -> dict[str, Module]:
    """Every module of the package, with its imports read."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        text = path.read_text()
        found[module_name(path)] = Module(module_name(path), path, len(text.splitlines()),
                                          path.name == "__init__.py")
    for module in found.values():
        read_imports(module, found)
    return found


def read_imports(module: Module, known: dict[str, Module]) -> None:
    tree = ast.parse(module.path.read_text(), str(module.path))
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    bound: dict[str, str] = {}           # local name -> kvmlab module it stands for

    def edge(target: str, line: int, typing: bool) -> None:
        if target == module.name:
            return
        into = module.typing_edges if typing else module.edges
        into.setdefault(target, line)

    def nearest(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    for node, typing in statements(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] != "kvmlab":
                    module.outside.setdefault(alias.name, line)
                    continue
                if any(is_private(part) for part in alias.name.split(".")):
                    module.private.append(f"line {line}: import {alias.name}")
                target = nearest(alias.name)
                if target:
                    edge(target, line, typing)
                    if alias.asname:
                        bound[alias.asname] = target
                    else:
                        bound.setdefault("kvmlab", "kvmlab")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[:len(base_parts) - node.level + 1]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            if base.split(".")[0] != "kvmlab":
                module.outside.setdefault(base, line)
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in known:
                    edge(sub, line, typing)
                    bound[alias.asname or alias.name] = sub
                elif (target := nearest(base)) is not None:
                    edge(target, line, typing)
                if is_private(alias.name):
                    module.private.append(f"line {line}: from {base} import {alias.name}")
        elif isinstance(node, ast.Call) and (name := literal_module(node)) is not None \
                and (target := nearest(name)) is not None:
            edge(target, line, typing)
    # x._name on a kvmlab module bound by an import (kvmlab.cpu.model._name too)
    for node, _typing in statements(tree):
        if not isinstance(node, ast.Attribute) or not is_private(node.attr):
            continue
        chain = dotted(node.value)
        if chain is None:
            continue
        head, _, rest = chain.partition(".")
        if head not in bound:
            continue
        target = ".".join(filter(None, [bound[head], rest]))
        if target in known:
            module.private.append(f"line {node.lineno}: {chain}.{node.attr}")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def one_cycle(graph: dict[str, set[str]], part: list[str]) -> list[str]:
    """A shortest cycle through the first module of a strongly connected component."""
    start, members = part[0], set(part)
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph.get(v, ())):
            if w == start:
                return [*paths[v], start]
            if w in members and w not in paths:
                paths[w] = [*paths[v], w]
                queue.append(w)
    return part          # pragma: no cover - a component always has a cycle


def describe_cycles(graph: dict[str, set[str]]) -> list[str]:
    mods = modules()
    out = []
    for part in cycles(graph):
        path = one_cycle(graph, part)
        steps = [f"{a} (line {mods[a].edges[b]}) -> {b}" for a, b in itertools.pairwise(path)]
        out.append(f"{', '.join(part)}: " + "; ".join(steps))
    return out


def import_graph(*, typing: bool = False) -> dict[str, set[str]]:
    return {name: set(m.imports(typing=typing)) for name, m in modules().items()}


# --------------------------------------------------------------------------- the checker


def test_the_checker_reads_imports_the_way_the_rules_say(tmp_path):
    """The reader itself, on the package: function-level imports and submodules count."""
    mods = modules()
    assert "kvmlab.host.connect" in mods and "kvmlab" in mods
    assert "kvmlab.host.cpio" in mods["kvmlab.host.image"].edges   # from kvmlab.host import cpio
    assert "kvmlab.lab" in mods["kvmlab.cli"].edges
    source = tmp_path / "fake.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from kvmlab.host import cpio\n"
        "import kvmlab.cpu.model as m\n"
        "if TYPE_CHECKING:\n"
        "    from kvmlab.lab import Lab\n"
        "def later():\n"
        "    from kvmlab.errors import _hidden\n"
        "    import importlib\n"
        "    importlib.import_module('kvmlab.data')\n"
        "    return m._secret, cpio.newc_archive\n")
    fake = Module("kvmlab.fake", source, 10, is_package=False)
    read_imports(fake, mods)
    assert set(fake.edges) == {"kvmlab.host.cpio", "kvmlab.cpu.model", "kvmlab.errors",
                               "kvmlab.data"}
    assert set(fake.typing_edges) == {"kvmlab.lab"}
    assert fake.private == ["line 7: from kvmlab.errors import _hidden",
                            "line 10: m._secret"]
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert one_cycle(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]
    assert is_private("_x") and not is_private("__version__") and not is_private("x")


# --------------------------------------------------------------------------- the rules


def test_no_import_cycles():
    found = describe_cycles(import_graph(typing=False))
    assert not found, "import cycles (break them by moving code):\n" + "\n".join(found)


def test_no_module_is_longer_than_the_limit():
    long = [f"{m.name}: {m.lines} lines" for m in modules().values() if m.lines > MAX_LINES]
    assert not long, f"modules over {MAX_LINES} lines (split them by job):\n" + "\n".join(long)


def test_no_module_uses_another_modules_private_names():
    found = [f"{m.name}, {p}" for m in modules().values() for p in m.private]
    assert not found, ("private names used from another module (make them public, or "
                       "move the code):\n" + "\n".join(found))


def test_every_lab_has_every_room():
    missing = [f"kvmlab/{lab}/{room}.py" for lab in LABS for room in ROOMS
               if not (PACKAGE / lab / f"{room}.py").is_file()]
    assert not missing, "missing rooms:\n" + "\n".join(missing)


def forbidden_imports(module: Module, banned: tuple[str, ...]) -> list[str]:
    every = {**module.outside, **module.imports(typing=True)}
    return [f"{module.name} imports {name} (line {line})" for name, line in sorted(every.items())
            if any(name == b or name.startswith(b + ".") for b in banned)]


def test_each_room_keeps_to_its_job():
    mods = modules()
    found: list[str] = []
    for lab in LABS:
        model = f"kvmlab.{lab}.model"
        for room, banned in (
                ("model", ("libvirt", "libvirt_qemu", "subprocess", "kvmlab.host")),
                ("twin", ("simpy", model)),
                ("plot", ("simpy", model))):
            name = f"kvmlab.{lab}.{room}"
            if name in mods:
                found += forbidden_imports(mods[name], banned)
    assert not found, "rooms doing another room's job:\n" + "\n".join(found)
