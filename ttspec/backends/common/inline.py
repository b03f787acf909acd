"""The runtime a generated program carries, inlined from real modules (backends/*/rt/*.py).

A program is written first with two marker lines where its imports and its runtime go, and its
writer states what the program's own code reads and defines (Roots): the names and attribute names
its code trees read (pyast.names_read, attributes_read) and the constants its header and tables
state. Nothing here parses the program's text. The runtime definitions (top-level functions,
classes and constants) it needs are those roots, the API the backend offers, and everything they
load in turn, as the runtime index states what each definition loads (below). A class keeps its special methods,
`forward` (nn.Module calls it) and the methods some kept code reaches as an attribute
(`cache.decode_softcapped`). The definitions are copied as written, in the order of the runtime's
modules; their imports are merged into the program's (each import kept when the program loads its
name). Relative imports between runtime modules are dropped: the program defines those names
itself, either inlined or, for the names of a `header.py`, in its header, which the program's
writer states with the program's values.

A model class may take a runtime class's methods (the root takes `Program`'s: its serving API): the
runtime follows the model classes, so the methods are copied into the class rather than inherited.

The compiler never imports the runtime modules (they import torch or ttnn), nor parses them: what
`ast` finds in them (each definition's kind, lines and loads, a class's methods, each module's
imports and names) is shipped as backends/runtime_index.json, written by make_index.py (run
`python -m ttspec.backends.common.make_index` after editing a file in backends/*/rt/). A compile
reads that index, checks each runtime file's size and CRC-32 against it (refusing a stale index:
it would copy wrong lines), and takes the text of the definitions it keeps from the files.
"""

from __future__ import annotations

import json
import os
import zlib
from functools import cache, cached_property
from pathlib import Path
from typing import NamedTuple

BACKENDS = Path(__file__).resolve().parent.parent
INDEX_PATH = BACKENDS / "runtime_index.json"  # what make_index.py reads from the runtime's modules
INDEX_FORMAT = 1
MAKE_INDEX = "python -m ttspec.backends.common.make_index"
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


class StaleIndex(RuntimeError):
    """The shipped runtime index was written from other runtime files than those installed: inlining from
    it would copy wrong lines into programs."""


def file_stamp(data: bytes) -> list[int]:
    """A runtime file's size and CRC-32: what tells the index that the file changed since it was written
    (CRC-32 rather than a hashlib digest: zlib imports in a fraction of hashlib's time)."""
    return [len(data), zlib.crc32(data)]


def is_module(name: str) -> bool:
    return name.endswith(".py") and not name.startswith(".")  # not an editor's lock file (.#mesh.py)


def check_index(index: dict, backends: Path) -> dict[str, bytes]:
    """The runtime files' contents by path (relative to `backends`), once they are shown to be the files
    the index was written from: every runtime package's files as they were, none added or removed."""
    def stale(what: str) -> StaleIndex:
        return StaleIndex(f"the runtime index ttspec/backends/{INDEX_PATH.name} is stale: {what} since it was written; "
                          f"run `{MAKE_INDEX}`")

    if index.get("format") != INDEX_FORMAT:
        raise stale(f"its format is not {INDEX_FORMAT}")
    contents = {}
    for package in index["packages"]:
        directory = backends / package / "rt"
        try:
            present = {name for name in os.listdir(directory) if is_module(name)}
        except OSError:
            present = set()
        indexed = {path.rsplit("/", 1)[1] for path in index["files"] if path.startswith(f"{package}/rt/")}
        for name in sorted(present ^ indexed):
            raise stale(f"{package}/rt/{name} was {'added' if name in present else 'removed'}")
        for name in sorted(indexed):
            path = f"{package}/rt/{name}"
            contents[path] = (directory / name).read_bytes()
            if file_stamp(contents[path]) != index["files"][path]:
                raise stale(f"backends/{path} changed")
    return contents


class _Runtime(NamedTuple):
    index: dict
    contents: dict[str, bytes]  # each runtime file as the index was checked against it


