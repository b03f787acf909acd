"""CI's guard against silent skips: with TTSPEC_REQUIRE_ALL=1 (set by .ci/run) every skip, for a
missing module at import or a skipif marker or a skip inside a test, is a failure that names the
reason; without it they stay skips (and pytest lists them: -rs in pyproject.toml)."""

import os
import subprocess
import sys

from .conftest import ROOT

SKIPPING = '''
import pytest

@pytest.mark.skipif(True, reason="the mock toolchain is missing")
def test_marked():
    pass

def test_inside():
    pytest.skip("ttnn is missing")

def test_runs():
    pass
'''

MISSING = '''
import pytest

pytest.importorskip("ttspec_no_such_module")

def test_never():
    pass
'''


def run_pytest(tmp_path, text, require):
    path = tmp_path / "test_skipping.py"
    path.write_text(text)
    env = dict(os.environ)
    env.pop("TTSPEC_REQUIRE_ALL", None)
    if require:
        env["TTSPEC_REQUIRE_ALL"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.conftest", "-rs", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), str(path)], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=120)


def test_skips_fail_when_everything_is_required(tmp_path):
    out = run_pytest(tmp_path, SKIPPING, require=True)
    assert out.returncode == 1, out.stdout
    assert "the mock toolchain is missing" in out.stdout and "ttnn is missing" in out.stdout
    assert "1 failed, 1 passed, 1 error" in out.stdout and "skipped" not in out.stdout.splitlines()[-1]
    missing = run_pytest(tmp_path, MISSING, require=True)
    assert missing.returncode != 0 and "No module named 'ttspec_no_such_module'" in missing.stdout


def test_skips_are_listed_otherwise(tmp_path):
    out = run_pytest(tmp_path, SKIPPING, require=False)
    assert out.returncode == 0, out.stdout
    assert "SKIPPED" in out.stdout and "1 passed, 2 skipped" in out.stdout.splitlines()[-1]


def test_ci_requires_everything():
    run = (ROOT / ".ci" / "run").read_text()
    assert "TTSPEC_REQUIRE_ALL=1 .venv/bin/python -m pytest" in run
