"""The memory model, the cost model, `plan --search` and the sharding planner against closed forms
worked out here by hand from a spec's sizes (issue 18: planted bugs the suite let through). Every
expected number is arithmetic on the spec's dims, TT-NN's 32x32 tiles, bf16's 2 bytes and float32's 4,
and the chips' published DRAM; none is read back from the code under test.

The spec (`spec_text`): hidden 256, 8 heads of 32 (no KV heads shared), an MLP of 1024 with biases
(its down projection row-parallel on a mesh), LayerNorms (weight and bias), an untied head over a
vocabulary of 512, 2 layers."""

from __future__ import annotations

import ast
from collections import Counter

import pytest

from ttspec.analysis.cost import model_phase
from ttspec.driver import compile_source, load_model, prepare, resolve_options
from ttspec.reports.plan_search import search
from ttspec.targets import get_target

from .conftest import formats_of, mesh_of, target_of

D, HEADS, HEAD_DIM, MLP, VOCAB, LAYERS = 256, 8, 32, 1024, 512, 2
TILE, BF16, FP32 = 32, 2, 4
WORMHOLE_DRAM = 12 * 1_072_693_184  # per chip: 12 banks as ttnn's allocator books them (n300, t3k, galaxy)


def spec_text(bound: str = "where seq <= 2048") -> str:
    return f"""model ln_tiny
let vocab = {VOCAB}
let d = {D}
let layers = {LAYERS}
input tokens: int32[batch, seq] {bound}
block decoder(x: [batch, seq, d]) -> [batch, seq, d] kind decoder {{
    x = x + attention(layernorm(x) as attn_norm, heads = {HEADS}, rope = rope(theta = 10000.0)) as attn
    x = x + mlp(layernorm(x) as mlp_norm, hidden = {MLP}, act = "gelu") as mlp
    return x
}}
h = token_embedding(tokens, vocab, d) as embedding
h = repeat(layers) decoder(h) as layers
h = layernorm(h) as norm
output logits = lm_head(h, vocab)
"""


@pytest.fixture
def ln_tiny(write_spec):
    return load_model(write_spec(spec_text()))


@pytest.fixture
def ln_tiny_unbounded(write_spec):
    return load_model(write_spec(spec_text(bound=""), "unbounded.arch"))


BANKS = 12  # Wormhole's DRAM banks


