"""References for the ttnn ops that have no golden function in ttnn 0.81.1: the ONE place where
ttspec states what such an op computes, so that golden mode can run a program that uses it.

Each reference follows ttnn 0.81.1's own definition of the op: its kernels, which the wheel ships
(ttnn/cpp/ttnn/operations/experimental/transformer/<op>/device/kernels/), and its output specs in
tenstorrent/tt-metal (<op>_device_operation.cpp). Each is tested (tests/test_golden_decode.py) against
a composition of golden-backed ops computing the same thing, and its output shapes against what the
mock device's real op gives for the same inputs.

Tensors are torch tensors in ttnn's logical shapes: a device pads head and user dims to a tile of 32
in its storage only (`padded_shape`), never in the logical shape that ttnn.to_torch returns. Where a
device leaves part of a logical output unwritten (nlp_concat_heads_decode's rows past the users),
the reference writes zeros and says so. A reference that computes does so in float32 and returns its
input's dtype.
An argument whose device behaviour these references do not model raises NotImplementedError, which
the golden runtime reports as GoldenUnavailable.
"""

from __future__ import annotations

TILE = 32  # ttnn tiles are 32x32


def _rows_to_heads(rows, heads: int, head_dim: int):
    """[users, heads * head_dim] -> [users, heads, head_dim], in its own storage as a device output is."""
    return rows.reshape(rows.shape[0], heads, head_dim).clone()


# ---------------------------------------------------------------- heads: split and merge


def nlp_create_qkv_heads_decode_reference(input_tensor, *, num_heads, num_kv_heads=None, output_tensors=None,
                                          overlap_qk_coregrid=True, batch_offset=None, slice_size=None,
                                          memory_config=None):
    """ttnn.experimental.nlp_create_qkv_heads_decode: fused QKV rows [1, 1, users, (H + 2 * KV) * head_dim]
    -> Q [1, users, H, head_dim], K and V [1, users, KV, head_dim] (logical shapes; the device pads H and KV
    to 32 in storage, height-sharded one user per core). Row u of the input gives user u: its first
    H * head_dim columns are Q's heads in order, then K's, then V's (reader_tm_tile_layout_
    nlp_create_qkv_heads_decode.cpp). With a `batch_offset` tensor and `slice_size`, user u reads input
    row batch_offset[0] + u and there are slice_size users. `overlap_qk_coregrid` only places K on
    other cores. num_kv_heads defaults to num_heads."""
    kv_heads = num_heads if num_kv_heads is None else num_kv_heads
    if input_tensor.dim() != 4 or input_tensor.shape[0] != 1 or input_tensor.shape[1] != 1:
        raise ValueError(f"nlp_create_qkv_heads_decode takes [1, 1, users, width], got {list(input_tensor.shape)}")
    width = input_tensor.shape[-1]
    if width % (num_heads + 2 * kv_heads):
        raise ValueError(f"width {width} is not (num_heads + 2 * num_kv_heads) * head_dim")
    head_dim = width // (num_heads + 2 * kv_heads)
    first, users = 0, input_tensor.shape[2]
    if (batch_offset is None) != (slice_size is None):
        raise NotImplementedError("nlp_create_qkv_heads_decode with only one of batch_offset and slice_size")
    if batch_offset is not None:
        first, users = int(batch_offset.reshape(-1)[0]), int(slice_size)
        if first + users > input_tensor.shape[2]:
            raise ValueError(f"nlp_create_qkv_heads_decode: users {first}..{first + users - 1} of "
                             f"{input_tensor.shape[2]}")
    rows = input_tensor[0, 0, first:first + users]
    q_end, k_end = num_heads * head_dim, (num_heads + kv_heads) * head_dim
    outputs = (_rows_to_heads(rows[:, :q_end], num_heads, head_dim)[None],
               _rows_to_heads(rows[:, q_end:k_end], kv_heads, head_dim)[None],
               _rows_to_heads(rows[:, k_end:], kv_heads, head_dim)[None])
    return _into(outputs, output_tensors)


