"""`--kv-dtype bfloat8_b`: the KV cache stored in bfloat8_b (tt_transformers' default KV_CACHE precision).

Outside truths: the memory model's bytes are closed forms (1,088 B per 32x32 tile of bfloat8_b); ttnn's
allocator on the mock device books exactly them, and the mock validates the decode chain and prefill's cache
fill on a bfloat8_b cache; golden mode rounds what is written into the cache by ttnn's own host conversion
(`quantise`), and the decode score against HF transformers stays within a bound derived from the format.
"""

import math

import pytest

from ttspec.driver import compile_source, load_model

from .conftest import SPECS, formats_of, target_of
from .numerics import BF16_PCC, BLOCK_FLOAT_STEP

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("ttnn")

from ttspec.runtime.runner import golden_program  # noqa: E402
from ttspec.targets import get_target  # noqa: E402

from .test_decode import built, decode_pcc, score  # noqa: E402, F401 (built: the HF models, a module fixture)
from .test_mock_programs import needs_mock  # noqa: E402

BF8_TILE = 1088  # bytes of one 32x32 tile of bfloat8_b: 1,024 mantissa bytes and 64 shared exponents


def kv_pcc_bound(layers: int) -> float:
    """The decode score's PCC bound with a bfloat8_b cache, from the formats (tests/numerics.py's rounding model):
    - the bf16 program's budget: PCC 0.999, a relative RMS error sqrt(2 (1 - 0.999)) = 0.045 of the logits
      (2x the bf16 rounding model's 6u);
    - a bfloat8_b value is off by at most one step, 2^-6 of its 16-value block's largest power of two
      (numerics.BLOCK_FLOAT_STEP; ttnn rounds to nearest, half that): RMS 2^-6 / sqrt(3) = 0.009 of the block's
      scale, truncation's, the larger;
    - each of the 2 x layers cached tensors (K and V) passes its relative error on to the logits without
      amplifying it (attention averages V rows; norms and the head pass relative errors on), independently:
      they add in quadrature, 0.009 sqrt(2 layers), taken with the bf16 budget's 2x margin;
    - so a relative RMS error of sqrt(0.045^2 + (2 x 0.009 sqrt(2 layers))^2), and PCC >= 1 - that^2 / 2
      (0.99834 for 2 layers). A cache written one position off scores below 0.9 (tests/test_decode.py)."""
    bf16 = math.sqrt(2 * (1 - BF16_PCC))
    kv = 2 * BLOCK_FLOAT_STEP["bfloat8_b"] / math.sqrt(3) * math.sqrt(2 * layers)
    return 1 - (bf16 ** 2 + kv ** 2) / 2


