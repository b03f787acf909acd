"""Positions and tokens of a buffer, for the navigation queries: LSP positions (0-based line, UTF-16
character) against ttspec's Locs (1-based line and column in code points), and a scan of the text that
works whether or not it parses (strings and comments skipped)."""

from __future__ import annotations

import re

from ..errors import Loc
from ..records import FrozenRecord

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# the parser's tokens (frontend/source.py TOKEN) with identifiers apart from numbers
_TOKEN = re.compile(r'"[^"\n]*"?|#[^\n]*|[A-Za-z_][A-Za-z0-9_]*|[0-9][A-Za-z0-9_.]*|\*\*|//|->|<=|>=|==|!=|\S')


class Position(FrozenRecord):
    """An LSP position: 0-based line, UTF-16 code units into the line."""

    line: int
    character: int


class Range(FrozenRecord):
    start: Position
    end: Position


class Token(FrozenRecord):
    """One token of the buffer: its text and its offset (code points from the start of the text)."""

    text: str
    start: int

    @property
    def end(self) -> int:
        return self.start + len(self.text)

    @property
    def is_name(self) -> bool:
        return bool(IDENT.fullmatch(self.text))


class Buffer:
    """A document's text with its line starts, to convert between offsets, Locs and LSP positions."""

    def __init__(self, text: str):
        self.text = text
        self.lines = text.split("\n")
        self.starts = [0]
        for line in self.lines[:-1]:
            self.starts.append(self.starts[-1] + len(line) + 1)
        self._tokens: list[Token] | None = None

    def line_text(self, line: int) -> str:
        return self.lines[line].rstrip("\r") if 0 <= line < len(self.lines) else ""

    def offset(self, pos: Position) -> int:
        """Code-point offset of an LSP position (clamped to the text)."""
        if pos.line >= len(self.lines):
            return len(self.text)
        line = self.lines[max(0, pos.line)]
        units, col = 0, 0
        while col < len(line) and units < pos.character:
            units += 2 if ord(line[col]) > 0xFFFF else 1
            col += 1
        return self.starts[max(0, pos.line)] + col

    def position(self, offset: int) -> Position:
        offset = max(0, min(offset, len(self.text)))
        lo, hi = 0, len(self.starts) - 1
        while lo < hi:  # the last line start <= offset
            mid = (lo + hi + 1) // 2
            if self.starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        prefix = self.lines[lo][: offset - self.starts[lo]]
        return Position(lo, sum(2 if ord(c) > 0xFFFF else 1 for c in prefix))

    def loc_offset(self, loc: Loc) -> int:
        line = min(max(loc.line - 1, 0), len(self.starts) - 1)
        return self.starts[line] + loc.col - 1

    def loc_range(self, loc: Loc, length: int | None = None) -> Range:
        start = self.loc_offset(loc)
        return Range(self.position(start), self.position(start + (loc.length if length is None else length)))

    def span_range(self, start: int, end: int) -> Range:
        return Range(self.position(start), self.position(end))

    @property
    def tokens(self) -> list[Token]:
        """Every token but comments, strings kept (as one token each)."""
        if self._tokens is None:
            self._tokens = [Token(m.group(), m.start()) for m in _TOKEN.finditer(self.text)
                            if not m.group().startswith("#")]
        return self._tokens

    def token_at(self, offset: int) -> tuple[int, Token] | None:
        """The name token under (or just before) `offset`, with its index."""
        tokens = self.tokens
        for i, tok in enumerate(tokens):
            if tok.start <= offset <= tok.end and tok.is_name:
                return i, tok
            if tok.start > offset:
                break
        return None

    def tokens_before(self, offset: int) -> list[Token]:
        return [t for t in self.tokens if t.end <= offset]


class CallContext(FrozenRecord):
    """The call whose parentheses hold a position: its name, where it starts, its arguments before the
    position (`positional`: how many lead without a keyword; `given`: the keywords), the index of the
    argument the position is in and its keyword if it has one, and whether it is `repeat(N) block(`."""

    func: str
    func_start: int
    positional: int
    given: tuple[str, ...]
    active: int
    keyword: str | None
    repeat: bool = False


def enclosing_call(buf: Buffer, offset: int) -> CallContext | None:
    """The innermost call open at `offset`, from the tokens alone (works on text that does not parse)."""
    toks = buf.tokens_before(offset)
    depth, i = 0, len(toks) - 1
    while i >= 0:
        t = toks[i].text
        if t in (")", "]", "}"):
            depth += 1
        elif t == "{" and depth == 0:
            return None
        elif t in ("(", "[", "{"):
            if depth == 0 and t == "(":
                break
            depth = max(0, depth - 1)
        i -= 1
    if i <= 0 or not toks[i - 1].is_name or toks[i - 1].text == "repeat":
        return None
    segments: list[list[str]] = [[]]
    depth = 0
    for tok in toks[i + 1:]:
        if tok.text in ("(", "[", "{"):
            depth += 1
        elif tok.text in (")", "]", "}"):
            depth -= 1
        elif tok.text == "," and depth == 0:
            segments.append([])
            continue
        segments[-1].append(tok.text)
    keywords = [s[0] if len(s) >= 2 and s[1] == "=" and IDENT.fullmatch(s[0]) else None for s in segments]
    positional = 0
    for k in keywords[:-1]:
        if k is not None:
            break
        positional += 1
    func = toks[i - 1]
    repeat = i >= 2 and toks[i - 2].text == ")" and is_repeat(toks, i - 2)
    return CallContext(func.text, func.start, positional, tuple(k for k in keywords[:-1] if k),
                       len(segments) - 1, keywords[-1], repeat)


def is_repeat(toks: list[Token], close: int) -> bool:
    """`repeat(N) block(`: the `)` at `close` ends a `repeat(...)`."""
    depth, j = 0, close
    while j >= 0:
        if toks[j].text == ")":
            depth += 1
        elif toks[j].text == "(":
            depth -= 1
            if depth == 0:
                return j > 0 and toks[j - 1].text == "repeat"
        j -= 1
    return False
