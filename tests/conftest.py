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
