"""Each attention's KV cache on the device, and the decode step of attention that reads it."""

import torch
import ttnn

from .header import KV_CACHE_DTYPE
from .mesh import users_sharded


class KVCache:
    """One attention's K and V caches (on each device of a mesh, for its own KV heads): [batch, kv_heads,
    context, head_dim], KV_CACHE_DTYPE (bf16, or bfloat8_b: --kv-dtype), TILE."""

    def __init__(self, state, kv_heads, head_dim):
        self.state = state
        self.kv_heads, self.head_dim = kv_heads, head_dim
        self.k = self.v = None
        state.caches.append(self)

    def allocate(self, batch, context):
        shape = ttnn.Shape([batch, self.kv_heads, context, self.head_dim])
        self.k, self.v = (ttnn.allocate_tensor_on_device(shape, KV_CACHE_DTYPE, ttnn.TILE_LAYOUT, self.state.device,
                                                         ttnn.DRAM_MEMORY_CONFIG) for _ in range(2))

    def prefill(self, k, v, y):
        """`y`, the prefill's attention output; a prefill(tokens, user) first writes its K and V
        [1, kv_heads, seq, head_dim] into the user's cache rows 0..seq-1."""
        if self.state.mode == "prefill":
            for cache, new in ((self.k, k), (self.v, v)):
                if KV_CACHE_DTYPE != ttnn.bfloat16:  # fill_cache takes rows in the cache's format (tt_transformers too)
                    new = ttnn.typecast(new, KV_CACHE_DTYPE)
                ttnn.fill_cache(cache, new, self.state.user)
        return y

    def update(self, k, v):
        """Write each user's new K and V ([1, kv_heads, users, head_dim]) at the user's position."""
        positions = self.state.position_tensor()
        for cache, new in ((self.k, k), (self.v, v)):
            new = ttnn.permute(new, (0, 2, 1, 3))  # [1, users, kv_heads, head_dim]: one user per core
            new = ttnn.to_memory_config(new, users_sharded(self.state.device, new.shape[1], self.head_dim))
            ttnn.experimental.paged_update_cache(cache, new, update_idxs_tensor=positions)
        return positions

    def decode(self, q, k, v, *, scale, sliding_window_size=None):
        """One decode step of attention: q, k, v [1, heads, users, head_dim] -> [1, heads, users, head_dim]."""
        positions = self.update(k, v)
        q = ttnn.permute(q, (0, 2, 1, 3))  # [1, users, heads, head_dim], as scaled_dot_product_attention_decode reads
        y = ttnn.transformer.scaled_dot_product_attention_decode(
            q, self.k, self.v, cur_pos_tensor=positions, scale=scale, sliding_window_size=sliding_window_size
        )
        return ttnn.permute(y, (0, 2, 1, 3))

    def decode_heads(self, q, k, v, *, scale, program_config, compute_kernel_config, sliding_window_size=None):
        """One decode step of attention on heads held one user per core ([1, users, heads, head_dim], as
        nlp_create_qkv_heads_decode and rotary_embedding_llama give them): K and V written at each user's
        position, SDPA decode, its output resharded one user per core for nlp_concat_heads_decode."""
        positions = self.state.position_tensor()
        ttnn.experimental.paged_update_cache(self.k, k, update_idxs_tensor=positions)
        ttnn.experimental.paged_update_cache(self.v, v, update_idxs_tensor=positions)
        y = ttnn.transformer.scaled_dot_product_attention_decode(
            q, self.k, self.v, cur_pos_tensor=positions, scale=scale, sliding_window_size=sliding_window_size,
            program_config=program_config, compute_kernel_config=compute_kernel_config)
        return ttnn.to_memory_config(y, users_sharded(self.state.device, y.shape[1], self.head_dim))

    def decode_softcapped(self, q, k, v, *, scale, softcap, window=None):
        """A decode step of softcapped attention (which the decode SDPA cannot express), composed from
        golden-backed ops: each user's [heads, 1, head_dim] query against its whole cache, logits
        softcapped, positions after the user's (or before its window) masked, softmax, times V."""
        self.update(k, v)
        keys, values = self.k, self.v
        groups = q.shape[1] // self.kv_heads
        if groups > 1:
            keys = ttnn.repeat_interleave(keys, groups, dim=1)
            values = ttnn.repeat_interleave(values, groups, dim=1)
        q = ttnn.permute(q, (2, 1, 0, 3))  # [users, heads, 1, head_dim]
        logits = ttnn.matmul(q, keys, transpose_b=True)  # [users, heads, 1, context]
        logits = ttnn.multiply(ttnn.tanh(ttnn.multiply(logits, scale / softcap)), softcap)
        mask = self.state.step_input(("decode_mask", window), lambda: decode_mask(self.state, window))
        y = ttnn.matmul(ttnn.softmax(ttnn.add(logits, mask), dim=-1), values)  # [users, heads, 1, head_dim]
        return ttnn.permute(y, (2, 1, 0, 3))


def decode_mask(state, window):
    """[users, 1, 1, context]: 0 where user b may read position j (j <= its position, and within the
    window), -inf elsewhere."""
    at = state.row_positions(state.batch)[:, None]
    j = torch.arange(state.context)[None, :]
    allowed = j <= at
    if window is not None:
        allowed &= j > at - window
    return torch.zeros(state.batch, state.context).masked_fill(~allowed, float("-inf"))[:, None, None, :]
