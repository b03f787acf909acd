"""A stand-in SFPI toolchain and the environment for ttnn's mock device mode.

ttnn 0.81.1 runs its real host code against a simulated cluster when
``TT_METAL_MOCK_CLUSTER_DESC_PATH`` names a cluster descriptor: op validation, layouts, program
factories and the DRAM/L1 allocator all run, but no driver call reaches hardware. Opening a
device still JIT-builds firmware, and each op JIT-builds its kernels, with the SFPI RISC-V
compiler ``riscv-tt-elf-g++``. SFPI ships only as a GitHub release, which this project cannot
download, so this module supplies a STAND-IN for it:

* every compile (``-c``) emits the same placeholder object, built once from a few lines of C by
  Debian's ``riscv64-unknown-elf-gcc`` (package ``gcc-riscv64-unknown-elf``);
* every link links those placeholders with tt-metal's own linker scripts and ``-Wl`` options,
  leaving out tt-metal's prebuilt LTO objects, which Debian's linker cannot read;
* precompiled headers are refused (tt-metal warns and goes on without them).

THE KERNELS IT PRODUCES NEVER RUN AND DO NOT COMPUTE ANYTHING. They only satisfy the
build steps that tt-metal performs before it hands binaries to the (mocked) device. Tensors
read back from a mock device hold garbage or zeros.

Where the stand-in goes: tt-metal 0.81.1 looks for ``<runtime root>/runtime/sfpi/compiler/bin/
riscv-tt-elf-g++`` and then ``/opt/tenstorrent/sfpi/compiler/bin/riscv-tt-elf-g++``. The runtime
root is the installed ``ttnn`` package directory unless ``TT_METAL_RUNTIME_ROOT`` is set (ttnn's
``__init__`` only calls ``SetRootDir`` when that variable is absent). So nothing is written into
site-packages or /opt: :func:`ensure_toolchain` builds a runtime root under
``~/.cache/ttspec/tt-metal/`` made of symlinks to the installed ttnn package's files plus the
stand-in under ``runtime/sfpi/``, and :func:`mock_env` points ``TT_METAL_RUNTIME_ROOT`` at it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

#: Debian packages that provide the compiler and linker behind the stand-in.
APT_PACKAGES = ("gcc-riscv64-unknown-elf", "binutils-riscv64-unknown-elf")
RISCV_GCC = "riscv64-unknown-elf-gcc"

CLUSTERS_DIR = Path(__file__).resolve().parent / "clusters"
#: target name -> cluster descriptor shipped in ttspec/mock/clusters/
CLUSTER_DESCRIPTORS = {
    "n150": "n150.yaml",
    "n300": "n300.yaml",
    "t3k": "t3k.yaml",
    "galaxy": "galaxy.yaml",
    "p150": "p150.yaml",
    "p150x4": "p150x4.yaml",
    "p150x8": "p150x8.yaml",
}

# Bump when the stand-in's behaviour changes: it names the runtime root and the kernel cache, so
# binaries built by an older stand-in are never reused.
STANDIN_VERSION = "1"

# The placeholder that every "compiled" kernel and firmware object becomes. tt-metal's loader
# wants an ELF with relocations whose entry point starts the text segment: `_start` sits in its
# own section `.start` (the linker scripts place `*(.start)` first) and calls a helper that is
# not inlined, which leaves a call relocation. `_start` is weak and the helper static so that
# linking several placeholders together does not clash.
_STUB_C = """\
/* ttspec MOCK stand-in for the SFPI compiler: placeholder object for a Tenstorrent kernel or
   firmware. It is never executed and computes nothing. */
static void __attribute__((noinline)) ttspec_mock_kernel_never_runs(void) {
    __asm__ volatile("" ::: "memory");
}
void __attribute__((weak, section(".start"))) _start(void) {
    ttspec_mock_kernel_never_runs();
    for (;;) {
    }
}
"""

_GXX_TEMPLATE = r"""#!/usr/bin/env bash
# ============================================================================================
# MOCK STAND-IN for SFPI's riscv-tt-elf-g++, written by ttspec/mock/toolchain.py.
# The objects and ELFs it produces are placeholders: KERNELS BUILT BY THIS NEVER RUN and compute
# nothing. It exists only so that ttnn's mock device mode (TT_METAL_MOCK_CLUSTER_DESC_PATH) can
# get through tt-metal's JIT build without the real SFPI toolchain. Never use it with hardware.
# ============================================================================================
set -u
GCC=@GCC@
STUB_O=@STUB_O@
VERSION_LINE='riscv-tt-elf-g++ (ttspec MOCK stand-in @STANDIN_VERSION@, not SFPI; kernels built by it never run) 0.0.0'

