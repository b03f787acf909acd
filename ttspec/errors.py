"""Diagnostics: every user-facing problem is one of these, never a traceback."""

from __future__ import annotations

from pathlib import Path

from .records import FrozenRecord, Record, fresh


class Loc(FrozenRecord):
    """A position in a source file; `length` is how many characters to underline."""

    file: str
    line: int
    col: int
    length: int = 1

    def __str__(self) -> str:
        # a file name with a line break would split the `file:line:col: error:` prefix over two lines
        return f"{self.file}:{self.line}:{self.col}".replace("\n", "\u240a").replace("\r", "\u240d")


class Note(Record):
    """A secondary line under a diagnostic, optionally pointing at its own place."""

    message: str
    loc: Loc | None = None


class Fix(Record):
    """A mechanical edit that resolves a diagnostic (what an editor offers as a quick fix): the `loc.length`
    characters at `loc` become `text`. `title` says it in a few words."""

    title: str
    loc: Loc
    text: str


class Diagnostic(Record):
    """An error or warning as printed: message, place (file:line:col), hint, notes; `fixes`: the hint's
    mechanical edits where the checker knows them (not printed; `check --json` and the language server)."""

    severity: str  # "error" or "warning"
    message: str
    loc: Loc | None = None
    hint: str | None = None
    notes: list[Note] = fresh(list)
    fixes: list[Fix] = fresh(list)

    def render(self, sources: SourceCache | None = None) -> str:
        sources = sources or SourceCache()
        where = f"{self.loc}: " if self.loc else ""
        lines = [f"{where}{self.severity}: {self.message}"]
        if self.loc:
            lines.extend(sources.excerpt(self.loc))
        for note in self.notes:
            prefix = f"{note.loc}: " if note.loc else ""
            lines.append(f"  note: {prefix}{note.message}")
            if note.loc:
                lines.extend("  " + s for s in sources.excerpt(note.loc))
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(printable(line) for line in lines)


class ArchError(Exception):
    """A problem in the user's input; rendered as one clear diagnostic."""

    def __init__(self, message: str, loc: Loc | None = None, hint: str | None = None,
                 notes: list[Note] | None = None, fixes: list[Fix] | None = None):
        super().__init__(message)
        self.diagnostic = Diagnostic("error", message, loc, hint, list(notes or []), list(fixes or []))
        self.more: list[Diagnostic] = []  # further independent errors found after this one (the elaborator's)

    @property
    def diagnostics(self) -> list[Diagnostic]:
        """This error's diagnostic and those of the further errors found with it."""
        return [self.diagnostic, *self.more]

    @property
    def loc(self) -> Loc | None:
        return self.diagnostic.loc

    def render(self, sources: SourceCache | None = None) -> str:
        return self.diagnostic.render(sources)


class UsageError(ArchError):
    """A problem with the command line rather than the spec (exit 2, like argparse's errors)."""


class SourceCache:
    """Source text by file name, so diagnostics can quote the offending line."""

    texts: dict[str, str] = {}

    def add(self, name: str, text: str) -> None:
        SourceCache.texts[name] = text

    def excerpt(self, loc: Loc) -> list[str]:
        text = SourceCache.texts.get(loc.file)
        if text is None:
            try:
                text = Path(loc.file).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                return []
        lines = source_lines(text)
        if not 1 <= loc.line <= len(lines):
            return []
        src = printable(lines[loc.line - 1].expandtabs(1))
        if len(src) > 160:
            start = max(0, loc.col - 60)
            src = ("..." if start else "") + src[start:start + 120] + "..."
            col = loc.col - start + (3 if start else 0)
        else:
            col = loc.col
        width = max(1, min(loc.length, len(src) - col + 1))
        return [f"    {src}", "    " + " " * (col - 1) + "^" * width]


MAX_DIVISOR_SEARCH = 1 << 20  # steps any divisor hint may take: hints never hang on huge values


