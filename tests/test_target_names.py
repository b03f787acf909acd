"""Target names come from the target table (ttspec/targets.py): no string in ttspec's code names a
target outside it, so that a target added, renamed or dropped there changes every `choices=` list,
help text, hint and message. Docstrings and comments may name targets (they explain, they are not
what a user is shown), and so may ttspec/mock/, whose cluster descriptors are files named after the
targets they mock and which sits below targets.py in the layers (it cannot import the table)."""

import ast
import re

from ttspec.targets import TARGETS

from .conftest import ROOT

PACKAGE = ROOT / "ttspec"
ALLOWED = {PACKAGE / "targets.py"}
ALLOWED_FOLDERS = (PACKAGE / "mock",)
NAME = re.compile(r"\b(" + "|".join(map(re.escape, sorted(TARGETS, key=len, reverse=True))) + r")\b")


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (a module's, class's or function's first statement)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def target_literals(source: str, filename: str = "<source>") -> list[str]:
    """`file:line: text` for each string constant in `source` (f-string parts included) naming a target."""
    tree = ast.parse(source, filename)
    docs = _docstrings(tree)
    return [f"{filename}:{node.lineno}: {node.value!r}" for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
            and NAME.search(node.value)]


def test_the_scan_finds_a_target_name_and_skips_docstrings_and_comments():
    planted = ('"""A module for n150."""\n'
               'def f(mesh):\n'
               '    """Runs on t3k."""\n'
               '    # galaxy: a comment\n'
               '    return f"--target t3k --mesh {mesh}", "choose n300", "p150x4", "p150x8s", "n1500"\n')
    found = target_literals(planted)
    assert sorted(line.split(": ", 1)[1] for line in found) == ["'--target t3k --mesh '", "'choose n300'",
                                                                "'p150x4'"]


def test_no_target_name_outside_the_target_table():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path in ALLOWED or any(folder in path.parents for folder in ALLOWED_FOLDERS):
            continue
        found += target_literals(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert not found, "target names outside ttspec/targets.py:\n" + "\n".join(found)
