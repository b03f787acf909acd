"""What users hand ttspec from outside the spec: files, JSON documents and strings quoted back.

Every file ttspec reads (prompts, tokenizers, config.json, checkpoint indexes and shards) goes
through here, so each gets the same guarantees:
- regular files only: a FIFO, a device (/dev/zero), a directory or a dangling symlink is refused
  with a message, never read (a FIFO would block forever, /dev/zero would fill memory);
- a size limit checked before reading, and reads that stop one byte past it;
- JSON with bounded nesting and bounded integers and only finite numbers, every error located
  at file:line:col (json's own RecursionError and int-limit ValueError are internal errors otherwise);
- text from outside (paths, versions, names) quoted back through `quote`, one line, no control characters.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from pathlib import Path

from .errors import ArchError, Loc, printable

MAX_JSON_DEPTH = 64  # config.json, tokenizer.json and indexes nest a few levels; 64 leaves room for any real one
MAX_INT_DIGITS = 40  # 10^40 is far past any size, id or count a model has (2^64 has 20 digits)
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
MAX_TOKENIZER_BYTES = 64 * MiB  # the largest real tokenizer.json files (Gemma's 256k vocabulary) are about 35 MB


def _kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


def regular_file(path: str | Path, what: str, limit: int | None = None) -> Path:
    """`path` when it is (a symlink to) a regular file of at most `limit` bytes; else a located refusal.
    Checks only: for files a library opens itself (safetensors, tokenizers)."""
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        if p.is_symlink():
            raise ArchError(f"cannot read {what} {quote(p)}: it is a symlink to {quote(os.readlink(p))}, "
                            "which does not exist",
                            hint="point the link at the file, or give the file itself") from None
        raise ArchError(f"cannot read {what} {quote(p)}: no such file") from None
    except OSError as e:
        raise ArchError(f"cannot read {what} {quote(p)}: {e.strerror or type(e).__name__}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ArchError(f"cannot read {what} {quote(p)}: it is {_kind(st.st_mode)}",
                        hint=f"{what} must be a regular file")
    if limit is not None and st.st_size > limit:
        raise ArchError(f"{what} {quote(p)} is {st.st_size:,} bytes; ttspec reads at most {limit:,}",
                        hint=f"is this the right file? a {what} is far smaller")
    return p


def read_bytes(path: str | Path, what: str, limit: int) -> bytes:
    """The whole of a regular file of at most `limit` bytes. The file is opened without blocking and
    checked after opening, so a path swapped for a FIFO or device between check and read is refused too."""
    p = regular_file(path, what, limit)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise ArchError(f"cannot read {what} {quote(p)}: {e.strerror or type(e).__name__}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ArchError(f"cannot read {what} {quote(p)}: it is {_kind(st.st_mode)}",
                            hint=f"{what} must be a regular file")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise ArchError(f"cannot read {what} {quote(p)}: {e.strerror or type(e).__name__}") from None
    finally:
        os.close(fd)
    if size > limit:  # the file grew after it was checked
        raise ArchError(f"{what} {quote(p)} is more than {limit:,} bytes; ttspec reads at most {limit:,}")
    return b"".join(chunks)


def read_text(path: str | Path, what: str, limit: int) -> str:
    """A regular UTF-8 text file of at most `limit` bytes (a leading BOM dropped)."""
    data = read_bytes(path, what, limit)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise ArchError(f"{what} is not UTF-8 text: byte 0x{data[e.start]:02x} cannot start or continue a character",
                        Loc(str(path), line, col), hint="save the file as UTF-8") from None


def _offset_loc(name: str, text: str, offset: int, length: int = 1) -> Loc:
    line = text.count("\n", 0, offset) + 1
    return Loc(name, line, offset - (text.rfind("\n", 0, offset) + 1) + 1, max(1, length))


# A JSON token scan that skips strings: brackets for depth, long digit runs for integers.
_STRING = r'"(?:[^"\\]|\\.)*"'
_DEPTH_TOKENS = re.compile(_STRING + r"|[\[\]{}]")
_NUMBER = re.compile(_STRING + r"|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?|NaN|-?Infinity")


def parse_json(text: str, name: str, what: str = "JSON"):
    """A JSON document, refusing at file:line:col what JSON or ttspec cannot take: syntax errors,
    nesting past MAX_JSON_DEPTH, integers past MAX_INT_DIGITS digits, NaN/Infinity and numbers that
    overflow to infinity."""
    depth = 0
    for m in _DEPTH_TOKENS.finditer(text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise ArchError(f"{what} nests deeper than {MAX_JSON_DEPTH} levels", _offset_loc(name, text, m.start()),
                                hint=f"is this the right file? a {what} nests a few levels")
        elif c in "]}":
            depth -= 1
    bad: list[str] = []

    def parse_int(s: str) -> int:
        if len(s.lstrip("-")) > MAX_INT_DIGITS:
            bad.append(s)
            return 0
        return int(s)

    def parse_float(s: str) -> float:
        value = float(s)
        if not math.isfinite(value):
            bad.append(s)
        return value

    def parse_constant(s: str) -> float:
        bad.append(s)
        return 0.0

    try:
        data = json.loads(text, parse_int=parse_int, parse_float=parse_float, parse_constant=parse_constant)
    except json.JSONDecodeError as e:
        raise ArchError(f"{what} is not valid JSON: {e.msg}", Loc(name, e.lineno, e.colno)) from None
    except RecursionError:  # the depth scan bounds nesting; this is a second guard
        raise ArchError(f"{what} nests too deeply", Loc(name, 1, 1)) from None
    if bad:
        literal = bad[0]
        where = next((m for m in _NUMBER.finditer(text) if m.group() == literal), None)
        loc = _offset_loc(name, text, where.start(), len(literal)) if where else Loc(name, 1, 1)
        shown = literal if len(literal) <= 24 else literal[:10] + f"...({len(literal)} characters)"
        if literal.lstrip("-").isdigit():
            message = f"{what} has an integer of {len(literal.lstrip('-')):,} digits ({shown})"
            hint = f"no size, id or count a model has needs more than {MAX_INT_DIGITS} digits"
        else:
            message = f"{what} has a number that is not finite ({shown})"
            hint = "JSON numbers must be finite; NaN and Infinity are not JSON"
        raise ArchError(message, loc, hint=hint)
    return data


def load_json(path: str | Path, what: str, limit: int = 16 * MiB):
    """(data, text) of a JSON file; see `read_text` and `parse_json` for what is refused."""
    text = read_text(path, what, limit)
    return parse_json(text, str(path), what), text


def quote(value: object, limit: int = 160) -> str:
    """Text from outside (a path, a version string, a tensor name) safe to print or to write into a
    spec comment: one line, control characters made visible, at most `limit` characters."""
    text = printable(str(value)).replace("\n", "\u240a")
    return text if len(text) <= limit else text[:limit - 3] + "..."
