"""The cost model (ttspec/analysis/cost.py) and `ttspec report`: against tt-metal's published
measurements, against closed forms, and its monotonicity properties."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ttspec.analysis.cost import estimate
from ttspec.analysis.memory import tile_pad
from ttspec.driver import load_model, prepare, resolve_options
from ttspec.errors import UsageError
from ttspec.weight_formats import WeightFormats, parse

from .conftest import ROOT, formats_of, mesh_of, target_of

PERFORMANCE = "attention=bfloat8_b,mlp=bfloat4_b"  # tt_transformers' performance configuration
_MODELS: dict = {}


def model(name):
    if name not in _MODELS:
        _MODELS[name] = load_model(ROOT / "specs" / f"{name}.arch")
    return _MODELS[name]


def build(name, target, weights=PERFORMANCE, mesh=None):
    return prepare(model(name), resolve_options(target_of(target), formats_of(weights), mesh_of(mesh)))


# ----------------------------------------------------------------------------- published figures
# tt-metal models/tt_transformers/PERF.md, "Performance" table (tenstorrent/tt-metal @ 040a27c1): measured with
# demo/simple_text_demo.py at batch 1 after a 128-token prompt, up to 200 decode iterations. Its prose says "bfp4 MLP
# and bfp8 attention weights"; the configuration it ran is model_config.py's ModelOptimizations.performance: w1/w3
# (FF1_FF3) bfp4 at LoFi over a default of bfp8 at HiFi2 for w2 (FF2), wqkv, wo and the KV cache (the LM head bfp8).
# PERF.md's "Llama 3 model precision" rows with ff2 bfp4 are a separate sweep (1B N300 only). Speed in
# tokens/s/user, TTFT in ms.
PUBLISHED = [
    # spec, target, tokens/s/user, TTFT ms (None: not published)
    ("llama-3.2-1b", "n150", 87.8, 26), ("llama-3.2-1b", "n300", 105.9, 22), ("llama-3.2-1b", "t3k", 119.8, 32),
    ("llama-3.2-3b", "n150", 54.0, 55), ("llama-3.2-3b", "n300", 68.0, 39), ("llama-3.2-3b", "t3k", 68.5, 52),
    ("llama-3.1-8b", "n150", 28.3, 104), ("llama-3.1-8b", "n300", 44.2, 67), ("llama-3.1-8b", "t3k", 64.3, 53),
    ("mistral-7b", "n150", 29.75, 100.24), ("mistral-7b", "n300", 47.01, 65.95), ("mistral-7b", "t3k", 67.82, 53.93),
    ("llama-3.1-70b", "t3k", 16.6, 164),
]
# "TG" rows: tt_transformers on Galaxy runs a program unlike ttspec's Galaxy plan (1B decodes slower there than on
# N150); the model is 1.5-2x above them, so they are not claimed (bench/calibrate_decode.py prints them)
GALAXY = [("llama-3.2-1b", 51.0), ("llama-3.2-3b", 33.5), ("llama-3.1-8b", 29.5), ("llama-3.1-70b", 12.7)]
# the rows targets.WORMHOLE_DECODE's fitted constants (DRAM-sharded rate, host work per step) come from
# (bench/calibrate_decode.py --fit); the rest are held out
FITTED = {("llama-3.2-1b", "n150"), ("llama-3.1-8b", "n150"), ("llama-3.1-8b", "t3k")}
CONTEXT = 128 + 200  # a 128-token prompt and 200 generated tokens (PERF.md)


TT_TRANSFORMERS_WEIGHTS = "performance"  # PERF.md's configuration: ttspec's `performance` preset

# Where the program ttspec emits lacks a fact tt_transformers' program has, each named with its reason: the band is
# then not claimed for the emitted figure; the test asserts the gap is there (the program's facts differ) and that
# the emitted step is priced slower than the same step with tt_transformers' facts, so closing a gap (another
# helper's merge) fails here until the row moves to the band.
KNOWN_GAPS: dict[tuple[str, str], dict[str, str]] = {}  # none since the LM head's DRAM-sharded chunks (issue 20)


def emitted_program(b):
    """The decode step `ttspec report` prices for `b`: the program the TT-NN backend writes, as decode_facts reads
    it (reports/emitted.py)."""
    from ttspec.reports.emitted import emitted_decode

    p = emitted_decode(b)
    assert p is not None, "the TT-NN backend refuses this build"
    return p


def fact_gaps(p, target) -> dict[str, str]:
    """The facts of tt_transformers' decode step that the program `p` lacks, by part ("layers", "head", "sampling",
    "fabric"): weight matmuls on the DRAM-sharded program factory (their decoder's and their LM head's), greedy
    sampling on the device (ids read back, not logits), T3K's collectives on a ring (ccl_topology() for 8 devices)."""
    from ttspec.analysis.program import DRAM_SHARDED

    gaps = {}
    layer = sorted({op.weight for op in p.layer_ops if op.weight and op.factory != DRAM_SHARDED})
    head = sorted({op.weight for op in p.step_ops if op.weight and op.factory != DRAM_SHARDED})
    if layer:
        gaps["layers"] = f"not DRAM-sharded: {', '.join(layer)}"
    if head:
        gaps["head"] = f"not DRAM-sharded: {', '.join(head)}"
    if not p.reads_ids:
        gaps["sampling"] = "the step reads logits"
    if target == "t3k" and p.topology != "ring":
        gaps["fabric"] = f"{p.fabric or 'no fabric'}: collectives on a line"
    return gaps


