"""`report` and `plan` price every program the compiler emits: the program walkers (backends/ttnn/decode_facts.py,
prefill_facts.py) know every ttnn call the lowerings and runtime helpers write, so a new op cannot slip by.

- MoE (rt/moe.py's routing and batched expert matmuls): the walked device ops per layer equal the mock device's
  capture (ttspec/runtime/decode_capture.py) for moe-tiny on n150 and on the 2-chip n300 (experts split over it),
  in decode and prefill; the expert matmuls are priced as the emitted program runs them (every local expert for
  every row: the whole bank read each step, a closed form), and the report says so.
- An encoder (non-causal attention) has no decode step: report and plan say why, give no decode figures, and price
  its forward pass, whose device ops per layer equal the mock's capture of `model(tokens)`.
- Every program in generated/ (on its MANIFEST target) and every spec in specs/ on n150 and t3k: `report --json`
  and `plan --json` end without an internal error (a refusal of the spec, with its message, is fine).
"""

from __future__ import annotations

import json

import pytest

from ttspec.cli.main import main

from .conftest import ROOT, SPECS

USERS, CONTEXT, PREFILL = 32, 256, 64


def _needs_mock():
    pytest.importorskip("ttnn")


def _cli(capsys, *args) -> tuple[int, str, str]:
    """`ttspec ARGS` in this process (the command line's own error handling: an internal error exits 70)."""
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _report(capsys, spec, target, *extra) -> dict:
    code, out, err = _cli(capsys, "report", spec, "--target", target, "--json", *extra)
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def moe_captures():
    """moe-tiny compiled for n150 and n300 (32 users) and captured on the mock: one decode step and a 64-token
    prefill."""
    _needs_mock()
    from ttspec.driver import compile_source, load_model
    from ttspec.runtime.decode_capture import capture_decode
    from ttspec.targets import compile_target
    from ttspec.weight_formats import parse

    path = SPECS / "moe-tiny.arch"
    model = load_model(path)
    out = {}
    for target in ("n150", "n300"):
        source = compile_source(model, str(path), compile_target(target), parse("bf16"), None, batch=USERS)
        out[target] = capture_decode(model, source, target, users=USERS, context=CONTEXT, prefill=PREFILL,
                                     timeout=600)
    return out


@pytest.mark.parametrize("target", ["n150", "n300"])
def test_moe_report_walks_the_ops_the_mock_dispatches(moe_captures, capsys, target):
    """report --json's device ops per layer (decode and prefill) are the mock capture's, routing's composites
    (topk: fill-pad, pad, topk, two slices; scatter: three untilizes, scatter, tilize) included; on n150 the ops
    once per step too. (On the mesh the walker also counts the greedy step's vocabulary-mask add, which the capture
    does not run at this vocabulary: a difference outside the layers, before MoE.)"""
    captured = moe_captures[target]
    report = _report(capsys, SPECS / "moe-tiny.arch", target, "--batch", USERS, "--seq", CONTEXT, "--prompt",
                     PREFILL)
    decode, prefill = report["decode"]["program"], report["prefill"]["program"]
    d, p = captured["decode"], captured["prefill"]
    assert decode["device_ops_per_layer"] == d["device_ops_per_layer"][0] == d["device_ops_per_layer"][1], decode
    assert decode["layer_ops"]["topk (topk)"] == decode["layer_ops"]["softmax"] == 1
    assert p["layer0_ops"]["TopKDeviceOperation"] == p["layer0_ops"]["ScatterDeviceOperation"] == 1
    assert prefill["device_ops_per_layer"] == p["device_ops_per_layer"][0] - p["layer0_ops_in_uploads"], prefill
    assert prefill["device_ops_once_per_step"] == p["device_ops_before_layers"] + p["device_ops_after_layers"]
    if target == "n150":
        assert decode["device_ops_once_per_step"] == d["device_ops_before_layers"] + d["device_ops_after_layers"]


def test_moe_experts_are_priced_as_the_program_reads_them(capsys):
    """The emitted program computes every expert for every row (dense batched matmuls): its decode step reads the
    whole bank, 2 layers x 3 matrices x 8 experts x 128 x 256 bf16, not the E(1-(1-k/E)^T) distinct experts the
    idealised program would; the FLOPs are every expert's for every row (E/k times the routed count); the report
    says which it assumes."""
    from ttspec.analysis.program import EXPERTS_DENSE

    report = _report(capsys, SPECS / "moe-tiny.arch", "n150", "--batch", 1)
    assert report["experts_priced"] == EXPERTS_DENSE == report["decode"]["program"]["experts"]
    experts = report["decode"]["by_op_class"]["expert_glu"]
    assert experts["dram_bytes"] == 2 * 3 * 8 * 128 * 256 * 2
    assert experts["flops"] == 2 * 8 * 3 * 2 * 128 * 256  # 2 layers, 8 experts, 3 matmuls of one row
    code, text, err = _cli(capsys, "report", SPECS / "moe-tiny.arch", "--target", "n150")
    assert code == 0 and f"experts priced {EXPERTS_DENSE}" in text, err


