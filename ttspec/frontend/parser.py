"""Source text -> AST. The full .arch language (lark, LALR) and the lesson's short form."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__
from ..errors import ArchError, Loc, SourceCache, source_lines
from ..records import Record
from . import ast
from .source import MAX_NAME, MAX_NESTING, MAX_TOKENS, TOKEN, read_source

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .shortform import ShortForm

__all__ = ["parse_source", "parse_stdlib", "read_source"]


def parse_source(text: str, name: str, is_stdlib: bool = False, imported: bool = False,
                 short_forms: Mapping[str, ShortForm] | None = None) -> ast.Module:
    """Parse either the full language or, if it looks like one, the lesson's short form (`short_forms`: the
    known families' short forms, by family name; the driver hands them in). An imported file may be empty;
    it is never in the short form."""
    SourceCache().add(name, text)
    first = _first_code_line(text)
    if not first and (is_stdlib or imported):
        return ast.Module(name=None, name_loc=None, items=[], file=name, is_stdlib=is_stdlib)
    if not first:
        raise ArchError("empty spec: expected `model NAME` on the first line", Loc(name, 1, 1),
                        hint="start the file with e.g. `model nano_trickster`")
    if SHORT_FORM_HEADER.match(first) and not imported and short_forms is not None:
        from .shortform import parse_short_form

        module, family_file = parse_short_form(text, name, short_forms)
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
    return _placed(module, name, is_stdlib)


def parse_stdlib(path: Path, name: str) -> ast.Module:
    """A standard-library file, as parse_source(text, name, is_stdlib=True) would give it: read from the AST
    shipped beside it (`prelude.arch.json`, which `python -m ttspec.frontend.make_tables` writes and
    tests/test_parser_tables.py checks fresh) when that was made from this very text, else parsed. Every
    command elaborates the prelude, and reading it back costs a cold start a fifth of parsing it."""
    text = path.read_text(encoding="utf-8")
    try:
        with open(shipped_ast_path(path), encoding="utf-8") as f:
            import json

            data = json.load(f)
        if data["format"] != _CACHE_FORMAT or data["name"] != name or data["source"] != text:
            raise ValueError("made from another text")
        module = _decode(data["ast"])
        if not isinstance(module, ast.Module):
            raise ValueError("not a module")
    except (OSError, ValueError, KeyError, TypeError):  # none shipped, or stale: parse it
        return parse_source(text, name, is_stdlib=True)
    SourceCache().add(name, text)
    return _placed(module, name, True)


def shipped_ast_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _placed(module: ast.Module, name: str, is_stdlib: bool) -> ast.Module:
    """A parsed or cached module, told which file it is."""
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
        token = m.group()
        if token.startswith("#"):
            continue
        count += 1
        if len(token) > MAX_NAME and (token[0].isalpha() or token[0] == "_") and "." not in token:
            line = text.count("\n", 0, m.start()) + 1
            col = m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1
            raise ArchError(f"a name of {len(token)} characters; names are limited to {MAX_NAME}",
                            Loc(name, line, col, MAX_NAME), hint="names become identifiers in generated programs; "
                                                                "shorten it")
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
# Parsed modules are cached by content, like Python's .pyc files: a warm `ttspec params` never
# parses. The cache is JSON of the AST records, read back only into the classes of
# frontend/ast.py (and Loc) with their exact fields: whoever can write the cache directory can
# at most make ttspec misparse, never run code (unlike a pickle). TTSPEC_CACHE_DIR moves the
# cache; TTSPEC_NO_CACHE=1 turns it off.
_SALT_FILES = ("ttspec/frontend/arch_tables.json", "ttspec/frontend/lalr.py", "ttspec/frontend/syntax.py",
               "ttspec/frontend/ast.py", "ttspec/errors.py", "ttspec/frontend/parser.py")
_CACHE_FORMAT = "ttspec-ast-json/2"  # 2: list literals and subscripts
_CLASSES: dict[str, tuple[type, int]] = {
    cls.__name__: (cls, len(cls.FIELDS))
    for cls in [*(v for v in vars(ast).values() if isinstance(v, type) and issubclass(v, Record) and v is not Record),
                Loc]
}


def _cache_dir() -> Path | None:
    if os.environ.get("TTSPEC_NO_CACHE"):
        return None
    base = os.environ.get("TTSPEC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ttspec")
    return Path(base) / "ast"


def _cache_key(text: str, name: str) -> str | None:
    """The cache entry's name; None without a cache, so a cold run (TTSPEC_NO_CACHE=1) never imports
    hashlib, json or tempfile (imported where used, for start-up)."""
    if _cache_dir() is None:
        return None
    import hashlib

    h = hashlib.sha256(f"{__version__}\0{_CACHE_FORMAT}\0{name}\0".encode())
    root = Path(__file__).resolve().parent.parent.parent  # the directory holding the package
    for rel in _SALT_FILES:
        st = (root / rel).stat()
        h.update(f"{rel}:{st.st_mtime_ns}:{st.st_size}\0".encode())
    h.update(text.encode())
    return h.hexdigest()


def _encode(obj):
    """AST -> JSON-able lists: a record is [class name, *fields], a list is ["", *items]."""
    if isinstance(obj, list):
        return ["", *(_encode(x) for x in obj)]
    if isinstance(obj, Record):
        return [type(obj).__name__, *(_encode(getattr(obj, name)) for name in obj.FIELDS)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot cache {type(obj).__name__}")


def _decode(data):
    """The inverse of _encode, building only the known classes; anything else is a ValueError."""
    if isinstance(data, list):
        if not data or not isinstance(data[0], str):
            raise ValueError("malformed cache entry")
        tag = data[0]
        items = [_decode(x) for x in data[1:]]
        if tag == "":
            return items
        cls, arity = _CLASSES.get(tag, (None, -1))
        if cls is None or len(items) != arity:
            raise ValueError(f"unknown cache entry {tag!r}")
        return cls(*items)
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    raise ValueError("malformed cache entry")


def _cache_load(key: str | None) -> ast.Module | None:
    d = _cache_dir()
    if d is None or key is None:
        return None
    import json

    try:
        with open(d / f"{key}.json", encoding="utf-8") as f:
            data = json.load(f)
        module = _decode(data)
    except (OSError, ValueError, TypeError, RecursionError):  # missing, unreadable, stale or forged
        return None
    return module if isinstance(module, ast.Module) else None


def _cache_store(key: str | None, module: ast.Module) -> None:
    d = _cache_dir()
    if d is None or key is None:
        return
    import json
    import tempfile

    try:
        data = json.dumps(_encode(module), separators=(",", ":"))
    except (RecursionError, TypeError, ValueError):
        return  # an absurdly deep expression: the elaborator is about to reject it anyway
    try:
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(data)
            os.replace(tmp, d / f"{key}.json")
        finally:
            Path(tmp).unlink(missing_ok=True)
    except OSError:
        pass  # a read-only home directory only costs speed
