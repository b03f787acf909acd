"""Quick fixes (textDocument/codeAction): the checker's own `fixes` (check --json's field: a did-you-mean name,
a nearest divisor), one code action per fix, for the diagnostics that touch the requested range. Nothing is
invented here: a hint that is only prose gets no action."""

from __future__ import annotations

from lsprotocol import types

from . import convert


def actions(analysis, at: types.Range) -> list[types.CodeAction]:
    """The quick fixes of the document's diagnostics whose range meets `at` (or whose edit does: the `7` of
    `let heads = 7` offers what the error on the `attention` line does), in the checker's order."""
    found = []
    for d in analysis.diagnostics:
        lsp = convert.to_diagnostic(d, analysis)
        fixes = [(convert.uri_of(analysis, f["file"], f["uri"]), f) for f in d["fixes"]]
        fixes = [(uri, f) for uri, f in fixes if uri is not None]
        if not fixes or not (_meets(lsp.range, at) or any(uri == analysis.uri and _meets(
                convert.to_range(f["range"]), at) for uri, f in fixes)):
            continue
        for uri, fix in fixes:
            edit = types.TextEdit(convert.to_range(fix["range"]), fix["newText"])
            found.append(types.CodeAction(title=fix["title"], kind=types.CodeActionKind.QuickFix,
                                          diagnostics=[lsp], is_preferred=len(fixes) == 1,
                                          edit=types.WorkspaceEdit(changes={uri: [edit]})))
    return found


def _meets(a: types.Range, b: types.Range) -> bool:
    def key(p: types.Position) -> tuple[int, int]:
        return p.line, p.character

    return key(a.start) <= key(b.end) and key(b.start) <= key(a.end)


def register(server) -> None:
    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION,
                    types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]))
    def code_action(ls, params: types.CodeActionParams) -> list[types.CodeAction] | None:
        analysis = ls.documents.get(params.text_document.uri)
        return actions(analysis, params.range) if analysis is not None else None