def test_encoder_forward_is_priced_from_the_program_the_mock_runs(capsys):
    """encoder-tiny's forward pass (`model(tokens)` of 64 tokens on the mock n150): report's per-layer and outside
    device ops are the capture's; decode is null with the spec's reason; the head runs on every position (the
    logits of all 64 read back)."""
    _needs_mock()
    from ttspec.driver import compile_source, load_model
    from ttspec.runtime.decode_capture import capture_decode
    from ttspec.targets import compile_target
    from ttspec.weight_formats import parse

    path = SPECS / "encoder-tiny.arch"
    model = load_model(path)
    source = compile_source(model, str(path), compile_target("n150"), parse("bf16"), None)
    forward = capture_decode(model, source, "n150", forward=PREFILL, timeout=600)["forward"]
    report = _report(capsys, path, "n150", "--prompt", PREFILL)
    program = report["prefill"]["program"]
    assert program["device_ops_per_layer"] == forward["device_ops_per_layer"][0] - forward["layer0_ops_in_uploads"]
    assert program["device_ops_once_per_step"] == forward["device_ops_before_layers"] \
        + forward["device_ops_after_layers"]
    assert report["decode"] is None and report["prefill"]["forward"] is True
    assert "encoder-tiny.arch:" in report["no_decode"] and "non-causal" in report["no_decode"]
    assert all(report["totals"][k] is None for k in ("decode_ms_per_step", "tokens_per_s_per_user", "tokens_per_s"))
    assert report["prefill"]["by_op_class"]["host_read"]["host_bytes"] == PREFILL * 512 * 2  # every position


def test_encoder_report_and_plan_say_there_is_no_decode(capsys, tmp_path):
    path = SPECS / "encoder-tiny.arch"
    code, text, err = _cli(capsys, "report", path, "--target", "n150")
    assert code == 0, err
    assert "forward pass" in text and "decode                none: " in text and "tokens/s" not in text
    html = tmp_path / "r.html"
    code, _, err = _cli(capsys, "report", path, "--target", "n150", "--target", "t3k", "--html", html)
    assert code == 0 and "none: " in html.read_text(), err
    code, text, err = _cli(capsys, "plan", path, "--target", "t3k")
    assert code == 0 and "decode: none: " in text and "tokens/s" not in text, err
    code, out, err = _cli(capsys, "plan", path, "--target", "t3k", "--json")
    timing = json.loads(out)["modelled_time"]
    assert code == 0 and timing["decode_ms_per_step"] is None and "non-causal" in timing["no_decode"], err


def _manifest() -> list[tuple[str, str, str | None]]:
    rows = []
    for line in (ROOT / "generated" / "MANIFEST").read_text().splitlines():
        parts = line.split()
        if parts and not line.startswith("#") and parts[1] != "torch":
            rows.append((parts[0], parts[1], parts[2] if len(parts) > 2 else None))
    return rows


@pytest.mark.parametrize("spec,target,dtype", _manifest(), ids=lambda v: str(v))
def test_every_generated_program_is_priced(capsys, spec, target, dtype):
    """Each TT-NN program kept in generated/: report --json prices it from the emitted program (no call the walker
    refuses, no internal error)."""
    report = _report(capsys, ROOT / spec, target, *(["--weights-dtype", dtype] if dtype else []))
    assert report["priced_program"] == "emitted"


@pytest.mark.parametrize("command", ["report", "plan"])
@pytest.mark.parametrize("target", ["n150", "t3k"])
def test_every_spec_reports_and_plans_without_an_internal_error(capsys, command, target):
    """Every spec in specs/ on n150 and t3k: `report --json` / `plan --json` succeed, or refuse the spec with its
    message (exit 1: a spec that cannot be split over the T3K's 8 chips); never an internal error."""
    for spec in sorted(SPECS.glob("*.arch")):
        code, out, err = _cli(capsys, command, spec, "--target", target, "--json")
        assert code in (0, 1) and "internal error" not in err, (spec.name, err)
        assert code == 1 or json.loads(out)["target"] == target, spec.name
        assert code == 0 or "error:" in err, (spec.name, err)


def test_a_loop_over_k_and_v_dispatches_each(capsys):
    """phi-tiny's decode writes K and V to the cache in a loop over the literal pair ((self.k, k), (self.v, v)):
    the walker dispatches the loop's body once per item (permute, reshard and paged_update_cache twice), as the
    mock capture of one decode step shows per layer."""
    _needs_mock()
    from ttspec.driver import compile_source, load_model
    from ttspec.runtime.decode_capture import capture_decode
    from ttspec.targets import compile_target
    from ttspec.weight_formats import parse

    path = SPECS / "phi-tiny.arch"
    model = load_model(path)
    source = compile_source(model, str(path), compile_target("n150"), parse("bf16"), None, batch=USERS)
    captured = capture_decode(model, source, "n150", users=USERS, context=CONTEXT, timeout=600)["decode"]
    program = _report(capsys, path, "n150", "--batch", USERS, "--seq", CONTEXT)["decode"]["program"]
    assert program["device_ops_per_layer"] == captured["device_ops_per_layer"][0], program["layer_ops"]
    assert program["layer_ops"]["experimental.paged_update_cache"] == 2