def nlp_concat_heads_decode_reference(input_tensor, *, num_heads, memory_config=None, output_tensor=None,
                                      sub_core_grids=None):
    """ttnn.experimental.nlp_concat_heads_decode: heads [1, users, padded heads, head_dim] -> [1, 1, max(users,
    32), num_heads * head_dim]: row u is user u's first num_heads heads side by side (output core h reads
    row h of every user's tile: reader_tm_tile_layout_nlp_concat_heads_decode.cpp). The output always has
    32 rows (compute_output_specs: batch = max(batch, 32)); the device never writes rows users..31, whose
    contents are whatever that L1 held: here they are zeros, and a program must not read them."""
    import torch

    _, users, heads, head_dim = input_tensor.shape
    if heads < num_heads:
        raise ValueError(f"nlp_concat_heads_decode: {num_heads} heads asked of a tensor with {heads}")
    out = torch.zeros(1, 1, max(users, TILE), num_heads * head_dim, dtype=input_tensor.dtype)
    out[0, 0, :users] = input_tensor[0, :, :num_heads].reshape(users, num_heads * head_dim)
    return _into((out,), None if output_tensor is None else (output_tensor,))[0]


def nlp_create_qkv_heads_reference(input, input_kv=None, *, num_heads, num_kv_heads=None, transpose_k_heads=True,
                                   kv_tied=False, memory_config=None, output_tensors=None):
    """ttnn.experimental.nlp_create_qkv_heads (prefill): [B, 1, S, (H + 2 * KV) * head_dim] -> Q [B, H, S,
    head_dim], K [B, KV, head_dim, S] (K transposed unless transpose_k_heads=False, then [B, KV, S, head_dim]),
    V [B, KV, S, head_dim]; columns are Q's heads, then K's, then V's. With `input_kv`, Q comes from `input`
    ([B, 1, S, H * head_dim]) and K, V from input_kv. With kv_tied=True there is one K/V section and V is
    read from K's columns. num_kv_heads defaults to num_heads (the op's docstring)."""
    kv_heads = num_heads if num_kv_heads is None else num_kv_heads
    sections = 1 if kv_tied else 2
    if input_kv is None:
        head_dim = input.shape[-1] // (num_heads + sections * kv_heads)
        q_part, kv_part = input[..., : num_heads * head_dim], input[..., num_heads * head_dim:]
    else:
        head_dim = input.shape[-1] // num_heads
        q_part, kv_part = input, input_kv
    if kv_part.shape[-1] != sections * kv_heads * head_dim:
        raise ValueError(f"nlp_create_qkv_heads: K/V width {kv_part.shape[-1]} is not {sections} x {kv_heads} heads "
                         f"of {head_dim}")

    def heads(part, count):  # [B, 1, S, count * head_dim] -> [B, count, S, head_dim]
        batch, _, seq, _ = part.shape
        return part.reshape(batch, seq, count, head_dim).permute(0, 2, 1, 3).contiguous()

    k = heads(kv_part[..., : kv_heads * head_dim], kv_heads)
    v = k if kv_tied else heads(kv_part[..., kv_heads * head_dim:], kv_heads)
    if transpose_k_heads:
        k = k.transpose(-2, -1).contiguous()
    return _into((heads(q_part, num_heads), k, v.clone() if kv_tied else v), output_tensors)


def nlp_concat_heads_reference(input_tensor, *, memory_config=None):
    """ttnn.experimental.nlp_concat_heads (prefill): [B, H, S, head_dim] -> [B, 1, S, H * head_dim], heads
    side by side in order."""
    batch, heads, seq, head_dim = input_tensor.shape
    return input_tensor.permute(0, 2, 1, 3).reshape(batch, 1, seq, heads * head_dim).contiguous()


def _into(outputs, preallocated):
    """ttnn writes into `output_tensors` when a program passes them, and returns them."""
    if preallocated is None or all(t is None for t in preallocated):
        return outputs
    return tuple(value if target is None else target.copy_(value) for value, target in zip(outputs, preallocated))


# ---------------------------------------------------------------- rotary embedding


def _tiles(trans_mat):
    """trans_mat's 32x32 tiles, in order (a decode program shards one copy per user core)."""
    return trans_mat.reshape(-1, TILE, TILE).float()


