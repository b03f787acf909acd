"""The runtime inlined into a generated program (ttspec/backends/common/inline.py): what a program's
own code reads (its code trees, as its writer states them: nothing parses the program's text) decides
which runtime definitions it carries, with everything they load in turn, and which methods of a
runtime class stay; imports follow what is kept; the header must state what the kept runtime reads.
Checked on small programs, and on every program in generated/ against what a parse of the final text
finds (`ast`, here in the tests only) and with ruff (no name undefined, none unused)."""

import ast
import subprocess
import symtable
import sys

import pytest
from hypothesis import given, settings

from ttspec.backends.common import render
from ttspec.backends.common.inline import (
    HEADER,
    IMPORTS_MARK,
    RUNTIME_MARK,
    all_runtime_dirs,
    inline_runtime,
    module_level_names,
    module_paths,
    runtime_dirs,
    runtime_module,
)
from ttspec.backends.common.names import PROGRAM_GLOBALS
from ttspec.backends.common.printer import print_module, print_stmt
from ttspec.backends.common.pyast import Assign, Attr, Const, Name, Return, call, reads
from ttspec.backends.common.render import code_roots
from ttspec.driver import compile_source, load_model

from .conftest import ROOT, formats_of, target_of
from .test_printer import programs

TTNN_HEADER = [Assign(Name("TILE"), Const(32)), Assign(Name("TRACE_REGION"), Const(1)),
               Assign(Name("WEIGHTS_DTYPE"), Const(None)), Assign(Name("MESH_SHAPE"), Const(None)),
               Assign(Name("TP_AXIS"), Const(1)), Assign(Name("DATA_PARALLEL"), Const(False)),
               Assign(Name("LOGITS_SPLIT"), Const(False)), Assign(Name("FABRIC"), Const(None))]


def inlined(body, api=(), header=TTNN_HEADER, dirs=("ttnn", "common")) -> str:
    """A small program: a header and `def f(state, x)` with the statements `body` (pyast), its runtime
    inlined from what the trees read."""
    lines = "".join(print_stmt(s) + "\n" for s in header)
    function = "def f(state, x):\n" + "".join(f"    {line}\n" for s in body for line in print_stmt(s, 4).splitlines())
    text = f'"""A test program."""\n\n{IMPORTS_MARK}\n\n{lines}\n\n{function}\n\n{RUNTIME_MARK}\n'
    roots = code_roots([*header, *body], {s.target.id for s in header})
    return inline_runtime(text, roots, runtime_dirs(*dirs), set(api))


def top_level(text: str) -> dict[str, ast.stmt]:
    return {node.name: node for node in ast.parse(text).body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}


def methods(cls: ast.ClassDef) -> set[str]:
    return {n.name for n in cls.body if isinstance(n, ast.FunctionDef)}


def ruff(text: str, tmp_path) -> subprocess.CompletedProcess:
    path = tmp_path / "program.py"
    path.write_text(text)
    return subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(path)], capture_output=True,
                          text=True, cwd=ROOT)


def test_a_helper_brings_what_it_loads_and_nothing_else(tmp_path):
    text = inlined([Return(call("Rotary", Name("state"), Const(64), Const(10000.0))(Name("x")))])
    defined = top_level(text)
    # Rotary uploads with the mesh mapper `shard`; nothing reaches RunState, Weights or generate
    assert {"f", "Rotary", "shard"} <= defined.keys()
    assert not {"RunState", "Weights", "KVCache", "generate", "open_device"} & defined.keys()
    assert "import math" in text and "import ttnn" in text and "import re" not in text
    result = ruff(text, tmp_path)
    assert result.returncode == 0, result.stdout


def test_a_method_stays_only_when_something_reaches_it(tmp_path):
    cache = call("KVCache", Name("state"), Const(1), Const(32))
    plain = top_level(inlined([Return(Attr(cache, "decode"))]))
    assert "decode" in methods(plain["KVCache"]) and "decode_softcapped" not in methods(plain["KVCache"])
    assert "decode_mask" not in plain  # only decode_softcapped loads it
    text = inlined([Return(Attr(cache, "decode_softcapped"))])
    soft = top_level(text)
    assert "decode_softcapped" in methods(soft["KVCache"]) and "decode_mask" in soft
    assert "RunState" not in soft  # the cache is handed its state: nothing names the class
    assert ruff(text, tmp_path).returncode == 0


def test_the_api_is_carried_even_when_the_program_never_calls_it():
    text = inlined([Return(Name("x"))], api={"open_device", "generate"})
    assert {"open_device", "generate", "sample", "check_finite"} <= top_level(text).keys()


def test_a_header_that_omits_what_the_runtime_reads_is_refused():
    with pytest.raises(AssertionError, match="MESH_SHAPE"):
        inlined([Return(Name("open_device"))], header=[Assign(Name("TILE"), Const(32))])


