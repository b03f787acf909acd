"""The printer of generated code (ttspec/backends/common/printer.py), on code trees hypothesis makes:
the printed text parses with Python's own parser into what the tree means (`ast.dump` of the parse
equals that of the tree converted directly to `ast`), every line fits the width when the most broken
layout does, and the programs are ruff-clean at the project's line length."""

import ast
import re
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ttspec.backends.common import pyast as P
from ttspec.backends.common.printer import WIDTH, print_expr, print_module, print_stmt

from .conftest import ROOT

pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")
NAMES = ("a", "b", "x", "h", "gate", "weights", "prefix", "hidden_states", "a_rather_long_variable_name")
LOOP_NAMES = ("i", "j", "layer")  # loop targets only (a loop never rebinds what it iterates)
ATTRS = ("w", "norm", "linear", "kv_cache", "transformer", "scaled_dot_product_attention")
KEYWORDS = ("dim", "eps", "scale", "cluster_axis", "compute_kernel_config")
OPS = ("+", "-", "*", "/", "//", "@", "**")  # not %: ruff reads `"..." % x` as printf formatting
TEXT = st.text(alphabet="abcXYZ 019_.{}'\"\\é", max_size=12)


def test_width_is_the_projects_line_length():
    ruff = (ROOT / "pyproject.toml").read_text().split("[tool.ruff]", 1)[1]
    assert WIDTH == int(re.search(r"^line-length = (\d+)$", ruff, re.M).group(1))


names = st.sampled_from(NAMES).map(P.Name)
leaves = st.one_of(
    names,
    st.integers(-10**6, 10**6).map(P.Const),
    st.floats(allow_nan=False, allow_infinity=False).map(P.Const),
    TEXT.map(P.Const),
    st.sampled_from([True, False, None]).map(P.Const),
)
dotted = st.builds(P.Attr, names, st.sampled_from(ATTRS)) | names


def _extend(inner):
    keywords = st.lists(st.tuples(st.sampled_from(KEYWORDS), inner), max_size=3, unique_by=lambda kv: kv[0])
    loop_target = st.sampled_from(LOOP_NAMES).map(P.Name) | st.lists(
        st.sampled_from(LOOP_NAMES).map(P.Name), min_size=2, max_size=3, unique=True).map(lambda t: P.Tuple(tuple(t)))
    fstring_parts = st.lists(TEXT | dotted, min_size=1, max_size=4).filter(
        lambda parts: any(not isinstance(p, str) for p in parts))
    return st.one_of(
        st.builds(P.Attr, inner, st.sampled_from(ATTRS)),
        st.builds(lambda f, args, kw: P.Call(f, tuple(args), tuple(kw)), dotted | inner,
                  st.lists(inner, max_size=4), keywords),
        st.builds(P.BinOp, inner, st.sampled_from(OPS), inner),
        st.builds(lambda op, operands: P.Chain(op, tuple(operands)), st.sampled_from([o for o in OPS if o != "**"]),
                  st.lists(inner, min_size=2, max_size=4)),
        st.builds(P.Subscript, inner, inner | st.builds(P.Slice, st.none() | inner, st.none() | inner)),
        st.lists(inner, max_size=5).map(lambda items: P.Tuple(tuple(items))),
        st.lists(inner, max_size=5).map(lambda items: P.List(tuple(items))),
        st.lists(st.tuples(TEXT.map(P.Const), inner), max_size=4, unique_by=lambda kv: kv[0].value).map(
            lambda items: P.Dict(tuple(items))),
        st.builds(P.IfExp, inner, inner, inner),
        st.builds(P.Comprehension, inner, loop_target, inner, st.booleans()),
        fstring_parts.map(lambda parts: P.FString(tuple(parts))),
    )


expressions = st.recursive(leaves, _extend, max_leaves=24)
targets = names | st.builds(P.Attr, names, st.sampled_from(ATTRS)) | st.lists(
    names, min_size=2, max_size=3).map(lambda t: P.Tuple(tuple(t)))
simple_statements = st.one_of(
    st.builds(P.Assign, targets, expressions, st.sampled_from(["", "a note"])),
    st.builds(lambda f, args: P.ExprStmt(P.Call(f, tuple(args))), dotted, st.lists(expressions, max_size=3)),
    TEXT.map(lambda t: P.Comment("why " + t.replace("\\", ""))),
)
loops = st.builds(
    lambda target, it, body: P.For(target, it, (P.ExprStmt(P.Call(P.Name("print"), (target,))), *body)),
    st.sampled_from(LOOP_NAMES).map(P.Name), expressions, st.lists(simple_statements, max_size=2))
programs = st.lists(simple_statements | loops, min_size=1, max_size=6)


def _fits(text: str) -> bool:
    return all(len(line) <= WIDTH for line in text.splitlines())


