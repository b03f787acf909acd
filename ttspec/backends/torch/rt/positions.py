"""Where the tokens of a forward pass sit, and the position embeddings computed from that: rotary
(RoPE, with linear or Llama 3 scaling) and fixed sinusoidal positions."""

import math

import torch
from torch import nn

from ...common.rt.rope import rope_inverse_frequencies


class Positions:
    """Where the tokens of one forward pass sit: ids [batch, seq], the position of each token.

    rows: the users (rows of every KV cache) the batch belongs to, a slice; cached: the queries read
    the cache (a decode step) rather than only this pass's keys (a prefill from position 0).
    """

    def __init__(self, ids, rows=None, cached=False):
        self.ids, self.rows, self.cached = ids, rows, cached
        self.end = int(ids.max()) + 1  # no query reads a cached position past this
        self.masks, self.tables = {}, {}  # computed once per pass: masks by window, rotary tables by config

    def mask(self, window=None):
        """Which cached keys j each query at position p reads: j <= p, and j > p - window with a window."""
        if window not in self.masks:
            p = self.ids[:, None, :, None]  # [batch, 1 (heads), seq, 1 (keys)]
            j = torch.arange(self.end, device=p.device)
            self.masks[window] = (j <= p) & (j > p - window) if window is not None else j <= p
        return self.masks[window]


def position_ids(x, pos):
    """The positions of the tokens of x [..., seq, features]: pos.ids, or 0..seq-1 without pos."""
    return torch.arange(x.shape[-2], device=x.device) if pos is None else pos.ids

def sinusoidal_positions(x, pos=None, base=10000.0):
    """Fixed sin/cos positions for x [..., seq, dim] (Vaswani et al. 2017) at its tokens' positions:
    [seq, dim], or [batch, seq, dim] at pos.ids."""
    dim = x.shape[-1]
    position = position_ids(x, pos).float()[..., None]
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device=x.device) * (-math.log(base) / dim))
    table = torch.zeros(*position.shape[:-1], dim, device=x.device)
    table[..., 0::2] = torch.sin(position * div)
    table[..., 1::2] = torch.cos(position * div)
    return table.to(x.dtype)


class Rotary(nn.Module):
    """Rotary position embedding on [batch, heads, seq, head_dim].

    The first `rotary_dims` features of each head rotate (partial rotary); "half" pairs
    feature i with i + rot/2 (HF, GPT-NeoX), "interleaved" pairs 2i with 2i+1 (GPT-J, Meta).
    "llama3" scaling stretches the low frequencies as Llama 3.1 does.
    """

    def __init__(self, head_dim, theta, rotary_dims=None, style="half", scaling="none", factor=1.0,
                 low_freq_factor=1.0, high_freq_factor=4.0, original_max_positions=8192):
        super().__init__()
        self.rot = rotary_dims or head_dim
        self.style = style
        inv_freq = rope_inverse_frequencies(self.rot, theta, scaling, factor, low_freq_factor, high_freq_factor,
                                            original_max_positions)
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        # what tells helpers of one config apart (Positions keeps one table per step for each)
        self.settings = (theta, self.rot, style, scaling, factor, low_freq_factor, high_freq_factor,
                         original_max_positions)

    def forward(self, x, pos=None):
        """x rotated at its tokens' positions: 0..seq-1, or pos.ids [batch, seq] (prefill, decode)."""
        if pos is None:
            cos, sin = self.cos_sin(position_ids(x, pos), x.dtype)
        else:  # one table per step for every layer's helper of this config
            key = (self.settings, x.dtype)
            if key not in pos.tables:
                pos.tables[key] = self.cos_sin(pos.ids, x.dtype)
            cos, sin = pos.tables[key]
        rot, rest = x[..., : self.rot], x[..., self.rot :]
        if self.style == "half":
            x1, x2 = rot.chunk(2, dim=-1)
            rot = rot * cos + torch.cat([-x2, x1], dim=-1) * sin
        else:
            x1, x2 = rot[..., 0::2], rot[..., 1::2]
            rot = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)
        return torch.cat([rot, rest], dim=-1)

    def cos_sin(self, positions, dtype):
        """cos and sin of each position's angles: [seq, ...] for positions [seq], [batch, 1, seq, ...] (over
        the heads) for [batch, seq]; "half" repeats them for both halves."""
        freqs = positions.float()[..., None] * self.inv_freq.float()
        if freqs.dim() == 3:
            freqs = freqs[:, None]
        if self.style == "half":
            freqs = torch.cat([freqs, freqs], dim=-1)
        return freqs.cos().to(dtype), freqs.sin().to(dtype)
