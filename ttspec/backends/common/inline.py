"""The runtime a generated program carries, inlined from real modules (backends/*/rt/*.py).

A program is rendered first with two marker lines where its imports and its runtime go. Its text is
then parsed (`ast`): the module-level names it loads are the roots, and the runtime definitions
(top-level functions, classes and constants) it needs are those roots and everything they load in
turn, found the same way in the runtime's source. A class keeps its special methods, `forward`
(nn.Module calls it) and the methods some kept code reaches as an attribute (`cache.decode_softcapped`).
The definitions are copied as written, in the order of the runtime's modules; their imports are
merged into the program's (each import kept when the program loads its name). Relative imports
between runtime modules are dropped: the program defines those names itself, either inlined or, for
the names of a `header.py`, in its header, which the template writes with the program's values.

A model class may take a runtime class's methods (the root takes `Program`'s: its serving API): the
runtime follows the model classes, so the methods are copied into the class rather than inherited.

The compiler never imports the runtime modules (they import torch or ttnn): it reads them as text.
"""

from __future__ import annotations

import ast
import symtable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

BACKENDS = Path(__file__).resolve().parent.parent
IMPORTS_MARK = "# ttspec: the imports go here"
RUNTIME_MARK = "# ttspec: the runtime goes here"
METHODS_MARK = "    # ttspec: the methods of {} go here"  # in a model class, which takes a runtime class's methods
HEADER = "header.py"  # in each runtime package: what the program's header states
SECTION = "# " + "-" * 64


@dataclass(frozen=True)
class Member:
    """A method of a runtime class: the lines it spans (with its decorators), what it loads."""

    name: str
    first: int
    last: int
    names: frozenset[str]
    attributes: frozenset[str]


@dataclass(frozen=True)
class Definition:
    name: str
    path: Path
    lines: tuple[str, ...]  # the definition's source lines, with the comment lines just above it
    first: int  # the line number of lines[0]
    names: frozenset[str]  # names it loads (outside its methods, for a class)
    attributes: frozenset[str]  # attribute names it reads (outside its methods)
    members: tuple[Member, ...]  # a class's methods that may be left out


@dataclass(frozen=True)
class Module:
    path: Path
    definitions: tuple[Definition, ...]
    imports: dict[str, str]  # the name an import binds -> the import statement


def runtime_dirs(*names: str) -> list[Path]:
    """The runtime packages of these backends (`common`, `torch`, `ttnn`), in order."""
    return [BACKENDS / name / "rt" for name in names]


def all_runtime_dirs() -> list[Path]:
    return sorted(BACKENDS.glob("*/rt"))


