"""The runtime a generated program carries, inlined from real modules (backends/*/rt/*.py).

A program is written first with two marker lines where its imports and its runtime go, and its
writer states what the program's own code reads and defines (Roots): the names and attribute names
its code trees read (pyast.names_read, attributes_read) and the constants its header and tables
state. Nothing here parses the program's text. The runtime definitions (top-level functions,
classes and constants) it needs are those roots, the API the backend offers, and everything they
load in turn, found in the runtime's own source with `ast`. A class keeps its special methods,
`forward` (nn.Module calls it) and the methods some kept code reaches as an attribute
(`cache.decode_softcapped`). The definitions are copied as written, in the order of the runtime's
modules; their imports are merged into the program's (each import kept when the program loads its
name). Relative imports between runtime modules are dropped: the program defines those names
itself, either inlined or, for the names of a `header.py`, in its header, which the program's
writer states with the program's values.

A model class may take a runtime class's methods (the root takes `Program`'s: its serving API): the
runtime follows the model classes, so the methods are copied into the class rather than inherited.

The compiler never imports the runtime modules (they import torch or ttnn): it reads them as text,
each file parsed once per process, and what a definition loads is walked only when it is kept.
"""

from __future__ import annotations

import ast
import gc
from contextlib import contextmanager
from functools import cache, cached_property
from pathlib import Path
from typing import NamedTuple

BACKENDS = Path(__file__).resolve().parent.parent
IMPORTS_MARK = "# ttspec: the imports go here"
RUNTIME_MARK = "# ttspec: the runtime goes here"
METHODS_MARK = "    # ttspec: the methods of {} go here"  # in a model class, which takes a runtime class's methods
HEADER = "header.py"  # in each runtime package: what the program's header states
SECTION = "# " + "-" * 64


class Roots(NamedTuple):
    """What a program's own code (all but its inlined runtime) reads and states, as its writer knows it.
    (NamedTuples rather than dataclasses here: a frozen dataclass costs a compile about a millisecond
    to create at import.)"""

    names: frozenset[str]  # names its code reads
    attributes: frozenset[str]  # attribute names its code reads (which keep a runtime class's methods)
    header: frozenset[str]  # the module-level constants it states (its header and tables)


def _loads(nodes: list[ast.AST]) -> tuple[frozenset[str], frozenset[str]]:
    """The names the nodes load and the attribute names they read. A walk of its own rather than
    ast.walk, whose generators cost twice as much."""
    names, attributes = set(), set()
    stack = list(nodes)
    while stack:
        sub = stack.pop()
        kind = type(sub)
        if kind is ast.Name:
            if type(sub.ctx) is ast.Load:
                names.add(sub.id)
            continue
        if kind is ast.Attribute:
            attributes.add(sub.attr)
        for field in sub._fields:
            value = getattr(sub, field, None)
            if type(value) is list:
                stack.extend(item for item in value if isinstance(item, ast.AST))
            elif isinstance(value, ast.AST):
                stack.append(value)
    return frozenset(names), frozenset(attributes)


def _first_line(node: ast.AST) -> int:
    decorators = getattr(node, "decorator_list", [])
    return min([node.lineno] + [d.lineno for d in decorators])


class Member:
    """A method of a runtime class: the lines it spans (with its decorators), what it loads (walked on
    first use), and whether it stays only when something reaches it as an attribute."""

    def __init__(self, node: ast.FunctionDef):
        self.name, self.node = node.name, node
        self.first, self.last = _first_line(node), node.end_lineno
        self.optional = not (node.name.startswith("__") or node.name == "forward")

    @cached_property
    def loads(self) -> tuple[frozenset[str], frozenset[str]]:
        return _loads([self.node])


