"""Attention pieces beside ttnn's own: splitting heads, softcapped attention (Gemma 2), which
ttnn's scaled_dot_product_attention cannot express, and non-causal attention (encoders), whose
keys past the sequence's real length (its padding to whole tiles) are masked."""

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


def softcapped_attention(q, k, v, device, scale, softcap, window=None, causal=True, mask=None):
    """Attention with logit softcapping (Gemma 2), which ttnn's scaled_dot_product_attention
    lacks, composed from golden-backed ops: logits = softcap * tanh(q k^T * scale / softcap), then
    the causal (and sliding-window) mask is added, softmax, times v. KV heads are repeated for
    grouped queries (GQA, MQA). Non-causal (`causal=False`): `mask` is added instead (the padding's,
    or None)."""
    groups = q.shape[1] // k.shape[1]
    if groups > 1:
        k = ttnn.repeat_interleave(k, groups, dim=1)
        v = ttnn.repeat_interleave(v, groups, dim=1)
    logits = ttnn.matmul(q, k, transpose_b=True)
    logits = ttnn.multiply(ttnn.tanh(ttnn.multiply(logits, scale / softcap)), softcap)
    if causal:
        mask = attention_mask(q.shape[-2], window, device)
    if mask is not None:
        logits = ttnn.add(logits, mask)
    return ttnn.matmul(ttnn.softmax(logits, dim=-1), v)


def chunked_sdpa(q, k, v, programs, compute_kernel_config, is_causal, scale, **options):
    """ttnn's SDPA over a prompt, in Q and K chunks chosen by its length: `programs` holds (from length, chunk,
    SDPAProgramConfig) in the rule's order; the first whose length the sequence reaches and whose chunk divides
    it runs (the last where none does: ttnn pads a partial chunk)."""
    seq = q.shape[-2]
    program = next((p for least, chunk, p in programs if seq >= least and seq % chunk == 0), programs[-1][2])
    return ttnn.transformer.scaled_dot_product_attention(q, k, v, is_causal=is_causal, scale=scale,
                                                         program_config=program,
                                                         compute_kernel_config=compute_kernel_config, **options)


def bidirectional_attention(q, k, v, state, device, scale, softcap=None, programs=None, compute_kernel_config=None):
    """Non-causal attention (encoder blocks): every query reads every key of the sequence but the
    padding that rounds it up to whole tiles (keys past state.length, the real positions, are masked,
    so the padding reaches no real position). ttnn's SDPA (chunked_sdpa, with `programs` and its kernel) with
    is_causal=False and the mask as its attn_mask (which excludes is_causal); the softcapped composition where
    softcap is set."""
    mask = padding_mask(q.shape[-2], state, device)
    if softcap is not None:
        return softcapped_attention(q, k, v, device, scale, softcap, causal=False, mask=mask)
    masked = {} if mask is None else {"attn_mask": mask}
    return chunked_sdpa(q, k, v, programs, compute_kernel_config, is_causal=False, scale=scale, **masked)


def padding_mask(seq, state, device):
    """[1, 1, seq, seq]: -inf on the keys past state.length (the padding to whole tiles), 0 elsewhere; None
    when the sequence fills its tiles. Made once per call of the model, for all its layers (state.padding_mask,
    which the call drops at its end)."""
    length = state.length
    if length is None or length >= seq:
        return None
    if state.padding_mask is None:
        mask = torch.zeros(seq, seq)
        mask[:, length:] = float("-inf")
        state.padding_mask = ttnn.from_torch(mask[None, None], dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT,
                                             device=device, mesh_mapper=shard(device))
    return state.padding_mask


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
