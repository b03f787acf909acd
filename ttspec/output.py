"""Writing results: stdout, or files replaced atomically (no partial file on any failure)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from .errors import ArchError


def write_output(text: str, output: str | None) -> None:
    """stdout, or an atomic write: a temp file in the same directory, then rename."""
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    target = Path(output)
    if target.is_dir():
        raise ArchError(f"output path {output} is a directory", hint="give a file name")
    if not target.parent.exists():
        raise ArchError(f"cannot write {output}: directory {target.parent} does not exist")
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text if text.endswith("\n") else text + "\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_output_bytes(data: bytes, output: str) -> None:
    """Atomic binary write: a temp file beside the target, then rename."""
    target = Path(output)
    if target.is_dir() or not target.parent.exists():
        raise ArchError(f"cannot write {output}: " + ("it is a directory" if target.is_dir()
                                                      else f"directory {target.parent} does not exist"))
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
