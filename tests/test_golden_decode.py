"""golden_decode.py's references for the ttnn ops without a golden in ttnn 0.81.1, against outside truths:

- values: each reference equals a composition of golden-backed ops computing the same thing (ttnn's own
  goldens from ttnn.get_golden_function: split_query_key_value_and_split_heads, concatenate_heads,
  experimental.rotary_embedding, kv_cache.update_cache_for_token_, matmul, mul, add, permute, slice, pad,
  reshape; and HF transformers' apply_rotary_pos_emb), over shapes hypothesis draws;
- shapes: each reference's output shapes equal those the mock device's real op gives for inputs of the
  same logical shapes (one mock process runs every op once), so padding is ttnn's, not ours;
- the golden runtime runs them in place of the ops, on single devices and meshes; the memory moves of the
  decode idiom (interleaved_to_sharded, reshard, sharded_to_interleaved, to_memory_config) have ttnn goldens,
  which keep the mock's shapes too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ttspec.mock import toolchain

torch = pytest.importorskip("torch")
ttnn = pytest.importorskip("ttnn")
transformers = pytest.importorskip("transformers")

from ttspec.runtime import golden_decode as ref  # noqa: E402
from ttspec.runtime.golden import HOST, GoldenTTNN, GoldenUnavailable, HostMesh, MeshTensor  # noqa: E402

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def golden(op):
    return ttnn.get_golden_function(op)


@st.composite
def attention_shapes(draw):
    """users 1..32; KV heads dividing the query heads (GQA); head_dim 64 or 128; at most 32 heads."""
    kv = draw(st.sampled_from([1, 2, 4, 8]))
    heads = kv * draw(st.sampled_from([1, 2, 4]))
    return draw(st.integers(1, 32)), heads, kv, draw(st.sampled_from([64, 128]))


def gen(seed):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- heads: split and merge


def golden_split_heads(x, heads, kv, transpose_key):
    """[B, S, width] -> Q [B, H, S, D], K, V by ttnn's golden of split_query_key_value_and_split_heads."""
    return golden(ttnn.transformer.split_query_key_value_and_split_heads)(x, num_heads=heads, num_kv_heads=kv,
                                                                           transpose_key=transpose_key)


@SETTINGS
@given(attention_shapes(), st.integers(0, 2**16), st.booleans())
def test_create_qkv_heads_decode_equals_golden_split(shape, seed, offset):
    users, heads, kv, head_dim = shape
    rows = 32 if offset else users  # with a batch offset, the users are a slice of 32 rows
    first = (seed % (rows - users + 1)) if offset else 0
    x = torch.randn(1, 1, rows, (heads + 2 * kv) * head_dim, generator=gen(seed))
    extra = dict(batch_offset=torch.tensor([first], dtype=torch.int32), slice_size=users) if offset else {}
    q, k, v = ref.nlp_create_qkv_heads_decode_reference(x, num_heads=heads, num_kv_heads=kv, **extra)
    # the golden composition: users' rows -> [users, 1, width] -> split (Q [users, H, 1, D]) -> [1, users, H, D]
    picked = golden(ttnn.slice)(x, [0, 0, first, 0], [1, 1, first + users, x.shape[-1]])
    as_batch = golden(ttnn.reshape)(picked, (users, 1, x.shape[-1]))
    expected = [golden(ttnn.permute)(t, (2, 0, 1, 3)) for t in golden_split_heads(as_batch, heads, kv, False)]
    for got, want in zip((q, k, v), expected):
        assert got.shape == want.shape and torch.equal(got, want)
    assert list(q.shape) == [1, users, heads, head_dim] and list(k.shape) == [1, users, kv, head_dim]


@SETTINGS
@given(attention_shapes(), st.integers(0, 2**16), st.booleans())
def test_concat_heads_decode_equals_golden_concatenate(shape, seed, padded):
    users, heads, _, head_dim = shape
    stored = 32 if padded else heads  # heads as nlp_create_qkv_heads_decode gives them, or padded to a tile
    x = torch.randn(1, users, stored, head_dim, generator=gen(seed))
    got = ref.nlp_concat_heads_decode_reference(x, num_heads=heads)
    # golden composition: first `heads` heads -> [users, H, 1, D] -> concatenate_heads [users, 1, H*D] -> rows
    kept = golden(ttnn.slice)(x, [0, 0, 0, 0], [1, users, heads, head_dim])
    merged = golden(ttnn.transformer.concatenate_heads)(golden(ttnn.permute)(kept, (1, 2, 0, 3)))
    rows = golden(ttnn.reshape)(merged, (1, 1, users, heads * head_dim))
    expected = golden(ttnn.pad)(rows, [(0, 0), (0, 0), (0, 32 - users), (0, 0)], value=0)
    assert got.shape == expected.shape == (1, 1, 32, heads * head_dim)
    assert torch.equal(got, expected)


