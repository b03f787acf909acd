"""The cost model prices each weight matmul by the device matmul of its own block: two blocks that both label a
linear `proj` (of different widths, in different weight formats, so with different kernel configs) are each priced by
their own record, not the first `proj` the program walk met (the records are keyed by the member path from the
layer, `a.proj` and `b.proj`, as the graph names the modules)."""

import pytest

from ttspec.analysis.cost import estimate
from ttspec.driver import load_model, prepare, resolve_options
from ttspec.reports.emitted import emitted_programs

from .conftest import formats_of, mesh_of, target_of

D, WIDE, NARROW = 256, 1024, 128
SPEC = f"""model twin_labels

let vocab = 512
let d = {D}

input tokens: int32[batch, seq] where seq <= 1024

block wide(x: [batch, seq, d]) -> [batch, seq, d] kind mlp {{
    h = silu(linear(x, {WIDE}) as proj)
    return linear(h, d) as back
}}

block narrow(x: [batch, seq, d]) -> [batch, seq, d] {{
    h = silu(linear(x, {NARROW}) as proj)
    return linear(h, d) as back
}}

block decoder(x: [batch, seq, d]) -> [batch, seq, d] kind decoder {{
    x = x + attention(rmsnorm(x, eps = 1e-5) as attn_norm, heads = 8, rope = rope(theta = 10000.0)) as attn
    x = x + wide(rmsnorm(x, eps = 1e-5) as a_norm) as a
    x = x + narrow(rmsnorm(x, eps = 1e-5) as b_norm) as b
    return x
}}

h = token_embedding(tokens, vocab, d) as embedding
h = repeat(2) decoder(h) as layers
h = rmsnorm(h, eps = 1e-5) as norm
output logits = lm_head(h, vocab)
"""
# the MLP kind (block `a`) in bfloat4_b, the rest bf16: `a.proj` runs at LoFi (1 matrix-engine pass), `b.proj` at
# HiFi4 (4 passes) (tech_reports/matrix_engine: LoFi 1 pass, HiFi4 4; tt_transformers runs bfloat4_b at LoFi, bf16
# at HiFi4); a 32x32 tile is 576 bytes in bfloat4_b (512 of nibbles + 64 exponents), 2048 in bf16
FORMATS = "bf16,mlp=bfloat4_b"
PASSES = {"a": 1, "b": 4}
TILE_BYTES = {"a": 576, "b": 2048}
WIDTH = {"a": WIDE, "b": NARROW}


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    spec = tmp_path_factory.mktemp("twin") / "twin.arch"
    spec.write_text(SPEC, encoding="utf-8")
    build = prepare(load_model(spec), resolve_options(target_of("n150"), formats_of(FORMATS), mesh_of(None)))
    decode, prefill = emitted_programs(build)
    return build, decode, prefill


def test_the_walk_names_each_blocks_matmul_by_its_path(twin):
    _, decode, _ = twin
    fidelity = {op.path: op.fidelity for op in decode.layer_ops if op.weight == "proj"}
    assert fidelity == {"a.proj": "LoFi", "b.proj": "HiFi4"}


def test_same_labels_in_two_blocks_are_each_priced_by_their_own_matmul(twin):
    build, decode, prefill = twin
    phase = estimate(build, batch=1, context=128, prompt=128, program=decode, prefill=prefill).decode
    chip = build.options.target.chip
    rate = chip.cores.value * chip.clock_hz.value * chip.matmul_flops_per_cycle.value
    rows = {o.node: o for o in phase.ops if o.node.endswith(".proj.linear")}
    assert set(rows) == {"layers.*.a.proj.linear", "layers.*.b.proj.linear"}
    for block in ("a", "b"):
        row = rows[f"layers.*.{block}.proj.linear"]
        flops = 2 * D * WIDTH[block] * 32  # one user's row computed as a whole 32-row tile
        assert row.flops == flops
        assert row.dram_bytes == D * WIDTH[block] // 1024 * TILE_BYTES[block]
        assert row.compute_s == pytest.approx(flops * PASSES[block] / rate, rel=1e-12)
