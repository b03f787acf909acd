"""The Python API (`import ttspec`, issue 22): load a path or a spec's text, exact counts, diagnostics that match
the command line's, compile to the same programs as `ttspec compile` (generated/, checked fresh elsewhere)."""

import subprocess
import sys

import pytest

import ttspec

from .conftest import ROOT, SPECS

NANO = SPECS / "nano-trickster.arch"
NANO_TOTAL = 5_180_672  # HF transformers' LlamaForCausalLM count (README "Counting conventions")


@pytest.fixture(scope="module")
def nano():
    return ttspec.load(NANO)


def test_load_a_path_or_text(nano):
    assert (nano.name, nano.params.total, nano.params.active) == ("nano_trickster", NANO_TOTAL, NANO_TOTAL)
    from_text = ttspec.load(NANO.read_text(encoding="utf-8"))
    assert from_text.params == nano.params and from_text.file == "<string>"
    assert sum(nano.params.by_kind.values()) == NANO_TOTAL


def test_moe_active_is_less_than_total():
    # Mixtral 8x7B: 46.7B total, 12.9B active per token (Mistral AI's published figures)
    params = ttspec.load(SPECS / "mixtral-8x7b.arch").params
    assert round(params.total / 1e9, 1) == 46.7 and round(params.active / 1e9, 1) == 12.9


@pytest.mark.parametrize("target", ["n150", "torch"])
def test_compile_gives_the_generated_program(nano, target, tmp_path):
    # generated/ was compiled from specs/nano-trickster.arch, the path named in its header
    expected = (ROOT / "generated" / f"nano_trickster_{target}.py").read_text(encoding="utf-8")
    text = nano.compile(target=target)
    assert text.replace(str(NANO), "specs/nano-trickster.arch") == expected
    out = tmp_path / "p.py"
    assert nano.compile(target=target, output=out) == text and out.read_text(encoding="utf-8") == text


def test_errors_are_ttspecs_with_the_cli_message(run_cli):
    bad = SPECS / "bad" / "heads7.arch"
    with pytest.raises(ttspec.ArchError) as err:
        ttspec.load(bad)
    cli = run_cli("check", str(bad))
    assert cli.returncode == 1 and cli.stderr.strip() == err.value.render()
    (diagnostic,) = ttspec.check(bad)
    assert diagnostic.render() == err.value.render() and diagnostic.loc.file == str(bad)
    assert ttspec.check(NANO) == []


def test_bad_arguments_raise_usage_errors(nano):
    with pytest.raises(ttspec.UsageError, match="unknown target `n151`"):
        nano.compile(target="n151")
    with pytest.raises(ttspec.UsageError, match="unknown dtype"):
        nano.compile(weights_dtype="fp7")


def test_import_is_light():
    code = ("import sys, ttspec; print(sorted(m for m in sys.modules if m.startswith('ttspec'))); "
            "ttspec.load(sys.argv[1]).compile(); print(sorted(m for m in ('torch', 'ttnn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(NANO)], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["['ttspec']", "[]"]
