"""generated/ is in step with specs/ and the compiler: recompiling each program listed in
generated/MANIFEST gives the committed file byte for byte (and twice the same bytes)."""

import pytest

from ttspec.driver import compile_source, load_model

from .conftest import ROOT, formats_of, target_of

ENTRIES = [line.split() for line in (ROOT / "generated" / "MANIFEST").read_text().splitlines()
           if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("entry", ENTRIES, ids=[" ".join(e) for e in ENTRIES])
def test_generated_is_current(entry, monkeypatch):
    monkeypatch.chdir(ROOT)
    spec, target, *dtype = entry
    model = load_model(spec)
    text = compile_source(model, spec, target_of(target), formats_of(dtype[0] if dtype else "bf16"))
    assert text == compile_source(load_model(spec), spec, target_of(target),
                                  formats_of(dtype[0] if dtype else "bf16"))  # deterministic
    committed = (ROOT / "generated" / f"{model.name}_{target}.py").read_text()
    assert committed == text + ("" if text.endswith("\n") else "\n"), "stale: run bash .ci/regenerate"


def test_generated_is_ruff_clean():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "E,F,W,I,B,UP",
                          "--line-length", "120", "generated"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
