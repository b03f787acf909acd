"""The Python API (`import ttspec`, issue 22): load a path or a spec's text, exact counts, diagnostics that match
the command line's, compile to the same programs as `ttspec compile` (generated/, checked fresh elsewhere), plan
and report with the numbers `ttspec plan/report --json` give for the same options (the command line is an
independent entry point, run in its own process), and the generated torch model as an nn.Module."""

import json
import subprocess
import sys

import pytest

import ttspec

from .conftest import ROOT, SPECS
from .test_check_json import SEVERAL  # three independent mistakes, as check --json reports them

NANO = SPECS / "nano-trickster.arch"
# HF transformers' LlamaForCausalLM count (README "Counting conventions"), and the closed form of the spec's
# numbers: 6 layers of attention 4*256*256, SwiGLU 3*256*768 and two 256-wide norms; a tied 256x256
# embedding; the final norm
NANO_TOTAL = 5_180_672
assert NANO_TOTAL == 6 * (4 * 256 * 256 + 3 * 256 * 768 + 2 * 256) + 256 * 256 + 256


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
    assert ttspec.check(NANO) == [] and ttspec.check(NANO).ok and not ttspec.check(bad).ok


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


def test_check_gives_every_error_the_checker_finds(run_cli, write_spec):
    # three independent mistakes (lines 3, 4 and 8 of the text above); the lines using `h` and `b` after them are
    # their consequences (tests/test_check_json.py); the same list as `check --json` for the same file
    found = ttspec.check(SEVERAL)
    assert [(d.severity, d.loc.line) for d in found] == [("error", 3), ("error", 4), ("error", 8)]
    assert found[1].message == "undefined name `hiden`" and not found.ok and found.errors == list(found)
    with pytest.raises(ttspec.ArchError) as err:
        ttspec.load(SEVERAL)
    assert err.value.diagnostics == list(found)
    path = write_spec(SEVERAL)
    cli = run_cli("check", "--json", path)
    assert cli.returncode == 1 and ttspec.check(path).to_dict() == json.loads(cli.stdout)
    assert str(ttspec.check(path)) + "\n" == run_cli("check", path).stderr


def test_check_gives_warnings_of_a_model_that_elaborates(run_cli):
    # llama-3.1-70b in bf16 does not fit one n150's 12 GB: a warning, as `check --target n150` gives it
    spec = SPECS / "llama-3.1-70b.arch"
    found = ttspec.load(spec).check(target="n150")
    assert found.ok and found.warnings and [d.severity for d in found] == ["warning"] * len(found)
    cli = run_cli("check", spec, "--target", "n150", "--json")
    assert ttspec.check(spec, target="n150").to_dict() == json.loads(cli.stdout)
    assert not ttspec.check(spec, target="n150", strict=True).ok


PLANS = [("n150", {}, []),
         ("t3k", {"weights_dtype": "performance", "kv_dtype": "bfloat8_b", "batch": 4, "seq": 256},
          ["--weights-dtype", "performance", "--kv-dtype", "bfloat8_b", "--batch", "4", "--seq", "256"]),
         ("galaxy", {"mesh": (2, 4), "strategy": "2d"}, ["--mesh", "2x4", "--strategy", "2d"])]


@pytest.mark.parametrize(("target", "kwargs", "flags"), PLANS, ids=[p[0] for p in PLANS])
def test_plan_is_the_commands_plan(nano, run_cli, target, kwargs, flags):
    plan = nano.plan(target, **kwargs)
    cli = run_cli("plan", NANO, "--target", target, "--json", *flags)
    assert cli.returncode == 0, cli.stderr
    assert plan.to_dict() == json.loads(cli.stdout)
    assert plan.fits is True and plan.target == target
    assert plan.memory_per_chip.total == plan["memory_per_chip"]["total"]
    assert str(plan) + "\n" == run_cli("plan", NANO, "--target", target, *flags).stdout


def test_search_is_the_commands_search(nano, run_cli):
    flags = ["--objective", "throughput", "--top", "3", "--max-ttft-ms", "50"]
    found = nano.search("n300", objective="throughput", top=3, max_ttft_ms=50)
    cli = run_cli("plan", NANO, "--target", "n300", "--search", "--json", *flags)
    assert cli.returncode == 0, cli.stderr
    assert found.to_dict() == json.loads(cli.stdout) and len(found.plans) == 3
    assert str(found) + "\n" == run_cli("plan", NANO, "--target", "n300", "--search", *flags).stdout
    with pytest.raises(ttspec.UsageError, match="max_ttft_ms: expected a positive number"):
        nano.search("n300", max_ttft_ms=-1)


def test_plan_reads_as_its_numbers(nano):
    plan = nano.plan("n150")  # the spec's bound seq <= 512 is the context; bf16 weights, 2 bytes a parameter
    m = plan.memory_per_chip
    assert (m.seq, m.batch, m.weights_dtype) == (512, 1, "bf16")
    assert m.total == m.weights_total + m.kv_cache + m.activations
    assert nano.plan().to_dict() == plan.to_dict()  # the spec's `target n150`
    assert "fits" in repr(plan) and plan._repr_markdown_().startswith("```")
    with pytest.raises(AttributeError, match="no field 'fit'"):
        _ = plan.fit


