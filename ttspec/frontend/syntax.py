"""The parse tree -> AST side of the parser: syntax errors as ArchErrors, and the transformer that builds
frontend/ast.py's classes. The LALR grammar is grammar/arch.lark, run by lalr.py from tables lark compiled.
"""

from __future__ import annotations

from ..errors import ArchError, Loc, Note, source_lines
from . import ast
from .brackets import CLOSER_TERMINALS, CLOSERS, innermost_open
from .lalr import Token, UnexpectedCharacters, UnexpectedInput, UnexpectedToken, parse, transform, uses_meta
from .source import MAX_INT_DIGITS

# Friendly names for the terminals lark reports in "expected ..." lists.
TERMINAL_NAMES = {
    "NAME": "a name", "INT": "an integer", "FLOAT": "a number", "STRING": "a string",
    "LPAR": "`(`", "RPAR": "`)`", "LSQB": "`[`", "RSQB": "`]`", "LBRACE": "`{`", "RBRACE": "`}`",
    "COMMA": "`,`", "COLON": "`:`", "EQUAL": "`=`", "MINUS": "`-`", "STAR": "`*`", "POW": "`**`",
    "COMP_OP": "a comparison", "ADD_OP": "`+` or `-`", "MUL_OP": "`*`, `/`, `//` or `%`",
    "__ANON_0": "`->`", "$END": "end of file",
}


def parse_full(text: str, name: str) -> ast.Module:
    try:
        tree = parse(text)
    except UnexpectedInput as e:
        raise _syntax_error(e, text, name) from None
    # Non-recursive, so an absurdly long `1 + 1 + ...` cannot overflow the Python stack here;
    # the elaborator reports it at its statement instead.
    return transform(tree, _ToAst(name))


def _describe_token(tok: Token) -> str:
    if tok.type == "$END":
        return "end of file"
    return f"`{tok}`"


def _syntax_error(e: UnexpectedInput, text: str, name: str) -> ArchError:
    error = _plain_syntax_error(e, text, name)
    if not isinstance(e, UnexpectedToken) or not text.strip():
        return error
    at_end = e.token.type == "$END"
    opening = innermost_open(text, len(text) if at_end else e.token.start_pos)
    if opening is None or error.loc is None:
        return error
    bracket, line, col = opening
    # the parser gave up past the line of a bracket it still wanted closed: that bracket is the mistake. A
    # block's `{` only when the parser met a new top-level line (column 1) or the end, as a body spans lines.
    if (CLOSER_TERMINALS[bracket] not in e.expected or error.loc.line <= line
            or (bracket == "{" and not at_end and error.loc.col != 1)):
        return error
    found = "the end of the file" if at_end else _describe_token(e.token)
    return ArchError(f"unclosed `{bracket}`", Loc(name, line, col, 1),
                     hint=f"close it with `{CLOSERS[bracket]}`",
                     notes=[Note(f"still open at {found}, where the parser gave up "
                                 f"({error.diagnostic.hint or 'unexpected input'})", error.loc)])


def _plain_syntax_error(e: UnexpectedInput, text: str, name: str) -> ArchError:
    if isinstance(e, UnexpectedToken) and e.token.type == "$END":
        lines = source_lines(text) or [""]
        loc = Loc(name, len(lines), len(lines[-1]) + 1)
        expected = e.expected
        if not text.strip():
            return ArchError("empty spec: expected `model NAME` on the first line", Loc(name, 1, 1),
                             hint="start the file with e.g. `model nano_trickster`")
        return ArchError("unexpected end of file", loc, hint=_expected_hint(expected))
    if isinstance(e, UnexpectedCharacters):
        ch = text[e.pos_in_stream] if e.pos_in_stream < len(text) else "?"
        hint = None
        if ch == "'":
            hint = "strings use double quotes"
        elif ch in ";":
            hint = "statements need no `;`; put each on its own line"
        elif ch == "\t":
            hint = "tabs are fine as whitespace; the character before may be the problem"
        return ArchError(f"unexpected character {ch!r}", Loc(name, e.line, e.column), hint=hint)
    assert isinstance(e, UnexpectedToken)
    tok = e.token
    loc = Loc(name, tok.line, tok.column, max(1, len(str(tok))))
    if tok.line == 1 and tok.column == 1 and "MODEL" in e.expected:
        return ArchError(f"expected `model NAME` on the first line, found {_describe_token(tok)}", loc,
                         hint="start the file with e.g. `model nano_trickster`")
    return ArchError(f"unexpected {_describe_token(tok)}", loc, hint=_expected_hint(e.expected))


