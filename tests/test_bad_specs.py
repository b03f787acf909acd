"""Every spec in specs/bad/ produces exactly the diagnostic its header promises.

Header lines: `# expect: TEXT` (must appear in stderr), `# expect-at: LINE:COL` (the primary
location), `# expect-exit: N` (default 1), `# check-args: ARGS` (options for `ttspec check`).
"""

import re

import pytest

from .conftest import ROOT, SPECS

BAD = sorted((SPECS / "bad").glob("*.arch"))


def expectations(path):
    text = path.read_text(encoding="utf-8")
    expects = re.findall(r"^# expect: (.+)$", text, re.M)
    at = re.search(r"^# expect-at: (\d+:\d+)$", text, re.M)
    exit_code = re.search(r"^# expect-exit: (\d+)$", text, re.M)
    return expects, at.group(1) if at else None, int(exit_code.group(1)) if exit_code else 1


def check_args(path) -> list[str]:
    found = re.search(r"^# check-args: (.+)$", path.read_text(encoding="utf-8"), re.M)
    return found.group(1).split() if found else []


def test_every_bad_spec_has_expectations():
    assert len(BAD) >= 15
    for path in BAD:
        expects, at, _ = expectations(path)
        assert expects, f"{path.name} states no `# expect:` line"


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.name)
def test_bad_spec(run_cli, path):
    expects, at, exit_code = expectations(path)
    rel = path.relative_to(ROOT)
    out = run_cli("check", *check_args(path), rel)
    assert out.returncode == exit_code, out.stderr
    assert "Traceback" not in out.stderr and "internal error" not in out.stderr
    for e in expects:
        assert e in out.stderr, f"expected {e!r} in:\n{out.stderr}"
    if at:
        severity = "warning" if exit_code == 0 else "error"
        assert f"{rel}:{at}: {severity}:" in out.stderr, out.stderr
    # The offending line is quoted with a caret under it.
    assert re.search(r"^\s+\^+$", out.stderr, re.M), out.stderr


def test_heads7_acceptance(run_cli):
    out = run_cli("check", "specs/bad/heads7.arch")
    assert out.returncode != 0
    first = out.stderr.splitlines()[0]
    assert re.match(r"specs/bad/heads7\.arch:\d+:\d+: error: heads=7 does not divide hidden=256", first)
    assert "attention(rmsnorm(x), heads = heads" in out.stderr  # the offending text
    assert "hint: nearest divisors of 256: 4, 8" in out.stderr
    assert "let heads = 7" in out.stderr  # where the bad value was written
    assert out.stdout == ""


def test_strict_turns_warnings_into_failure(run_cli):
    out = run_cli("check", "--strict", "--training", "specs/bad/everything-big.arch")
    assert out.returncode == 1
    assert "warning:" in out.stderr


def test_training_warnings_only_when_asked(run_cli):
    # ~5B parameters in bf16 (9.95 GB) fit an n150 for inference; training them does not
    out = run_cli("check", "--strict", "specs/bad/everything-big.arch")
    assert out.returncode == 0 and "warning" not in out.stderr


def test_check_many_reports_each(run_cli):
    out = run_cli("check", "specs/nano-trickster.arch", "specs/bad/heads7.arch", "specs/gpt2.arch")
    assert out.returncode == 1
    assert "specs/nano-trickster.arch: ok" in out.stdout
    assert "specs/gpt2.arch: ok" in out.stdout
    assert "heads7.arch:" in out.stderr
