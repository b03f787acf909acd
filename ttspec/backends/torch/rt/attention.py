"""Attention of the PyTorch programs: heads split and merged, scaled dot-product attention (GQA,
sliding windows, softcapping) and each attention's KV cache."""

import torch
import torch.nn.functional as F
from torch import nn


def split_heads(x, heads):
    """[batch, seq, heads * head_dim] -> [batch, heads, seq, head_dim]"""
    b, s, _ = x.shape
    return x.view(b, s, heads, -1).transpose(1, 2)


def merge_heads(x):
    """[batch, heads, seq, head_dim] -> [batch, seq, heads * head_dim]"""
    return x.transpose(1, 2).flatten(2)


def attend(q, k, v, pos=None, cache=None, causal=True, scale=None, window=None, softcap=None):
    """Scaled dot-product attention of q [batch, heads, seq, head_dim] over k and v, which may have fewer
    heads (GQA, MQA).

    With a KV cache (a prefill or decode step), k and v are first written into it at their positions;
    a decode step's queries then read the cache up to their own positions. window: a query at position
    p sees keys at p - window < j <= p (HF's sliding_window). softcap: the scaled logits become
    softcap * tanh(logits / softcap) before the mask and the softmax (Gemma 2).
    """
    mask = None
    if pos is not None and pos.rows is not None:
        k, v = cache.update(k, v, pos)
        if pos.cached:
            mask = pos.mask(window)
    if mask is None and window is None and softcap is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale,
                                              enable_gqa=q.shape[1] != k.shape[1])
    if mask is None:
        i = torch.arange(q.shape[-2], device=q.device)[:, None]
        j = torch.arange(k.shape[-2], device=q.device)[None, :]
        mask = j <= i if causal else torch.ones_like(i == j)
        if window is not None:
            mask = mask & (j > i - window)
    groups = q.shape[1] // k.shape[1]
    if softcap is None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=groups != 1)
    k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    logits = q @ k.transpose(-1, -2) * (q.shape[-1] ** -0.5 if scale is None else scale)
    logits = softcap * torch.tanh(logits / softcap)
    return logits.masked_fill(~mask, float("-inf")).softmax(-1) @ v


class KVCache(nn.Module):
    """One attention's keys and values for every user and position: [batch, kv_heads, context, head_dim]."""

    def __init__(self, kv_heads, head_dim, v_dim=None):
        super().__init__()
        self.kv_heads, self.head_dim, self.v_dim = kv_heads, head_dim, v_dim or head_dim
        self.k = self.v = None  # allocated by the model's allocate_cache

    def allocate(self, batch, context, dtype, device):
        self.k = torch.zeros(batch, self.kv_heads, context, self.head_dim, dtype=dtype, device=device)
        self.v = torch.zeros(batch, self.kv_heads, context, self.v_dim, dtype=dtype, device=device)

    def update(self, k, v, pos):
        """Write k and v [batch, kv_heads, seq, head_dim] at their users' rows and positions; return the
        keys and values the queries read: these (a prefill from position 0) or the cache (decode)."""
        if self.k is None:
            raise RuntimeError("no KV cache: call allocate_cache(batch, context) first")
        users = torch.arange(k.shape[0], device=k.device)[:, None]
        cache_k, cache_v = self.k[pos.rows], self.v[pos.rows]
        cache_k[users, :, pos.ids] = k.transpose(1, 2)
        cache_v[users, :, pos.ids] = v.transpose(1, 2)
        if not pos.cached:
            return k, v
        return cache_k[:, :, : pos.end], cache_v[:, :, : pos.end]