class Definition:
    """A top-level function, class or constant of a runtime module: its source lines (with the comment
    lines just above it), a class's methods, and what it loads outside the methods that may be left
    out (walked on first use)."""

    def __init__(self, node: ast.stmt, name: str, path: Path, source: list[str]):
        first = _first_line(node)
        while first > 1 and source[first - 2].lstrip().startswith("#"):
            first -= 1  # the comment that explains it travels with it
        self.name, self.path, self.first = name, path, first
        self.lines = tuple(source[first - 1 : node.end_lineno])
        self.members: tuple[Member, ...] = ()
        self._parts = [node]
        self.body_is_methods = False  # a class of methods (and a docstring) only: one a model class may take
        if isinstance(node, ast.ClassDef):
            self.members = tuple(Member(n) for n in node.body if isinstance(n, ast.FunctionDef))
            optional = {id(m.node) for m in self.members if m.optional}
            self._parts = [n for n in node.body if id(n) not in optional] + node.bases + node.decorator_list
            self.body_is_methods = all(isinstance(n, ast.FunctionDef) or _docstring(n) for n in node.body)

    @cached_property
    def loads(self) -> tuple[frozenset[str], frozenset[str]]:
        names, attributes = _loads(self._parts)
        return names - {self.name}, attributes

    def text(self, members: set[str]) -> str:
        """The source without the optional methods not in `members` (and the blank line before each)."""
        dropped = set()
        for member in self.members:
            if member.optional and member.name not in members:
                first = member.first
                if not self.lines[first - self.first - 1].strip():
                    first -= 1
                dropped |= set(range(first, member.last + 1))
        return "\n".join(line for n, line in enumerate(self.lines, self.first) if n not in dropped)

    def method_text(self, member: Member) -> str:
        return "\n".join(self.lines[member.first - self.first : member.last - self.first + 1])


def _docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


class Module(NamedTuple):
    path: Path
    definitions: tuple[Definition, ...]
    imports: dict[str, str]  # the name an absolute import binds -> the import statement
    names: frozenset[str]  # every name it defines or imports at module level (relative imports too)


def runtime_dirs(*names: str) -> list[Path]:
    """The runtime packages of these backends (`common`, `torch`, `ttnn`), in order."""
    return [BACKENDS / name / "rt" for name in names]


def all_runtime_dirs() -> list[Path]:
    return sorted(BACKENDS.glob("*/rt"))


@cache
def _package_paths(directory: Path) -> tuple[Path, ...]:
    order = []
    for node in ast.parse((directory / "__init__.py").read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets if isinstance(t, ast.Name)] == ["MODULES"]:
            order = list(ast.literal_eval(node.value))
    paths = [directory / f"{name}.py" for name in order] + [directory / HEADER]
    unlisted = {p.name for p in directory.glob("*.py")} - {p.name for p in paths} - {"__init__.py"}
    assert not unlisted, f"list {sorted(unlisted)} in {directory / '__init__.py'}'s MODULES"
    return tuple(paths)


def module_paths(dirs: list[Path]) -> list[Path]:
    """The runtime's modules in reading order: each package's MODULES (in its __init__.py), which
    puts what the rest builds on first; its header.py last."""
    return [path for d in dirs for path in _package_paths(d)]


