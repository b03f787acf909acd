"""Unclosed brackets for syntax errors: a `(` left open is reported where the parser gives up, often
on the next statement's first word, lines below. This finds the innermost bracket still open there
(strings and comments skipped, as the lexer does) so the error can point at it."""

from __future__ import annotations

CLOSERS = {"(": ")", "[": "]", "{": "}"}
CLOSER_TERMINALS = {"(": "RPAR", "[": "RSQB", "{": "RBRACE"}


def innermost_open(text: str, end: int) -> tuple[str, int, int] | None:
    """(bracket, line, column) of the innermost bracket open at offset `end` of `text`, 1-based; None when
    every bracket before `end` is closed."""
    stack: list[tuple[str, int, int]] = []
    line, line_start, i = 1, 0, 0
    end = min(end, len(text))
    while i < end:
        ch = text[i]
        if ch == "\n":
            line, line_start = line + 1, i + 1
        elif ch == "#":  # a comment runs to the end of the line
            while i + 1 < end and text[i + 1] != "\n":
                i += 1
        elif ch == '"':  # a string ends at its closing quote or at the line's end (the lexer refuses that)
            while i + 1 < end and text[i + 1] not in '"\n':
                i += 1
            i += text[i + 1:i + 2] == '"'
        elif ch in CLOSERS:
            stack.append((ch, line, i - line_start + 1))
        elif ch in CLOSERS.values() and stack and CLOSERS[stack[-1][0]] == ch:
            stack.pop()
        i += 1
    return stack[-1] if stack else None
