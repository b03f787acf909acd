"""`--ccl-dtype bfloat8_b`: a mesh program's decode partial sums sent to the collectives in bfloat8_b (issue 20's
"collective payloads bfloat8_b"; tt_transformers' `ccl_dtype`, which it uses on Galaxy only).

Outside truths: the program writes `dtype=CCL_DTYPE` on exactly the matmuls whose partial sums a reduce-scatter or
all-reduce carries into the residual (row-parallel wo and w2; never the ones whose sums feed heads, an activation
or the logits); the bytes one device receives are closed forms (1,088 B per 1,024 bfloat8_b values); the time the
cost model saves is tt-metal's measured CCL model at those bytes; golden mode's decode score against HF transformers
stays within a bound derived from bfloat8_b's step; the mock T3K runs the collectives on bfloat8_b payloads with no
op added (ttnn's capture: tests/test_mesh_ccl.py's fixture pattern).
"""

import ast
import math
import re

import pytest

from ttspec.driver import compile_source, load_model, prepare, resolve_options
from ttspec.errors import UsageError
from ttspec.weight_formats import parse_ccl

from .conftest import SPECS, formats_of, mesh_of, target_of
from .numerics import BF16_PCC, BLOCK_FLOAT_STEP
from .test_refused_options import GQA, assert_refused

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("ttnn")

from ttspec.runtime.runner import golden_program  # noqa: E402
from ttspec.targets import get_target  # noqa: E402

from .test_decode import PREFILL, built, decode_pcc, score  # noqa: E402, F401 (built: the HF models, a module fixture)

USERS = 32
BF8_PER_VALUE = 1088 / 1024  # bytes: a 32x32 tile of bfloat8_b is 1,024 mantissa bytes and 64 shared exponents
CCL_LINE = re.compile(r"^CCL_DTYPE = (ttnn\.\w+)", re.M)


def _decode_linears(source: str) -> dict[str, bool]:
    """Each `ttnn.linear` of a `decode` method, by the weight member it reads -> whether it is asked for
    `dtype=CCL_DTYPE`."""
    out = {}
    for method in ast.walk(ast.parse(source)):
        if not (isinstance(method, ast.FunctionDef) and method.name == "decode"):
            continue
        for call in ast.walk(method):
            if isinstance(call, ast.Call) and ast.unparse(call.func) == "ttnn.linear" and len(call.args) > 1:
                dtype = next((ast.unparse(k.value) for k in call.keywords if k.arg == "dtype"), None)
                out[ast.unparse(call.args[1]).removeprefix("self.")] = dtype == "CCL_DTYPE"
    return out


# ---------------------------------------------------------------- the option


@pytest.mark.parametrize("text,message", [
    ("bfloat4_b", "bfloat4_b payloads are not offered"), ("bfloat16", "bfloat16 is spelled bf16 here"),
    ("fp8", "payload dtypes: bf16, bfloat8_b")])
def test_unknown_payload_dtypes_are_refused(text, message):
    assert parse_ccl("bf16") == "bf16" and parse_ccl("bfloat8_b") == "bfloat8_b"
    with pytest.raises(UsageError) as e:
        parse_ccl(text)
    said = e.value.diagnostic.message + " " + (e.value.diagnostic.hint or "")
    assert f"unknown collective payload dtype `{text}`" in said and message in said


def test_one_chip_and_the_torch_reference_refuse_it(run_cli, tmp_path):
    out = run_cli("compile", GQA, "--target", "n150", "--ccl-dtype", "bfloat8_b", "-o", tmp_path / "m.py")
    assert_refused(out, "--ccl-dtype bfloat8_b is the format of the partial sums a mesh's collectives carry; n150 "
                   "is one chip, which runs no collectives", hint="leave out --ccl-dtype, or use a mesh target")
    out = run_cli("report", GQA, "--target", "t3k", "--mesh", "1x1", "--ccl-dtype", "bfloat8_b")
    assert_refused(out, "--mesh 1x1 is one chip", hint="leave out --ccl-dtype")
    out = run_cli("run", GQA, "--mode", "torch", "--random-tokens", "1,4", "--ccl-dtype", "bfloat8_b", "--out",
                  tmp_path / "out.npy", timeout=120)
    assert_refused(out, "--mode torch runs the PyTorch reference, which has none", hint="leave out --ccl-dtype")
    out = run_cli("plan", GQA, "--target", "t3k", "--ccl-dtype", "bfloat4_b")
    assert out.returncode == 2 and "argument --ccl-dtype: unknown collective payload dtype `bfloat4_b`" in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_compile_carries_it_into_the_program_and_the_run_line(run_cli, tmp_path):
    out = run_cli("compile", GQA, "--target", "t3k", "--ccl-dtype", "bfloat8_b", "-o", tmp_path / "m.py")
    assert out.returncode == 0, out.stderr
    assert "--ccl-dtype bfloat8_b" in out.stdout  # the `ttspec run` line
    assert CCL_LINE.search((tmp_path / "m.py").read_text()).group(1) == "ttnn.bfloat8_b"


