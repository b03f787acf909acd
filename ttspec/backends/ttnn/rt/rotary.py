"""Positions on the device: rotary embedding (RoPE, with linear or Llama 3 scaling), fixed
sinusoidal positions, and position ids for learned position tables."""

import math

import torch
import ttnn

from ...common.rt.rope import rope_inverse_frequencies
from .header import TILE
from .mesh import shard, users_sharded


class Rotary:
    """Rotary position embedding on [batch, heads, seq, head_dim] from golden-backed ops:
    x * cos + (x @ R) * sin, where R rotates feature pairs ("half": i with i + rot/2, as HF
    does; "interleaved": 2i with 2i + 1) and leaves the non-rotary tail of each head alone.
    Tables are computed on the host once per sequence length (kept unless made while a decode trace is
    held: RunState.lasting); in a decode step, at each user's own position (the rows are users there).
    """

    def __init__(self, state, head_dim, theta, rotary_dims=None, style="half", scaling="none", factor=1.0,
                 low_freq_factor=1.0, high_freq_factor=4.0, original_max_positions=8192):
        self.state = state
        self.device = state.device
        self.head_dim = head_dim
        self.rot = rotary_dims or head_dim
        self.style = style
        inv_freq = rope_inverse_frequencies(self.rot, theta, scaling, factor, low_freq_factor, high_freq_factor,
                                            original_max_positions)
        self.inv_freq = inv_freq
        self.matrix = self._upload(self._rotation())
        self.tables = {}

    def _rotation(self):
        r = torch.zeros(self.head_dim, self.head_dim)
        half = self.rot // 2
        for i in range(half):
            if self.style == "half":  # rotate_half(x)[i] = -x[i + half], [i + half] = x[i]
                r[i + half, i], r[i, i + half] = -1.0, 1.0
            else:  # interleaved: out[2i] = -x[2i + 1], out[2i + 1] = x[2i]
                r[2 * i + 1, 2 * i], r[2 * i, 2 * i + 1] = -1.0, 1.0
        return r

    def _upload(self, tensor):
        return ttnn.from_torch(tensor, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=self.device,
                               mesh_mapper=shard(self.device))

    def _table(self, positions, which):
        """cos or sin at `positions` (host tensor) as [1, 1, len(positions), head_dim]."""
        freqs = torch.outer(positions.float(), self.inv_freq)
        if self.style == "half":
            freqs = torch.cat([freqs, freqs], dim=-1)
        else:
            freqs = freqs.repeat_interleave(2, dim=-1)
        table = torch.ones if which == "cos" else torch.zeros
        values = table(len(positions), self.head_dim)
        values[:, : self.rot] = freqs.cos() if which == "cos" else freqs.sin()
        return values[None, None]

    def _cos_sin(self, seq):
        state = self.state
        if state.decoding:  # each user's own position, uploaded once a step for every layer with these tables
            def make(which):
                return lambda: self._table(state.row_positions(seq), which)

            return state.per_step(("rope cos/sin", self.key, seq), lambda: tuple(
                state.step_input((self.key, which, seq), make(which)) for which in ("cos", "sin")))
        return state.lasting(self.tables, seq, lambda: tuple(self._upload(self._table(torch.arange(seq), which))
                                                             for which in ("cos", "sin")))

    def __call__(self, x):
        cos, sin = self._cos_sin(x.shape[-2])
        return ttnn.add(ttnn.mul(x, cos), ttnn.mul(ttnn.matmul(x, self.matrix), sin))

    def decode(self, x):
        """Decode RoPE of heads [1, users, heads, head_dim] held one user per core (nlp_create_qkv_heads_decode's)
        on adjacent pairs: rotary_embedding_llama with each user's cos and sin row, gathered on the device from
        a table of every position once per step for all layers, and the pair-swap matrix."""
        cos, sin, swap = self.state.per_step(("rope", self.key), self._decode_inputs)
        return ttnn.experimental.rotary_embedding_llama(x, cos, sin, swap, is_decode_mode=True)

    @property
    def key(self):
        """What makes two helpers' tables equal (every layer's attention has its own helper)."""
        return self.head_dim, self.rot, self.style, tuple(self.inv_freq.tolist())

    def _decode_inputs(self):
        state = self.state
        users, context = state.batch, state.context
        tables = state.keep(("rope tables", self.key, context), lambda: tuple(
            ttnn.from_torch(self._table(torch.arange(context), which)[0, 0], dtype=ttnn.bfloat16,
                            layout=ttnn.ROW_MAJOR_LAYOUT, device=self.device, mesh_mapper=shard(self.device))
            for which in ("cos", "sin")))  # row-major: the gather needs no untilize of the whole table
        swap = state.keep(("rope pair swap", users), lambda: self._pair_swap(users))
        ids = state.step_input("rope positions", lambda: state.row_positions(users)[None], ttnn.uint32,
                               ttnn.ROW_MAJOR_LAYOUT)
        per_user = users_sharded(self.device, users, self.head_dim)
        rows = (ttnn.reshape(ttnn.embedding(ids, table, layout=ttnn.TILE_LAYOUT), (1, users, 1, self.head_dim))
                for table in tables)  # [1, users, 1, head_dim]: row 0 of each user's tile
        return (*(ttnn.to_memory_config(row, per_user) for row in rows), swap)

    def _pair_swap(self, users):
        """The 32x32 matrix taking each adjacent pair (a, b) to (-b, a), one copy per user core."""
        swap = torch.zeros(TILE, TILE)
        for i in range(TILE // 2):
            swap[2 * i, 2 * i + 1], swap[2 * i + 1, 2 * i] = 1.0, -1.0
        return ttnn.from_torch(swap.repeat(users, 1)[None, None], dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT,
                               device=self.device, memory_config=users_sharded(self.device, users, TILE),
                               mesh_mapper=shard(self.device))


def sinusoidal_positions(x, dim, state, base=10000.0):
    """Fixed sin/cos positions for the rows of x (Vaswani et al. 2017; the positions are
    RunState.row_positions) as a [1, rows, dim] device tensor: sin in the even features, cos in the
    odd ones; computed on the host."""
    rows = x.shape[-2]

    def table():
        position = state.row_positions(rows).float()[:, None]
        div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(base) / dim))
        values = torch.zeros(1, rows, dim)
        values[0, :, 0::2] = torch.sin(position * div)
        values[0, :, 1::2] = torch.cos(position * div)
        return values

    return state.step_input(("sinusoidal", rows, dim), table)


def position_ids(x, table, state):
    """The position of each row of x [batch, rows, dim] (see RunState.row_positions) as a [1, rows]
    uint32 device tensor; tile padding past the table's last row reuses that row (padded positions
    are cut off)."""
    rows, last = x.shape[-2], table.shape[0] - 1
    return state.step_input(("position_ids", rows), lambda: state.row_positions(rows).clamp(max=last)[None],
                            ttnn.uint32, ttnn.ROW_MAJOR_LAYOUT)