@SETTINGS
@given(attention_shapes(), st.integers(1, 80), st.integers(0, 2**16), st.sampled_from(["fused", "kv_input", "tied"]),
       st.booleans())
def test_create_qkv_heads_prefill_equals_golden_split(shape, seq, seed, form, transpose_k):
    batch, heads, kv, head_dim = shape
    batch = 1 + batch % 2
    q_width, kv_width = heads * head_dim, kv * head_dim
    x = torch.randn(batch, 1, seq, q_width + 2 * kv_width, generator=gen(seed))
    if form == "tied":  # one K/V section: V is K
        x = x[..., : q_width + kv_width]
        whole = torch.cat([x, x[..., q_width:]], dim=-1)
        got = ref.nlp_create_qkv_heads_reference(x, num_heads=heads, num_kv_heads=kv, kv_tied=True,
                                                 transpose_k_heads=transpose_k)
    elif form == "kv_input":
        whole = x
        got = ref.nlp_create_qkv_heads_reference(x[..., :q_width], x[..., q_width:], num_heads=heads,
                                                 num_kv_heads=kv, transpose_k_heads=transpose_k)
    else:
        whole = x
        got = ref.nlp_create_qkv_heads_reference(x, num_heads=heads, num_kv_heads=kv, transpose_k_heads=transpose_k)
    expected = golden_split_heads(golden(ttnn.reshape)(whole, (batch, seq, whole.shape[-1])), heads, kv, transpose_k)
    for a, b in zip(got, expected):
        assert a.shape == b.shape and torch.equal(a, b)


@SETTINGS
@given(attention_shapes(), st.integers(1, 80), st.integers(0, 2**16))
def test_concat_heads_prefill_equals_golden_concatenate(shape, seq, seed):
    _, heads, _, head_dim = shape
    x = torch.randn(2, heads, seq, head_dim, generator=gen(seed))
    expected = golden(ttnn.transformer.concatenate_heads)(x)
    assert torch.equal(ref.nlp_concat_heads_reference(x), golden(ttnn.reshape)(expected, (2, 1, seq, heads * head_dim)))


# ---------------------------------------------------------------- rotary embedding

def pair_swap():
    """The 32x32 trans_mat of the decode idiom (tt_transformers' get_rot_transformation_mat)."""
    m = torch.zeros(1, 1, 32, 32)
    m[..., torch.arange(0, 32, 2), torch.arange(1, 32, 2)] = 1.0
    m[..., torch.arange(1, 32, 2), torch.arange(0, 32, 2)] = -1.0
    return m


def interleaved_tables(positions, head_dim, theta=10000.0):
    """cos, sin [len(positions), head_dim] with each frequency repeated for its pair (2i, 2i + 1)."""
    inv = 1.0 / theta ** (torch.arange(0, head_dim, 2).float() / head_dim)
    freqs = torch.outer(positions.float(), inv).repeat_interleave(2, dim=-1)
    return freqs.cos(), freqs.sin()


def to_half(x):
    """Interleaved-pair layout (2i, 2i + 1) -> HF's half layout (i, i + D/2)."""
    d = x.shape[-1]
    return torch.cat([x[..., 0:d:2], x[..., 1:d:2]], dim=-1)