# ---------------------------------------------------------------- what the program writes


def test_only_the_partial_sums_into_the_residual_are_sent_in_bfloat8_b():
    """T3K (1-D): wo and w2 write the reduce-scatters' payloads; Galaxy 2-D: wo and w2 the all-reduces over the rows,
    while wqkv's all-reduce feeds nlp_create_qkv_heads_decode (which refuses bfloat8_b), w1's and w3's the SiLU and
    the product, the head's the logits: those stay bf16. Without the option no matmul is asked for a dtype and the
    header says bfloat16; one chip states no CCL_DTYPE."""
    model = load_model(SPECS / "llama-gqa-tiny.arch")
    for target, strategy in (("t3k", None), ("galaxy", "2d")):
        for ccl in ("bf16", "bfloat8_b"):
            source = compile_source(model, "tiny.arch", target_of(target), formats_of("bfloat8_b").with_ccl(ccl),
                                    batch=USERS, strategy=strategy)
            linears = _decode_linears(source)
            assert {"wqkv", "wo", "w1", "w3", "w2"} <= set(linears), linears
            sent = {w for w, asked in linears.items() if asked}
            assert sent == ({"wo", "w2"} if ccl == "bfloat8_b" else set()), (target, ccl, linears)
            assert CCL_LINE.search(source).group(1) == ("ttnn.bfloat8_b" if ccl == "bfloat8_b" else "ttnn.bfloat16")
    one_chip = compile_source(model, "tiny.arch", target_of("n150"), formats_of("bfloat8_b"), batch=USERS)
    assert CCL_LINE.search(one_chip) is None


def test_plan_counts_the_payload_bytes():
    """70B on T3K, per token: each of a layer's 2 reduce-scatters gives a device 7/8 of one row of 8192 partial
    sums, bf16 (2 B a value) or bfloat8_b (1,088 B per 1,024 values); the all-gathers keep bf16. Its modelled
    decode step (the idealised program, 32 users on one tile's rows) is faster by tt-metal's measured ring
    reduce-scatter model at bf16 bytes less at bfloat8_b bytes, 2 a layer."""
    from ttspec.analysis.cost import WORMHOLE_CCL
    from ttspec.reports.plan_report import bytes_moved, plan_report

    model = load_model(SPECS / "llama-3.1-70b.arch")
    moved, payloads, step = {}, {}, {}
    for ccl in ("bf16", "bfloat8_b"):
        formats = formats_of("performance").with_ccl(ccl)
        build = prepare(model, resolve_options(target_of("t3k"), formats, batch=USERS))
        moved[ccl] = bytes_moved(build)[0]
        report = plan_report(model, target_of("t3k"), None, formats, USERS, 256)
        payloads[ccl] = [(c["op"], c["payload"]) for c in report["collectives_per_layer"]]
        step[ccl] = report["modelled_time"]["decode_ms_per_step"] / 1e3
        assert report["ccl_dtype"] == ccl
    row = 8192 * 7 // 8  # what one device receives of one row of 8192 values
    assert moved["bf16"] - moved["bfloat8_b"] == 2 * (2 * row - int(BF8_PER_VALUE * row))
    ring, whole = WORMHOLE_CCL["reduce-scatter"]["ring"], 32 * 8192
    saved = 2 * 80 * (ring.time(8, 2 * whole) - ring.time(8, int(BF8_PER_VALUE * whole)))
    assert step["bf16"] - step["bfloat8_b"] == pytest.approx(saved, rel=1e-9) and saved > 0
    assert payloads["bfloat8_b"] == [("all_gather", "bf16"), ("reduce_scatter", "bfloat8_b")] * 2
    assert payloads["bf16"] == [("all_gather", "bf16"), ("reduce_scatter", "bf16")] * 2