def tt_transformers_program(p, target, parts=("layers", "head", "sampling", "fabric")):
    """`p` with tt_transformers' facts (fact_gaps) in the parts named: the substitution a known gap is measured
    against. Fidelities stay the program's (LoFi for bfloat4_b, HiFi2 for bfloat8_b, as PERF.md's fidelity_cfg)."""
    from ttspec.analysis.program import DRAM_SHARDED

    def sharded(ops, part):
        return tuple(op._replace(factory=DRAM_SHARDED) if op.weight and part in parts else op for op in ops)
    return p._replace(layer_ops=sharded(p.layer_ops, "layers"), step_ops=sharded(p.step_ops, "head"),
                      reads_ids=p.reads_ids or "sampling" in parts,
                      fabric="FABRIC_1D_RING" if target == "t3k" and "fabric" in parts else p.fabric)


_ROWS: dict = {}


def priced_row(spec, target):
    if (spec, target) not in _ROWS:
        b = build(spec, target, TT_TRANSFORMERS_WEIGHTS)
        _ROWS[spec, target] = (b, emitted_program(b))
    return _ROWS[spec, target]


def _ids(rows):
    return [f"{s}-{t}-" + ("fitted" if (s, t) in FITTED else "held-out") for s, t, *_ in rows]


# the decode step's parts whose gap leaves the band unclaimed for the emitted figure; the head's does not (one matmul
# of the step: its 1-D multicast costs 1B n150 ~4%, less on bigger models), it is asserted as a gap on its own
BAND_PARTS = ("layers", "sampling", "fabric")


@pytest.mark.parametrize(("spec", "target", "measured", "ttft_ms"), PUBLISHED, ids=_ids(PUBLISHED))
def test_emitted_decode_speed_within_the_calibrated_band_of_tt_transformers(spec, target, measured, ttft_ms):
    """What `ttspec report` prices for the program ttspec emits, against PERF.md, where the program has
    tt_transformers' facts; elsewhere the gap must be a known one (test_known_gaps_are_there_and_cost_time)."""
    b, p = priced_row(spec, target)
    gaps = {part: why for part, why in fact_gaps(p, target).items() if part in BAND_PARTS}
    known = {part for part in KNOWN_GAPS.get((spec, target), {}) if part in BAND_PARTS}
    assert set(gaps) == known, f"{spec} {target}: the program's gaps {gaps} are not KNOWN_GAPS' {sorted(known)}"
    est = estimate(b, batch=1, context=CONTEXT, prompt=128, program=p)
    ratio = est.tokens_per_s_per_user / measured
    if gaps:  # a known gap (KNOWN_GAPS says which): the program is slower than tt_transformers', never faster
        assert ratio <= 1.25, f"{spec} {target}: modelled {ratio:.2f}x the measured figure with a known gap " \
                              f"({'; '.join(KNOWN_GAPS[spec, target][part] for part in gaps)})"
        return
    assert 0.8 <= ratio <= 1.25, f"modelled {est.tokens_per_s_per_user:.1f} tokens/s/user, measured {measured}"


