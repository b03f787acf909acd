"""A real package (issue 22): the wheel built from this tree, installed (not editable) into a fresh venv, works
from a directory that is not the repository: `ttspec params`, `ttspec compile` and `ttspec.load` there give
the published count of nano-trickster (5,180,672 parameters: HF transformers' LlamaForCausalLM, README
"Counting conventions") and the program in generated/, while `ttspec` resolves to the venv's copy; its
metadata names the extras (torch, ttnn, hf, lsp, all, test), and every third-party module the package imports
is the core's or an extra's.

No network: the wheel is built without build isolation from the setuptools already installed, and the
venv finds ttspec's dependencies (lark, networkx) through a .pth line naming this environment's
site-packages (a plain path: its own .pth files, the editable install's among them, are not run)."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from .conftest import ROOT

NANO_TOTAL = 5_180_672  # HF transformers' count for specs/nano-trickster.arch (README)
PACKAGED = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "grammar", "ttspec")


def _run(args, cwd, env, timeout=120):
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(map(str, args))} exited {out.returncode}:\n{out.stdout}\n{out.stderr}"
    return out.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv dir, a working directory outside the repository holding nano.arch, the environment to run in)."""
    tmp = tmp_path_factory.mktemp("package")
    src = tmp / "src"  # a copy, so the build writes no build/ or egg-info into the repository
    src.mkdir()
    for name in PACKAGED:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, src / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", TTSPEC_CACHE_DIR=str(tmp / "cache"))
    wheels = tmp / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", wheels, src], tmp, env)
    (wheel,) = wheels.glob("ttspec-*.whl")
    home = tmp / "venv"
    venv.create(home, with_pip=False)  # no system site-packages
    python = home / "bin" / "python"
    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp, env).strip()
    Path(purelib, "ttspec-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel],
         tmp, env)
    work = tmp / "work"
    work.mkdir()
    shutil.copy2(ROOT / "specs" / "nano-trickster.arch", work / "nano.arch")
    return home, work, env


def test_the_installed_package_is_the_one_that_runs(installed):
    home, work, env = installed
    code = ("import sys, ttspec, pathlib; p = pathlib.Path(ttspec.__file__).resolve(); "
            "print(p); print((p.parent / 'grammar' / 'arch.lark').read_text(encoding='utf-8'))")
    out = _run([home / "bin" / "python", "-c", code], work, env)
    where, grammar = out.split("\n", 1)
    assert Path(where).is_relative_to(home.resolve()), f"ttspec imported from {where}, not from the venv"
    # the grammar ships inside the package, a copy of grammar/ (still the source of truth)
    assert grammar == (ROOT / "grammar" / "arch.lark").read_text(encoding="utf-8") + "\n"


def test_params_json_from_another_directory(installed):
    home, work, env = installed
    report = json.loads(_run([home / "bin" / "ttspec", "params", "nano.arch", "--json"], work, env))
    assert (report["total"], report["active"]) == (NANO_TOTAL, NANO_TOTAL)


def test_compile_writes_the_program(installed):
    home, work, env = installed
    out = _run([home / "bin" / "ttspec", "compile", "nano.arch"], work, env)
    assert "wrote generated/nano_trickster_n150.py" in out
    program = (work / "generated" / "nano_trickster_n150.py").read_text(encoding="utf-8")
    # the same program as generated/ (checked fresh by test_generated.py), up to the spec's path in its header
    expected = (ROOT / "generated" / "nano_trickster_n150.py").read_text(encoding="utf-8")
    assert program.replace("nano.arch", "specs/nano-trickster.arch") == expected


def test_python_api_from_another_directory(installed):
    home, work, env = installed
    code = ("import sys, ttspec; s = ttspec.load('nano.arch'); print(s.params.total); "
            "print(s.plan('n150').memory_per_chip.seq, len(ttspec.check('nano.arch'))); "
            "print(sorted(m for m in ('torch', 'ttnn') if m in sys.modules))")
    out = _run([home / "bin" / "python", "-c", code], work, env)
    assert out.splitlines() == [str(NANO_TOTAL), "512 0", "[]"]  # 512: the spec's `seq <= max_seq`


def test_errors_exit_as_documented(installed):
    # a spec error from the installed package: exit 1 with the located diagnostic, not 70 (an internal error)
    home, work, env = installed
    (work / "bad.arch").write_text((ROOT / "specs" / "bad" / "heads7.arch").read_text(encoding="utf-8"))
    out = subprocess.run([home / "bin" / "ttspec", "check", "bad.arch"], cwd=work, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1, out.stderr
    assert out.stderr.startswith("bad.arch:") and "error:" in out.stderr


# ---------------------------------------------------------------- the extras (read from the installed metadata)
EXTRAS = {"torch", "ttnn", "hf", "lsp", "all", "test"}
# a third-party module the package imports -> the distribution that provides it
DISTRIBUTION = {"lsprotocol": "pygls", "yaml": "pyyaml"}


def _requires(home, work, env) -> dict[str | None, set[str]]:
    """The installed wheel's Requires-Dist as {extra (None: the core): {distribution names}}."""
    from packaging.requirements import Requirement

    code = "import importlib.metadata as m; print('\\n'.join(m.metadata('ttspec').get_all('Requires-Dist')))"
    by_extra: dict[str | None, set[str]] = {}
    for line in _run([home / "bin" / "python", "-c", code], work, env).splitlines():
        req = Requirement(line)
        extra = next((e for e in EXTRAS if req.marker and req.marker.evaluate({"extra": e})
                      and not req.marker.evaluate({"extra": ""})), None)
        by_extra.setdefault(extra, set()).add(req.name + (f"[{','.join(sorted(req.extras))}]" if req.extras else ""))
    return by_extra


def _imported(folder: Path) -> set[str]:
    """The top-level names of every third-party module ttspec's sources import (any import, in any function)."""
    import ast

    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("ttspec", "__future__")}


def test_extras_are_in_the_wheels_metadata(installed):
    requires = _requires(*installed)
    assert set(requires) == {None, "torch", "ttnn", "hf", "lsp", "all", "test"}, requires
    assert requires[None] == {"lark", "networkx"}  # the core: no torch, ttnn, pygls
    assert requires["lsp"] == {"pygls"} and requires["all"] == {"ttspec[hf,lsp,torch,ttnn]"}
    assert {"safetensors", "tokenizers", "torch"} <= requires["hf"]
    assert "ttnn" in requires["ttnn"] and "torch" in requires["torch"]


def test_every_third_party_import_has_an_extra(installed):
    # what the package's sources import (tests excluded) is the core's or some extra's but test's
    requires = _requires(*installed)
    provided = set().union(*(names for extra, names in requires.items() if extra != "test"))
    missing = {n for n in _imported(ROOT / "ttspec") if DISTRIBUTION.get(n, n) not in provided}
    assert not missing, f"imported by ttspec but in no extra of pyproject.toml: {sorted(missing)}"
    assert {"torch", "safetensors", "tokenizers", "ttnn", "lark"} <= _imported(ROOT / "ttspec")

