"""The house's size limits (issue 19): no source file over 600 lines, no function over 80 lines,
and no program writer (backends/*/program.py) forks a program's text on the mesh (one chip is a 1x1 mesh)."""

import ast
import re

import pytest

from .conftest import ROOT

PACKAGE = ROOT / "ttspec"
SOURCES = sorted(p for p in PACKAGE.rglob("*") if p.suffix == ".py" and "__pycache__" not in p.parts)
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


def test_no_program_writer_forks_on_the_mesh():
    """A mesh changes the values a program's header states, not which text it writes."""
    writers = sorted(PACKAGE.glob("backends/*/program.py"))
    assert [p.parent.name for p in writers] == ["torch", "ttnn"]
    forks = [f"{_rel(p)}:{node.lineno}" for p in writers for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
             if isinstance(node, (ast.If, ast.IfExp)) and re.search(r"\bmesh", ast.unparse(node.test))]
    assert not forks, "program writers fork on the mesh: " + ", ".join(forks)