def _expected_hint(expected) -> str | None:
    names = []
    for term in sorted(expected or []):
        if term.startswith("__") and term not in TERMINAL_NAMES:
            continue
        names.append(TERMINAL_NAMES.get(term, f"`{term.lower()}`"))
    if not names:
        return None
    if len(names) > 8:
        names = names[:8] + ["..."]
    return "expected " + ", ".join(dict.fromkeys(names))


def _parse_int(tok: Token, name: str) -> int:
    digits = str(tok).replace("_", "")
    if len(digits.lstrip("0")) > MAX_INT_DIGITS:
        raise ArchError(f"integer literal too large: {len(digits)} digits",
                        Loc(name, tok.line, tok.column, min(len(tok), 40)),
                        hint="dimensions and counts must fit in 63 bits")
    return int(digits)


def _parse_float(tok: Token, name: str) -> float:
    value = float(str(tok).replace("_", ""))
    if value in (float("inf"), float("-inf")):
        raise ArchError("number literal too large", Loc(name, tok.line, tok.column, min(len(tok), 40)))
    return value


class _ToAst:
    """Parse tree -> ast dataclasses: one method per tree node (lalr.transform calls them)."""

    def __init__(self, file: str):
        self.file = file

    def _loc(self, meta_or_tok, end=None) -> Loc:
        m = meta_or_tok
        line, col = m.line, m.column
        length = 1
        end_line = getattr(m, "end_line", None)
        end_col = getattr(m, "end_column", None)
        if end_line == line and end_col:
            length = max(1, end_col - col)
        return Loc(self.file, line, col, length)

    def _tloc(self, tok: Token) -> Loc:
        return Loc(self.file, tok.line, tok.column, max(1, len(str(tok))))

    # --- top level
    @uses_meta
    def start(self, meta, children):
        header, *items = children
        name, loc = header if header is not None else (None, None)
        return ast.Module(name=name, name_loc=loc, items=list(items), file=self.file)

    def header(self, children):
        (tok,) = children
        return str(tok), self._tloc(tok)

    @uses_meta
    def import_stmt(self, meta, children):
        (tok,) = children
        return ast.Import(self._loc(meta), str(tok)[1:-1])

    def shard_stmt(self, children):
        pattern, placement = children
        return ast.Shard(self._tloc(pattern), str(pattern)[1:-1], str(placement), self._tloc(placement))

    def family_stmt(self, children):
        (tok,) = children
        return ast.Family(self._tloc(tok), str(tok))

    def target_stmt(self, children):
        (tok,) = children
        return ast.Target(self._tloc(tok), str(tok))

    @uses_meta
    def let_stmt(self, meta, children):
        return ast.Let(self._loc(meta), list(children))

    def let_binding(self, children):
        tok, value = children
        return ast.LetBinding(str(tok), value, self._tloc(tok))

    @uses_meta
    def input_stmt(self, meta, children):
        tok, ttype, where = children
        return ast.Input(self._tloc(tok), str(tok), ttype, where)

    @uses_meta
    def output_stmt(self, meta, children):
        tok, value = children
        return ast.Output(self._tloc(tok), str(tok), value)

    @uses_meta
    def block_def(self, meta, children):
        name, *rest = children
        rest = [c for c in rest if c is not None]
        params = [c for c in rest if isinstance(c, ast.Param)]
        returns = next((c for c in rest if isinstance(c, ast.TensorTypeSpec)), None)
        kind = next((c for c in rest if isinstance(c, Token)), None)
        body = [c for c in rest if isinstance(c, ast.Stmt)]
        return ast.BlockDef(self._tloc(name), str(name), params, returns,
                            str(kind) if kind is not None else None, body)

    def param(self, children):
        tok, ptype, default = children
        return ast.Param(str(tok), ptype, default, self._tloc(tok))

    def scalar_type(self, children):
        (tok,) = children
        return ast.ScalarTypeSpec(str(tok), self._tloc(tok))

    @uses_meta
    def tensor_type(self, meta, children):
        dtype, *dims = children
        dims = [d for d in dims if d is not None]
        return ast.TensorTypeSpec(str(dtype) if dtype is not None else None, dims, self._loc(meta))

    def dim_name(self, children):
        (tok,) = children
        return ast.DimSpec(str(tok), None, self._tloc(tok))

    def dim_int(self, children):
        (tok,) = children
        return ast.DimSpec(None, _parse_int(tok, self.file), self._tloc(tok))

    @uses_meta
    def dim_any(self, meta, children):
        return ast.DimSpec(None, None, self._loc(meta), wildcard=True)

    # --- statements
    @uses_meta
    def assign(self, meta, children):
        tok, value = children
        return ast.Assign(self._tloc(tok), str(tok), value)

    @uses_meta
    def return_stmt(self, meta, children):
        return ast.Return(self._loc(meta), children[0])

    @uses_meta
    def if_stmt(self, meta, children):
        cond, *rest = children
        orelse = rest[-1] if rest and isinstance(rest[-1], list) else []
        body = [s for s in rest[:-1] if s is not None] if rest else []
        return ast.If(self._loc(meta), cond, body, orelse or [])

    def else_block(self, children):
        return [s for s in children if s is not None]

    def else_if(self, children):
        return [children[0]]

    # --- expressions
    def _fold(self, meta, children):
        return children[0] if len(children) == 1 else None

    @uses_meta
    def or_op(self, meta, children):
        return children[0] if len(children) == 1 else ast.BoolOp(self._loc(meta), "or", list(children))

    @uses_meta
    def and_op(self, meta, children):
        return children[0] if len(children) == 1 else ast.BoolOp(self._loc(meta), "and", list(children))

    @uses_meta
    def not_op(self, meta, children):
        return ast.UnaryOp(self._loc(meta), "not", children[0])

    @uses_meta
    def compare(self, meta, children):
        if len(children) == 1:
            return children[0]
        operands = children[0::2]
        ops = [str(t) for t in children[1::2]]
        return ast.Compare(self._loc(meta), ops, operands)

    @uses_meta
    def binop(self, meta, children):
        left, op, right = children
        return ast.BinOp(self._loc(meta), str(op), left, right)

    @uses_meta
    def pow_op(self, meta, children):
        left, _, right = children
        return ast.BinOp(self._loc(meta), "**", left, right)

    @uses_meta
    def neg(self, meta, children):
        return ast.UnaryOp(self._loc(meta), "-", children[0])

    def int_lit(self, children):
        (tok,) = children
        return ast.Literal(self._tloc(tok), _parse_int(tok, self.file))

    def float_lit(self, children):
        (tok,) = children
        return ast.Literal(self._tloc(tok), _parse_float(tok, self.file))

    def str_lit(self, children):
        (tok,) = children
        return ast.Literal(self._tloc(tok), str(tok)[1:-1])

    @uses_meta
    def true_lit(self, meta, children):
        return ast.Literal(self._loc(meta), True)

    @uses_meta
    def false_lit(self, meta, children):
        return ast.Literal(self._loc(meta), False)

    @uses_meta
    def none_lit(self, meta, children):
        return ast.Literal(self._loc(meta), None)

    @uses_meta
    def list_lit(self, meta, children):
        return ast.ListExpr(self._loc(meta), [c for c in children if c is not None])

    @uses_meta
    def subscript(self, meta, children):
        value, index = children
        return ast.Subscript(self._loc(meta), value, index)

    def name(self, children):
        (tok,) = children
        return ast.Name(self._tloc(tok), str(tok))

    @uses_meta
    def call(self, meta, children):
        func, *rest = children
        label = rest[-1]
        args = [a for a in rest[:-1] if a is not None]
        return ast.Call(self._loc(meta), str(func), args, str(label) if label is not None else None,
                        self._tloc(func))

    @uses_meta
    def repeat_call(self, meta, children):
        count, func, *rest = children
        label = rest[-1]
        args = [a for a in rest[:-1] if a is not None]
        call = ast.Call(self._tloc(func), str(func), args, str(label) if label is not None else None,
                        self._tloc(func))
        return ast.RepeatCall(self._loc(meta), count, call)

    def pos_arg(self, children):
        (value,) = children
        return ast.Arg(None, value, value.loc)

    def kw_arg(self, children):
        tok, value = children
        return ast.Arg(str(tok), value, self._tloc(tok))

