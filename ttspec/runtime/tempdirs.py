"""The temporary directories of `ttspec run` and `ttspec generate`, removed when the command ends.

A run writes the generated program to a directory (so a traceback from it shows its lines) and a
mock or device run gives its worker process a directory holding the program, the request, a full
fp32 copy of random weights (gigabytes for a real model) and tt-metal's own files. Left behind,
every run would grow $TMPDIR by that much. So each directory is made here, and `session` removes
them all when the command ends, however it ends (success, an error, Ctrl-C); with --keep-temp it
keeps them and says where they are, for reading the generated program or the worker's files.
Directories made outside a session (tests, tools that import the runner) go when the process exits.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import sys
import tempfile
from pathlib import Path

_made: list[Path] = []
_keeping = False


def make(prefix: str) -> Path:
    """A new directory under $TMPDIR, removed at the end of the command (see `session`)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    _made.append(path)
    return path


def _finish() -> list[Path]:
    """Remove the directories made so far, or keep them (--keep-temp); the kept ones."""
    made = list(_made)
    _made.clear()
    if _keeping:
        return made
    for path in made:
        shutil.rmtree(path, ignore_errors=True)
    return []


@contextlib.contextmanager
def session(keep: bool = False):
    """One command's temporary directories: removed when the block ends, or with `keep` listed on stderr."""
    global _keeping
    _keeping = keep
    try:
        yield
    finally:
        for path in _finish():
            sys.stderr.write(f"kept temporary files in {path} (--keep-temp)\n")
        _keeping = False


atexit.register(_finish)
