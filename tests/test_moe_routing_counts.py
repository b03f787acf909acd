"""The MoE routing's topk dispatches a number of device ops that depends on the router's width E: the walker
(program_calls.routing_parts, reading the `experts=` the program passes moe_routing_weights) counts what the mock
device's capture shows for moe-tiny with 32 and 48 and 64 experts (5 at 8 experts: test_walk_programs.py), in decode
and prefill."""

import pytest

from ttspec.cli.main import main

from .conftest import SPECS

USERS, CONTEXT, PREFILL = 32, 256, 64
# the capture's factories of topk's device ops (and the renormalising sum's FillPad, counted apart below)
TOPK_FACTORIES = ("FillPadDeviceOperation", "PadDeviceOperation", "TopKDeviceOperation", "SliceDeviceOperation")


@pytest.fixture(scope="module", params=[32, 48, 64])
def variant(request, tmp_path_factory):
    """moe-tiny with E experts: the spec, and the mock's capture of its decode step and a 64-token prefill."""
    pytest.importorskip("ttnn")
    from ttspec.driver import compile_source, load_model
    from ttspec.runtime.decode_capture import capture_decode
    from ttspec.targets import compile_target
    from ttspec.weight_formats import parse

    text = (SPECS / "moe-tiny.arch").read_text(encoding="utf-8")
    assert "let experts = 8\n" in text
    path = tmp_path_factory.mktemp("moe") / "moe.arch"
    path.write_text(text.replace("let experts = 8\n", f"let experts = {request.param}\n"), encoding="utf-8")
    model = load_model(path)
    source = compile_source(model, str(path), compile_target("n150"), parse("bf16"), None, batch=USERS)
    return path, capture_decode(model, source, "n150", users=USERS, context=CONTEXT, prefill=PREFILL, timeout=600)


def test_topk_is_counted_as_the_mock_dispatches_it_at_every_width(variant, capsys):
    import json

    path, captured = variant
    code = main(["report", str(path), "--target", "n150", "--json", "--batch", str(USERS), "--seq", str(CONTEXT),
                 "--prompt", str(PREFILL)])
    out = capsys.readouterr()
    assert code == 0, out.err
    report = json.loads(out.out)
    decode, prefill = report["decode"]["program"], report["prefill"]["program"]
    d, p = captured["decode"], captured["prefill"]
    assert decode["device_ops_per_layer"] == d["device_ops_per_layer"][0] == d["device_ops_per_layer"][1]
    assert prefill["device_ops_per_layer"] == p["device_ops_per_layer"][0] - p["layer0_ops_in_uploads"]
    walked = sum(n for op, n in decode["layer_ops"].items() if op.startswith("topk ("))
    assert decode["layer_ops"]["sum (fill_pad)"] == 1  # the renormalising sum over the top k's values
    assert walked == sum(d["layer0_ops"].get(f, 0) for f in TOPK_FACTORIES) - 1 < 5