def test_report_prices_the_payload_the_program_sends():
    """70B on T3K at batch 1 (PERF.md's rows): report --json's decode program lists its collectives' payloads (the
    2 reduce-scatters bfloat8_b, the 3 all-gathers bf16); each reduce-scatter moves the bfloat8_b bytes of its
    [32, 8192] partial sums, the all-gathers what they did, and the step is faster by exactly tt-metal's measured
    ring reduce-scatter model at bf16 bytes less at bfloat8_b bytes, 2 per layer."""
    from ttspec.analysis.cost import WORMHOLE_CCL
    from ttspec.reports.report import cost_report

    model = load_model(SPECS / "llama-3.1-70b.arch")
    reports = {ccl: cost_report(model, target_of("t3k"), weights_dtype=formats_of("performance").with_ccl(ccl),
                                batch=1, seq=1024) for ccl in ("bf16", "bfloat8_b")}
    assert reports["bfloat8_b"]["ccl_dtype"] == "bfloat8_b" and reports["bf16"]["ccl_dtype"] == "bf16"
    programs = {ccl: r["decode"]["program"] for ccl, r in reports.items()}
    assert programs["bfloat8_b"]["collective_payloads"] == {"bf16": 3, "bfloat8_b": 2}
    assert programs["bf16"]["collective_payloads"] == {"bf16": 5}
    assert programs["bfloat8_b"]["device_ops_per_layer"] == programs["bf16"]["device_ops_per_layer"] == 23
    by_class = {ccl: r["decode"]["by_op_class"]["collective"] for ccl, r in reports.items()}
    layers, whole = 80, 32 * 8192  # a decode row is a tile's 32 rows
    bf16, bf8 = 2 * whole, int(BF8_PER_VALUE * whole)
    assert by_class["bf16"]["collective_bytes"] - by_class["bfloat8_b"]["collective_bytes"] == 2 * layers * (bf16 - bf8)
    ring = WORMHOLE_CCL["reduce-scatter"]["ring"]
    saved = 2 * layers * (ring.time(8, bf16) - ring.time(8, bf8))
    assert by_class["bf16"]["time_s"] - by_class["bfloat8_b"]["time_s"] == pytest.approx(saved, rel=1e-9)
    step = {ccl: r["totals"]["decode_ms_per_step"] / 1e3 for ccl, r in reports.items()}
    assert step["bf16"] - step["bfloat8_b"] == pytest.approx(saved, rel=1e-9) and saved > 0


# ---------------------------------------------------------------- numerics (golden mode) and the mock T3K


def ccl_pcc_bound(layers: int, devices: int) -> float:
    """The decode score's PCC bound with bfloat8_b payloads on a line or ring of `devices`, from the formats
    (tests/numerics.py's rounding model, as tests/test_kv_dtype.py's kv_pcc_bound):
    - the bf16 program's budget: PCC 0.999, a relative RMS error sqrt(2 (1 - 0.999)) = 0.045 of the logits;
    - each reduce into the residual rounds every device's partial sums once (the matmul writes bfloat8_b) and
      re-packs the running sum at each of the n - 1 hops: 2n - 1 roundings, each RMS 2^-6 / sqrt(3) = 0.009 of its
      block's scale (truncation's, the larger), taken as the sum's scale;
    - 2 such reduces per layer (wo, w2), their errors independent and passed on to the logits without amplification
      (the residual adds them; norms and the head pass relative errors on): they add in quadrature,
      0.009 sqrt(2 layers (2n - 1)), taken with the bf16 budget's 2x margin;
    - so PCC >= 1 - (0.045^2 + (2 x 0.009 sqrt(2 layers (2n - 1)))^2) / 2 (0.9892 for 2 layers over 8 devices).
      A dropped or doubled reduce scores far below (a layer's attention or MLP output lost or doubled)."""
    bf16 = math.sqrt(2 * (1 - BF16_PCC))
    ccl = 2 * BLOCK_FLOAT_STEP["bfloat8_b"] / math.sqrt(3) * math.sqrt(2 * layers * (2 * devices - 1))
    return 1 - (bf16 ** 2 + ccl ** 2) / 2