def booked(pages: int, page_bytes: int) -> int:
    """What ttnn's allocator books for an interleaved tensor of `pages` pages: its pages go round-robin over the
    banks, and every bank books as many as the fullest one (measured on the mock: analysis/dram_pages.py)."""
    return BANKS * -(-pages // BANKS) * page_bytes


def matrix(rows: int, cols: int) -> int:
    """bf16 bytes booked for a [rows, cols] weight in TILE layout (dims here are whole tiles): 2,048 B a tile."""
    assert rows % TILE == 0 and cols % TILE == 0
    return booked(rows * cols // (TILE * TILE), TILE * TILE * BF16)


def vector(n: int) -> int:
    """bf16 bytes booked for a [n] norm weight or bias in TILE layout: one 32-row strip of tiles."""
    return booked(n // TILE, TILE * TILE * BF16)


def weights_tp(tp: int) -> dict[str, int]:
    """Weights per chip, by kind, under 1-D tensor parallelism over `tp` chips (Megatron): q, k, v and the
    MLP's up projection column-parallel (output features split, their biases too), wo and the MLP's down
    projection row-parallel (input features split; the bias whole on every chip, which adds bias / tp), the
    head split by vocabulary (its DRAM shards padded to whole tiles per bank), the embedding table (bf16
    row-major) split on hidden with the residual stream, norms replicated."""
    qkv = 3 * HEADS * HEAD_DIM
    return {
        "attention": LAYERS * (matrix(qkv // tp, D) + matrix(D, HEADS * HEAD_DIM // tp)),
        "embedding": booked(VOCAB, (D // tp) * BF16),  # row-major: a page per row
        # the head (no bias) one DRAM-sharded column chunk: 12 Wormhole banks, each a whole shard of 32-column tiles
        "head": D * -(-(VOCAB // tp) // (12 * 32)) * 12 * 32 * BF16,
        "mlp": LAYERS * (matrix(MLP // tp, D) + vector(MLP // tp) + matrix(D, MLP // tp) + vector(D)),
        "norm": (2 * LAYERS + 1) * 2 * vector(D),  # LayerNorm: weight and bias
    }


def activation_bytes_per_token(tp: int) -> int:
    """The prefill peak per token (analysis/memory.py's estimate): the whole residual (gathered before a
    norm), this chip's slice of it (hidden 256 splits into whole tiles over 2 and 4 chips) and two of the
    widest values a layer holds (the MLP's 1024 / tp, wider than the row-parallel partial sums' 256 for
    tp <= 4). The logits are apart: a prefill computes one tile's (last_logits)."""
    widest = max(MLP // tp, D)
    return BF16 * (D + D // tp + 2 * widest)


def last_logits(tp: int) -> int:
    """A prefill's logits per sequence: the tile of 32 positions holding its last, this chip's vocabulary slice."""
    return TILE * BF16 * (VOCAB // tp)


def kv_bytes_per_token(tp: int) -> int:
    """Keys and values of every layer, this chip's heads of 32, bf16."""
    return LAYERS * 2 * (HEADS // tp) * HEAD_DIM * BF16


def linear_flops(rows: int) -> int:
    """Every matmul of one forward over `rows` rows (2 FLOPs a multiply-add): q, k, v, wo, the MLP's up
    and down, the head."""
    per_layer = D * 3 * HEADS * HEAD_DIM + HEADS * HEAD_DIM * D + 2 * D * MLP
    return 2 * rows * (LAYERS * per_layer + D * VOCAB)


# ---------------------------------------------------------------- memory
def test_row_parallel_biases_are_whole_on_every_chip(ln_tiny):
    """n300 (2 chips): the down projection's bias [256] is held whole by both chips, the up projection's
    [1024] split with its output features. Per layer: up [512, 256] and down [256, 512] 128 tiles each, booked
    as 132 (11 a bank); up's bias 16 tiles booked as 24, down's 8 as 12: 2 x 2,048 x (2 x 132 + 24 + 12)."""
    memory = prepare(ln_tiny, resolve_options(target_of("n300"))).memory
    assert memory.weights == weights_tp(2)
    assert memory.weights["mlp"] == 2 * 2048 * (2 * 132 + 24 + 12) == 1_228_800


def test_activations_count_the_residual_slice_not_the_whole(ln_tiny):
    """On 2 chips the residual stream is split (256 = 2 x 128, whole tiles): 2 x (256 + 128 + 2 x 512) =
    2,816 bytes per token, not 3,072 with the residual counted whole; and one tile of logits, 32 x 256 x 2."""
    memory = prepare(ln_tiny, resolve_options(target_of("n300"))).memory
    assert activation_bytes_per_token(2) == 2816 and last_logits(2) == 16384
    usage = memory.usage(1, 2048)
    assert usage.activations == 2816 * 2048 + 16384
    assert usage.kv_cache == kv_bytes_per_token(2) * 2048


def test_largest_context_is_the_closed_form_edge(ln_tiny_unbounded):
    """Without a bound on seq the largest context at batch 1 is the whole tiles of context whose KV cache
    and activations fit beside the weights and a tile of logits: (DRAM - weights - logits) // (bytes per
    token x 32) x 32."""
    memory = prepare(ln_tiny_unbounded, resolve_options(target_of("n300"))).memory
    free = WORMHOLE_DRAM - sum(weights_tp(2).values())
    per_token = kv_bytes_per_token(2) + activation_bytes_per_token(2)
    expected = (free - last_logits(2)) // (per_token * TILE) * TILE
    assert memory.max_context(1) == expected
    assert memory.max_context(2) == (free - 2 * last_logits(2)) // (2 * per_token * TILE) * TILE


# ---------------------------------------------------------------- cost
def _linear_flops(phase) -> int:
    return sum(o.count * o.flops for o in phase.ops if o.op == "linear")


def test_decode_computes_whole_tile_rows_at_batch_1(ln_tiny):
    """A decode step of one user still multiplies a whole 32-row tile: 32 rows of FLOPs, not 1."""
    build = prepare(ln_tiny, resolve_options(target_of("n150")))
    assert _linear_flops(model_phase(build, "decode", 1, 1, 128)) == linear_flops(TILE) == 109_051_904
    assert _linear_flops(model_phase(build, "decode", 5, 1, 128)) == linear_flops(TILE)


def test_2d_prefill_flops_are_split_over_both_mesh_axes(ln_tiny):
    """Galaxy 8x4, 2-D: every matmul is split over all 32 chips (the rows take heads, the MLP and the
    vocabulary, the columns hidden), so a chip computes 1/32 of a 128-token prefill's matmuls."""
    build = prepare(ln_tiny, resolve_options(target_of("galaxy"), strategy="2d"))
    assert build.shard_plan.strategy == "2d"
    assert _linear_flops(model_phase(build, "prefill", 1, 128, 128)) == linear_flops(128) // 32 == 13_631_488


def test_distributed_norm_statistics_are_float32_tiles(ln_tiny):
    """Over galaxy's 4 columns each LayerNorm gathers its statistics, sum(x) and sum(x^2) per row: two
    float32 tiles (32 x 32 x 4 B each) per chip at a decode step; an RMSNorm gathers one."""
    build = prepare(ln_tiny, resolve_options(target_of("galaxy"), strategy="2d"))
    phase = model_phase(build, "decode", 1, 1, 128)
    stats = [o for o in phase.ops if o.op == "all_gather" and o.collective_bytes and "statistics" in
             _collective_reason(build, o.node)]
    assert sum(o.count for o in stats) == 2 * LAYERS + 1  # two norms a layer and the final one
    assert all(o.collective_bytes == 2 * TILE * TILE * FP32 for o in stats), [o.collective_bytes for o in stats]


def test_rmsnorm_statistics_are_one_float32_tile(write_spec):
    text = spec_text().replace("layernorm(", "rmsnorm(")
    build = prepare(load_model(write_spec(text)), resolve_options(target_of("galaxy"), strategy="2d"))
    phase = model_phase(build, "decode", 1, 1, 128)
    stats = [o for o in phase.ops if o.op == "all_gather" and "statistics" in _collective_reason(build, o.node)]
    assert sum(o.count for o in stats) == 2 * LAYERS + 1
    assert all(o.collective_bytes == TILE * TILE * FP32 for o in stats)


def test_bytes_moved_over_the_columns_count_layernorm_statistics_twice(ln_tiny):
    """`plan`'s bytes each device receives per token per layer on galaxy 8x4 (2-D), ring collectives:
    columns (4): each LayerNorm gathers the 3 other chips' statistics, 2 x 32 float32 values (sum(x) and
    sum(x^2)): 2 norms x 3 x 64 x 4 = 1,536; the partial sums of the projections out of the residual (q, k,
    v: 768 / 8 rows = 96 features; the MLP's up: 1024 / 8 = 128) are all_reduced: 2 x 2 B x 3/4 x (96 +
    128) = 672; 2,208 in all. Rows (8): the partial sums of wo and the MLP's down (256 / 4 columns = 64
    features each): 2 x 2 x 2 B x 7/8 x 64 = 448."""
    from ttspec.reports.plan_report import bytes_moved

    build = prepare(ln_tiny, resolve_options(target_of("galaxy"), strategy="2d"))
    columns = 2 * 3 * 2 * TILE * FP32 + 2 * BF16 * 3 * (96 + 128) // 4
    rows = 2 * 2 * BF16 * 7 * 64 // 8
    assert (columns, rows) == (2208, 448)
    assert bytes_moved(build) == (columns + rows, {"0": rows, "1": columns})


def _collective_reason(build, node_id: str) -> str:
    return next((c.reason for c in build.shard_plan.collectives if c.node == node_id), "")


# ---------------------------------------------------------------- plan --search
def test_search_keeps_the_plan_on_fewer_chips_when_a_replica_would_idle(ln_tiny):
    """On T3K, 2x4 with --dp at batch 1 leaves one replica without a user: the same modelled plan as 1x4
    on half the chips. The search keeps 1x4; no kept plan has fewer users than replicas."""
    result = search(ln_tiny, target_of("t3k"), weights_dtype=formats_of("bf16"), strategy="1d")
    assert result.plans
    assert all(p.batch >= p.replicas for p in result.plans), \
        [(p.mesh_text, p.batch) for p in result.plans if p.batch < p.replicas]
    kept = {(p.mesh, p.dp, p.batch) for p in result.plans}
    assert ((1, 4), False, 1) in kept and ((2, 4), True, 1) not in kept
    assert result.excluded.get("the same modelled plan as one on fewer chips (replicas the batch leaves idle)")


def test_search_tries_the_largest_batch_over_its_replicas(ln_tiny_unbounded):
    """2x4 with --dp on T3K: tensor parallelism over 4 chips, 2 replicas. At a context where 20 users fit
    a replica's DRAM (and 21 do not), the largest batch the search tries is 2 x 20 = 40."""
    per_token = kv_bytes_per_token(4) + activation_bytes_per_token(4)
    free = WORMHOLE_DRAM - sum(weights_tp(4).values())
    # 20 sequences of this context (each with a tile of logits) fit, 21 do not
    context = (free // 20 - last_logits(4)) // per_token // TILE * TILE
    assert free // (per_token * context + last_logits(4)) == 20
    result = search(ln_tiny_unbounded, target_of("t3k"), mesh=mesh_of("2x4"), dp=True,
                    weights_dtype=formats_of("bf16"), seq=context,
                    strategy="1d")
    batches = {p.batch for p in result.plans}
    assert 40 in batches and max(batches) == 40, sorted(batches)


# ---------------------------------------------------------------- sharding
def narrow_spec_text() -> str:
    """Hidden 96: over 2 chips 48 features each, not whole tiles. The MLP's output goes through silu (not
    linear) before the residual add, so its row-parallel partial sums must be completed there."""
    return """model narrow
let vocab = 512
let d = 96
let layers = 2
input tokens: int32[batch, seq] where seq <= 256
block decoder(x: [batch, seq, d]) -> [batch, seq, d] kind decoder {
    x = x + attention(rmsnorm(x) as attn_norm, heads = 4, head_dim = 32) as attn
    x = x + silu(mlp(rmsnorm(x) as mlp_norm, hidden = 256, act = "gelu", bias = false) as mlp)
    return x
}
h = token_embedding(tokens, vocab, d) as embedding
h = repeat(layers) decoder(h) as layers
h = rmsnorm(h) as norm
output logits = lm_head(h, vocab)
"""


def test_partial_sums_are_never_scattered_into_slices_of_part_tiles(write_spec):
    """TT-NN keeps activations in 32x32 tiles: a reduce_scatter of 96 features over 2 chips would leave
    each 48, a tile and a half. The planner completes such partial sums with all_reduce (each chip then
    holds all 96): both row-parallel projections of each layer (attention's wo, the MLP's down), and no
    reduce_scatter anywhere in the program: in the prefill `forward` methods and again in the decode ones."""
    model = load_model(write_spec(narrow_spec_text()))
    build = prepare(model, resolve_options(target_of("n300")))
    ops = [(c.op, c.source) for c in build.shard_plan.collectives if c.op != "all_gather"]
    assert ops == [("all_reduce", "layers.*.attn.wo.linear"), ("all_reduce", "layers.*.mlp.down.linear")], ops
    source = compile_source(model, "narrow.arch", target_of("n300"), formats_of("bf16"))
    assert "ttnn.reduce_scatter(" not in source
    methods = [f for f in ast.walk(ast.parse(source)) if isinstance(f, ast.FunctionDef)]
    reductions = Counter(f.name for f in methods for call in ast.walk(f)
                         if isinstance(call, ast.Call) and ast.unparse(call.func) == "ttnn.all_reduce")
    assert reductions == {"forward": 2, "decode": 2}, reductions


def test_narrow_partial_sums_on_two_chips_equal_the_single_chip(write_spec):
    """The same program in golden mode (ttnn's goldens on each chip's shard) equals the single chip."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("ttnn")
    from ttspec.runtime.runner import run_golden, run_torch
    from ttspec.runtime.weights import random_state_dict

    from .test_mesh import assert_same_as_single_chip

    model = load_model(write_spec(narrow_spec_text()))
    state = random_state_dict(model, seed=2)
    tokens = torch.randint(0, VOCAB, (2, 40), generator=torch.Generator().manual_seed(4))
    expected, _ = run_golden(model, "narrow.arch", get_target("n150"), state, tokens)
    logits, calls = run_golden(model, "narrow.arch", get_target("n300"), state, tokens)
    assert calls.get("reduce_scatter", 0) == 0 and calls["all_reduce"] == 2 * LAYERS
    assert_same_as_single_chip(logits, expected, run_torch(model, "narrow.arch", state, tokens))
