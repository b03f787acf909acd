import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"

# The tests (and the ttspec processes they start) keep their AST cache to themselves.
os.environ["TTSPEC_CACHE_DIR"] = tempfile.mkdtemp(prefix="ttspec-test-cache-")
# Every pass pipeline the tests run (and the ttspec processes they start) checks the IR between passes
# (ttspec/passes/verify.py); off by default for speed.
os.environ["TTSPEC_VERIFY_PASSES"] = "1"


@pytest.fixture
def run_cli():
    """Run the real `ttspec` console entry point in a fresh process."""

    def run(*args, cwd=None, timeout=30):
        env = dict(os.environ)
        env.pop("TTSPEC_DEBUG", None)
        return subprocess.run([sys.executable, "-m", "ttspec.cli", *map(str, args)], capture_output=True,
                              text=True, cwd=cwd or ROOT, timeout=timeout, env=env)

    return run


@pytest.fixture
def write_spec(tmp_path):
    def write(text: str, name: str = "spec.arch") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write


# ---------------------------------------------------------------- no silent skips
# Tests skip when torch, transformers, ttnn or the mock device's RISC-V gcc is missing, so that
# the language tests run anywhere. CI sets TTSPEC_REQUIRE_ALL=1 (.ci/run): every skip is then a
# failure, with the skip's reason, so a missing dependency cannot turn the suite green.
REQUIRE_ALL = os.environ.get("TTSPEC_REQUIRE_ALL") == "1"


def _fail_skip(report, what: str) -> None:
    if REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"TTSPEC_REQUIRE_ALL=1: {what} was skipped, which CI does not allow: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_skip(outcome.get_result(), item.nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_skip(outcome.get_result(), collector.nodeid)


# ---------------------------------------------------------------- typed options from a test's parameters
def target_of(name):
    """The compile target a test names (targets.TORCH for `torch`); a Target passes through."""
    from ttspec.targets import Target, compile_target

    return name if isinstance(name, Target) else compile_target(name)


def mesh_of(text):
    """`RxC` as the (rows, cols) the driver takes; None or a tuple passes through."""
    from ttspec.targets import parse_mesh

    return parse_mesh(text) if isinstance(text, str) else text


def formats_of(text):
    """--weights-dtype text as the WeightFormats the driver takes; None or a WeightFormats passes through."""
    from ttspec.weight_formats import parse

    return None if text is None else parse(text)