@contextmanager
def _collector_paused():
    """The cyclic garbage collector off while a module's `ast` is built: the tens of thousands of
    nodes (which form no cycles) would set off young collections that walk everything a compile
    holds, which cost more than the parse itself."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@cache
def parse_module(path: Path) -> Module:
    """A runtime module's definitions and imports: one `ast.parse` of the file per process, no walk
    (what a definition loads is walked when the inliner keeps it)."""
    text = path.read_text(encoding="utf-8")
    source = text.splitlines()
    definitions, imports, names = [], {}, set()
    with _collector_paused():
        tree = ast.parse(text, str(path))
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                names.add(bound)
                if not getattr(node, "level", 0):  # relative imports: names the program defines itself
                    imports[alias.asname or alias.name] = "\n".join(source[node.lineno - 1 : node.end_lineno])
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            definitions.append(Definition(node, node.name, path, source))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    definitions.append(Definition(node, target.id, path, source))
    names |= {d.name for d in definitions}
    return Module(path, tuple(definitions), imports, frozenset(names))


def module_level_names(dirs: list[Path]) -> set[str]:
    """Every name the runtime's modules define or import at module level (what a program may hold),
    from the same parse the inliner uses (so a compile reads each module once)."""
    return {name for path in module_paths(dirs) for name in parse_module(path).names}


def _select(names: set[str], attributes: set[str], by_name: dict[str, Definition]) -> dict[str, set[str]]:
    """The definitions the roots need, each with the optional methods it keeps: a fixpoint over names
    and attributes loaded by what is kept."""
    kept: dict[str, set[str]] = {}
    names, attributes = set(names), set(attributes)
    changed = True
    while changed:
        changed = False
        for name in sorted(names & by_name.keys()):
            definition = by_name[name]
            if name not in kept:
                kept[name] = set()
                loads, reads = definition.loads
                names |= loads
                attributes |= reads
                changed = True
            for member in definition.members:
                if member.optional and member.name in attributes and member.name not in kept[name]:
                    kept[name].add(member.name)
                    loads, reads = member.loads
                    names |= loads
                    attributes |= reads
                    changed = True
    return kept


def _methods(definition: Definition, without: set[str]) -> tuple[str, set[str], set[str]]:
    """The methods of a runtime class as a class body, leaving out `without`, and what they load."""
    assert definition.members and definition.body_is_methods, f"{definition.name} is a set of methods"
    texts, names, attributes = [], set(), set()
    for member in definition.members:
        if member.name not in without:
            texts.append(definition.method_text(member))
            loads, reads = member.loads
            names |= loads
            attributes |= reads
    return "\n\n".join(texts), names, attributes


# the order of a program's imports (isort's: the standard library, then third-party packages)
STANDARD_IMPORTS = ("import math", "import re", "from collections.abc import Iterator")
PACKAGE_IMPORTS = ("import torch", "import torch.nn.functional as F", "import ttnn", "from torch import nn")


def inline_runtime(program: str, roots: Roots, dirs: list[Path], api: set[str],
                   mixins: dict[str, set[str]] | None = None) -> str:
    """`program` with its imports and the runtime definitions it uses (and `api`, what its users call)
    in place of the two marks; `roots`: what the program's own code reads and states; `mixins`: the
    runtime classes whose methods a model class takes (at METHODS_MARK), each with the methods it
    leaves out."""
    modules = [parse_module(path) for path in module_paths(dirs)]
    by_name = {d.name: d for m in modules if m.path.name != HEADER for d in m.definitions}
    names, attributes = set(roots.names), set(roots.attributes)
    for name, without in (mixins or {}).items():
        mark = METHODS_MARK.format(name)
        assert program.count(mark) == 1, mark
        text, loads, reads = _methods(by_name[name], without)
        program = program.replace(mark, text)
        names |= loads
        attributes |= reads
    kept = _select(names | api, attributes, by_name)
    sections, used = [], set(names)
    for module in modules:
        chosen = [d for d in module.definitions if d.name in kept and module.path.name != HEADER]
        if chosen:
            where = module.path.relative_to(BACKENDS.parent.parent).as_posix()
            texts = [d.text(kept[d.name]) for d in chosen]
            sections.append(f"{SECTION} from {where}\n\n\n" + "\n\n\n".join(texts))
            for d in chosen:
                used |= d.loads[0]
                used |= {n for m in d.members if m.name in kept[d.name] for n in m.loads[0]}
    _check_header(roots.header, used, modules)
    statements = {statement for m in modules for name, statement in m.imports.items() if name in used}
    statements |= {s for s in STANDARD_IMPORTS + PACKAGE_IMPORTS if s.rsplit(" ", 1)[-1] in names}
    unknown = statements - set(STANDARD_IMPORTS + PACKAGE_IMPORTS)
    assert not unknown, f"give these runtime imports their place in the program's: {sorted(unknown)}"
    groups = ([s for s in STANDARD_IMPORTS if s in statements], [s for s in PACKAGE_IMPORTS if s in statements])
    imports = "\n\n".join("\n".join(group) for group in groups if group)
    runtime = "\n\n\n".join(sections)
    return program.replace(IMPORTS_MARK, imports).replace(RUNTIME_MARK, runtime)


def _check_header(stated: frozenset[str], used: set[str], modules: list[Module]) -> None:
    """Every header name the kept runtime reads is one the program states, and every constant the
    program states is declared in a header.py (so the namer knows it)."""
    header = {d.name for m in modules if m.path.name == HEADER for d in m.definitions}
    missing = (used & header) - stated
    assert not missing, f"the program's header does not state {sorted(missing)}"
    undeclared = stated - header
    assert not undeclared, f"declare {sorted(undeclared)} in a runtime header.py"