def test_a_header_constant_no_runtime_header_declares_is_refused():
    with pytest.raises(AssertionError, match="SURPRISE"):
        inlined([Return(Name("x"))], header=[*TTNN_HEADER, Assign(Name("SURPRISE"), Const(2))])


@pytest.mark.filterwarnings("ignore:Generating overly large repr")  # hypothesis describing a big drawn tree
@settings(deadline=None)
@given(programs)
def test_the_names_and_attributes_a_tree_reads_are_those_of_its_printed_code(body):
    """What the roots are made of (pyast.reads) is what Python's parser finds in the printed code."""
    tree = ast.parse(print_module(body))
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert reads(body) == (names, {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)})


def test_the_names_a_runtime_defines_are_those_of_pythons_symbol_tables():
    """What the namer reserves (read from the runtime index the inliner uses) is every name a runtime
    module binds at module level, as the compiler's own symbol tables list them."""
    expected = set()
    for path in module_paths(all_runtime_dirs()):
        table = symtable.symtable(path.read_text(encoding="utf-8"), str(path), "exec")
        expected |= {symbol.get_name() for symbol in table.get_symbols()
                     if symbol.is_assigned() or symbol.is_imported() or symbol.is_namespace()}
    assert module_level_names(all_runtime_dirs()) == expected


def test_a_runtime_module_is_read_once_per_process():
    path = module_paths(runtime_dirs("torch"))[0]
    assert runtime_module(path) is runtime_module(path)


@pytest.mark.parametrize("path", sorted((ROOT / "generated").glob("*.py")), ids=lambda p: p.name)
def test_generated_programs_define_only_runtime_and_model_names(path):
    """Every module-level function of a shipped program comes from the runtime (the namer reserves
    them); every class is a model class or a runtime class; nothing is defined twice."""
    tree = ast.parse(path.read_text())
    defs = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    assert len(defs) == len(set(defs)), path.name
    assert {n.name for n in tree.body if isinstance(n, ast.FunctionDef)} <= PROGRAM_GLOBALS


# ---------------------------------------------------------------- structural roots = what a parse finds
ENTRIES = [line.split() for line in (ROOT / "generated" / "MANIFEST").read_text().splitlines()
           if line.strip() and not line.startswith("#")]


def runtime_by_name(dirs) -> dict:
    return {d.name: d for path in module_paths(dirs) if path.name != HEADER for d in runtime_module(path).definitions}


def parsed_selection(tree: ast.Module, api: set[str], dirs) -> dict[str, set[str]]:
    """The runtime definitions (each with its optional methods) that the names and attributes loaded
    anywhere in the parsed program reach, found with ast.walk: the old, text-parsing inliner's answer.
    The program holds everything it carries, so what it loads is already closed under what it needs."""
    by_name = runtime_by_name(dirs)
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)} | api
    attributes = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    return {name: {m.name for m in by_name[name].members if m.optional and m.name in attributes}
            for name in names & by_name.keys()}


def shipped_selection(tree: ast.Module, dirs) -> dict[str, set[str]]:
    """The runtime definitions the program carries, each with the optional methods it keeps."""
    by_name = runtime_by_name(dirs)
    kept = {}
    for node in tree.body:
        targets = [t.id for t in node.targets] if isinstance(node, ast.Assign) else [getattr(node, "name", None)]
        for name in targets:
            if name in by_name and by_name[name].path.name != HEADER:
                members = {n.name for n in getattr(node, "body", []) if isinstance(n, ast.FunctionDef)}
                kept[name] = {m.name for m in by_name[name].members if m.optional} & members
    return kept


@pytest.mark.parametrize("entry", ENTRIES, ids=[" ".join(e) for e in ENTRIES])
def test_structural_roots_equal_what_a_parse_of_the_program_finds(entry, monkeypatch):
    """The runtime a program carries, chosen from its writer's code trees and stated header, is what a
    parse of the whole final program reaches, and the constants the writer says it states are those
    the program assigns at module level outside its runtime."""
    monkeypatch.chdir(ROOT)
    spec, target, *dtype = entry
    seen = {}

    def recording(text, roots, dirs, api, mixins=None):
        seen.update(roots=roots, dirs=dirs, api=api)
        return inline_runtime(text, roots, dirs, api, mixins)

    monkeypatch.setattr(render, "inline_runtime", recording)
    text = compile_source(load_model(spec), spec, target_of(target), formats_of(dtype[0] if dtype else "bf16"))
    tree = ast.parse(text)
    assert shipped_selection(tree, seen["dirs"]) == parsed_selection(tree, seen["api"], seen["dirs"])
    assigned = {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets}
    assert seen["roots"].header == assigned - set(shipped_selection(tree, seen["dirs"]))
