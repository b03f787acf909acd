"""The house's size limits (issue 19): no source file over 600 lines, no function over 80 lines,
and no template forks a program's code on the mesh (one chip is a 1x1 mesh)."""

import ast
import re

import pytest

from .conftest import ROOT

PACKAGE = ROOT / "ttspec"
SOURCES = sorted(p for p in PACKAGE.rglob("*") if p.suffix in (".py", ".j2") and "__pycache__" not in p.parts)
MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 80


def _rel(path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", SOURCES, ids=_rel)
def test_no_file_over_600_lines(path):
    lines = path.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_FILE_LINES, f"{_rel(path)} has {lines} lines; split it by concern"


def test_no_function_over_80_lines():
    long = []
    for path in SOURCES:
        if path.suffix != ".py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{_rel(path)}:{node.lineno} {node.name} ({length} lines)")
    assert not long, "\n".join(long)


def test_no_template_forks_on_the_mesh():
    forks = [f"{_rel(p)}:{i}" for p in SOURCES if p.suffix == ".j2"
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if re.search(r"{%-?\s*(el)?if\b[^%]*\bmesh\b", line)]
    assert not forks, "templates fork on the mesh: " + ", ".join(forks)