def _rotate(x, tile):
    """x @ trans_mat per 32-column tile of head_dim, as the kernels' matmul_tiles(in, trans_mat, j, 0, j) do:
    each tile of 32 features is multiplied by the one 32x32 tile, so a pair never crosses a tile."""
    head_dim = x.shape[-1]
    if head_dim % TILE:
        raise ValueError(f"rotary_embedding_llama needs head_dim a multiple of {TILE}, got {head_dim}")
    blocks = x.reshape(*x.shape[:-1], head_dim // TILE, TILE)
    return (blocks @ tile).reshape(x.shape)


def _rope_decode(x, cos, sin, tiles, first_tile=0):
    """Decode RoPE on [1, users, heads, head_dim]: user u is rotated with row 0 of its own cos and sin
    ([1, users, rows, head_dim]: mul_bcast_rows broadcasts a tile's first row over the heads) and with its
    own trans_mat tile (tile first_tile + u, or the only tile there is)."""
    import torch

    users = x.shape[1]
    if 1 < tiles.shape[0] < first_tile + users:
        raise ValueError(f"rotary_embedding_llama: trans_mat has {tiles.shape[0]} tiles, one per core is needed "
                         f"(tiles {first_tile}..{first_tile + users - 1})")
    xf = x.float()
    out = torch.empty_like(xf)
    for u in range(users):
        tile = tiles[first_tile + u] if tiles.shape[0] > 1 else tiles[0]
        c, s = cos[0, u, :1].float(), sin[0, u, :1].float()
        out[0, u] = xf[0, u] * c + _rotate(xf[0, u], tile) * s
    return out.to(x.dtype)


def rotary_embedding_llama_reference(input_tensor, cos_cache, sin_cache, trans_mat, *, is_decode_mode=False,
                                     memory_config=None, compute_kernel_config=None):
    """ttnn.experimental.rotary_embedding_llama: out = x * cos + (x @ trans_mat) * sin, where x @ trans_mat
    multiplies each 32-feature tile of head_dim by the 32x32 trans_mat (the pair-swap matrix
    [[0, 1], [-1, 0]] on each feature pair makes this RoPE on interleaved pairs, with cos and sin repeated
    per pair). Kernels: rotary_embedding_llama.cpp (prefill), rotary_embedding_llama_sharded.cpp (decode).
    Decode (is_decode_mode=True): x [1, users, heads, head_dim], cos/sin [1, users, 1 (or 32), head_dim];
    user u takes row 0 of its cos/sin for every head. Prefill: x [B, heads, S, head_dim], cos/sin
    [1, 1, S, head_dim], position s takes row s. The output has the input's shape and dtype."""
    tiles = _tiles(trans_mat)
    if is_decode_mode:
        if cos_cache.shape[1] != input_tensor.shape[1]:
            raise ValueError(f"rotary_embedding_llama decode: cos has {cos_cache.shape[1]} users, "
                             f"the input {input_tensor.shape[1]}")
        return _rope_decode(input_tensor, cos_cache, sin_cache, tiles)
    if cos_cache.shape[-2] != input_tensor.shape[-2]:
        # ttnn rotates only the first cos rows' positions then; not modelled here
        raise NotImplementedError("rotary_embedding_llama prefill with a cos table shorter than the sequence")
    x = input_tensor.float()
    out = x * cos_cache.float() + _rotate(x, tiles[0]) * sin_cache.float()
    return out.to(input_tensor.dtype)


def rotary_embedding_llama_fused_qk_reference(q_input_tensor, k_input_tensor, cos_cache, sin_cache, trans_mat, *,
                                              compute_kernel_config=None):
    """ttnn.experimental.rotary_embedding_llama_fused_qk: decode RoPE of Q [1, users, heads, head_dim] and
    K [1, users, kv heads, head_dim] in one op; cos, sin and trans_mat hold 2 * users rows, one per core
    that holds a Q or K user, in the order of their shard grid. Each core rotates with the cos/sin row on
    itself, so with Q's cores first (as nlp_create_qkv_heads_decode(overlap_qk_coregrid=False) places
    them: K's grid starts at core `users`), Q user u takes row u and K user u takes row users + u. Only the
    TILE-layout path is modelled (golden tensors have no layout)."""
    users = q_input_tensor.shape[1]
    if cos_cache.shape[1] != 2 * users or k_input_tensor.shape[1] != users:
        raise ValueError(f"rotary_embedding_llama_fused_qk: cos has {cos_cache.shape[1]} rows for "
                         f"{users} Q users and {k_input_tensor.shape[1]} K users")
    tiles = _tiles(trans_mat)
    q = _rope_decode(q_input_tensor, cos_cache[:, :users], sin_cache[:, :users], tiles)
    k = _rope_decode(k_input_tensor, cos_cache[:, users:], sin_cache[:, users:], tiles, first_tile=users)
    return q, k


# ---------------------------------------------------------------- KV cache


def paged_update_cache_reference(cache, input_tensor, *args, update_idxs_tensor=None, update_idxs=None,
                                 page_table=None, batch_offset=0, **_):
    """ttnn.experimental.paged_update_cache, unpaged (page_table None). Its documentation: "cache_tensor
    of shape [B, nkv, kv_len, head_dim] and input_tensor of shape [1, B, nkv (padded to 32), head_dim]
    ... update_idxs will specify for each batch element which token to update in the cache". An
    index of -1 skips that batch element: ttnn documents that convention for its decode attention
    (scaled_dot_product_attention_decode: "If a position is given as (-1), compute for the
    corresponding index in the batch is skipped"); for this op it is an assumption not checked on
    hardware, and the programs rely on it only when a decode step has fewer users than the cache.
    For every user b with index p >= 0: cache[b, :, p, :] = input[0, b, :nkv, :]. Updates the
    cache in place and returns it. A block-float cache (bfloat8_b, --kv-dtype) on a device rounds the rows
    it is given to its format: the golden runtime rounds them before this runs (golden.py CACHE_WRITES)."""
    if page_table is not None:
        raise NotImplementedError("paged_update_cache with a page table has no reference here")
    indices = update_idxs_tensor if update_idxs_tensor is not None else update_idxs
    indices = [int(i) for i in (indices.reshape(-1).tolist() if hasattr(indices, "reshape") else indices)]
    kv_heads = cache.shape[1]
    for user in range(cache.shape[0]):
        position = indices[user]
        if position >= 0:
            cache[user, :, position, :] = input_tensor[0, batch_offset + user, :kv_heads, :].to(cache.dtype)
    return cache


def paged_fused_update_cache_reference(cache_tensor1, input_tensor1, cache_tensor2, input_tensor2, *, update_idxs=(),
                                       update_idxs_tensor=None, share_cache=None, page_table=None, batch_offset=0,
                                       compute_kernel_config=None, mesh_coords=None):
    """ttnn.experimental.paged_fused_update_cache: paged_update_cache of cache_tensor1 with input_tensor1
    and of cache_tensor2 with input_tensor2 (K and V of one decode step), both at the same update indices,
    in one op; returns both caches (the mock's op returns the pair)."""
    if mesh_coords is not None:
        raise NotImplementedError("paged_fused_update_cache on a subset of mesh coordinates")
    indices = dict(update_idxs=list(update_idxs), update_idxs_tensor=update_idxs_tensor, page_table=page_table,
                   batch_offset=batch_offset)
    return (paged_update_cache_reference(cache_tensor1, input_tensor1, **indices),
            paged_update_cache_reference(cache_tensor2, input_tensor2, **indices))


# The golden runtime (golden.py) runs these in place of ttnn's op, by the op's name under ttnn.
DECODE_REFERENCES = {
    "experimental.nlp_create_qkv_heads_decode": nlp_create_qkv_heads_decode_reference,
    "experimental.nlp_concat_heads_decode": nlp_concat_heads_decode_reference,
    "experimental.nlp_create_qkv_heads": nlp_create_qkv_heads_reference,
    "experimental.nlp_concat_heads": nlp_concat_heads_reference,
    "experimental.rotary_embedding_llama": rotary_embedding_llama_reference,
    "experimental.rotary_embedding_llama_fused_qk": rotary_embedding_llama_fused_qk_reference,
    "experimental.paged_update_cache": paged_update_cache_reference,
    "experimental.paged_fused_update_cache": paged_fused_update_cache_reference,
}
