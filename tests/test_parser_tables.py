"""The shipped parser (frontend/lalr.py over arch_tables.json) against lark, its reference: the tables are
what lark compiles from grammar/arch.lark today, and every spec parses into lark's tree (same shapes, tokens
and positions) while broken text fails at lark's token with lark's expected set."""

import random

import pytest

from ttspec.frontend import lalr
from ttspec.frontend.make_tables import TABLES_PATH, build_tables, lark_parser, render, stdlib_asts
from ttspec.frontend.parser import parse_source, parse_stdlib, shipped_ast_path
from ttspec.frontend.source import STDLIB_DIR, STDLIB_PREFIX

from .conftest import ROOT

SOURCES = sorted([*ROOT.glob("specs/*.arch"), *ROOT.glob("ttspec/stdlib/**/*.arch"), *ROOT.glob("tests/**/*.arch")])
SPAN = ("line", "column", "start_pos", "end_line", "end_column", "end_pos")
CONTAINER = tuple(f"container_{a}" for a in SPAN)


@pytest.fixture(scope="module")
def lark():
    from lark import Token, Tree
    from lark.exceptions import UnexpectedCharacters, UnexpectedToken

    return lark_parser(), Tree, Token, UnexpectedCharacters, UnexpectedToken


def test_shipped_tables_are_what_lark_compiles_today():
    assert TABLES_PATH.read_text(encoding="utf-8") == render(build_tables()), \
        "grammar/arch.lark changed: run `python -m ttspec.frontend.make_tables`"


def test_shipped_stdlib_asts_are_what_the_parser_makes_today():
    shipped = stdlib_asts()
    assert shipped and all(path.read_text(encoding="utf-8") == text for path, text in shipped.items()), \
        "the standard library changed: run `python -m ttspec.frontend.make_tables`"


def test_the_stdlib_reads_back_as_it_parses(tmp_path):
    for path in sorted(STDLIB_DIR.glob("*.arch")):
        name = STDLIB_PREFIX + path.name
        parsed = parse_source(path.read_text(encoding="utf-8"), name, is_stdlib=True)
        assert parse_stdlib(path, name) == parsed and parsed.items
        # a shipped AST made from other text (an edited prelude) is not used: the file is parsed
        edited = tmp_path / path.name
        edited.write_text(path.read_text(encoding="utf-8") + "\nlet edited_here = 1\n", encoding="utf-8")
        shipped_ast_path(edited).write_bytes(shipped_ast_path(path).read_bytes())
        assert parse_stdlib(edited, name).items[-1] == parse_source(edited.read_text(), name, True).items[-1]
        assert parse_stdlib(edited, name) != parsed


def _shape(node, tree_type, token_type):
    """A parse tree as plain data: node names, token types, text and positions, spans (containers included)."""
    if isinstance(node, tree_type):
        meta = node.meta
        span = tuple(getattr(meta, a, None) for a in SPAN + CONTAINER)
        return (node.data, span, [_shape(c, tree_type, token_type) for c in node.children])
    if isinstance(node, token_type):
        return (node.type, str(node), *(getattr(node, a) for a in SPAN))
    assert node is None, node
    return None


def test_there_are_sources_to_compare():
    parsed = 0
    for path in SOURCES:
        try:
            lalr.parse(path.read_text(encoding="utf-8"))
            parsed += 1
        except lalr.UnexpectedInput:  # the lesson's short form
            pass
    assert parsed >= 15 and any("stdlib" in str(p) for p in SOURCES)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_spec_parses_into_larks_tree(lark, path):
    """(A spec in the lesson's short form is no .arch text: it fails, at lark's token.)"""
    parser, Tree, Token, UnexpectedCharacters, UnexpectedToken = lark
    text = path.read_text(encoding="utf-8")
    assert (_outcome(lalr.parse, text, lalr.Tree, lalr.Token, lalr.UnexpectedCharacters, lalr.UnexpectedToken)
            == _outcome(parser.parse, text, Tree, Token, UnexpectedCharacters, UnexpectedToken))


def _outcome(parse, text, tree_type, token_type, unexpected_characters, unexpected_token):
    """What parsing gives: the tree, or the error as plain data."""
    try:
        return ("tree", _shape(parse(text), tree_type, token_type))
    except unexpected_token as e:
        t = e.token
        return ("token", t.type, str(t), t.line, t.column, sorted(e.expected))
    except unexpected_characters as e:
        return ("characters", e.pos_in_stream, e.line, e.column)


def _broken(texts, count, seed=19):
    """Specs with a cut, a deleted or doubled token, or a stray character: every kind of syntax error."""
    rng = random.Random(seed)
    strays = list("()[]{},:=*/-+<>!;'\t\"#.%@$") + ["->", "**", "//", " model ", " if ", " as ", "1e", "0x1"]
    out = ["", "model", "model x (", "# only a comment\n", '"', "model m\ninput x: [1,2"]
    for _ in range(count):
        text = rng.choice(texts)
        pos = rng.randrange(len(text))
        kind = rng.randrange(4)
        if kind == 0:
            out.append(text[:pos])
        elif kind == 1:
            end = min(len(text), pos + rng.randrange(1, 8))
            out.append(text[:pos] + text[end:])
        elif kind == 2:
            out.append(text[:pos] + rng.choice(strays) + text[pos:])
        else:
            end = min(len(text), pos + rng.randrange(1, 12))
            out.append(text[:pos] + text[pos:end] * 2 + text[end:])
    return out


def test_broken_specs_fail_like_lark(lark):
    parser, Tree, Token, UnexpectedCharacters, UnexpectedToken = lark
    texts = [p.read_text(encoding="utf-8") for p in SOURCES]
    kinds = set()
    for text in _broken(texts, 400):
        ours = _outcome(lalr.parse, text, lalr.Tree, lalr.Token, lalr.UnexpectedCharacters, lalr.UnexpectedToken)
        theirs = _outcome(parser.parse, text, Tree, Token, UnexpectedCharacters, UnexpectedToken)
        assert ours == theirs, text
        kinds.add(ours[0] if ours[0] != "token" else ("end" if ours[1] == "$END" else "token"))
    assert kinds == {"tree", "token", "end", "characters"}  # every path was compared
