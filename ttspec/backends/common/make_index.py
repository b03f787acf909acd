"""Read the programs' runtime (backends/*/rt/*.py) with `ast` into the index inline.py and the namer
run on, shipped as backends/runtime_index.json.

A cold compile cannot afford to parse the runtime's modules (`ast` over them cost ~18 ms of the 0.2 s
budget) and must not read a per-user cache (TTSPEC_NO_CACHE=1), so what the namer and the inliner need
from the parse is written here, ahead of time, as arch_tables.json is for the parser: per module, what
it imports and every name it binds at module level, and per definition (top-level function, class or
constant) its kind, its lines (with the comment lines just above it), the names and attribute names it
loads, and a class's methods with theirs. Each file's size and checksum go with it: inline.py refuses
an index that no longer matches the files. tests/test_runtime_index.py checks that the shipped file is
what this writes today.

    python -m ttspec.backends.common.make_index     # after editing a file in backends/*/rt/
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

from .inline import BACKENDS, HEADER, INDEX_FORMAT, INDEX_PATH, file_stamp, is_module


def _loads(nodes: list[ast.AST]) -> tuple[list[str], list[str]]:
    """The names the nodes load and the attribute names they read, sorted."""
    names, attributes = set(), set()
    for node in nodes:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load):
                names.add(sub.id)
            elif isinstance(sub, ast.Attribute):
                attributes.add(sub.attr)
    return sorted(names), sorted(attributes)


def _first_line(node: ast.AST) -> int:
    return min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])


def _docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _member(node: ast.FunctionDef) -> dict:
    """A method: its lines (with its decorators), whether it stays only when something reaches it as an
    attribute (all but special methods and `forward`, which nn.Module calls), and what it loads."""
    loads, reads = _loads([node])
    optional = not (node.name.startswith("__") or node.name == "forward")
    return {"name": node.name, "first": _first_line(node), "last": node.end_lineno, "optional": optional,
            "loads": loads, "reads": reads}


def _definition(node: ast.stmt, name: str, source: list[str]) -> dict:
    """A definition's lines (the comment that explains it travels with it) and what it loads outside the
    methods that may be left out; a class's methods, and whether its body is methods (and a docstring)
    only: a class a model class may take the methods of."""
    first = _first_line(node)
    while first > 1 and source[first - 2].lstrip().startswith("#"):
        first -= 1
    entry = {"name": name, "kind": "constant", "first": first, "last": node.end_lineno}
    parts = [node]
    if isinstance(node, ast.FunctionDef):
        entry["kind"] = "function"
    elif isinstance(node, ast.ClassDef):
        members = [_member(n) for n in node.body if isinstance(n, ast.FunctionDef)]
        optional = {n.name for n in node.body if isinstance(n, ast.FunctionDef)} & \
            {m["name"] for m in members if m["optional"]}
        parts = [n for n in node.body if not (isinstance(n, ast.FunctionDef) and n.name in optional)]
        parts += node.bases + node.decorator_list
        entry.update(kind="class", members=members,
                     methods_only=all(isinstance(n, ast.FunctionDef) or _docstring(n) for n in node.body))
    loads, reads = _loads(parts)
    entry.update(loads=[n for n in loads if n != name], reads=reads)
    return entry


def index_module(path: Path) -> dict:
    """A runtime module's definitions in file order, its absolute imports (the name each binds -> the
    statement) and every name it binds at module level (relative imports too)."""
    text = path.read_text(encoding="utf-8")
    source = text.splitlines()
    definitions, imports, names = [], {}, set()
    for node in ast.parse(text, str(path)).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names.add(alias.asname or alias.name.split(".")[0])
                if not getattr(node, "level", 0):  # relative imports: names the program defines itself
                    imports[alias.asname or alias.name] = "\n".join(source[node.lineno - 1 : node.end_lineno])
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            definitions.append(_definition(node, node.name, source))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            definitions += [_definition(node, t.id, source) for t in targets if isinstance(t, ast.Name)]
    names |= {d["name"] for d in definitions}
    return {"imports": imports, "names": sorted(names), "definitions": definitions}


def package_order(directory: Path) -> list[str]:
    """A runtime package's modules in reading order: its MODULES (in its __init__.py), which puts what
    the rest builds on first, then its header.py."""
    order = []
    for node in ast.parse((directory / "__init__.py").read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets if isinstance(t, ast.Name)] == ["MODULES"]:
            order = list(ast.literal_eval(node.value))
    files = [f"{name}.py" for name in order] + [HEADER]
    unlisted = {p.name for p in directory.iterdir() if is_module(p.name)} - set(files) - {"__init__.py"}
    assert not unlisted, f"list {sorted(unlisted)} in {directory / '__init__.py'}'s MODULES"
    return files


def build_index(backends: Path = BACKENDS) -> dict:
    packages, stamps, modules = {}, {}, {}
    for directory in sorted(backends.glob("*/rt")):
        package = directory.parent.name
        packages[package] = package_order(directory)
        for name in sorted(p.name for p in directory.iterdir() if is_module(p.name)):
            stamps[f"{package}/rt/{name}"] = file_stamp((directory / name).read_bytes())
        for name in packages[package]:
            modules[f"{package}/rt/{name}"] = index_module(directory / name)
    return {"format": INDEX_FORMAT, "packages": packages, "files": stamps, "modules": modules}


def render(index: dict) -> str:
    """One line per module, so that a change to the runtime shows as a readable diff."""
    head = {key: index[key] for key in ("format", "packages", "files")}
    lines = [json.dumps(head, separators=(",", ":"))[:-1] + ',"modules":{']
    items = list(index["modules"].items())
    lines += [json.dumps(path) + ":" + json.dumps(module, separators=(",", ":")) + ("," if i < len(items) - 1 else "")
              for i, (path, module) in enumerate(items)]
    return "\n".join(lines) + "\n}}\n"


if __name__ == "__main__":
    INDEX_PATH.write_text(render(build_index()), encoding="utf-8")
    print(f"wrote {INDEX_PATH}")
