"""`ttspec lsp`: the Language Server Protocol server over stdio (pygls).

`build_server()` makes the pygls `LanguageServer` with every feature registered; `main()` runs it on
stdin/stdout. The document state lives in one place, `server.documents` (a `documents.Documents`): on
didOpen/didChange the buffer's text is checked as the spec at the document's path (documents.analyse) and
its diagnostics published; every other feature reads `server.documents.get(uri)` (the latest `Analysis`:
text, version, check result, elaborated model or None, diagnostics, lazily parsed AST).

Feature modules: each has `register(server)`, which adds its handlers with `@server.feature(...)`; they are
listed in FEATURES and registered in order (hover, definition, completion, signature help and inlay hints
are `query_features`, over the pure index of queries.py)."""

from __future__ import annotations

import importlib
import os

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

from .. import __version__
from . import convert
from .documents import Analysis, Documents

# the feature modules beside this one, each with register(server)
FEATURES = ("actions", "outline", "lens", "query_features")


class ArchProtocol(LanguageServerProtocol):
    """pygls' protocol, keeping LSP's default position encoding: positions count UTF-16 code units, as ttspec's
    ranges do (check --json), whatever other encodings a client offers (every client supports UTF-16)."""

    @lsp_method(types.INITIALIZE)
    def lsp_initialize(self, params: types.InitializeParams):
        if params.capabilities.general is not None:
            params.capabilities.general.position_encodings = None
        return (yield from super().lsp_initialize(params))


class ArchServer(LanguageServer):
    """pygls' server with ttspec's document state (`documents`)."""

    def __init__(self):
        super().__init__("ttspec", __version__, text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
                         protocol_cls=ArchProtocol)
        self.documents = Documents()

    def refresh(self, uri: str, again: bool = False) -> Analysis:
        """Check the document at `uri` from its current buffer (unless that version is checked already and not
        `again`) and publish its diagnostics."""
        doc = self.workspace.get_text_document(uri)
        analysis = self.documents.update(uri, doc.source, doc.version, again)
        self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
            uri=uri, version=doc.version, diagnostics=convert.diagnostics(analysis)))
        return analysis


def build_server() -> ArchServer:
    """The server with every feature registered."""
    server = ArchServer()

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: ArchServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.refresh(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: ArchServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.refresh(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: ArchServer, params: types.DidSaveTextDocumentParams) -> None:
        for uri in ls.documents.uris():  # the saved file may be one the others import (imports are read from disk)
            ls.refresh(uri, again=True)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: ArchServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.documents.close(params.text_document.uri)
        ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=params.text_document.uri,
                                                                            diagnostics=[]))

    for name in FEATURES:
        importlib.import_module(f"{__package__}.{name}").register(server)
    return server


def main() -> int:
    """Serve on stdin/stdout until the client says exit."""
    # No on-disk AST cache: an editor checks a new text at every keystroke, and each would leave a cache file
    # behind (~/.cache/ttspec/ast); the server keeps its analyses in memory per document version instead.
    os.environ["TTSPEC_NO_CACHE"] = "1"
    build_server().start_io()
    return 0
