"""Writing results: stdout, or files replaced atomically (no partial file on any failure).

Only regular files are written. A FIFO, a device (/dev/null), a socket or a directory at the
output path is refused rather than replaced by a regular file; a symlink is written through
(the file it points to is replaced, the link stays), with the same checks on that file. A new
file gets the usual mode for the umask (0666 & ~umask); a replaced file keeps its mode.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path

from .errors import ArchError

_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))


def write_output(text: str, output: str | None) -> None:
    """stdout, or an atomic write: a temp file in the same directory, then rename."""
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    write_output_bytes((text if text.endswith("\n") else text + "\n").encode("utf-8"), output)


def write_output_bytes(data: bytes, output: str) -> None:
    """Atomic binary write: a temp file beside the target, then rename."""
    target, mode = _check_target(output)
    try:
        fd, tmp = _new_file_beside(target)
    except OSError as e:
        raise _cannot(output, e, target.parent) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise _cannot(output, e) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# tempfile.mkstemp's flags: a new file only (never one that exists or a symlink planted at the name)
_NEW_FILE = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_ATTEMPTS = 100


def _new_file_beside(target: Path) -> tuple[int, str]:
    """A new file (mode 0600 until written) under an unused name in the target's directory: what
    tempfile.mkstemp does, without importing tempfile (with shutil, random, bz2 and lzma: ~5 ms of a
    cold compile's start-up)."""
    for _ in range(_ATTEMPTS):
        name = str(target.parent / f".ttspec-{os.getpid()}-{os.urandom(6).hex()}.tmp")
        try:
            return os.open(name, _NEW_FILE, 0o600), name
        except FileExistsError:
            continue  # another writer's name: draw again
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", str(target.parent))


def _check_target(output: str) -> tuple[Path, int]:
    """The regular file to replace (symlinks followed) and the mode the new file gets."""
    if output.endswith(("/", os.sep)):
        raise ArchError(f"cannot write {output}: the path ends in `/`, and this command writes one file",
                        hint="give a file name, e.g. out.txt")
    path = Path(output)
    try:
        resolved = Path(os.path.realpath(path)) if path.is_symlink() else path
        try:
            st = os.stat(resolved)
        except FileNotFoundError:
            st = None
        except NotADirectoryError:
            raise ArchError(f"cannot write {output}: a parent in the path is a file, not a directory") from None
        if st is not None:
            for test, kind in _KINDS:
                if test(st.st_mode):
                    via = f" (the symlink points to {resolved})" if resolved != path else ""
                    raise ArchError(f"cannot write {output}: it is {kind}{via}",
                                    hint="ttspec writes regular files only; leave out -o to write to stdout")
            if not stat.S_ISREG(st.st_mode):
                raise ArchError(f"cannot write {output}: it is not a regular file")
            mode = stat.S_IMODE(st.st_mode)
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        parent = resolved.parent
        if not parent.exists():
            raise ArchError(f"cannot write {output}: directory {parent} does not exist")
        if not parent.is_dir():
            raise ArchError(f"cannot write {output}: {parent} is not a directory")
    except OSError as e:
        raise _cannot(output, e) from None
    return resolved, mode


def _cannot(output: str, e: OSError, where: Path | None = None) -> ArchError:
    reason = e.strerror or type(e).__name__
    return ArchError(f"cannot write {output}: {reason}" + (f" (in {where})" if where else ""))
