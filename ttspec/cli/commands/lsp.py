"""`ttspec lsp`: the language server for editors, over stdio (docs/lsp.md)."""

from __future__ import annotations

import importlib.util

from ...errors import ArchError


def add_parser(sub) -> None:
    c = sub.add_parser("lsp", help="run the language server (Language Server Protocol over stdin/stdout)",
                       description="The language server for .arch specs, for any editor: run `ttspec lsp` as its "
                                   "stdio command. Diagnostics as you type (unsaved buffers), quick fixes, "
                                   "an outline, parameter counts on the `model` line (docs/lsp.md).")
    c.add_argument("--stdio", action="store_true",
                   help="talk over stdin/stdout (the default and only transport; accepted because some clients "
                        "pass it)")


def run(args) -> int:
    if importlib.util.find_spec("pygls") is None:
        raise ArchError("`ttspec lsp` needs pygls, which is not installed: pip install 'ttspec[lsp]'")
    from ...lsp.server import main

    return main()
