"""The language server's state: one `Analysis` per open document, the checker's verdict on its text.

Pure Python (no pygls, no lsprotocol), so feature modules and tests can use it directly. Every feature reads
the same state: `Documents.get(uri)` gives the latest `Analysis` of an open document (None when it is not
open), computed once per document version by `Documents.update`. An `Analysis` holds

- `uri`, `path` (the file the URI names; imports resolve next to it), `version`, `text` (the buffer, not the
  file on disk);
- `result`: the `reports.check_json.CheckResult` of `ttspec check` on that text (the same function the command
  line runs: one source of diagnostics), and `model` (`result.elaborated`: the elaborated `ir.graph.Model`
  when the spec elaborated, else None);
- `diagnostics`: `check --json`'s diagnostic objects (docs/check-json.md: 0-based UTF-16 ranges, notes,
  hints, fixes), for this document (see `for_document` for those in other files);
- `module()`: the parsed AST (`frontend.ast.Module`), parsed lazily and None when the text does not parse.

Analyses are replaced, never mutated (but for what is computed lazily and kept: the AST, the lens's facts;
a feature module may keep its own per-version results on the Analysis the same way), so a feature may keep
the one it read."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from ..errors import ArchError, Diagnostic, Loc, SourceCache
from ..reports.check_json import CheckResult, check_spec, diagnostic_json

_NOT_PARSED = object()


def uri_to_path(uri: str) -> Path:
    """A `file://` URI's path; any other URI names a path under the current folder (its imports resolve
    there)."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    return Path.cwd() / (Path(unquote(parsed.path)).name or "untitled.arch")


class Analysis:
    """The checker's verdict on one version of one document (see the module's docstring)."""

    def __init__(self, uri: str, version: int | None, text: str, result: CheckResult):
        self.uri, self.version, self.text, self.result = uri, version, text, result
        self.path = uri_to_path(uri)
        self.model = result.elaborated
        self.diagnostics = [diagnostic_json(d, result.spec) for d in result.diagnostics]
        self._module = _NOT_PARSED
        self.lens_facts = None  # lens.Facts, computed when the editor first asks for this version's lenses

    @property
    def spec(self) -> str:
        """The file name diagnostics use for this document."""
        return self.result.spec

    def module(self):
        """The document's AST (frontend.ast.Module), or None when it does not parse."""
        if self._module is _NOT_PARSED:
            from ..families import SHORT_FORMS
            from ..frontend.parser import parse_source
            from ..frontend.source import source_text

            try:
                self._module = parse_source(source_text(self.text, self.spec), self.spec, short_forms=SHORT_FORMS)
            except ArchError:
                self._module = None
        return self._module


def analyse(uri: str, text: str, version: int | None = None) -> Analysis:
    """Check `text` as the spec at `uri`'s path: errors (several where the elaborator recovers) or warnings,
    with the fit on the spec's own `target` as `ttspec check` gives it."""
    spec = str(uri_to_path(uri))
    SourceCache().add(spec, text)  # ranges of a text refused before it is parsed (a NUL byte) read this text
    try:
        result = check_spec(spec, text=text)
    except ArchError as e:  # a UsageError from an option: none are given here, but never lose a diagnostic
        result = CheckResult(spec, e.diagnostics, ok=False)
    except Exception as e:  # a bug in ttspec: said on the document (as `ttspec check` says it), the server lives on
        result = CheckResult(spec, [Diagnostic("error", f"internal error: {type(e).__name__}: {e}", Loc(spec, 1, 1),
                                               hint="this is a bug in ttspec; `TTSPEC_DEBUG=1 ttspec check "
                                                    "FILE` on the saved file shows a traceback")], ok=False)
    return Analysis(uri, version, text, result)


class Documents:
    """The open documents' analyses, by URI."""

    def __init__(self):
        self._by_uri: dict[str, Analysis] = {}

    def update(self, uri: str, text: str, version: int | None = None, again: bool = False) -> Analysis:
        """Analyse a document's new text (reusing the analysis when text and version are unchanged, unless
        `again`: a file it imports may have changed on disk)."""
        old = self._by_uri.get(uri)
        if old is not None and old.text == text and old.version == version and not again:
            return old
        self._by_uri[uri] = analysis = analyse(uri, text, version)
        return analysis

    def get(self, uri: str) -> Analysis | None:
        return self._by_uri.get(uri)

    def uris(self) -> list[str]:
        """The open documents."""
        return list(self._by_uri)

    def close(self, uri: str) -> None:
        self._by_uri.pop(uri, None)