def test_plan_refuses_what_the_command_refuses(nano):
    with pytest.raises(ttspec.UsageError, match="unknown target `n151`"):
        nano.plan("n151")
    with pytest.raises(ttspec.UsageError, match="--dp splits the batch over a second mesh axis; n150 is one chip"):
        nano.plan("n150", dp=True)
    with pytest.raises(ttspec.UsageError, match="batch: expected a positive integer"):
        nano.plan("n150", batch=0)
    with pytest.raises(ttspec.UsageError, match="strategy: unknown strategy '3d'"):
        nano.plan("t3k", strategy="3d")
    with pytest.raises(ttspec.UsageError, match="mesh: expected"):
        nano.plan("t3k", mesh=(1, 2, 3))


def test_report_is_the_commands_report(nano, run_cli, tmp_path):
    report = nano.report("n300", batch=2, prompt=64)
    cli = run_cli("report", NANO, "--target", "n300", "--batch", "2", "--prompt", "64", "--json")
    assert report.to_dict() == json.loads(cli.stdout) and report.refused is None
    assert report.totals.ttft_ms == report.to_dict()["totals"]["ttft_ms"] > 0
    page = tmp_path / "r.html"
    several = nano.report(["n150", "t3k"], html=page)
    cli = run_cli("report", NANO, "--target", "n150,t3k", "--json")
    assert several.to_dict() == json.loads(cli.stdout) and [r.target for r in several] == ["n150", "t3k"]
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert str(several) + "\n" == run_cli("report", NANO, "--target", "n150,t3k").stdout


H6 = "model h6\ninput tokens: int32[batch, seq] where seq <= 64\nh = token_embedding(tokens, 256, 384)\n" \
     "h = attention(h, heads = 6)\noutput logits = lm_head(h, 256)\n"


def test_report_states_a_target_that_cannot_take_the_model():
    # 6 heads split over 2 chips, not over 8: t3k is refused, the others reported; none: the errors raised
    spec = ttspec.load(H6)
    n300, t3k = spec.report("n300,t3k")
    assert n300.refused is None and t3k.refused.startswith("heads=6 cannot be split over 8 devices")
    with pytest.raises(ttspec.ArchError, match="heads=6 cannot be split over 8 devices") as err:
        spec.report(["t3k", "galaxy"])
    assert len(err.value.diagnostics) == 2


def test_graph_is_the_commands(nano, run_cli):
    for fmt in ("mermaid", "dot"):
        assert nano.graph(fmt) == run_cli("graph", NANO, "--format", fmt).stdout
    with pytest.raises(ttspec.UsageError):
        nano.graph("svg")


def test_torch_module_counts_and_runs_as_ttspec_run(nano, run_cli, tmp_path):
    import numpy as np
    import torch

    net = nano.torch_module()
    assert isinstance(net, torch.nn.Module)
    assert sum(p.numel() for p in net.parameters()) == NANO_TOTAL
    tokens = np.array([[3, 1, 4, 1, 5, 9, 2, 6], [5, 3, 5, 8, 9, 7, 9, 3]], dtype=np.int64)
    np.save(tmp_path / "tokens.npy", tokens)
    out = run_cli("run", NANO, "--mode", "torch", "--seed", "7", "--tokens", tmp_path / "tokens.npy",
                  "--out", tmp_path / "logits.npy", timeout=120)
    assert out.returncode == 0, out.stderr
    expected = np.load(tmp_path / "logits.npy")
    seeded = nano.torch_module(seed=7)
    with torch.no_grad():
        logits = seeded(torch.from_numpy(tokens)).float().numpy()
    assert logits.shape == (2, 8, 256) and np.array_equal(logits, expected)
    with torch.no_grad():  # torch's own initialisation differs from the seeded weights
        assert not np.array_equal(net.eval()(torch.from_numpy(tokens)).float().numpy(), expected)


def test_torch_module_without_torch_names_the_extra():
    # torch made unimportable (sys.modules[name] = None): the error names the extra that installs it
    code = ("import sys; sys.modules['torch'] = None; import ttspec\n"
            "try:\n    ttspec.load(sys.argv[1]).torch_module()\n"
            "except ttspec.ArchError as e:\n    print(e.render())")
    out = subprocess.run([sys.executable, "-c", code, str(NANO)], capture_output=True, text=True, check=True)
    assert "needs torch, and it is not installed" in out.stdout and "pip install 'ttspec[torch]'" in out.stdout


def test_plan_and_report_import_no_torch():
    code = ("import sys, ttspec; s = ttspec.load(sys.argv[1]); s.plan('t3k'); s.report('n150,n300'); s.check(); "
            "s.graph(); print(sorted(m for m in ('torch', 'ttnn', 'numpy', 'pygls') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(NANO)], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["[]"]


def test_the_documentation_runs(monkeypatch):
    # docs/python-api.md's examples, as doctest runs them, from the repository's root (their paths are relative)
    import doctest

    monkeypatch.chdir(ROOT)
    result = doctest.testfile(str(ROOT / "docs" / "python-api.md"), module_relative=False,
                              optionflags=doctest.ELLIPSIS, raise_on_error=False)
    assert result.failed == 0 and result.attempted >= 30, result