def _narrowest(stmt: P.Stmt, column: int) -> str:
    """The statement with every group broken: no layout has shorter lines."""
    return print_stmt(stmt, column, width=0)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs)
def test_printed_code_parses_to_the_tree(body):
    text = print_module(body)
    assert ast.dump(ast.parse(text)) == ast.dump(P.module_ast(body))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions, st.integers(0, 3))
def test_a_returned_expression_parses_to_the_tree(value, depth):
    column = 4 * (depth + 1)
    text = print_stmt(P.Return(value), column)
    source = "".join(f"{'    ' * d}def f{d}():\n" for d in range(depth + 1))
    source += "".join(" " * column + line + "\n" for line in text.splitlines())
    function = ast.parse(source).body[0]
    for _ in range(depth):
        function = function.body[0]
    assert ast.dump(function.body[0]) == ast.dump(P.to_ast(P.Return(value)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(simple_statements | loops, st.sampled_from([0, 4, 8]))
def test_every_line_fits_when_the_most_broken_layout_does(stmt, column):
    assume(all(len(line) + column <= WIDTH for line in _narrowest(stmt, column).splitlines()))
    text = print_stmt(stmt, column)
    assert all(len(line) + column <= WIDTH for line in text.splitlines()), text


def test_a_call_that_fits_stays_on_one_line_and_one_that_does_not_breaks_its_outermost_bracket():
    call = P.call("ttnn.linear", P.Name("x"), P.name("self.w1"), activation=P.Const("silu"))
    assert print_stmt(P.Assign(P.Name("gate"), call), 8) == 'gate = ttnn.linear(x, self.w1, activation="silu")'
    # the arguments fit on one line of their own
    middle = P.call("ttnn.linear", *(P.Name(f"argument_{i}") for i in range(9)))
    assert print_stmt(P.Assign(P.Name("h"), middle), 8).splitlines() == [
        "h = ttnn.linear(", "    " + ", ".join(f"argument_{i}" for i in range(9)), ")"]
    # they do not: calls one per line; names and literals fill their lines
    calls = P.call("ttnn.linear", *(P.call(f"function_{i}", P.Name("x")) for i in range(12)))
    assert print_stmt(P.Assign(P.Name("h"), calls), 8).splitlines() == [
        "h = ttnn.linear(", *(f"    function_{i}(x)," for i in range(12)), ")"]
    names = P.Tuple(tuple(P.Name(f"Decoder_{i}") for i in range(24)))
    lines = print_stmt(P.Assign(P.Name("layers"), names), 8).splitlines()
    assert lines[0] == "layers = (" and lines[-1] == ")" and len(lines) == 5
    assert " ".join(line.strip() for line in lines[1:-1]) == ", ".join(f"Decoder_{i}" for i in range(24)) + ","
    assert all(len(line) + 8 <= WIDTH and len(line) + 8 + len(" Decoder_10,") > WIDTH for line in lines[1:-2])


def test_a_conditional_breaks_into_parenthesised_lines():
    wide = P.IfExp(P.call("self.cache.decode", *(P.Name(f"query_{i}") for i in range(6))),
                   P.name("self.state.decoding"), P.call("self.cache.prefill", *(P.Name(f"key_{i}") for i in range(6))))
    text = print_stmt(P.Assign(P.Name("y"), wide), 8)
    assert text.splitlines() == [
        "y = (",
        "    self.cache.decode(query_0, query_1, query_2, query_3, query_4, query_5)",
        "    if self.state.decoding",
        "    else self.cache.prefill(key_0, key_1, key_2, key_3, key_4, key_5)",
        ")",
    ]


def test_operands_are_parenthesised_by_precedence_not_by_habit():
    a, b, c = P.Name("a"), P.Name("b"), P.Name("c")
    assert print_expr(P.BinOp(P.BinOp(a, "+", b), "*", c)) == "(a + b) * c"
    assert print_expr(P.BinOp(a, "-", P.BinOp(b, "-", c))) == "a - (b - c)"
    assert print_expr(P.BinOp(P.BinOp(a, "-", b), "-", c)) == "a - b - c"
    assert print_expr(P.BinOp(a, "**", P.BinOp(b, "**", c))) == "a ** b ** c"
    assert print_expr(P.BinOp(P.Const(-2.0), "**", a)) == "(-2.0) ** a"


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(programs.filter(lambda body: all(_fits(_narrowest(s, 0)) for s in body)), min_size=20, max_size=20))
def test_printed_programs_are_ruff_clean(tmp_path_factory, batch):
    folder = tmp_path_factory.mktemp("printed")
    preamble = f"{' = '.join(NAMES)} = None\n"  # every free name bound, so F821 reads real errors
    for i, body in enumerate(batch):
        (folder / f"program_{i}.py").write_text(preamble + print_module(body))
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "E,F,W,I,B,UP",
                           "--ignore", "E731,B905", "--line-length", str(WIDTH), str(folder)],
                          capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout
