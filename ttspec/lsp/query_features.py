"""The navigation features over queries.py: hover, definition, completion, signature help and inlay hints.
Each handler reads the document's latest analysis (`server.documents`, documents.py) for its text and the
file name the spec is known by, asks the pure query and turns its record into lsprotocol's."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from lsprotocol import types

from . import queries
from .documents import uri_to_path

COMPLETION_KIND = {
    "block": types.CompletionItemKind.Class, "primitive": types.CompletionItemKind.Function,
    "argument": types.CompletionItemKind.Property, "variable": types.CompletionItemKind.Variable,
    "keyword": types.CompletionItemKind.Keyword, "value": types.CompletionItemKind.EnumMember,
}


def _index(ls, uri: str):
    analysis = ls.documents.get(uri)
    if analysis is not None:
        return queries.index_for(analysis.text, analysis.spec)
    doc = ls.workspace.get_text_document(uri)  # not opened through didOpen: the workspace's text
    return queries.index_for(doc.source, str(uri_to_path(uri)))


def _pos(p: types.Position) -> queries.Position:
    return queries.Position(p.line, p.character)


def _lsp_pos(p: queries.Position) -> types.Position:
    return types.Position(p.line, p.character)


def _lsp_range(r: queries.Range) -> types.Range:
    return types.Range(_lsp_pos(r.start), _lsp_pos(r.end))


def _uri(path: Path, ls_uri: str, index) -> str:
    return ls_uri if path == index.path else path.resolve().as_uri()


def hover(ls, params: types.HoverParams) -> types.Hover | None:
    found = queries.hover(_index(ls, params.text_document.uri), _pos(params.position))
    if found is None:
        return None
    return types.Hover(types.MarkupContent(types.MarkupKind.Markdown, found.markdown),
                       _lsp_range(found.range) if found.range else None)


def definition(ls, params: types.DefinitionParams) -> types.Location | None:
    index = _index(ls, params.text_document.uri)
    found = queries.definition(index, _pos(params.position))
    if found is None:
        return None
    return types.Location(_uri(found.path, params.text_document.uri, index), _lsp_range(found.range))


def completion(ls, params: types.CompletionParams) -> types.CompletionList:
    items = queries.completion(_index(ls, params.text_document.uri), _pos(params.position))
    out = []
    for rank, c in enumerate(items):
        doc = types.MarkupContent(types.MarkupKind.Markdown, c.doc) if c.doc else None
        out.append(types.CompletionItem(c.label, kind=COMPLETION_KIND.get(c.kind), detail=c.detail or None,
                                        documentation=doc, insert_text=c.insert, sort_text=f"{rank:04d}"))
    return types.CompletionList(is_incomplete=False, items=out)


def signature_help(ls, params: types.SignatureHelpParams) -> types.SignatureHelp | None:
    found = queries.signature_help(_index(ls, params.text_document.uri), _pos(params.position))
    if found is None:
        return None
    sig = found.signature
    parameters = [types.ParameterInformation(list(span), p.doc or None) for span, p in zip(found.params, sig.params)]
    info = types.SignatureInformation(sig.label, types.MarkupContent(types.MarkupKind.Markdown, sig.doc)
                                      if sig.doc else None, parameters, found.active)
    return types.SignatureHelp([info], 0, found.active)


def inlay_hints(ls, params: types.InlayHintParams) -> list[types.InlayHint]:
    r = params.range
    rng = queries.Range(_pos(r.start), _pos(r.end))
    return [types.InlayHint(_lsp_pos(h.position), h.label, kind=types.InlayHintKind.Type)
            for h in queries.inlay_hints(_index(ls, params.text_document.uri), rng)]


def _guarded(handler, empty):
    """A handler that answers `empty` (and logs) rather than an error popup when a query fails on some buffer."""

    @functools.wraps(handler)
    def run(ls, params):
        try:
            return handler(ls, params)
        except Exception:  # noqa: BLE001 - an editor keeps working; the log says what failed
            logging.getLogger(__name__).exception("%s failed", handler.__name__)
            return empty() if callable(empty) else empty
    return run


def register(server) -> None:
    server.feature(types.TEXT_DOCUMENT_HOVER)(_guarded(hover, None))
    server.feature(types.TEXT_DOCUMENT_DEFINITION)(_guarded(definition, None))
    server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=["(", ","]))(
        _guarded(completion, lambda: types.CompletionList(is_incomplete=False, items=[])))
    help_options = types.SignatureHelpOptions(trigger_characters=["(", ","], retrigger_characters=[" "])
    server.feature(types.TEXT_DOCUMENT_SIGNATURE_HELP, help_options)(_guarded(signature_help, None))
    server.feature(types.TEXT_DOCUMENT_INLAY_HINT, types.InlayHintOptions())(_guarded(inlay_hints, list))