# Time to first token: a 128-token prompt's prefill, priced from the emitted program's prefill (prefill_facts: its
# device ops, chunked_linear's 2-D programs, each chunk of rows reading the weight again on its program's grid, the
# fidelity its kernel states, the LM head on the last position's tile) with decode's constants. At 128 rows a matmul
# is DRAM-bound on Wormhole (its weights streamed once per 64-row chunk at the interleaved rate; compute at LoFi/
# HiFi2 on the 16 cores a 64-row chunk's program uses stays below that), so the terms the model has are a floor:
# it prices no host dispatch of an untraced prefill, no tilize/typecast of inputs and no demo loop, which PERF.md's
# TTFT includes. The honest claim is a bound on both sides: not below the idealised program (every weight read once
# at the chip's rate, one dispatch per graph op), not above the measured figure.
@pytest.mark.parametrize(("spec", "target", "measured", "ttft_ms"), PUBLISHED, ids=_ids(PUBLISHED))
def test_emitted_prefill_is_bounded_by_the_idealised_program_and_the_measured_ttft(spec, target, measured, ttft_ms):
    from ttspec.reports.emitted import emitted_programs

    b, _ = priced_row(spec, target)
    decode, prefill = emitted_programs(b)
    assert prefill is not None and prefill.head_rows == 32  # the head on the last position's tile
    ideal = estimate(b, 1, CONTEXT, 128).ttft_s
    emitted = estimate(b, 1, CONTEXT, 128, decode, prefill).ttft_s
    assert ideal <= emitted <= ttft_ms * 1e-3, (ideal, emitted, ttft_ms)


GAP_ROWS = [(spec, t, part) for (spec, t), parts in KNOWN_GAPS.items() for part in parts]


def test_known_gaps_are_there_and_cost_time():
    """Each known gap is in the emitted program (its facts differ from tt_transformers' in that part), and the
    emitted decode step is priced slower than the same step with that part as tt_transformers has it; and every row
    with a known gap still predicts its measured figure given tt_transformers' facts (held-out evidence for the
    constants, not a claim about ttspec's program). One test over the list, which may be empty."""
    for spec, target, part in GAP_ROWS:
        b, p = priced_row(spec, target)
        gaps = fact_gaps(p, target)
        assert part in gaps, f"{spec} {target}: the gap `{part}` ({KNOWN_GAPS[spec, target][part]}) is closed: " \
                             "take it out of KNOWN_GAPS"
        emitted = estimate(b, 1, CONTEXT, 128, p).decode_s
        assert emitted > estimate(b, 1, CONTEXT, 128, tt_transformers_program(p, target, (part,))).decode_s
    for spec, target, measured, _ in PUBLISHED:
        if set(KNOWN_GAPS.get((spec, target), ())) & set(BAND_PARTS):
            b, p = priced_row(spec, target)
            est = estimate(b, batch=1, context=CONTEXT, prompt=128, program=tt_transformers_program(p, target))
            assert 0.8 <= est.tokens_per_s_per_user / measured <= 1.25, (spec, target)


# ----------------------------------------------------------------------------- closed forms
# Llama-3.1-8B's published sizes (meta-llama/Llama-3.1-8B config.json), all multiples of 32.
D, LAYERS, HEADS, KV, HD, FF, VOCAB = 4096, 32, 32, 8, 128, 14336, 128256
ATTN = LAYERS * (D * (HEADS + 2 * KV) * HD + HEADS * HD * D)
MLP = LAYERS * 3 * D * FF
HEAD = VOCAB * D


def _class(phase, name):
    return phase.by_class().get(name, {"dram_bytes": 0, "flops": 0})


def test_decode_reads_every_weight_matrix_once():
    est = estimate(build("llama-3.1-8b", "n150", "bf16"), batch=1, context=1024)
    linear = sum(c["dram_bytes"] for n, c in est.decode.by_class().items() if "linear" in n)
    assert linear == 2 * (ATTN + MLP + HEAD)


