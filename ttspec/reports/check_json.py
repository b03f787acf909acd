"""`ttspec check --json` (schema `ttspec-check/1`, docs/check-json.md): diagnostics in the shape the Language
Server Protocol uses. Positions are 0-based lines and UTF-16 code units (LSP's default position encoding);
the text output's `file:line:col` is 1-based lines and characters: for ASCII lines, line + 1 and character + 1."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ArchError, Diagnostic, Fix, Loc, Note, SourceCache, UsageError, source_lines
from ..frontend.source import STDLIB_DIR, STDLIB_PREFIX
from ..weight_formats import BF16, WeightFormats

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..ir.graph import Model
    from ..targets import Target

SCHEMA = "ttspec-check/1"


class CheckResult:
    """One spec's outcome: its diagnostics (errors and warnings, in the order the text output prints them),
    whether it passed, and the model's name when it elaborated."""

    def __init__(self, spec: str, diagnostics: list[Diagnostic], ok: bool, model: str | None = None,
                 elaborated: Model | None = None):
        self.spec, self.diagnostics, self.ok, self.model = spec, diagnostics, ok, model
        self.elaborated = elaborated  # the model itself where it elaborated (what the language server indexes)


def check_spec(spec: str, text: str | None = None, target: Target | None = None,
               weights_dtype: WeightFormats = BF16, training: bool = False, strict: bool = False,
               load: Callable[[str], Model] | None = None) -> CheckResult:
    """One spec's diagnostics, as `ttspec check` and `ttspec lsp` report them: its errors (several where the
    elaborator recovers), or its warnings (the spec's own and the fit on `target`, by default the spec's
    `target`). `text`: the spec's contents where they are not the file's (an editor's buffer); `load`: how
    the spec becomes a model otherwise (default driver.load_model)."""
    from ..driver import load_model
    from ..families import check_family_labels
    from ..targets import get_target
    from .checks import target_warnings

    try:
        model = load(spec) if load is not None else load_model(spec, text)
        check_family_labels(model)
        target = target or (get_target(model.target[0]) if model.target else None)
        warnings = model.warnings + (target_warnings(model, target, weights_dtype, training) if target else [])
    except UsageError:
        raise
    except ArchError as e:
        return CheckResult(spec, e.diagnostics, ok=False)
    failed = any(w.severity == "error" for w in warnings) or bool(warnings and strict)
    return CheckResult(spec, warnings, ok=not failed, model=model.name, elaborated=model)


def check_json(results: list[CheckResult]) -> dict:
    """The whole `check --json` document for the specs checked, in order."""
    return {
        "schema": SCHEMA,
        "ok": all(r.ok for r in results),
        "diagnostics": [diagnostic_json(d, r.spec) for r in results for d in r.diagnostics],
        "specs": [{"spec": r.spec, "model": r.model, "ok": r.ok,
                   "errors": sum(d.severity == "error" for d in r.diagnostics),
                   "warnings": sum(d.severity == "warning" for d in r.diagnostics)} for r in results],
    }


def diagnostic_json(d: Diagnostic, spec: str) -> dict:
    """One diagnostic. Without a place in a file (a spec that cannot be read) it is attached to the spec's
    path at the start of the file, with `located` false."""
    located = d.loc is not None
    file = d.loc.file if d.loc is not None else spec
    return {
        "file": file,
        "uri": file_uri(file),
        "range": lsp_range(d.loc) if d.loc is not None else _range(0, 0, 0, 0),
        "located": located,
        "severity": d.severity,
        "message": d.message,
        "notes": [note_json(n) for n in d.notes],
        "hints": [d.hint] if d.hint else [],
        "fixes": [fix_json(f) for f in d.fixes],
        "source": "ttspec",
        "spec": spec,
    }


def fix_json(fix: Fix) -> dict:
    """A hint's mechanical edit (a quick fix): LSP's `TextEdit` (`range`, `newText`) in `file`/`uri`."""
    return {"title": fix.title, "file": fix.loc.file, "uri": file_uri(fix.loc.file), "range": lsp_range(fix.loc),
            "newText": fix.text}


def note_json(note: Note) -> dict:
    """A note: LSP's relatedInformation, with file, uri and range null where the note has no place."""
    if note.loc is None:
        return {"file": None, "uri": None, "range": None, "message": note.message}
    return {"file": note.loc.file, "uri": file_uri(note.loc.file), "range": lsp_range(note.loc),
            "message": note.message}


def lsp_range(loc: Loc) -> dict:
    """The span the text output underlines with carets: `loc.length` characters from `loc.col`, cut at the
    end of its line (at least one character), in 0-based lines and UTF-16 code units."""
    line = _source_line(loc.file, loc.line)
    start = loc.col - 1
    if line is None:  # the source cannot be read back: characters as given
        return _range(loc.line - 1, start, loc.line - 1, start + max(1, loc.length))
    width = max(1, min(loc.length, len(line) - start))
    return _range(loc.line - 1, _utf16(line, start), loc.line - 1, _utf16(line, start + width))


def file_uri(file: str) -> str | None:
    """A `file://` URI for a diagnostic's file: the standard library's `<stdlib>/NAME` is the file the package
    ships; None where the name makes no path."""
    try:
        path = STDLIB_DIR / file.removeprefix(STDLIB_PREFIX) if file.startswith(STDLIB_PREFIX) else Path(file)
        return path.resolve().as_uri()
    except (OSError, ValueError):
        return None


def _range(l0: int, c0: int, l1: int, c1: int) -> dict:
    return {"start": {"line": l0, "character": c0}, "end": {"line": l1, "character": c1}}


def _utf16(line: str, index: int) -> int:
    """Code point index -> UTF-16 code units (characters past the line's end count one each)."""
    head = line[:index]
    return len(head.encode("utf-16-le")) // 2 + max(0, index - len(line))


def _source_line(file: str, number: int) -> str | None:
    text = SourceCache.texts.get(file)
    if text is None:
        path = STDLIB_DIR / file.removeprefix(STDLIB_PREFIX) if file.startswith(STDLIB_PREFIX) else Path(file)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError, ValueError):
            return None
    lines = source_lines(text)
    return lines[number - 1].expandtabs(1) if 1 <= number <= len(lines) else None
