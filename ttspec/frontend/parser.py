"""Source text -> AST. The full .arch language (lark, LALR) and the lesson's short form."""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import tempfile
from pathlib import Path

from .. import __version__
from ..errors import ArchError, Loc, SourceCache, source_lines
from . import ast
from .source import GRAMMAR_PATH, MAX_NESTING, MAX_TOKENS, TOKEN, read_source

__all__ = ["parse_source", "read_source"]


def parse_source(text: str, name: str, is_stdlib: bool = False, imported: bool = False) -> ast.Module:
    """Parse either the full language or, if it looks like one, the lesson's short form.
    An imported file may be empty; it is never in the short form."""
    SourceCache().add(name, text)
    first = _first_code_line(text)
    if not first and (is_stdlib or imported):
        return ast.Module(name=None, name_loc=None, items=[], file=name, is_stdlib=is_stdlib)
    if not first:
        raise ArchError("empty spec: expected `model NAME` on the first line", Loc(name, 1, 1),
                        hint="start the file with e.g. `model nano_trickster`")
    if SHORT_FORM_HEADER.match(first) and not imported:
        from .shortform import parse_short_form

        module, family_file = parse_short_form(text, name)
        template = parse_source(family_file.read_text(encoding="utf-8"), f"<stdlib>/families/{family_file.name}",
                                is_stdlib=True)
        module.items += template.items
        return module
    _check_nesting(text, name)
    _check_size(text, name)
    key = _cache_key(text, name)
    module = _cache_load(key)
    if module is None:
        from .syntax import parse_full

        module = parse_full(text, name)
        _cache_store(key, module)
    module.file = name
    module.is_stdlib = is_stdlib
    for item in module.items:
        if isinstance(item, ast.BlockDef):
            item.file = name
    return module


SHORT_FORM_HEADER = re.compile(r"^[A-Za-z_][\w.\-]*\s*:\s*$")


def _first_code_line(text: str) -> str:
    for line in source_lines(text):
        stripped = line.split("#", 1)[0].rstrip()
        if stripped.strip():
            return stripped
    return ""


def _check_size(text: str, name: str) -> None:
    """Reject absurdly long token streams up front, so every parse stays well under a second."""
    count = 0
    for m in TOKEN.finditer(text):
        if m.group().startswith("#"):
            continue
        count += 1
        if count > MAX_TOKENS:
            line = text.count("\n", 0, m.start()) + 1
            col = m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1
            raise ArchError(f"spec has more than {MAX_TOKENS:,} tokens", Loc(name, line, col),
                            hint="real specs have a few hundred; is this generated text?")


def _check_nesting(text: str, name: str) -> None:
    """Reject absurd nesting up front: a clear error instead of a deep recursion."""
    depth, line, col, in_comment, in_string = 0, 1, 0, False, False
    for ch in text:
        col += 1
        if ch == "\n":
            line, col, in_comment, in_string = line + 1, 0, False, False
            continue
        if in_comment:
            continue
        if in_string:
            in_string = ch != '"'
            continue
        if ch == "#":
            in_comment = True
        elif ch == '"':
            in_string = True
        elif ch in "([{":
            depth += 1
            if depth > MAX_NESTING:
                raise ArchError(f"brackets nested more than {MAX_NESTING} deep", Loc(name, line, col),
                                hint="split the expression into named steps with `let` or assignments")
        elif ch in ")]}":
            depth = max(0, depth - 1)




# ---------------------------------------------------------------- AST cache
# Parsed modules are pickled by content, like Python's .pyc files: a warm `ttspec params`
# never imports lark. TTSPEC_CACHE_DIR moves the cache; TTSPEC_NO_CACHE=1 turns it off.
_SALT_FILES = ("grammar/arch.lark", "ttspec/frontend/syntax.py", "ttspec/frontend/ast.py", "ttspec/errors.py")


def _cache_dir() -> Path | None:
    if os.environ.get("TTSPEC_NO_CACHE"):
        return None
    base = os.environ.get("TTSPEC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ttspec")
    return Path(base) / "ast"


def _cache_key(text: str, name: str) -> str:
    h = hashlib.sha256(f"{__version__}\0{name}\0".encode())
    root = GRAMMAR_PATH.parent.parent
    for rel in _SALT_FILES:
        st = (root / rel).stat()
        h.update(f"{rel}:{st.st_mtime_ns}:{st.st_size}\0".encode())
    h.update(text.encode())
    return h.hexdigest()


def _cache_load(key: str) -> ast.Module | None:
    d = _cache_dir()
    if d is None:
        return None
    try:
        with open(d / f"{key}.pickle", "rb") as f:
            module = pickle.load(f)
    except Exception:  # missing, unreadable or stale: parse again
        return None
    return module if isinstance(module, ast.Module) else None


def _cache_store(key: str, module: ast.Module) -> None:
    d = _cache_dir()
    if d is None:
        return
    try:
        data = pickle.dumps(module, protocol=pickle.HIGHEST_PROTOCOL)
    except (RecursionError, pickle.PicklingError):
        return  # an absurdly deep expression: the elaborator is about to reject it anyway
    try:
        d.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, d / f"{key}.pickle")
        finally:
            Path(tmp).unlink(missing_ok=True)
    except OSError:
        pass  # a read-only home directory only costs speed
