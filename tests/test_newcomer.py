"""Smaller defects a new user hit (issue 22, "Smaller ones from the same trial"), each pinned by a test."""

from __future__ import annotations

import json

import pytest

# 6 heads and 2 KV heads: one chip and n300's 2 devices take it, T3K's 8 cannot split the heads
H6 = """model h6
input tokens: int32[batch, seq] where seq <= 64
block decoder(x: [batch, seq, 384]) -> [batch, seq, 384] {
    x = x + attention(rmsnorm(x) as n1, heads = 6, kv_heads = 2) as attn
    return x
}
h = token_embedding(tokens, 256, 384) as embedding
h = repeat(2) decoder(h) as layers
output logits = lm_head(h, 256)
"""


def test_report_states_a_refusing_target_and_reports_the_others(run_cli, write_spec):
    path = write_spec(H6)
    out = run_cli("report", path, "--target", "n150,n300,t3k")
    assert out.returncode == 0, out.stderr
    assert "h6 on n150 (one chip)" in out.stdout and "h6 on n300 (1x2 mesh" in out.stdout
    assert "t3k: refused: heads=6 cannot be split over 8 devices" in out.stdout
    assert "t3k cannot take the model" in out.stderr and "error: heads=6 cannot be split over 8 devices" in out.stderr
    assert "Traceback" not in out.stderr
    rows = json.loads(run_cli("report", path, "--target", "n150,t3k", "--json").stdout)
    assert [r["target"] for r in rows] == ["n150", "t3k"]
    assert rows[0]["schema"] == "ttspec-report/1" and rows[1]["refused"].startswith("heads=6 cannot be split")


def test_report_fails_when_no_target_can_take_the_model(run_cli, write_spec):
    path = write_spec(H6)
    out = run_cli("report", path, "--target", "t3k,galaxy")
    assert out.returncode == 1 and out.stdout == "" and "Traceback" not in out.stderr
    assert out.stderr.count("error: heads=6 cannot be split") == 2
    one = run_cli("report", path, "--target", "t3k")  # one target: its refusal is the command's error
    assert one.returncode == 1 and one.stderr.count("error:") == 1 and one.stdout == ""


def test_golden_run_does_not_print_ttnns_debug_dump(tmp_path):
    """ttnn's import logs its whole configuration at DEBUG (loguru); a golden run imports it quietly, at
    WARNING, unless the user's LOGURU_LEVEL says otherwise."""
    import os
    import subprocess
    import sys

    from .conftest import ROOT

    def run(**env):
        clean = {k: v for k, v in os.environ.items() if k not in ("LOGURU_LEVEL", "TTSPEC_DEBUG")} | env
        return subprocess.run([sys.executable, "-m", "ttspec.cli", "run", "specs/llama-gqa-tiny.arch", "--mode",
                               "golden", "--out", str(tmp_path / "l.npy")], capture_output=True, text=True,
                              cwd=ROOT, env=clean, timeout=120)

    out = run()
    assert out.returncode == 0, out.stderr
    assert "golden:" in out.stdout and "DEBUG" not in out.stderr and "ttnn.CONFIG" not in out.stderr
    asked = run(LOGURU_LEVEL="DEBUG")  # the user's own level still wins: nothing is hidden for good
    assert asked.returncode == 0 and "Initial ttnn.CONFIG" in asked.stderr


@pytest.mark.parametrize("command, args", [("run", ["--mode", "torch"]), ("generate", ["--prompt", "hi"]),
                                           ("generate", ["--mode", "golden", "--prompt", "hi"])])
def test_missing_torch_names_the_command_that_was_run(monkeypatch, capsys, command, args):
    """Without torch (or ttnn), `generate` said "`ttspec run` needs torch" (issue 22)."""
    import importlib.util

    from ttspec.cli.main import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: None if name in ("torch", "ttnn") else real(name, *a, **k))
    assert main([command, "specs/nano-trickster.arch", *args]) == 1
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and f"error: `ttspec {command}` needs " in err, err
    assert "hint: pip install 'ttspec[torch]'" in err  # the extra that installs it (pyproject.toml)
