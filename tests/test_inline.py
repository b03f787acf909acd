"""The runtime inlined into a generated program (ttspec/backends/common/inline.py): what a program's
text loads decides which runtime definitions it carries, with everything they load in turn, and
which methods of a runtime class stay; imports follow what is kept; the header must state what the
kept runtime reads. Checked on small programs, and on the programs in generated/ with ruff (no name
undefined, none unused) and `ast`."""

import ast
import subprocess
import sys

import pytest

from ttspec.backends.common.inline import IMPORTS_MARK, RUNTIME_MARK, inline_runtime, runtime_dirs
from ttspec.backends.common.names import PROGRAM_GLOBALS

from .conftest import ROOT

HEADER = """TILE = 32
TRACE_REGION = 1
WEIGHTS_DTYPE = None
MESH_SHAPE = (1, 1)
TP_AXIS = 1
DATA_PARALLEL = False
LOGITS_SPLIT = False
"""


def program(body: str, header: str = HEADER) -> str:
    return f'"""A test program."""\n\n{IMPORTS_MARK}\n\n{header}\n\n{body}\n\n\n{RUNTIME_MARK}\n'


def top_level(text: str) -> dict[str, ast.stmt]:
    names = {}
    for node in ast.parse(text).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names[node.name] = node
    return names


def methods(cls: ast.ClassDef) -> set[str]:
    return {n.name for n in cls.body if isinstance(n, ast.FunctionDef)}


def ruff(text: str, tmp_path) -> subprocess.CompletedProcess:
    path = tmp_path / "program.py"
    path.write_text(text)
    return subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(path)], capture_output=True,
                          text=True, cwd=ROOT)


def test_a_helper_brings_what_it_loads_and_nothing_else(tmp_path):
    text = inline_runtime(program("def f(state, x):\n    return Rotary(state, 64, 10000.0)(x)"),
                          runtime_dirs("ttnn", "common"), set())
    defined = top_level(text)
    # Rotary uploads with the mesh mapper `shard`; nothing reaches RunState, Weights or generate
    assert {"f", "Rotary", "shard"} <= defined.keys()
    assert not {"RunState", "Weights", "KVCache", "generate", "open_device"} & defined.keys()
    assert "import math" in text and "import ttnn" in text and "import re" not in text
    result = ruff(text, tmp_path)
    assert result.returncode == 0, result.stdout


def test_a_method_stays_only_when_something_reaches_it(tmp_path):
    dirs = runtime_dirs("ttnn", "common")
    plain = top_level(inline_runtime(program("def f(state):\n    return KVCache(state, 1, 32).decode"), dirs, set()))
    assert "decode" in methods(plain["KVCache"]) and "decode_softcapped" not in methods(plain["KVCache"])
    assert "decode_mask" not in plain  # only decode_softcapped loads it
    text = inline_runtime(program("def f(state):\n    return KVCache(state, 1, 32).decode_softcapped"), dirs, set())
    soft = top_level(text)
    assert "decode_softcapped" in methods(soft["KVCache"]) and "decode_mask" in soft
    assert "RunState" not in soft  # the cache is handed its state: nothing names the class
    assert ruff(text, tmp_path).returncode == 0


def test_the_api_is_carried_even_when_the_program_never_calls_it():
    text = inline_runtime(program("x = 1"), runtime_dirs("ttnn", "common"), {"open_device", "generate"})
    assert {"open_device", "generate", "sample", "check_finite"} <= top_level(text).keys()


def test_a_header_that_omits_what_the_runtime_reads_is_refused():
    with pytest.raises(AssertionError, match="MESH_SHAPE"):
        inline_runtime(program("x = open_device", header="TILE = 32\n"), runtime_dirs("ttnn", "common"), set())


def test_a_header_constant_no_runtime_header_declares_is_refused():
    with pytest.raises(AssertionError, match="SURPRISE"):
        inline_runtime(program("x = 1", header=HEADER + "SURPRISE = 2\n"), runtime_dirs("ttnn", "common"), set())


@pytest.mark.parametrize("path", sorted((ROOT / "generated").glob("*.py")), ids=lambda p: p.name)
def test_generated_programs_define_only_runtime_and_model_names(path):
    """Every module-level function of a shipped program comes from the runtime (the namer reserves
    them); every class is a model class or a runtime class; nothing is defined twice."""
    tree = ast.parse(path.read_text())
    defs = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    assert len(defs) == len(set(defs)), path.name
    assert {n.name for n in tree.body if isinstance(n, ast.FunctionDef)} <= PROGRAM_GLOBALS