def module_paths(dirs: list[Path]) -> list[Path]:
    """The runtime's modules in reading order: each package's MODULES (in its __init__.py), which
    puts what the rest builds on first; its header.py last."""
    paths = []
    for d in dirs:
        order = []
        for node in ast.parse((d / "__init__.py").read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and [t.id for t in node.targets if isinstance(t, ast.Name)] == ["MODULES"]:
                order = list(ast.literal_eval(node.value))
        paths += [d / f"{name}.py" for name in order] + [d / HEADER]
        unlisted = {p.name for p in d.glob("*.py")} - {p.name for p in paths} - {"__init__.py"}
        assert not unlisted, f"list {sorted(unlisted)} in {d / '__init__.py'}'s MODULES"
    return paths


def _loads(node: ast.AST) -> tuple[set[str], set[str]]:
    """The names a definition loads and the attribute names it reads. A walk of its own rather than
    ast.walk, whose generators cost twice as much: every compile walks the whole runtime."""
    names, attributes = set(), set()
    stack = [node]
    while stack:
        sub = stack.pop()
        if type(sub) is ast.Name:
            if type(sub.ctx) is ast.Load:
                names.add(sub.id)
            continue
        if type(sub) is ast.Attribute:
            attributes.add(sub.attr)
        for field in sub._fields:
            value = getattr(sub, field, None)
            if isinstance(value, list):
                stack.extend(item for item in value if isinstance(item, ast.AST))
            elif isinstance(value, ast.AST):
                stack.append(value)
    return names, attributes


def _first_line(node: ast.AST) -> int:
    decorators = getattr(node, "decorator_list", [])
    return min([node.lineno] + [d.lineno for d in decorators])


def _optional(node: ast.AST) -> bool:
    """A method that stays only when something reaches it as an attribute."""
    return isinstance(node, ast.FunctionDef) and not (node.name.startswith("__") or node.name == "forward")


def _definition(node: ast.stmt, name: str, path: Path, source: list[str]) -> Definition:
    first = _first_line(node)
    while first > 1 and source[first - 2].lstrip().startswith("#"):
        first -= 1  # the comment that explains it travels with it
    members, body = [], [node]
    if isinstance(node, ast.ClassDef):
        body = [n for n in node.body if not _optional(n)] + node.bases + node.decorator_list
        for method in (n for n in node.body if _optional(n)):
            loads, attributes = _loads(method)
            members.append(Member(method.name, _first_line(method), method.end_lineno, frozenset(loads),
                                  frozenset(attributes)))
    names, attributes = set(), set()
    for part in body:
        loads, reads = _loads(part)
        names |= loads
        attributes |= reads
    return Definition(name, path, tuple(source[first - 1 : node.end_lineno]), first, frozenset(names - {name}),
                      frozenset(attributes), tuple(members))


@cache
def parse_module(path: Path) -> Module:
    text = path.read_text(encoding="utf-8")
    source = text.splitlines()
    definitions, imports = [], {}
    for node in ast.parse(text, str(path)).body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                imports[alias.asname or alias.name] = ast.get_source_segment(text, node)
        elif isinstance(node, ast.ImportFrom):
            if not node.level:  # relative imports: names the program defines itself
                for alias in node.names:
                    imports[alias.asname or alias.name] = ast.get_source_segment(text, node)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            definitions.append(_definition(node, node.name, path, source))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    definitions.append(_definition(node, target.id, path, source))
    return Module(path, tuple(definitions), imports)


def module_level_names(dirs: list[Path]) -> set[str]:
    """Every name the runtime's modules define or import at module level (what a program may hold).
    Read with `symtable` (the compiler's own symbol tables, built in C) rather than parse_module: the
    namer needs it for every compile, before anything is inlined, and walking every module's `ast`
    in Python cost three times as much."""
    names = set()
    for path in module_paths(dirs):
        table = symtable.symtable(path.read_text(encoding="utf-8"), str(path), "exec")
        names |= {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported() or s.is_namespace()}
    return names


def _select(roots: set[str], attributes: set[str], modules: list[Module]) -> dict[str, set[str]]:
    """The definitions the roots need, each with the methods it keeps: a fixpoint over names and
    attributes loaded by what is kept."""
    by_name = {d.name: d for m in modules if m.path.name != HEADER for d in m.definitions}
    kept: dict[str, set[str]] = {}
    names, attributes = set(roots), set(attributes)
    changed = True
    while changed:
        changed = False
        for name in sorted(names & by_name.keys()):
            definition = by_name[name]
            if name not in kept:
                kept[name] = set()
                names |= definition.names
                attributes |= definition.attributes
                changed = True
            for member in definition.members:
                if member.name in attributes and member.name not in kept[name]:
                    kept[name].add(member.name)
                    names |= member.names
                    attributes |= member.attributes
                    changed = True
    return kept


def _text(definition: Definition, members: set[str]) -> str:
    """The definition's source without the methods nothing reaches (and the blank line before each)."""
    dropped = set()
    for member in definition.members:
        if member.name not in members:
            first = member.first
            if not definition.lines[first - definition.first - 1].strip():
                first -= 1
            dropped |= set(range(first, member.last + 1))
    return "\n".join(line for n, line in enumerate(definition.lines, definition.first) if n not in dropped)


# the order of a program's imports (isort's: the standard library, then third-party packages)
STANDARD_IMPORTS = ("import math", "import re", "from collections.abc import Iterator")
PACKAGE_IMPORTS = ("import torch", "import torch.nn.functional as F", "import ttnn", "from torch import nn")


def _methods(modules: list[Module], name: str, without: set[str]) -> str:
    """The methods of runtime class `name` as a class body, leaving out `without`."""
    (definition,) = [d for m in modules for d in m.definitions if d.name == name]
    node = ast.parse("\n".join(definition.lines)).body[-1]
    assert isinstance(node, ast.ClassDef), name
    texts = []
    for method in node.body:
        assert isinstance(method, ast.FunctionDef), f"{name} is a set of methods"
        if method.name not in without:
            texts.append("\n".join(definition.lines[_first_line(method) - 1 : method.end_lineno]))
    return "\n\n".join(texts)


def inline_runtime(program: str, dirs: list[Path], api: set[str], mixins: dict[str, set[str]] | None = None) -> str:
    """`program` with its imports and the runtime definitions it uses (and `api`, what its users call)
    in place of the two marks; `mixins`: the runtime classes whose methods a model class takes (at
    METHODS_MARK), each with the methods it leaves out."""
    modules = [parse_module(path) for path in module_paths(dirs)]
    for name, without in (mixins or {}).items():
        mark = METHODS_MARK.format(name)
        assert program.count(mark) == 1, mark
        program = program.replace(mark, _methods(modules, name, without))
    tree = ast.parse(program)
    names, attributes = _loads(tree)
    kept = _select(names | api, attributes, modules)
    sections, used = [], set(names)
    for module in modules:
        chosen = [d for d in module.definitions if d.name in kept and module.path.name != HEADER]
        if chosen:
            where = module.path.relative_to(BACKENDS.parent.parent).as_posix()
            texts = [_text(d, kept[d.name]) for d in chosen]
            sections.append(f"{SECTION} from {where}\n\n\n" + "\n\n\n".join(texts))
            for d in chosen:
                used |= d.names
                used |= {n for m in d.members if m.name in kept[d.name] for n in m.names}
    _check_header(tree, used, modules)
    statements = {statement for m in modules for name, statement in m.imports.items() if name in used}
    statements |= {s for s in STANDARD_IMPORTS + PACKAGE_IMPORTS if s.rsplit(" ", 1)[-1] in names}
    unknown = statements - set(STANDARD_IMPORTS + PACKAGE_IMPORTS)
    assert not unknown, f"give these runtime imports their place in the program's: {sorted(unknown)}"
    groups = ([s for s in STANDARD_IMPORTS if s in statements], [s for s in PACKAGE_IMPORTS if s in statements])
    imports = "\n\n".join("\n".join(group) for group in groups if group)
    runtime = "\n\n\n".join(sections)
    return program.replace(IMPORTS_MARK, imports).replace(RUNTIME_MARK, runtime)


def _check_header(tree: ast.Module, used: set[str], modules: list[Module]) -> None:
    """Every header name the kept runtime reads is one the program defines, and every constant the
    template writes is declared in a header.py (so the namer knows it)."""
    defined = set()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            defined |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    header = {d.name for m in modules if m.path.name == HEADER for d in m.definitions}
    missing = (used & header) - defined
    assert not missing, f"the program's header does not state {sorted(missing)}"
    undeclared = {name for name in defined if name.isupper()} - header
    assert not undeclared, f"declare {sorted(undeclared)} in a runtime header.py"
