"""The .arch parser at run time: an LALR(1) driver and a contextual lexer over tables that lark compiled
ahead of time (make_tables.py writes arch_tables.json from grammar/arch.lark).

Why not lark itself: importing it and building its tables and lexers cost a cold `ttspec` start-up
~45 ms of its 0.2 s, and its own cache would be a per-user cache that TTSPEC_NO_CACHE=1 must not read.
This module does what lark's LALR front end does for this grammar, step for step, so specs parse into
the same trees, at the same positions, and fail with the same tokens and expected sets
(tests/test_parser_tables.py runs both on every spec and on broken ones):

- the contextual lexer: in each parser state only the terminals that state accepts are tried, in lark's
  order (the first that matches wins, as in lark's alternation); keywords are NAMEs renamed after the
  match; a character no accepted terminal matches is an UnexpectedToken if any terminal matches it, else
  UnexpectedCharacters;
- a reduction shapes its children as lark's tree builder does (anonymous tokens dropped, `_rule`
  children spliced in, `[x]` placeholders as None, `?rule` with one child inlined) and records the
  source span of what it covers (lark's propagate_positions, container spans included);
- `transform` then calls the AST builder's method per tree node, children first, as lark's
  Transformer_NonRecursive does (so a syntax error anywhere wins over a bad literal earlier).
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

TABLES_PATH = Path(__file__).resolve().parent / "arch_tables.json"
FORMAT = "ttspec-lalr/1"  # what make_tables.py writes; a new layout of the tables gets a new name


class Token(str):
    """A terminal's text with its type and position (the fields of lark's Token that the AST builder reads)."""

    __slots__ = ("type", "value", "start_pos", "line", "column", "end_line", "end_column", "end_pos")

    def __new__(cls, type_: str, value: str, start_pos: int, line: int, column: int,
                end_line: int | None = None, end_column: int | None = None, end_pos: int | None = None):
        token = super().__new__(cls, value)
        token.type, token.value, token.start_pos, token.line, token.column = type_, value, start_pos, line, column
        token.end_line, token.end_column, token.end_pos = end_line, end_column, end_pos
        return token

    def __repr__(self) -> str:
        return f"Token({self.type!r}, {self.value!r})"


class Meta:
    """A tree node's source span (lark's Meta): its own, and its container's (which is wider where a node was
    inlined into a parent rule that also covers tokens around it, such as `( expr )`). None until known."""

    __slots__ = ("empty", "line", "column", "start_pos", "end_line", "end_column", "end_pos",
                 "container_line", "container_column", "container_start_pos",
                 "container_end_line", "container_end_column", "container_end_pos")

    def __init__(self) -> None:
        self.empty = True
        self.line = self.column = self.start_pos = self.end_line = self.end_column = self.end_pos = None


class Tree:
    __slots__ = ("data", "children", "meta")

    def __init__(self, data: str, children: list) -> None:
        self.data, self.children, self.meta = data, children, Meta()


class UnexpectedInput(Exception):
    pass


class UnexpectedToken(UnexpectedInput):
    def __init__(self, token: Token, expected: set[str]) -> None:
        super().__init__(f"unexpected token {token!r}")
        self.token, self.expected = token, expected
        self.line, self.column = token.line, token.column


class UnexpectedCharacters(UnexpectedInput):
    def __init__(self, pos_in_stream: int, line: int, column: int, allowed: set[str]) -> None:
        super().__init__(f"unexpected character at line {line}, column {column}")
        self.pos_in_stream, self.line, self.column, self.allowed = pos_in_stream, line, column, allowed


def uses_meta(method):
    """Mark an AST builder method as taking (meta, children) rather than (children) (lark's v_args(meta=True))."""
    method.uses_meta = True
    return method


class _Lexer:
    """One parser state's lexer: its terminals in match order and the keywords folded into them."""

    __slots__ = ("terminals", "keywords", "allowed")

    def __init__(self, names: list[str], keywords: dict[str, dict[str, str]], patterns: dict[str, re.Pattern],
                 ignore: frozenset[str]) -> None:
        self.terminals = [(name, patterns[name]) for name in names]
        self.keywords = keywords
        self.allowed = (set(names) - ignore) or {"<END-OF-FILE>"}


class _Tables:
    def __init__(self, data: dict) -> None:
        if data.get("format") != FORMAT:
            raise RuntimeError(f"{TABLES_PATH} is not {FORMAT}: run `python -m ttspec.frontend.make_tables`")
        patterns: dict[str, re.Pattern] = {}
        for lexer in data["lexers"]:
            for name in lexer[0]:
                if name not in patterns:
                    patterns[name] = re.compile(data["terminals"][name])
        self.ignore = frozenset(data["ignore"])
        lexers = [_Lexer(names, keywords, patterns, self.ignore) for names, keywords in data["lexers"]]
        self.root_lexer = lexers[data["root_lexer"]]
        self.state_lexer = [lexers[i] for i in data["state_lexer"]]
        self.actions: list[dict[str, int]] = data["actions"]
        self.rules = [tuple(rule) for rule in data["rules"]]
        self.start, self.end = data["start"], data["end"]


@cache
def _tables() -> _Tables:
    with open(TABLES_PATH, encoding="utf-8") as f:
        return _Tables(json.load(f))


class _Cursor:
    """Where the lexer is: lark's LineCounter (1-based line and column)."""

    __slots__ = ("pos", "line", "line_start")

    def __init__(self) -> None:
        self.pos, self.line, self.line_start = 0, 1, 0


def _next_token(lexer: _Lexer, text: str, at: _Cursor, ignore: frozenset[str]) -> Token | None:
    """The next token that lexer matches at the cursor (skipping ignored ones), None at the end of text."""
    while at.pos < len(text):
        for terminal, pattern in lexer.terminals:
            match = pattern.match(text, at.pos)
            if match:
                name = terminal
                break
        else:
            raise UnexpectedCharacters(at.pos, at.line, at.pos - at.line_start + 1, lexer.allowed)
        value = match.group(0)
        start, line, column = at.pos, at.line, at.pos - at.line_start + 1
        newlines = value.count("\n")
        if newlines:
            at.line += newlines
            at.line_start = start + value.rindex("\n") + 1
        at.pos += len(value)
        if name in ignore:
            continue
        if name in lexer.keywords:
            name = lexer.keywords[name].get(value, name)
        return Token(name, value, start, line, column, at.line, at.pos - at.line_start + 1, at.pos)
    return None


def parse(text: str) -> Tree:
    """Text -> parse tree, or UnexpectedToken / UnexpectedCharacters as lark raises them."""
    tables = _tables()
    state_lexer, ignore = tables.state_lexer, tables.ignore
    states: list[int] = [tables.start]
    values: list = []
    at = _Cursor()
    last: Token | None = None
    while True:
        try:
            token = _next_token(state_lexer[states[-1]], text, at, ignore)
        except UnexpectedCharacters as e:
            # a character this state's terminals do not match: a token out of place if any terminal matches it
            try:
                misplaced = _next_token(tables.root_lexer, text, at, ignore)
            except UnexpectedCharacters:
                raise e from None
            raise UnexpectedToken(misplaced, e.allowed) from None
        if token is None:
            break
        _feed(token, states, values, tables)
        last = token
    end = (Token("$END", "", last.start_pos, last.line, last.column, last.end_line, last.end_column, last.end_pos)
           if last is not None else Token("$END", "", 0, 1, 1))
    return _feed(end, states, values, tables)


def _feed(token: Token, states: list[int], values: list, tables: _Tables):
    """Shift one token, after every reduction it allows; at the end ($END), the finished tree.
    A reduction's node is shaped as lark's tree builder makes it (see the module's docstring)."""
    actions, rules = tables.actions, tables.rules
    kind = token.type
    while True:
        row = actions[states[-1]]
        action = row.get(kind)
        if action is None:
            raise UnexpectedToken(token, {symbol for symbol in row if symbol.isupper()})
        if action >= 0:
            states.append(action)
            values.append(token)
            return None
        origin, size, data, inline_single, include, append_none = rules[-action - 1]
        if size:
            children = values[-size:]
            del states[-size:]
            del values[-size:]
        else:
            children = []
        if include is None:
            kept = children
        else:
            kept = []
            for i, splice, nones in include:
                if nones:
                    kept += [None] * nones
                if splice:
                    kept += children[i].children
                else:
                    kept.append(children[i])
            if append_none:
                kept += [None] * append_none
        node = kept[0] if inline_single and len(kept) == 1 else Tree(data, kept)
        if node.__class__ is Tree:
            _span(node.meta, children)
        states.append(actions[states[-1]][origin])
        values.append(node)
        if kind == "$END" and states[-1] == tables.end:
            return node


def _edge(children, end: bool):
    """(line, column, pos) where the first positioned child's container starts (or, with `end`, where the
    last one's ends); a token is its own container. None when no child has a position."""
    for child in (reversed(children) if end else children):
        if child.__class__ is Tree and not child.meta.empty:
            m = child.meta
            return ((m.container_end_line, m.container_end_column, m.container_end_pos) if end
                    else (m.container_line, m.container_column, m.container_start_pos))
        if child.__class__ is Token:
            return (child.end_line, child.end_column, child.end_pos) if end else \
                (child.line, child.column, child.start_pos)
    return None


def _span(meta: Meta, children: list) -> None:
    """lark's PropagatePositions: a node starts where its first positioned child's container starts and ends
    where its last one's container ends; a node that was inlined keeps its own span and learns its container's
    (a token is its own container)."""
    start = _edge(children, end=False)
    if start is None:
        return  # no child has a position: neither has the node (nor its end)
    line, column, start_pos = start
    if meta.line is None:
        meta.line, meta.column, meta.start_pos, meta.empty = line, column, start_pos, False
    meta.container_line, meta.container_column, meta.container_start_pos = line, column, start_pos
    line, column, end_pos = _edge(children, end=True)
    if meta.end_line is None:
        meta.end_line, meta.end_column, meta.end_pos, meta.empty = line, column, end_pos, False
    meta.container_end_line, meta.container_end_column, meta.container_end_pos = line, column, end_pos


def transform(tree: Tree, builder):
    """The builder's method named after each tree node, called children first, without recursion (an
    absurdly long `1 + 1 + ...` cannot overflow the Python stack). A node with no method stays a Tree."""
    order = []
    pending = [tree]
    while pending:
        node = pending.pop()
        order.append(node)
        if isinstance(node, Tree):
            pending += node.children
    methods: dict[str, object] = {}
    stack: list = []
    for node in reversed(order):
        if not isinstance(node, Tree):
            stack.append(node)
            continue
        size = len(node.children)
        args = stack[-size:] if size else []
        if size:
            del stack[-size:]
        method = methods.get(node.data)
        if method is None:
            method = methods[node.data] = getattr(builder, node.data, None) or _keep_tree(node.data)
        stack.append(method(node.meta, args) if getattr(method, "uses_meta", False) else method(args))
    (result,) = stack
    return result


def _keep_tree(data: str):
    def keep(meta, children):
        node = Tree(data, children)
        node.meta = meta
        return node

    keep.uses_meta = True
    return keep
