"""`check --json` diagnostics (docs/check-json.md) -> LSP `Diagnostic`s: the JSON already has LSP's ranges
(0-based, UTF-16), so this only builds the protocol's objects.

Where a diagnostic lies: one in the document itself keeps its range. One in another file (an imported spec;
the standard library's are reported at the user's call already) is published on the document being edited,
not on the other file's URI (that file may not be open, and its own analysis would overwrite or clear them):
it sits on the `import` statement that brings the file in (line 0 when none names it), its message says
which file, and its first related location is the problem's own place there."""

from __future__ import annotations

from lsprotocol import types

from ..errors import source_lines
from ..frontend import ast
from ..reports.check_json import lsp_range
from .documents import Analysis

SEVERITY = {"error": types.DiagnosticSeverity.Error, "warning": types.DiagnosticSeverity.Warning}
START = types.Range(types.Position(0, 0), types.Position(0, 1))


def to_range(r: dict) -> types.Range:
    return types.Range(types.Position(r["start"]["line"], r["start"]["character"]),
                       types.Position(r["end"]["line"], r["end"]["character"]))


def uri_of(analysis: Analysis, file: str | None, uri: str | None) -> str | None:
    """The URI for a place in `file`: the document's own URI (as the client spelt it) for the document."""
    return analysis.uri if file == analysis.spec else uri


def diagnostics(analysis: Analysis) -> list[types.Diagnostic]:
    """The document's diagnostics, in the checker's order."""
    return [to_diagnostic(d, analysis) for d in analysis.diagnostics]


def to_diagnostic(d: dict, analysis: Analysis) -> types.Diagnostic:
    related, message = [], d["message"]
    for note in d["notes"]:
        uri = uri_of(analysis, note["file"], note["uri"])
        if uri and note["range"]:
            related.append(types.DiagnosticRelatedInformation(types.Location(uri, to_range(note["range"])),
                                                              note["message"]))
        else:
            message += f"\nnote: {note['message']}"
    for hint in d["hints"]:
        message += f"\nhint: {hint}"
    here = d["file"] == analysis.spec
    where = to_range(d["range"])
    if not here:
        if d["uri"] and d["located"]:
            related.insert(0, types.DiagnosticRelatedInformation(types.Location(d["uri"], where),
                                                                 f"{d['severity']}: {d['message']}"))
        message = f"in {d['file']}: {message}"
        where = import_range(analysis, d["file"])
    return types.Diagnostic(range=where, message=message, severity=SEVERITY.get(d["severity"]),
                            source="ttspec", related_information=related or None)


def import_range(analysis: Analysis, file: str) -> types.Range:
    """The line of the document's `import` statement that names `file` (or of its first import), else the
    start of the first line."""
    module = analysis.module()
    imports = [s for s in (module.items if module is not None else []) if isinstance(s, ast.Import)
               and s.loc.file == analysis.spec]
    for stmt in sorted(imports, key=lambda s: not _names(s.path, file)):
        r = lsp_range(stmt.loc)
        lines = source_lines(analysis.text)
        end = len(lines[stmt.loc.line - 1].encode("utf-16-le")) // 2 if stmt.loc.line <= len(lines) else 0
        return types.Range(types.Position(r["start"]["line"], r["start"]["character"]),
                           types.Position(r["start"]["line"], max(end, r["end"]["character"])))
    return START


def _names(path: str, file: str) -> bool:
    """Whether `import "path"` (relative to the document's folder) is the file diagnostics call `file`."""
    return bool(path) and file.endswith(path.removeprefix("./"))