def from_half(x):
    d = x.shape[-1]
    return torch.stack([x[..., : d // 2], x[..., d // 2:]], dim=-1).reshape(x.shape)


MAX_POSITION = 2048


def golden_rope_at(x, position, cached):
    """ttnn's golden of experimental.rotary_embedding (HF rotate-half) at one position of the cached
    [1, 1, positions, D] half-layout tables, on the interleaved layout mapped to HF's and back."""
    rotate = golden(ttnn.experimental.rotary_embedding)
    return from_half(rotate(to_half(x), *cached, position))


def half_tables(head_dim):
    cos, sin = interleaved_tables(torch.arange(MAX_POSITION), head_dim)
    return to_half(cos)[None, None], to_half(sin)[None, None]


@SETTINGS
@given(attention_shapes(), st.integers(0, 2**16), st.sampled_from([1, 32]))
def test_rotary_llama_decode_equals_golden_rotary_embedding(shape, seed, cos_rows):
    users, heads, _, head_dim = shape
    g = gen(seed)
    x = torch.randn(1, users, heads, head_dim, generator=g)
    positions = torch.randint(0, MAX_POSITION, (users,), generator=g)
    cos, sin = interleaved_tables(positions, head_dim)  # [users, D], one row per user, as ttnn.embedding gives
    cos, sin = cos[None, :, None].expand(1, users, cos_rows, head_dim), sin[None, :, None].expand(1, users, cos_rows,
                                                                                                  head_dim)
    trans = pair_swap().repeat(1, 1, users, 1)  # one tile per user core
    got = ref.rotary_embedding_llama_reference(x, cos, sin, trans, is_decode_mode=True)
    cached = half_tables(head_dim)
    for u in range(users):
        want = golden_rope_at(x[:, u:u + 1], int(positions[u]), cached)
        torch.testing.assert_close(got[:, u:u + 1], want, rtol=1e-5, atol=1e-5)


@SETTINGS
@given(attention_shapes(), st.integers(0, 2**16))
def test_rotary_llama_applies_any_trans_mat_per_tile(shape, seed):
    """With an arbitrary trans_mat (per user) and arbitrary cos/sin rows, the reference is ttnn's goldens of
    x * cos + matmul(x, blockdiag(trans_mat)) * sin: one 32x32 tile per 32 features, cos row 0 for every head."""
    users, heads, _, head_dim = shape
    g = gen(seed)
    x = torch.randn(1, users, heads, head_dim, generator=g)
    cos, sin = (torch.randn(1, users, 32, head_dim, generator=g) for _ in range(2))
    trans = torch.randn(1, 1, 32 * users, 32, generator=g)
    got = ref.rotary_embedding_llama_reference(x, cos, sin, trans, is_decode_mode=True)
    mul, add, matmul = golden(ttnn.mul), golden(ttnn.add), golden(ttnn.matmul)
    for u in range(users):
        block = torch.block_diag(*[trans[0, 0, 32 * u:32 * (u + 1)]] * (head_dim // 32))
        xu = x[0, u]
        want = add(mul(xu, cos[0, u, :1]), mul(matmul(xu, block), sin[0, u, :1]))
        torch.testing.assert_close(got[0, u], want, rtol=1e-5, atol=1e-4)


@SETTINGS
@given(attention_shapes(), st.integers(1, 80), st.integers(0, 2**16))
def test_rotary_llama_prefill_equals_hf_apply_rotary_pos_emb(shape, seq, seed):
    _, heads, _, head_dim = shape
    x = torch.randn(2, heads, seq, head_dim, generator=gen(seed))
    cos, sin = interleaved_tables(torch.arange(seq), head_dim)
    got = ref.rotary_embedding_llama_reference(x, cos[None, None], sin[None, None], pair_swap())
    hf, _ = transformers.models.llama.modeling_llama.apply_rotary_pos_emb(to_half(x), to_half(x), to_half(cos)[None],
                                                                          to_half(sin)[None])
    torch.testing.assert_close(got, from_half(hf), rtol=1e-5, atol=1e-5)


@SETTINGS
@given(attention_shapes(), st.integers(0, 2**16))
def test_rotary_llama_fused_qk_equals_golden_rotary_embedding(shape, seed):
    """Q users take cos/sin rows 0..users-1, K users rows users..2*users-1 (Q's cores precede K's)."""
    users, heads, kv, head_dim = shape
    g = gen(seed)
    q, k = torch.randn(1, users, heads, head_dim, generator=g), torch.randn(1, users, kv, head_dim, generator=g)
    positions = torch.randint(0, MAX_POSITION, (users,), generator=g)
    k_positions = torch.randint(0, MAX_POSITION, (users,), generator=g)  # other rows for K: a mix-up would show
    cos, sin = interleaved_tables(torch.cat([positions, k_positions]), head_dim)
    got_q, got_k = ref.rotary_embedding_llama_fused_qk_reference(q, k, cos[None, :, None], sin[None, :, None],
                                                                 pair_swap().repeat(1, 1, 2 * users, 1))
    cached = half_tables(head_dim)
    for u in range(users):
        torch.testing.assert_close(got_q[:, u:u + 1], golden_rope_at(q[:, u:u + 1], int(positions[u]), cached),
                                   rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got_k[:, u:u + 1], golden_rope_at(k[:, u:u + 1], int(k_positions[u]), cached),
                                   rtol=1e-5, atol=1e-5)


def test_rotary_llama_keeps_bfloat16():
    x = torch.randn(1, 4, 8, 64).to(torch.bfloat16)
    cos = torch.randn(1, 4, 1, 64).to(torch.bfloat16)
    out = ref.rotary_embedding_llama_reference(x, cos, cos, pair_swap().to(torch.bfloat16), is_decode_mode=True)
    assert out.dtype == torch.bfloat16 and out.shape == x.shape


# ---------------------------------------------------------------- KV cache


@SETTINGS
@given(attention_shapes(), st.integers(0, 2**16))
def test_paged_fused_update_cache_equals_golden_update_for_token(shape, seed):
    users, _, kv, head_dim = shape
    g = gen(seed)
    context = 64
    caches = [torch.randn(users, kv, context, head_dim, generator=g) for _ in range(2)]
    new = [torch.randn(1, users, kv, head_dim, generator=g) for _ in range(2)]
    positions = torch.randint(-1, context, (users,), generator=g, dtype=torch.int32)  # -1: that user is skipped
    got = ref.paged_fused_update_cache_reference(caches[0].clone(), new[0], caches[1].clone(), new[1],
                                                 update_idxs_tensor=positions)
    update_for_token = golden(ttnn.kv_cache.update_cache_for_token_)
    for cache, value, result in zip(caches, new, got):
        expected = cache.clone()
        for b, p in enumerate(positions.tolist()):
            if p >= 0:  # that golden writes every user of its cache at one index: give it user b alone
                update_for_token(expected[b:b + 1], value[:, b:b + 1].permute(0, 2, 1, 3), p)
        assert torch.equal(result, expected)


# ---------------------------------------------------------------- the golden runtime


def test_golden_runtime_runs_the_references_on_devices_and_meshes():
    stand_in = GoldenTTNN(ttnn)
    x = torch.randn(1, 1, 8, (8 + 2 * 2) * 64)
    q, k, v = stand_in.experimental.nlp_create_qkv_heads_decode(x, num_heads=8, num_kv_heads=2)
    assert [list(t.shape) for t in (q, k, v)] == [[1, 8, 8, 64], [1, 8, 2, 64], [1, 8, 2, 64]]
    mesh = HostMesh((1, 2))
    halves = MeshTensor([torch.randn(1, 8, 4, 64), torch.randn(1, 8, 4, 64)], mesh)
    merged = stand_in.experimental.nlp_concat_heads_decode(halves, num_heads=4)
    assert isinstance(merged, MeshTensor) and [list(s.shape) for s in merged.shards] == [[1, 1, 32, 256]] * 2
    assert torch.equal(merged.shards[1][0, 0, :8], halves.shards[1][0].reshape(8, 256))
    assert stand_in.calls == {"experimental.nlp_create_qkv_heads_decode": 1, "experimental.nlp_concat_heads_decode": 1}
    assert HOST.dram_grid_size().x == mesh.dram_grid_size().x == 12  # Wormhole's DRAM banks, on a device and a mesh
    assert stand_in.deallocate(q) is None
    # a two-output reference on a mesh: each device rotates its own heads, and gets a pair of shards back
    qs, ks = (MeshTensor([torch.randn(1, 4, n, 64) for _ in range(2)], mesh) for n in (4, 1))
    cos = MeshTensor([torch.randn(1, 8, 1, 64)] * 2, mesh)
    trans = MeshTensor([pair_swap().repeat(1, 1, 8, 1)] * 2, mesh)
    rotated_q, rotated_k = stand_in.experimental.rotary_embedding_llama_fused_qk(qs, ks, cos, cos, trans)
    assert all(isinstance(r, MeshTensor) for r in (rotated_q, rotated_k))
    torch.testing.assert_close(rotated_k.shards[1], ref.rotary_embedding_llama_fused_qk_reference(
        qs.shards[1], ks.shards[1], cos.shards[1], cos.shards[1], trans.shards[1])[1])
    with pytest.raises(GoldenUnavailable, match="page table"):
        stand_in.experimental.paged_update_cache(torch.zeros(1, 1, 32, 64), torch.zeros(1, 1, 1, 64),
                                                 update_idxs=[0], page_table=torch.zeros(1, 1))
    for ops in ("nlp_create_qkv_heads_decode", "nlp_concat_heads_decode", "rotary_embedding_llama",
                "rotary_embedding_llama_fused_qk", "paged_fused_update_cache", "nlp_create_qkv_heads",
                "nlp_concat_heads", "paged_update_cache"):
        with pytest.raises(RuntimeError):  # the reason a reference exists: ttnn has no golden for the op
            ttnn.get_golden_function(getattr(ttnn.experimental, ops))


# ---------------------------------------------------------------- shapes from the mock device

# Every op once on the mock n150, with inputs of the logical shapes each case names; prints each output's
# logical shape and dtype. It also reports the device's DRAM and worker grids.
MOCK_SCRIPT = r"""
import json, sys
import torch, ttnn

cases = json.loads(sys.argv[1])
dev = ttnn.open_device(device_id=0)
grid = dev.compute_with_storage_grid_size()
result = {"dram_grid": [dev.dram_grid_size().x, dev.dram_grid_size().y], "grid": [grid.x, grid.y], "cases": []}

def cores(n):  # the first n worker cores, row by row
    return ttnn.num_cores_to_corerangeset(n, grid, True)

def sharded(shape, shard, n, strategy=ttnn.ShardStrategy.HEIGHT):
    config = ttnn.create_sharded_memory_config(shard, cores(n), strategy, ttnn.ShardOrientation.ROW_MAJOR,
                                               use_height_and_width_as_shard_shape=True)
    return ttnn.from_torch(torch.zeros(shape), dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=dev,
                           memory_config=config)

def dram(shape, dtype=ttnn.bfloat16):
    return ttnn.from_torch(torch.zeros(shape), dtype=dtype, layout=ttnn.TILE_LAYOUT, device=dev)

def trans(n):
    return sharded([1, 1, 32 * n, 32], (32, 32), n)

def run(case):
    op, a = case["op"], case["args"]
    if op == "create_decode":
        users, h, kv, d = a["users"], a["heads"], a["kv"], a["head_dim"]
        width = (h + 2 * kv) * d
        split = a.get("shards", 1)
        x = sharded([1, 1, a.get("rows", users), width], (32, width // split), split, ttnn.ShardStrategy.WIDTH)
        extra = {}
        if "offset" in a:
            extra = dict(batch_offset=ttnn.from_torch(torch.tensor([a["offset"]], dtype=torch.int32), dtype=ttnn.int32,
                                                      device=dev), slice_size=users)
        return ttnn.experimental.nlp_create_qkv_heads_decode(x, num_heads=h, num_kv_heads=kv,
            memory_config=ttnn.L1_HEIGHT_SHARDED_MEMORY_CONFIG, overlap_qk_coregrid=a.get("overlap", True), **extra)
    if op == "concat_decode":
        users, stored, d = a["users"], a["stored"], a["head_dim"]
        return [ttnn.experimental.nlp_concat_heads_decode(sharded([1, users, stored, d], (32, d), users),
                                                          num_heads=a["heads"])]
    if op == "rope_decode":
        users, h, d, rows = a["users"], a["heads"], a["head_dim"], a["cos_rows"]
        x = sharded([1, users, h, d], (32, d), users)
        cos, sin = (sharded([1, users, rows, d], (32, d), users) for _ in range(2))
        return [ttnn.experimental.rotary_embedding_llama(x, cos, sin, trans(users), is_decode_mode=True)]
    if op == "rope_prefill":
        b, h, s, d = a["batch"], a["heads"], a["seq"], a["head_dim"]
        return [ttnn.experimental.rotary_embedding_llama(dram([b, h, s, d]), dram([1, 1, s, d]), dram([1, 1, s, d]),
                                                         dram([1, 1, 32, 32]), is_decode_mode=False)]
    if op == "fused_qk_and_update":
        users, h, kv, d = a["users"], a["heads"], a["kv"], a["head_dim"]
        x = sharded([1, 1, users, (h + 2 * kv) * d], (32, d), h + 2 * kv, ttnn.ShardStrategy.WIDTH)
        q, k, v = ttnn.experimental.nlp_create_qkv_heads_decode(x, num_heads=h, num_kv_heads=kv,
            memory_config=ttnn.L1_HEIGHT_SHARDED_MEMORY_CONFIG, overlap_qk_coregrid=False)
        cos, sin = (sharded([1, 2 * users, 1, d], (32, d), 2 * users) for _ in range(2))
        q, k = ttnn.experimental.rotary_embedding_llama_fused_qk(q, k, cos, sin, trans(2 * users))
        positions = ttnn.from_torch(torch.arange(users, dtype=torch.int32), dtype=ttnn.int32, device=dev)
        caches = ttnn.experimental.paged_fused_update_cache(dram([users, kv, 64, d]), k, dram([users, kv, 64, d]), v,
                                                            update_idxs_tensor=positions)
        return [q, k, *caches]
    if op == "create_prefill":
        b, s, h, kv, d = a["batch"], a["seq"], a["heads"], a["kv"], a["head_dim"]
        form, extra = a["form"], {"transpose_k_heads": a["transpose_k"]}
        if form == "kv_input":
            return ttnn.experimental.nlp_create_qkv_heads(dram([b, 1, s, h * d]), dram([b, 1, s, 2 * kv * d]),
                                                          num_heads=h, num_kv_heads=kv, **extra)
        width = (h + (1 if form == "tied" else 2) * kv) * d
        return ttnn.experimental.nlp_create_qkv_heads(dram([b, 1, s, width]), num_heads=h, num_kv_heads=kv,
                                                      kv_tied=form == "tied", **extra)
    if op == "concat_prefill":
        return [ttnn.experimental.nlp_concat_heads(dram([a["batch"], a["heads"], a["seq"], a["head_dim"]]))]
    if op == "memory_moves":  # [1, 1, users, width]: sharded on 4 cores, resharded on 2, interleaved, sharded again
        users, width = a["users"], a["width"]
        def width_sharded(n):
            return ttnn.create_sharded_memory_config((32, width // n), cores(n), ttnn.ShardStrategy.WIDTH,
                                                     ttnn.ShardOrientation.ROW_MAJOR,
                                                     use_height_and_width_as_shard_shape=True)
        on_four = ttnn.interleaved_to_sharded(dram([1, 1, users, width]), width_sharded(4))
        on_two = ttnn.reshard(on_four, width_sharded(2))
        interleaved = ttnn.sharded_to_interleaved(on_two, ttnn.L1_MEMORY_CONFIG)
        return [on_four, on_two, interleaved, ttnn.to_memory_config(interleaved, width_sharded(4))]
    raise ValueError(op)

for case in cases:
    try:
        outputs = run(case)
        result["cases"].append([[list(t.shape), str(t.dtype)] for t in outputs])
    except Exception as e:
        result["cases"].append({"error": f"{type(e).__name__}: {str(e)[:2000]}"})
ttnn.close_device(dev)
print("MOCK-RESULT " + json.dumps(result), flush=True)
"""

MOCK_CASES = [
    {"op": "create_decode", "args": {"users": 32, "heads": 32, "kv": 8, "head_dim": 128}},
    {"op": "create_decode", "args": {"users": 5, "heads": 4, "kv": 1, "head_dim": 128}},
    {"op": "create_decode", "args": {"users": 1, "heads": 12, "kv": 4, "head_dim": 64}},
    {"op": "create_decode", "args": {"users": 8, "rows": 32, "offset": 8, "heads": 8, "kv": 2, "head_dim": 64}},
    {"op": "create_decode", "args": {"users": 8, "heads": 8, "kv": 2, "head_dim": 128, "shards": 12, "overlap": False}},
    {"op": "concat_decode", "args": {"users": 32, "stored": 32, "heads": 32, "head_dim": 128}},
    {"op": "concat_decode", "args": {"users": 5, "stored": 4, "heads": 4, "head_dim": 128}},
    {"op": "concat_decode", "args": {"users": 8, "stored": 8, "heads": 6, "head_dim": 64}},
    {"op": "rope_decode", "args": {"users": 32, "heads": 32, "head_dim": 128, "cos_rows": 1}},
    {"op": "rope_decode", "args": {"users": 5, "heads": 4, "head_dim": 64, "cos_rows": 32}},
    {"op": "rope_prefill", "args": {"batch": 1, "heads": 2, "seq": 40, "head_dim": 64}},
    {"op": "fused_qk_and_update", "args": {"users": 8, "heads": 8, "kv": 2, "head_dim": 128}},
    {"op": "create_prefill", "args": {"batch": 1, "seq": 40, "heads": 4, "kv": 2, "head_dim": 32, "form": "fused",
                                      "transpose_k": True}},
    {"op": "create_prefill", "args": {"batch": 2, "seq": 64, "heads": 8, "kv": 2, "head_dim": 64, "form": "fused",
                                      "transpose_k": False}},
    {"op": "create_prefill", "args": {"batch": 1, "seq": 64, "heads": 8, "kv": 2, "head_dim": 32, "form": "kv_input",
                                      "transpose_k": False}},
    {"op": "create_prefill", "args": {"batch": 1, "seq": 64, "heads": 8, "kv": 2, "head_dim": 32, "form": "tied",
                                      "transpose_k": True}},
    {"op": "concat_prefill", "args": {"batch": 2, "heads": 4, "seq": 40, "head_dim": 32}},
    {"op": "memory_moves", "args": {"users": 8, "width": 256}},
]


def reference_outputs(case):
    """The references run on zeros of the logical shapes the mock case uses."""
    op, a = case["op"], case["args"]
    z = lambda *shape: torch.zeros(*shape, dtype=torch.bfloat16)  # noqa: E731
    if op == "create_decode":
        users, h, kv, d = a["users"], a["heads"], a["kv"], a["head_dim"]
        extra = dict(batch_offset=torch.tensor([a["offset"]]), slice_size=users) if "offset" in a else {}
        return ref.nlp_create_qkv_heads_decode_reference(z(1, 1, a.get("rows", users), (h + 2 * kv) * d), num_heads=h,
                                                         num_kv_heads=kv, **extra)
    if op == "concat_decode":
        heads = z(1, a["users"], a["stored"], a["head_dim"])
        return [ref.nlp_concat_heads_decode_reference(heads, num_heads=a["heads"])]
    if op == "rope_decode":
        users, d = a["users"], a["head_dim"]
        cos = z(1, users, a["cos_rows"], d)
        return [ref.rotary_embedding_llama_reference(z(1, users, a["heads"], d), cos, cos, z(1, 1, 32 * users, 32),
                                                     is_decode_mode=True)]
    if op == "rope_prefill":
        s, d = a["seq"], a["head_dim"]
        return [ref.rotary_embedding_llama_reference(z(a["batch"], a["heads"], s, d), z(1, 1, s, d), z(1, 1, s, d),
                                                     z(1, 1, 32, 32))]
    if op == "fused_qk_and_update":
        users, h, kv, d = a["users"], a["heads"], a["kv"], a["head_dim"]
        q, k, v = ref.nlp_create_qkv_heads_decode_reference(z(1, 1, users, (h + 2 * kv) * d), num_heads=h,
                                                            num_kv_heads=kv)
        cos = z(1, 2 * users, 1, d)
        q, k = ref.rotary_embedding_llama_fused_qk_reference(q, k, cos, cos, z(1, 1, 64 * users, 32))
        caches = ref.paged_fused_update_cache_reference(z(users, kv, 64, d), k, z(users, kv, 64, d), v,
                                                        update_idxs_tensor=torch.arange(users))
        return [q, k, *caches]
    if op == "create_prefill":
        b, s, h, kv, d = a["batch"], a["seq"], a["heads"], a["kv"], a["head_dim"]
        extra = {"num_heads": h, "num_kv_heads": kv, "transpose_k_heads": a["transpose_k"]}
        if a["form"] == "kv_input":
            return ref.nlp_create_qkv_heads_reference(z(b, 1, s, h * d), z(b, 1, s, 2 * kv * d), **extra)
        tied = a["form"] == "tied"
        return ref.nlp_create_qkv_heads_reference(z(b, 1, s, (h + (1 if tied else 2) * kv) * d), kv_tied=tied, **extra)
    if op == "concat_prefill":
        return [ref.nlp_concat_heads_reference(z(a["batch"], a["heads"], a["seq"], a["head_dim"]))]
    if op == "memory_moves":  # these have ttnn goldens: the golden runtime runs them (sharding configs are None there)
        t = GoldenTTNN(ttnn)
        on_four = t.interleaved_to_sharded(z(1, 1, a["users"], a["width"]), t.create_sharded_memory_config())
        on_two = t.reshard(on_four, t.create_sharded_memory_config())
        interleaved = t.sharded_to_interleaved(on_two, t.L1_MEMORY_CONFIG)
        return [on_four, on_two, interleaved, t.to_memory_config(interleaved, t.create_sharded_memory_config())]
    raise ValueError(op)


@pytest.fixture(scope="module")
def mock_n150(tmp_path_factory):
    try:
        toolchain.ensure_toolchain()
    except toolchain.ToolchainMissing as e:
        pytest.skip(str(e))
    env = dict(os.environ)
    env.update(toolchain.mock_env("n150"))
    env["LOGURU_LEVEL"] = "WARNING"
    proc = subprocess.run([sys.executable, "-c", MOCK_SCRIPT, json.dumps(MOCK_CASES)],
                          cwd=tmp_path_factory.mktemp("mock-golden-decode"), env=env, capture_output=True, text=True,
                          timeout=600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("MOCK-RESULT ")]
    assert proc.returncode == 0 and lines, f"mock process failed (rc {proc.returncode})\n{proc.stderr[-6000:]}"
    return json.loads(lines[-1].removeprefix("MOCK-RESULT "))


@pytest.mark.parametrize("index", range(len(MOCK_CASES)),
                         ids=[f"{c['op']}-{i}" for i, c in enumerate(MOCK_CASES)])
def test_reference_shapes_equal_the_mock_devices(mock_n150, index):
    device = mock_n150["cases"][index]
    assert "error" not in device, f"the mock refused {MOCK_CASES[index]}: {device}"
    ours = [[list(t.shape), t.dtype] for t in reference_outputs(MOCK_CASES[index])]
    assert [shape for shape, _ in ours] == [shape for shape, _ in device], MOCK_CASES[index]
    assert all(dtype == "DataType.BFLOAT16" for _, dtype in device)  # bf16 in, bf16 out, as the references keep
    assert all(dtype == torch.bfloat16 for _, dtype in ours)


def test_host_device_grids_equal_the_mock_n150s(mock_n150):
    dram = HOST.dram_grid_size()
    assert [dram.x, dram.y] == mock_n150["dram_grid"] == [12, 1]
    grid = HOST.compute_with_storage_grid_size()
    assert [grid.x, grid.y] == mock_n150["grid"]
    mesh_dram = HostMesh((1, 8)).dram_grid_size()
    assert [mesh_dram.x, mesh_dram.y] == mock_n150["dram_grid"]


# ---------------------------------------------------------------- the decode attention idiom, end to end


@settings(max_examples=6, deadline=None)
@given(attention_shapes(), st.integers(0, 2**16))
def test_golden_decode_attention_idiom_equals_hf_attention(shape, seed):
    """One decode step of the attention idiom (notes/ttnn-0.81-decode.md) run by the golden runtime:
    fused QKV rows (interleaved-pair RoPE layout) -> nlp_create_qkv_heads_decode -> cos/sin gathered from
    one table by ttnn.embedding(positions) -> rotary_embedding_llama(is_decode_mode=True) ->
    paged_update_cache of K and V -> ttnn's decode SDPA golden -> nlp_concat_heads_decode; against HF's
    rotary embedding and apply_rotary_pos_emb in HF's half layout and plain softmax attention per user."""
    users, heads, kv, head_dim = shape
    g = gen(seed)
    context, theta = 64, 10000.0
    config = transformers.LlamaConfig(hidden_size=heads * head_dim, num_attention_heads=heads, num_key_value_heads=kv,
                                      head_dim=head_dim, max_position_embeddings=context,
                                      rope_parameters={"rope_type": "default", "rope_theta": theta})
    rotary = transformers.models.llama.modeling_llama.LlamaRotaryEmbedding(config)
    hf_cos, hf_sin = rotary(torch.zeros(1), torch.arange(context)[None])  # [1, context, D], half layout
    positions = torch.randint(0, context, (users,), generator=g, dtype=torch.int32)
    rows = torch.randn(1, 1, users, (heads + 2 * kv) * head_dim, generator=g)
    k_cache, v_cache = (torch.randn(users, kv, context, head_dim, generator=g) for _ in range(2))

    t = GoldenTTNN(ttnn)
    q, k, v = t.experimental.nlp_create_qkv_heads_decode(rows, num_heads=heads, num_kv_heads=kv,
                                                         memory_config=t.L1_HEIGHT_SHARDED_MEMORY_CONFIG)
    tables = [from_half(table[0]) for table in (hf_cos, hf_sin)]  # [context, D], pairs interleaved
    cos, sin = (t.reshape(t.embedding(positions[None], table), (1, users, 1, head_dim)) for table in tables)
    trans = pair_swap().repeat(1, 1, users, 1)
    q = t.experimental.rotary_embedding_llama(q, cos, sin, trans, is_decode_mode=True)
    k = t.experimental.rotary_embedding_llama(k, cos, sin, trans, is_decode_mode=True)
    ours_k, ours_v = k_cache.clone(), v_cache.clone()
    t.experimental.paged_update_cache(ours_k, k, update_idxs_tensor=positions)
    t.experimental.paged_update_cache(ours_v, v, update_idxs_tensor=positions)
    attended = t.transformer.scaled_dot_product_attention_decode(q, ours_k, ours_v, cur_pos_tensor=positions,
                                                                 scale=head_dim ** -0.5)
    got = t.experimental.nlp_concat_heads_decode(attended, num_heads=heads)

    apply = transformers.models.llama.modeling_llama.apply_rotary_pos_emb
    for u in range(users):
        p = int(positions[u])
        row = rows[0, 0, u]
        q_u = to_half(row[: heads * head_dim].reshape(1, heads, 1, head_dim))
        k_u = to_half(row[heads * head_dim:(heads + kv) * head_dim].reshape(1, kv, 1, head_dim))
        v_u = row[(heads + kv) * head_dim:].reshape(kv, 1, head_dim)
        q_u, k_u = apply(q_u, k_u, hf_cos[:, p:p + 1], hf_sin[:, p:p + 1])
        keys = torch.cat([to_half(k_cache[u, :, :p]), k_u[0], to_half(k_cache[u, :, p + 1:])], dim=1)[:, : p + 1]
        values = torch.cat([v_cache[u, :, :p], v_u], dim=1)
        group = heads // kv
        want = torch.nn.functional.scaled_dot_product_attention(
            q_u[0], keys.repeat_interleave(group, 0), values.repeat_interleave(group, 0))  # [heads, 1, D]
        torch.testing.assert_close(got[0, 0, u], want.reshape(heads * head_dim), rtol=1e-4, atol=1e-4)
    assert got.shape == (1, 1, 32, heads * head_dim)
    assert t.calls["experimental.rotary_embedding_llama"] == 2 and t.calls["experimental.paged_update_cache"] == 2