def test_memory_model_counts_the_cache_in_bfloat8_b():
    """Llama-3.1-8B on n150, 32 users, context 256: K and V of 32 layers, [32 users, 8 KV heads, 256, 128] each,
    in whole 32x32 tiles: 2048 B per tile in bf16, 1,088 in bfloat8_b; and the longer context that frees."""
    from ttspec.reports.plan_report import plan_report

    model = load_model(SPECS / "llama-3.1-8b.arch")
    tiles = 2 * 32 * 32 * 8 * (256 // 32) * (128 // 32)
    plans = {kv: plan_report(model, target_of("n150"), None, formats_of("performance").with_kv_cache(kv), 32, 256)
             for kv in ("bf16", "bfloat8_b")}
    assert plans["bf16"]["memory_per_chip"]["kv_cache"] == tiles * 2048
    assert plans["bfloat8_b"]["memory_per_chip"]["kv_cache"] == tiles * BF8_TILE
    assert plans["bfloat8_b"]["memory_per_chip"]["kv_dtype"] == "bfloat8_b"
    assert plans["bfloat8_b"]["memory_per_chip"]["max_context"] > plans["bf16"]["memory_per_chip"]["max_context"]


def test_program_states_its_cache_format_and_bytes():
    """llama-gqa-tiny: 4 layers of K and V, 2 KV heads of 32: one tile per (layer, K or V, head) per 32 positions:
    16 x 1,088 B / 32 positions = 544 B per position (bf16: 1,024)."""
    model = load_model(SPECS / "llama-gqa-tiny.arch")
    source = compile_source(model, "specs/llama-gqa-tiny.arch", target_of("n150"),
                            formats_of("bf16").with_kv_cache("bfloat8_b"))
    assert "KV_CACHE_DTYPE = ttnn.bfloat8_b" in source
    assert "KV_CACHE_BYTES_PER_POSITION = 544" in source
    assert "new = ttnn.typecast(new, KV_CACHE_DTYPE)" in source  # prefill fills the cache in its own format
    plain = compile_source(model, "specs/llama-gqa-tiny.arch", target_of("n150"), formats_of("bf16"))
    assert "KV_CACHE_DTYPE = ttnn.bfloat16" in plain and "KV_CACHE_BYTES_PER_POSITION = 1024" in plain


def test_rounding_the_rows_written_is_rounding_the_cache():
    """The golden runtime rounds the rows a cache write is given (golden.py CACHE_WRITES): that equals rounding
    the whole cache because 16 consecutive values of a tile row share an exponent and a cache row (one
    position's head_dim values) is a tile row: ttnn's conversion of the whole cache equals its conversion of
    each position alone, changes the values, and is idempotent."""
    import ttnn

    from ttspec.runtime.golden import quantise

    cache = torch.randn(2, 2, 64, 64, generator=torch.Generator().manual_seed(5)) * torch.logspace(-2, 2, 64)
    whole = quantise(ttnn, cache, ttnn.bfloat8_b)
    rows = torch.cat([quantise(ttnn, cache[:, :, p:p + 1], ttnn.bfloat8_b) for p in range(64)], dim=2)
    assert torch.equal(whole, rows)
    assert not torch.equal(whole, cache.to(torch.bfloat16))
    assert torch.equal(quantise(ttnn, whole, ttnn.bfloat8_b), whole)


def test_golden_decode_with_a_bfloat8_b_cache_scores_within_the_formats_bound(built):  # noqa: F811 (the fixture)
    """The decode score (tests/test_decode.py: prompts prefilled, the rest decoded several users at once) against
    HF transformers with the cache in bfloat8_b: within kv_pcc_bound; the cache really holds bfloat8_b values
    (ttnn's conversion leaves it unchanged) and the logits differ from the bf16 cache's."""
    import ttnn

    from ttspec.runtime.golden import quantise

    spec, state, tokens, expected = built("llama")
    model = load_model(spec)
    results = {}
    for kv in ("bf16", "bfloat8_b"):
        source = compile_source(model, str(spec), target_of("n150"), formats_of("bf16").with_kv_cache(kv))
        program, _ = golden_program(model, str(spec), get_target("n150"), state, source=source)
        results[kv] = score(program, tokens)
        cache = program.state.caches[0].k
        cache = cache.shards[0] if hasattr(cache, "shards") else cache  # golden: one chip is a 1x1 mesh
        assert torch.equal(quantise(ttnn, cache, ttnn.bfloat8_b), cache) == (kv == "bfloat8_b")
    bound = kv_pcc_bound(layers=2)
    decode, prefill = decode_pcc(results["bfloat8_b"], expected)
    print(f"bfloat8_b KV cache: decode pcc {decode:.6f} (bound {bound:.5f}), prefill pcc {prefill:.6f}; "
          f"bf16 cache: decode pcc {decode_pcc(results['bf16'], expected)[0]:.6f}")
    assert decode >= bound and prefill >= BF16_PCC  # prefill attends over its own K and V, not the cache
    assert not torch.equal(results["bfloat8_b"], results["bf16"])


@needs_mock
def test_mock_validates_the_decode_chain_on_a_bfloat8_b_cache():
    """llama-gqa-tiny on the mock n150, 32 users: allocate_cache, a decode step (paged_update_cache into the
    bfloat8_b cache, SDPA decode reading it) and a prompt's prefill (typecast, fill_cache) pass ttnn's validation;
    the allocator books the cache in bfloat8_b pages (1,088 B per tile, whole pages per DRAM bank)."""
    from ttspec.runtime.device import run_worker

    users, context, layers, kv_heads, head_dim = 32, 64, 4, 2, 32
    model = load_model(SPECS / "llama-gqa-tiny.arch")
    source = compile_source(model, "specs/llama-gqa-tiny.arch", target_of("n150"),
                            formats_of("performance").with_kv_cache("bfloat8_b"))
    calls = [("allocate_cache", users, context),
             ("decode", list(range(users)), [(7 * b) % context for b in range(users)]),
             ("prefill", list(range(40)), 3)]
    result = run_worker(model, source, "mock", "n150", state=None, calls=calls, timeout=600)
    assert tuple(result["outputs"][1].shape) == (users, 512)
    assert tuple(result["outputs"][2].shape) == (1, 512)  # the prompt's last position
    pages = users * kv_heads * (context // 32) * (head_dim // 32)  # one tile per page
    booked = 2 * layers * -(-pages // 12) * 12 * BF8_TILE
    assert result["dram_bytes_after"][0] - result["dram_bytes_allocated"] == booked


def test_golden_decode_on_a_mesh_rounds_each_chips_cache(built):  # noqa: F811 (the fixture)
    """T3K (1x8): each chip holds copies of its KV head's cache (8 heads over 2 KV heads): every shard's cache
    holds bfloat8_b values, and the score stays within the same bound."""
    import ttnn

    from ttspec.runtime.golden import quantise

    from .conftest import mesh_of

    spec, state, tokens, expected = built("llama")
    model = load_model(spec)
    source = compile_source(model, str(spec), target_of("t3k"), formats_of("bf16").with_kv_cache("bfloat8_b"),
                            mesh_of("1x8"))
    program, _ = golden_program(model, str(spec), get_target("t3k"), state, source=source)
    got = score(program, tokens)
    shards = program.state.caches[0].v.shards
    assert len(shards) == 8 and all(torch.equal(quantise(ttnn, s, ttnn.bfloat8_b), s) for s in shards)
    decode, _ = decode_pcc(got, expected)
    print(f"t3k bfloat8_b KV cache: decode pcc {decode:.6f}")
    assert decode >= kv_pcc_bound(layers=2)
