"""The outline (textDocument/documentSymbol): the `model` as the root, with its constants (`let`), inputs,
blocks (their parameters and labelled components inside), labelled components (`... as NAME`), outputs,
imports, `family` and `target`. From the parsed buffer alone, so it is there while the spec does not
elaborate; a buffer that does not parse has no outline (its diagnostics say why).

Ranges: a statement spans from its first character to the end of its last line (a call continued over
several lines included); a block to its closing brace. The selection range is the name."""

from __future__ import annotations

import re

from lsprotocol import types

from ..errors import Loc, source_lines
from ..frontend import ast
from ..records import Record
from ..reports.check_json import lsp_range

Kind = types.SymbolKind


class _Lines:
    """The buffer's lines, and LSP positions (UTF-16) for 1-based lines and columns in them."""

    def __init__(self, file: str, text: str):
        self.file, self.lines = file, source_lines(text)

    def position(self, line: int, col: int) -> types.Position:
        r = lsp_range(Loc(self.file, line, col, 1))["start"]
        return types.Position(r["line"], r["character"])

    def span(self, start: Loc, end_line: int) -> types.Range:
        end_line = max(end_line, start.line)
        return types.Range(self.position(start.line, start.col),
                           self.position(end_line, len(self.lines[end_line - 1]) + 1 if end_line <= len(self.lines)
                                         else 1))

    def name(self, loc: Loc, name: str, after: str = "") -> types.Range | None:
        """The range of `name` written at `loc` (or first after it on its line, else anywhere on it; following
        the pattern `after`, e.g. `as `)."""
        if not 1 <= loc.line <= len(self.lines):
            return None
        line = self.lines[loc.line - 1]
        pattern = re.compile((rf"\b{after}" if after else "") + rf"\b({re.escape(name)})\b")
        m = pattern.search(line, loc.col - 1) or pattern.search(line)  # the short form's key precedes its value
        if m is None:
            return None
        return types.Range(self.position(loc.line, m.start(1) + 1), self.position(loc.line, m.end(1) + 1))


def symbols(analysis) -> list[types.DocumentSymbol]:
    """The document's outline: one root symbol for the model (a flat list when the spec names none)."""
    module = analysis.module()
    if module is None:
        return []
    lines = _Lines(analysis.spec, analysis.text)
    items = [s for item in module.items if item.loc.file == analysis.spec for s in _statement(item, lines)]
    if module.name is None or module.name_loc is None or module.name_loc.file != analysis.spec:
        return items
    name = lines.name(module.name_loc, module.name)
    if name is None:
        return items
    whole = types.Range(types.Position(0, 0), lines.position(len(lines.lines) or 1, 1 + len(lines.lines[-1])
                                                              if lines.lines else 1))
    return [types.DocumentSymbol(module.name, Kind.Module, whole, name, detail="model", children=items)]


def _statement(stmt: ast.Stmt, lines: _Lines) -> list[types.DocumentSymbol]:
    span = lines.span(stmt.loc, _last_line(stmt))
    if isinstance(stmt, ast.Let):
        return [s for b in stmt.bindings for s in _symbol(lines, b.name, b.loc, Kind.Constant, span,
                                                            _text_after(lines, b.loc, "="))]
    if isinstance(stmt, ast.Input):
        return _symbol(lines, stmt.name, stmt.loc, Kind.Variable, span, "input")
    if isinstance(stmt, ast.Output):
        return _symbol(lines, stmt.name, stmt.loc, Kind.Event, span, "output", _labels(stmt, lines))
    if isinstance(stmt, ast.BlockDef):
        return _block(stmt, lines)
    if isinstance(stmt, (ast.Family, ast.Target)):
        return _symbol(lines, stmt.name, stmt.loc, Kind.Property, span, type(stmt).__name__.lower())
    if isinstance(stmt, ast.Import):
        return _symbol(lines, stmt.path, stmt.loc, Kind.File, span, "import", after=r'import\s+"?')
    return _labels(stmt, lines)  # assignments, `if`s, shard statements: their labelled components


def _block(stmt: ast.BlockDef, lines: _Lines) -> list[types.DocumentSymbol]:
    end = _closing_brace(lines, _last_line(stmt))
    span = lines.span(Loc(stmt.loc.file, stmt.loc.line, 1), end)
    params = [s for p in stmt.params for s in _symbol(lines, p.name, p.loc, Kind.TypeParameter,
                                                      lines.span(p.loc, 0), "parameter", point=True)]
    inner = [s for body in stmt.body for s in _labels(body, lines)]
    signature = f"block {stmt.name}({', '.join(p.name for p in stmt.params)})"
    return _symbol(lines, stmt.name, stmt.loc, Kind.Function, span, signature, params + inner)


def _labels(stmt: Record, lines: _Lines) -> list[types.DocumentSymbol]:
    """The components a statement names with `as LABEL`, in source order."""
    found = []
    for call in _calls(stmt):
        if call.label in (None, "self"):
            continue
        end = _last_line(call)
        for line in range(call.func_loc.line, end + 1):
            start = Loc(call.loc.file, line, call.func_loc.col if line == call.func_loc.line else 1)
            name = lines.name(start, call.label, after=r"as\s+")
            if name is not None:
                found.append(types.DocumentSymbol(call.label, Kind.Object, lines.span(call.loc, end), name,
                                                  detail=call.func))
                break
    return sorted(found, key=lambda s: (s.selection_range.start.line, s.selection_range.start.character))


def _symbol(lines: _Lines, name: str, loc: Loc, kind: types.SymbolKind, span: types.Range, detail: str,
            children: list | None = None, after: str = "", point: bool = False) -> list[types.DocumentSymbol]:
    """One symbol, named where `name` is written at `loc` (`point`: its range is just the name)."""
    at = lines.name(loc, name, after) if not after else lines.name(Loc(loc.file, loc.line, 1), name, after)
    if at is None:  # a name that is not where the parser says (a generated statement): not in the outline
        return []
    span = at if point else types.Range(min(span.start, at.start, key=_key), max(span.end, at.end, key=_key))
    return [types.DocumentSymbol(name, kind, span, at, detail=detail, children=children or None)]


def _key(p: types.Position) -> tuple[int, int]:
    return p.line, p.character


def _text_after(lines: _Lines, loc: Loc, sep: str) -> str:
    line = lines.lines[loc.line - 1] if 1 <= loc.line <= len(lines.lines) else ""
    rest = line[loc.col - 1:].split("#")[0]
    value = rest.partition(sep)[2].split(",")[0].strip()
    return f"= {value}" if value else ""


def _calls(node: Record):
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, ast.Call):
            yield item
        if isinstance(item, Record):
            stack.extend(getattr(item, f) for f in item.FIELDS)
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


def _last_line(node: Record) -> int:
    """The last line any place inside `node` is on."""
    last, stack = 0, [node]
    while stack:
        item = stack.pop()
        if isinstance(item, Loc):
            last = max(last, item.line)
        elif isinstance(item, Record):
            stack.extend(getattr(item, f) for f in item.FIELDS)
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return last


def _closing_brace(lines: _Lines, after: int) -> int:
    """The first line from `after` on whose code (before any comment) holds `}`."""
    for number in range(max(after, 1), len(lines.lines) + 1):
        if "}" in lines.lines[number - 1].split("#")[0]:
            return number
    return max(after, 1)


def register(server) -> None:
    @server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def document_symbol(ls, params: types.DocumentSymbolParams) -> list[types.DocumentSymbol] | None:
        analysis = ls.documents.get(params.text_document.uri)
        return symbols(analysis) if analysis is not None else None
