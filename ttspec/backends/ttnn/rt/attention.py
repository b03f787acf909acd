"""Attention pieces beside ttnn's own: splitting heads, and softcapped attention (Gemma 2), which
ttnn's scaled_dot_product_attention cannot express."""

import torch
import ttnn

from .mesh import shard


def split_heads(x, heads):
    """[batch, seq, heads * head_dim] -> [batch, heads, seq, head_dim]"""
    batch, seq, width = x.shape
    return ttnn.permute(ttnn.reshape(x, (batch, seq, heads, width // heads)), (0, 2, 1, 3))


def concat_heads_decode(heads, num_heads, sharded=False):
    """Heads [1, users, heads, head_dim] held one user per core -> [1, users, heads * head_dim] in L1
    (nlp_concat_heads_decode writes 32 rows, [1, 1, 32, features] width-sharded, one head per core; the rows
    past the users are cut off). `sharded`: left width-sharded, as a DRAM-sharded output projection reads it."""
    users = heads.shape[1]
    y = ttnn.experimental.nlp_concat_heads_decode(heads, num_heads=num_heads)
    if not sharded:
        y = ttnn.to_memory_config(y, ttnn.L1_MEMORY_CONFIG)
    y = ttnn.reshape(y, (1, y.shape[2], y.shape[3]))
    return y if users == y.shape[1] else ttnn.slice(y, (0, 0, 0), (1, users, y.shape[2]))


def softcapped_attention(q, k, v, device, scale, softcap, window=None):
    """Causal attention with logit softcapping (Gemma 2), which ttnn's scaled_dot_product_attention
    lacks, composed from golden-backed ops: logits = softcap * tanh(q k^T * scale / softcap), then
    the causal (and sliding-window) mask is added, softmax, times v. KV heads are repeated for
    grouped queries (GQA, MQA)."""
    groups = q.shape[1] // k.shape[1]
    if groups > 1:
        k = ttnn.repeat_interleave(k, groups, dim=1)
        v = ttnn.repeat_interleave(v, groups, dim=1)
    logits = ttnn.matmul(q, k, transpose_b=True)
    logits = ttnn.multiply(ttnn.tanh(ttnn.multiply(logits, scale / softcap)), softcap)
    logits = ttnn.add(logits, attention_mask(q.shape[-2], window, device))
    return ttnn.matmul(ttnn.softmax(logits, dim=-1), v)


def attention_mask(seq, window, device):
    """[1, 1, seq, seq]: 0 where query i may read key j (j <= i, and i - window < j with a window,
    HF's sliding_window), -inf elsewhere; added to the attention logits."""
    i = torch.arange(seq)[:, None]
    j = torch.arange(seq)[None, :]
    allowed = j <= i
    if window is not None:
        allowed &= j > i - window
    mask = torch.zeros(seq, seq).masked_fill(~allowed, float("-inf"))[None, None]
    return ttnn.from_torch(mask, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device,
                           mesh_mapper=shard(device))