@cache
def _runtime() -> _Runtime:
    """The shipped index, checked against the runtime's files (read once per process)."""
    try:
        index = json.loads(INDEX_PATH.read_bytes())
    except FileNotFoundError:
        raise StaleIndex(f"the runtime index {INDEX_PATH} is missing; run `{MAKE_INDEX}`") from None
    return _Runtime(index, check_index(index, BACKENDS))


def _key(path: Path) -> str:
    """A runtime module's path as the index names it (`ttnn/rt/mesh.py`; not Path.relative_to, which
    costs a compile a millisecond over the runtime's modules)."""
    return f"{path.parent.parent.name}/{path.parent.name}/{path.name}"


@cache
def _source_lines(path: Path) -> list[str]:
    return _runtime().contents[_key(path)].decode("utf-8").splitlines()


class Member:
    """A method of a runtime class: the lines it spans (with its decorators), what it loads, and whether
    it stays only when something reaches it as an attribute."""

    def __init__(self, entry: dict):
        self.name, self.optional = entry["name"], entry["optional"]
        self.first, self.last = entry["first"], entry["last"]
        self._loads = entry["loads"], entry["reads"]

    @cached_property
    def loads(self) -> tuple[frozenset[str], frozenset[str]]:
        return frozenset(self._loads[0]), frozenset(self._loads[1])


class Definition:
    """A top-level function, class or constant of a runtime module (`kind`): its source lines (with the
    comment lines just above it, read from the file only when it is kept), a class's methods, and what it
    loads outside the methods that may be left out."""

    def __init__(self, entry: dict, path: Path):
        self.name, self.kind, self.path = entry["name"], entry["kind"], path
        self.first, self.last = entry["first"], entry["last"]
        self.members: tuple[Member, ...] = tuple(Member(m) for m in entry.get("members", ()))
        self.body_is_methods = entry.get("methods_only", False)  # a class a model class may take the methods of
        self._loads = entry["loads"], entry["reads"]

    @cached_property
    def loads(self) -> tuple[frozenset[str], frozenset[str]]:
        return frozenset(self._loads[0]), frozenset(self._loads[1])

    @cached_property
    def lines(self) -> tuple[str, ...]:
        return tuple(_source_lines(self.path)[self.first - 1 : self.last])

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


class Module(NamedTuple):
    path: Path
    definitions: tuple[Definition, ...]
    imports: dict[str, str]  # the name an absolute import binds -> the import statement
    names: frozenset[str]  # every name it defines or imports at module level (relative imports too)


def runtime_dirs(*names: str) -> list[Path]:
    """The runtime packages of these backends (`common`, `torch`, `ttnn`), in order."""
    return [BACKENDS / name / "rt" for name in names]


def all_runtime_dirs() -> list[Path]:
    return [BACKENDS / name / "rt" for name in sorted(_runtime().index["packages"])]


def module_paths(dirs: list[Path]) -> list[Path]:
    """The runtime's modules in reading order: each package's MODULES (in its __init__.py), which puts
    what the rest builds on first; its header.py last."""
    packages = _runtime().index["packages"]
    return [d / name for d in dirs for name in packages[d.parent.name]]


@cache
def runtime_module(path: Path) -> Module:
    """A runtime module's definitions and imports, as the index states them (built once per process)."""
    entry = _runtime().index["modules"][_key(path)]
    definitions = tuple(Definition(d, path) for d in entry["definitions"])
    return Module(path, definitions, entry["imports"], frozenset(entry["names"]))


def module_level_names(dirs: list[Path]) -> set[str]:
    """Every name the runtime's modules define or import at module level (what a program may hold)."""
    packages, modules = _runtime().index["packages"], _runtime().index["modules"]
    return {name for d in dirs for module in packages[d.parent.name]
            for name in modules[f"{d.parent.name}/rt/{module}"]["names"]}


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
    modules = [runtime_module(path) for path in module_paths(dirs)]
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
            where = f"{BACKENDS.parent.name}/{BACKENDS.name}/{_key(module.path)}"
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
