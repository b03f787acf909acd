"""Reading a spec file: bytes -> text, with the size limits every later stage relies on."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import ArchError, Loc
from ..inputs import read_bytes

# grammar/ at the repository's top is the source of truth; an installed package carries a copy (setup.py)
_PACKAGED_GRAMMAR = Path(__file__).resolve().parent.parent / "grammar" / "arch.lark"
_REPO_GRAMMAR = Path(__file__).resolve().parent.parent.parent / "grammar" / "arch.lark"
GRAMMAR_PATH = _PACKAGED_GRAMMAR if _PACKAGED_GRAMMAR.exists() else _REPO_GRAMMAR
STDLIB_DIR = Path(__file__).resolve().parent.parent / "stdlib"
STDLIB_PREFIX = "<stdlib>/"  # the file name of a standard-library file in diagnostics
MAX_SOURCE_BYTES = 64 << 10  # 15x the largest real spec; keeps every parse well under a second
MAX_NESTING = 64
MAX_TOKENS = 8000  # 20x the largest real spec; lark parses about 20k tokens/s here
TOKEN = re.compile(r'"[^"\n]*"|#[^\n]*|[A-Za-z0-9_.]+|\S')
MAX_INT_DIGITS = 18
MAX_NAME = 40  # characters in a name: generated programs keep their lines within 120 columns

def read_source(path: str | Path) -> str:
    """Read a spec as text, turning every I/O or encoding problem into an ArchError."""
    p = Path(path)
    name = str(path)
    if not p.exists() and not p.is_symlink():
        raise ArchError(f"no such file: {name}", hint="check the path; specs usually live in specs/")
    # a regular file only (a FIFO would block, /dev/zero never end), its size checked before it is read
    data = read_bytes(p, "spec", MAX_SOURCE_BYTES)
    return decode_source(data, name)


def source_text(text: str, name: str) -> str:
    """A spec given as text rather than read from a file (an editor's unsaved buffer), under the same limits
    and normalisation as a file's bytes."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) > MAX_SOURCE_BYTES:
        raise ArchError(f"spec text too large: {len(data):,} bytes (the limit is {MAX_SOURCE_BYTES:,})",
                        hint="a spec this long is not a transformer description; is this the right text?")
    return decode_source(data, name)


def decode_source(data: bytes, name: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise ArchError(f"not UTF-8 text: byte 0x{data[e.start]:02x} cannot be decoded",
                        Loc(name, line, col),
                        hint="a .arch spec is a UTF-8 text file; is this a binary file?") from None
    nul = text.find("\x00")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        col = nul - (text.rfind("\n", 0, nul) + 1) + 1
        raise ArchError("NUL byte in source", Loc(name, line, col),
                        hint="a .arch spec is a text file; is this a binary file?")
    if text.startswith("\ufeff"):
        text = text[1:]
    # One line ending for every later stage: CRLF and old-Mac CR-only files read like LF files
    # (otherwise a CR-only file is one line, and its first comment swallows it).
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text