die() { echo "riscv-tt-elf-g++ (ttspec mock stand-in): $*" >&2; exit 2; }

out="" dep="" compile=0 header=0 preprocess=0 src=""
keep=()
prev=""
for a in "$@"; do
    case "$prev" in
        -o) out="$a"; keep+=(-o "$a"); prev=""; continue ;;
        -MF) dep="$a"; prev=""; continue ;;
        -x) [ "$a" = "c++-header" ] || [ "$a" = "c-header" ] && header=1; prev=""; continue ;;
        -T) keep+=(-T "$a"); prev=""; continue ;;
        -MT|-MQ|-include|-isystem|-I|-D|-U) prev=""; continue ;;
    esac
    case "$a" in
        --version|-v|-dumpversion) echo "$VERSION_LINE"; exit 0 ;;
        -o|-MF|-x|-T|-MT|-MQ|-include|-isystem|-I|-D|-U) prev="$a" ;;
        -c) compile=1 ;;
        -E) preprocess=1 ;;
        -T*|-Wl,*|-L*) keep+=("$a") ;;
        */runtime/hw/lib/*.o) ;;  # tt-metal's prebuilt LTO objects: Debian's linker cannot read them
        *.o|*.a) keep+=("$a") ;;
        *.cpp|*.cc|*.cxx|*.c|*.S|*.s|*.h|*.hpp) src="$a" ;;
    esac
done

if [ "$header" = 1 ]; then
    echo "riscv-tt-elf-g++ (ttspec mock stand-in): no precompiled headers" >&2
    exit 1
fi
[ "$preprocess" = 0 ] || die "preprocessing (-E) is not supported by the mock stand-in"
[ -x "$GCC" ] || die "$GCC is missing: apt-get install @APT_PACKAGES@"

if [ "$compile" = 1 ]; then
    [ -n "$out" ] || die "compile without -o: $*"
    cp "$STUB_O" "$out.tmp.$$" && mv -f "$out.tmp.$$" "$out" || die "cannot write $out"
    if [ -z "$dep" ]; then
        case " $* " in *" -MMD "*|*" -MD "*) dep="${out%.*}.d" ;; esac
    fi
    if [ -n "$dep" ]; then
        printf '%s: %s\n' "$out" "$src" > "$dep" || die "cannot write $dep"
    fi
    exit 0
fi

[ -n "$out" ] || die "link without -o: $*"
exec "$GCC" -march=rv32i -mabi=ilp32 -nostdlib -nostartfiles "${keep[@]}"
"""


class ToolchainMissing(RuntimeError):
    """Debian's RISC-V compiler, which the stand-in toolchain is built on, is not installed."""


def _install_hint() -> str:
    return (f"install the Debian packages {' '.join(APT_PACKAGES)} "
            f"(`apt-get install {' '.join(APT_PACKAGES)}`, or run .ci/install-mock-toolchain)")


def riscv_gcc() -> Path | None:
    """Debian's `riscv64-unknown-elf-gcc`, or None when `gcc-riscv64-unknown-elf` is not installed."""
    found = shutil.which(RISCV_GCC)
    return Path(found) if found else None


def cache_root() -> Path:
    """~/.cache/ttspec/tt-metal (or $XDG_CACHE_HOME/ttspec/tt-metal)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ttspec" / "tt-metal"


def kernel_cache_dir() -> Path:
    """Where tt-metal keeps the firmware and kernels the stand-in built (TT_METAL_CACHE)."""
    return cache_root() / f"mock-kernels-v{STANDIN_VERSION}"


def ttnn_package_dir() -> Path:
    """The installed ttnn package, found without importing it (importing ttnn fixes its root)."""
    spec = importlib.util.find_spec("ttnn")
    if spec is None or not spec.origin:
        raise ModuleNotFoundError("ttnn is not installed in this Python environment")
    return Path(spec.origin).resolve().parent


def _write_if_changed(path: Path, text: str, mode: int | None = None) -> None:
    if path.exists() and path.read_text(encoding="utf-8") == text:
        if mode is not None and (path.stat().st_mode & 0o777) != mode:
            path.chmod(mode)
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    if mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, path)


def _symlink(target: Path, link: Path) -> None:
    if link.is_symlink() and os.readlink(link) == str(target):
        return
    if link.exists() and not link.is_symlink():
        shutil.rmtree(link) if link.is_dir() else link.unlink()
    tmp = link.parent / f".{link.name}.{os.getpid()}.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)  # atomic: a concurrent reader sees the old link or the new one


def _mirror(src: Path, dst: Path, skip: set[str]) -> None:
    """Make dst hold a symlink to each entry of src (except `skip`), and nothing stale."""
    dst.mkdir(parents=True, exist_ok=True)
    wanted = {p.name for p in src.iterdir() if p.name not in skip}
    for name in wanted:
        _symlink(src / name, dst / name)
    for p in dst.iterdir():
        if p.name not in wanted and p.name not in skip and p.is_symlink():
            p.unlink()


def ensure_toolchain() -> Path:
    """Install the stand-in SFPI toolchain; return the tt-metal runtime root that holds it.

    The returned directory is what ``TT_METAL_RUNTIME_ROOT`` must name (see :func:`mock_env`); the
    stand-in compiler is ``<root>/runtime/sfpi/compiler/bin/riscv-tt-elf-g++``. Idempotent and
    cheap when already done; safe to call from concurrent processes. Raises
    :class:`ToolchainMissing` naming the apt packages when Debian's RISC-V gcc is not installed.
    """
    gcc = riscv_gcc()
    if gcc is None:
        raise ToolchainMissing(f"{RISCV_GCC} not found: the mock device's stand-in SFPI toolchain needs it; "
                               + _install_hint())
    ttnn_dir = ttnn_package_dir()
    try:
        ttnn_version = importlib.metadata.version("ttnn")
    except importlib.metadata.PackageNotFoundError:
        ttnn_version = "unknown"
    key = hashlib.sha256(f"{ttnn_dir}\0{ttnn_version}\0{STANDIN_VERSION}".encode()).hexdigest()[:12]
    root = cache_root() / f"runtime-root-{ttnn_version}-{key}"

    # The runtime root: the ttnn package's entries as symlinks, with runtime/ rebuilt beside them
    # so that runtime/sfpi can be ours while runtime/hw stays ttnn's.
    _mirror(ttnn_dir, root, skip={"runtime"})
    _mirror(ttnn_dir / "runtime", root / "runtime", skip={"sfpi"})
    sfpi = root / "runtime" / "sfpi"
    bindir = sfpi / "compiler" / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    (sfpi / "include").mkdir(exist_ok=True)  # tt-metal adds -I<sfpi>/include
    _write_if_changed(sfpi / "README", "MOCK stand-in for the SFPI toolchain, written by ttspec/mock/toolchain.py.\n"
                      "Kernels built by it never run. See ttspec/mock/README.md.\n")

    # The placeholder object, compiled once.
    stub_c, stub_o = sfpi / "stub.c", sfpi / "stub.o"
    if not stub_o.exists() or not stub_c.exists() or stub_c.read_text(encoding="utf-8") != _STUB_C:
        _write_if_changed(stub_c, _STUB_C)
        tmp_o = sfpi / f".stub.{os.getpid()}.o"
        cmd = [str(gcc), "-march=rv32i", "-mabi=ilp32", "-O2", "-ffreestanding", "-c", str(stub_c), "-o", str(tmp_o)]
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode != 0:
            raise ToolchainMissing(f"{gcc} could not build the placeholder object:\n{run.stderr}\n" + _install_hint())
        os.replace(tmp_o, stub_o)

    gxx = (_GXX_TEMPLATE.replace("@GCC@", _sh_quote(str(gcc)))
           .replace("@STUB_O@", _sh_quote(str(stub_o)))
           .replace("@STANDIN_VERSION@", STANDIN_VERSION)
           .replace("@APT_PACKAGES@", " ".join(APT_PACKAGES)))
    _write_if_changed(bindir / "riscv-tt-elf-g++", gxx, mode=0o755)
    return root


def _sh_quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def cluster_descriptor(target: str) -> Path:
    """The cluster descriptor YAML that mocks `target` (n150, n300, t3k, galaxy, p150, p150x4, p150x8)."""
    name = CLUSTER_DESCRIPTORS.get(target.lower())
    if name is None:
        raise ValueError(f"no mock cluster descriptor for target `{target}`; "
                         f"known: {', '.join(CLUSTER_DESCRIPTORS)}")
    return CLUSTERS_DIR / name


def mock_env(target: str) -> dict[str, str]:
    """Environment variables that put ttnn into mock mode for `target`.

    They must be in the environment before ``import ttnn`` (in practice: of a subprocess).
    Installs the stand-in toolchain first (:func:`ensure_toolchain`).
    """
    desc = cluster_descriptor(target)
    root = ensure_toolchain()
    cache = kernel_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    return {
        "TT_METAL_MOCK_CLUSTER_DESC_PATH": str(desc),
        "TT_METAL_RUNTIME_ROOT": str(root),
        "TT_METAL_CACHE": str(cache),
    }