def test_golden_decode_with_bfloat8_b_payloads_scores_within_the_formats_bound(built, monkeypatch):  # noqa: F811
    """The tiny Llama (2 layers, bf16 weights) on T3K in golden mode against HF transformers: every decode step's
    reduce-scatters (2 a layer) take golden._block_reduce (each partial sum rounded to bfloat8_b by the matmul that
    writes it, each forwarded running sum re-packed) and the decode score stays within ccl_pcc_bound; prefill
    sends bf16 and holds 0.999. (The default program's T3K score, >= 0.999: tests/test_decode.py.)"""
    from ttspec.runtime import golden

    reduced = []
    real = golden._block_reduce

    def counted(*args, **kwargs):
        reduced.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(golden, "_block_reduce", counted)
    spec, state, tokens, expected = built("llama")
    model = load_model(spec)
    source = compile_source(model, str(spec), target_of("t3k"), formats_of("bf16").with_ccl("bfloat8_b"),
                            mesh_of("1x8"))
    program, _ = golden_program(model, str(spec), get_target("t3k"), state, source=source)
    decode, prefill = decode_pcc(score(program, tokens), expected)
    bound = ccl_pcc_bound(layers=2, devices=8)
    print(f"t3k, bfloat8_b payloads: decode pcc {decode:.6f} (bound {bound:.5f}), prefill pcc {prefill:.6f}")
    steps = tokens.shape[1] - min(PREFILL)  # decode steps until the user with the shortest prompt is done
    assert reduced == ["reduce_scatter"] * (2 * 2 * steps)
    assert decode >= bound and prefill >= BF16_PCC


def test_mock_t3k_sends_bfloat8_b_payloads_with_no_op_added(t3k_captures):
    """Llama-3.1-70B cut to 1 layer (its per-chip shapes) on the mock T3K, 32 users, performance formats: with the
    option the layer's 2 reduce-scatters carry BFLOAT8_B [1, 32, 8192] (ttnn's capture of their input tensors), the
    2 all-gathers BFLOAT16, every one Ring; without it all BFLOAT16; 23 device ops per layer either way, what `report`
    reads from the program. (The whole 80 layers, bench/decode_capture.py --ccl-dtype bfloat8_b: 23 in every layer,
    docs/design-decode.md.)"""
    from ttspec.backends.ttnn.decode_facts import decode_program

    for ccl, (source, result) in t3k_captures.items():
        collectives = result["decode"]["collectives"]
        payloads = sorted((c["op"], c["payload_dtype"], tuple(c["payload_shape"])) for c in collectives)
        sent = "bfloat8_b" if ccl == "bfloat8_b" else "bfloat16"
        assert payloads == [("AllGatherDeviceOperation", "bfloat16", (1, 32, 1024))] * 2 + \
            [("ReduceScatterMinimalDirectDeviceOperation", sent, (1, 32, 8192))] * 2, payloads
        assert {c["topology"] for c in collectives} == {"Ring"}
        assert result["decode"]["device_ops_per_layer"] == [23]
        assert decode_program(source).summary()["device_ops_per_layer"] == 23


@pytest.fixture(scope="module")
def t3k_captures(tmp_path_factory):
    from .test_decode_capture import _needs_mock

    _needs_mock()
    from ttspec.runtime.decode_capture import capture_decode

    path = tmp_path_factory.mktemp("ccl") / "llama-70b-1layer.arch"
    text = (SPECS / "llama-3.1-70b.arch").read_text(encoding="utf-8")
    path.write_text(re.sub(r"(?m)^let layers = \d+", "let layers = 1", text), encoding="utf-8")
    model = load_model(path)
    out = {}
    for ccl in ("bf16", "bfloat8_b"):
        source = compile_source(model, str(path), target_of("t3k"), formats_of("performance").with_ccl(ccl),
                                batch=USERS)
        out[ccl] = (source, capture_decode(model, source, "t3k", users=USERS, context=64, timeout=600))
    return out
