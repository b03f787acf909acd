"""`ttspec lsp`: a Language Server Protocol server for `.arch` specs (docs/lsp.md).

server.py builds the pygls server; documents.py holds the per-document state every feature reads (pure
Python). pygls and lsprotocol are imported only inside this package, and only by `ttspec lsp`."""