def source_lines(text: str) -> list[str]:
    """Lines as the parser counts them: split at `\n` only (str.splitlines also splits at
    \x0c, \x85, \u2028, ..., which would put carets on the wrong line)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


_CONTROL = {c: chr(0x2400 + c) for c in range(0x20)} | {0x7F: "\u2421"} | {c: "\ufffd" for c in range(0x80, 0xA0)}
_CONTROL.update({0x0A: "\n", 0x09: " "})  # a message's own line breaks stay line breaks
_CONTROL.update({0x2028: "\ufffd", 0x2029: "\ufffd", 0x200E: "\ufffd", 0x200F: "\ufffd"})
_CONTROL.update({c: "\ufffd" for c in range(0x202A, 0x202F)} | {c: "\ufffd" for c in range(0x2066, 0x206A)})


def printable(text: str) -> str:
    """Spec text made safe for a terminal: each control character (escape sequences, bidi
    overrides, ...) becomes one visible character, so columns and carets stay aligned."""
    return text.translate(_CONTROL)


def divisors(n: int) -> list[int]:
    """The divisors of n in order, in O(sqrt(n)) steps; [] when n is too large to list them quickly."""
    if n <= 0 or n > MAX_DIVISOR_SEARCH * MAX_DIVISOR_SEARCH:
        return []
    small, large = [], []
    d = 1
    while d * d <= n:
        if n % d == 0:
            small.append(d)
            if d * d != n:
                large.append(n // d)
        d += 1
    return small + large[::-1]


def nearest_divisors(n: int, near: int, limit: int = 2) -> list[int]:
    """Divisors of `n` closest to `near`: the one below and the one above (a bounded search)."""
    if n <= 0:
        return []
    start = min(near - 1, n)
    below = next((d for d in range(start, max(0, start - MAX_DIVISOR_SEARCH), -1) if d > 0 and n % d == 0), None)
    lo = max(near + 1, 1)
    above = next((d for d in range(lo, min(n, lo + MAX_DIVISOR_SEARCH) + 1) if n % d == 0), None)
    found = [d for d in (below, above) if d is not None]
    if not found:
        found = [d for d in (1, n) if d != near]
    return found[:limit]


def close_names(name: str, candidates) -> list[str]:
    """Up to three candidates spelt like `name`, closest first (what `did_you_mean` offers)."""
    import difflib

    return difflib.get_close_matches(name, sorted(set(candidates)), n=3, cutoff=0.6)


def did_you_mean(name: str, candidates) -> str | None:
    close = close_names(name, candidates)
    if not close:
        return None
    return "did you mean " + " or ".join(f"`{c}`" for c in close) + "?"


def replacement_fixes(loc: Loc | None, old: str, new: list[str], name: str | None = None) -> list[Fix]:
    """Fixes writing each of `new` where `old` is written at `loc` (its first `len(old)` characters), e.g.
    a misspelt name or a number that does not divide. None where the source there is not exactly `old` (the
    value came from an expression or another name: no mechanical edit) or is not a file the user edits (the
    standard library, `<stdlib>/...`; a spec given as text, `<string>`). `name`: what the value is called
    (the title says `name = new` rather than "change `old` to `new`")."""
    if loc is None or loc.file.startswith("<") or not old:
        return []
    text = SourceCache.texts.get(loc.file)
    lines = source_lines(text) if text is not None else []
    if not 1 <= loc.line <= len(lines) or lines[loc.line - 1][loc.col - 1:loc.col - 1 + len(old)] != old:
        return []
    at = Loc(loc.file, loc.line, loc.col, len(old))
    return [Fix(f"{name} = {n}" if name else f"change `{old}` to `{n}`", at, n) for n in new if n != old]


def spelling_fixes(loc: Loc | None, name: str, candidates) -> list[Fix]:
    """`did_you_mean`'s names as fixes: `name` written at `loc` replaced by each close candidate."""
    return replacement_fixes(loc, name, close_names(name, candidates))