def test_weight_formats_per_kind_in_the_memory_model():
    mem = build("llama-3.1-8b", "n150").memory
    # the layer matrices DRAM-sharded over 12 banks, each bank a whole shard of 32-column tiles: wo and w2 (4096
    # columns) occupy 4224, w1 and w3 (14336) 14592, the fused QKV's 6144 are 16 tiles per bank
    attention = LAYERS * (D * (HEADS + 2 * KV) * HD + HEADS * HD * 4224)
    mlp = LAYERS * (2 * D * 14592 + FF * 4224)
    assert mem.weights["attention"] == attention // 1024 * 1088  # bfloat8_b: 1088 bytes per 32x32 block
    assert mem.weights["mlp"] == mlp // 1024 * 576  # bfloat4_b: 576 bytes per block
    # the kinds not named stay bf16; the head is DRAM-sharded column chunks (their widths the program's choice, which
    # must cover the vocabulary), each bank a whole shard of 32-column tiles
    chunks = [m for m in mem.sharded if m.kind == "head"]
    assert sum(m.n * m.count for m in chunks) == HEAD // D and all(m.k == D for m in chunks)
    assert mem.weights["head"] == sum(m.count * D * -(-m.n // 384) * 384 * 2 for m in chunks)


def test_decode_reads_the_kv_cache_of_every_layer():
    batch, context = 4, 1000
    est = estimate(build("llama-3.1-8b", "n150", "bf16"), batch=batch, context=context)
    attend = next(c for n, c in est.decode.by_class().items() if n == "attend")
    assert attend["dram_bytes"] == LAYERS * 2 * KV * HD * tile_pad(context) * 2 * batch


def test_collective_time_is_tt_metals_measured_model():
    """T3K decode of one token: every all_gather moves one 32-row tile strip of the hidden slice per
    device round the 8-chip ring: 4.47 us + 2.50 us x 8/2 + 7 x bytes / 20.8 GB/s, plus 10 us dispatch
    and the 4 us every op costs (tech_reports/CCLs/results/SUMMARY_wormhole_b0_bfloat16_6144.md)."""
    per_device = 32 * D // 8 * 2
    expected = 4.47e-6 + 2.50e-6 * 4 + 7 * per_device / 20.8e9 + 10e-6 + 4e-6
    for batch in (1, 32):  # the program's decode rows hold the users: [1, 1, 32, d] for 1 to 32 of them
        est = estimate(build("llama-3.1-8b", "t3k"), batch=batch, context=256)
        gathers = [o for o in est.decode.ops if o.op == "all_gather" and o.group]
        assert gathers and all(o.time_s == pytest.approx(expected) for o in gathers), batch


# ----------------------------------------------------------------------------- weight formats
def test_weight_formats_parse():
    assert parse("bfloat8_b") == WeightFormats("bfloat8_b", {})
    f = parse("attention=bfloat8_b,mlp=bfloat4_b")
    assert (f.dtype("attention"), f.dtype("mlp"), f.dtype("head")) == ("bfloat8_b", "bfloat4_b", "bf16")
    assert parse("bfloat8_b,mlp=bfloat4_b").dtype("head") == "bfloat8_b"
    assert str(parse(" mlp=bfloat4_b , attention=bfloat8_b")) == "attention=bfloat8_b,mlp=bfloat4_b"


@pytest.mark.parametrize(("text", "message"), [
    ("bfloat9_b", "unknown dtype `bfloat9_b`"),
    ("mlp=fp8", "unknown dtype `fp8` for kind `mlp`"),
    ("bf16,bfloat8_b", "at most one plain dtype"),
    ("mlp=bf16,mlp=bfloat4_b", "kind `mlp` twice"),
    ("=bf16", "no kind before"),
    ("mlp=bf16,", "empty entry"),
])
def test_weight_formats_errors(text, message):
    with pytest.raises(UsageError) as e:
        parse(text)
    assert message in e.value.diagnostic.message


def test_unknown_kind_names_the_kinds():
    with pytest.raises(UsageError) as e:
        build("llama-3.1-8b", "n150", "atention=bfloat8_b")
    assert "did you mean `attention`" in e.value.diagnostic.hint
    assert "mlp" in e.value.diagnostic.hint


# ----------------------------------------------------------------------------- the command
def test_report_json(run_cli):
    out = run_cli("report", "specs/llama-3.1-8b.arch", "--target", "n150", "--weights-dtype", "bfloat8_b", "--json")
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    doc = (ROOT / "docs" / "report-json.md").read_text()
    for key in r:
        assert f"`{key}`" in doc, f"top-level key {key} is not documented"
    assert r["schema"] == "ttspec-report/1"
    t = r["totals"]
    assert t["tokens_per_s_per_user"] == pytest.approx(1e3 / t["decode_ms_per_step"])
    assert r["decode"]["by_op_class"]["linear"]["bottleneck"] == "DRAM"
    for name in ("cores", "clock_hz", "dram_bandwidth", "op_overhead_traced_s"):
        assert r["hardware"]["constants"][name]["source"]


@pytest.mark.parametrize("target", ["n300", "t3k", "galaxy"])
def test_report_on_meshes(run_cli, target):
    out = run_cli("report", "specs/llama-3.1-8b.arch", "--target", target, "--weights-dtype", "bfloat8_b")
    assert out.returncode == 0, out.stderr
    assert "tokens/s/user" in out.stdout and "collective" in out.stdout


def test_report_bad_weights_dtype_is_usage_error(run_cli):
    out = run_cli("report", "specs/llama-3.1-8b.arch", "--target", "n150", "--weights-dtype", "mlp=bfloat3")
    assert out.returncode == 2
    assert "unknown dtype `bfloat3` for kind `mlp`" in out.stderr and "Traceback" not in out.stderr


def test_plan_shows_modelled_times(run_cli):
    out = run_cli("plan", "specs/llama-3.1-8b.arch", "--target", "n300", "--weights-dtype", PERFORMANCE,
                  "--seq", "1024")
    assert out.returncode == 0, out.stderr
    assert "modelled time: first token" in out.stdout and "tokens/s/user" in out.stdout


# ----------------------------------------------------------------------------- properties
FAST = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SPECS = st.sampled_from(["llama-3.1-8b", "llama-3.2-1b"])
FORMATS = st.sampled_from(["bf16", "bfloat8_b", "bfloat4_b", PERFORMANCE])


def _compute_and_dram(phase) -> float:
    return sum(o.count * (o.compute_s + o.dram_s) for o in phase.ops)


@FAST
@given(SPECS, FORMATS, st.integers(1, 32), st.integers(1, 8192), st.integers(1, 512))
def test_more_chips_never_slower_in_compute_and_dram(spec, formats, batch, context, prompt):
    times = []
    for target in ("n150", "n300", "t3k"):
        est = estimate(build(spec, target, formats), batch, context, prompt)
        times.append((_compute_and_dram(est.prefill), _compute_and_dram(est.decode)))
    for fewer, more in zip(times, times[1:], strict=False):
        assert more[0] <= fewer[0] * (1 + 1e-12) and more[1] <= fewer[1] * (1 + 1e-12)


@FAST
@given(SPECS, st.sampled_from(["n150", "n300", "t3k"]), st.integers(1, 32), st.integers(1, 8192))
def test_bigger_weight_formats_never_faster_in_decode(spec, target, batch, context):
    order = ["bfloat4_b", "bfloat8_b", "bf16"]
    times = [estimate(build(spec, target, f), batch, context).decode_s for f in order]
    assert times == sorted(times)
    mixed = estimate(build(spec, target, PERFORMANCE), batch, context).decode_s
    assert times[0] <= mixed <= times[2]


@FAST
@given(SPECS, st.sampled_from(["n150", "t3k"]), st.integers(1, 31), st.integers(1, 4096),
       st.integers(1, 32), st.integers(1, 4096))
def test_time_grows_with_batch_and_context(spec, target, batch, context, more_batch, more_context):
    b = build(spec, target)
    base = estimate(b, batch, context, min(context, 512))
    assert estimate(b, batch + more_batch, context).decode_s >= base.decode_s
    assert estimate(b, batch, context + more_context).decode_s >= base.decode_s
    assert estimate(b, batch, context + more_context, min(context, 512) + 1).ttft_s >= base.ttft_s


def test_a_copied_kv_head_is_priced_whole():
    """A chip holding a copied KV head holds all of it (ir/sharding.py: local_shape): llama-gqa-tiny's K, [batch 1,
    2 KV heads, 64 positions, head_dim 32], over T3K's 8 chips is one whole head per chip, 64 x 32 bf16 values in 2
    tiles of 2048 B; its share (a quarter head, 1024 B) is not what the chip reads."""
    from ttspec.analysis.cost import _value_bytes

    assert _value_bytes((1, 2, 64, 32), (8,)) == 2 * 2048
    assert _value_bytes((1, 8, 64, 32), (8,)) == 2 * 2048  # one head each, not copied
    assert _value_bytes((32, 4096), (8,)) == 32 * 512 * 2  # features split evenly
