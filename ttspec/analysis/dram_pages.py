"""What ttnn's allocator books for the weights a program stores interleaved over a chip's DRAM banks.

An interleaved tensor's pages (a TILE tensor's 32x32 tiles; a ROW_MAJOR tensor's rows, each aligned to the
DRAM alignment) go round-robin over the chip's banks, and the allocator books the same range in every bank:
`banks * ceil(pages / banks)` pages, whatever the tensor's own page count. A big matrix loses at most
banks - 1 pages to this; a small one (a bias or norm vector of one row of tiles, a tensor-parallel slice of a
tiny model's matrix) is booked at up to `banks` times its own bytes. Measured on ttnn 0.81.1's mock n150
(12 banks): a [1, 96] bf16 TILE bias (3 tiles) books 24,576 B; a [32, 416] bfloat8_b matrix (13 tiles) 26,112 B;
a [256, 32] bf16 ROW_MAJOR table 16,896 B (22 rows of 64 B per bank); a [7, 10] one 384 B (rows aligned to 32 B).

The memory model (memory.py) counts each parameter at its own tiles (the bytes the cost model streams) and adds
these rules' rounding per tensor the program uploads (memory.bank_rounding): a fused QKV's q, k and v weights (and their
biases) are one tensor, every other parameter its own; DRAM width-sharded matrices are booked by their shards
(memory.dram_sharded_bytes) and take no rounding here.
"""

from __future__ import annotations

from ..targets import TILE
from ..weight_formats import tensor_bytes

# DRAM alignment of a page (tt-metal's HAL: 32 B on Wormhole, measured above; 64 B on Blackhole)
DRAM_ALIGNMENT = {"wormhole_b0": 32, "blackhole": 64}


def interleaved_bytes(pages: int, page_bytes: int, banks: int) -> int:
    """Bytes the allocator books for `pages` pages of `page_bytes` interleaved over `banks` banks."""
    return banks * -(-pages // banks) * page_bytes


def booked_bytes(shape: tuple[int, ...], table: bool, dtype: str, banks: int, alignment: int) -> int:
    """Bytes booked for one interleaved tensor of chip shape `shape`: a lookup table ROW_MAJOR bf16 (a page per
    row), anything else TILE in `dtype` (bf16 for a vector)."""
    if table:
        rows = 1
        for d in shape[:-1]:
            rows *= d
        return interleaved_bytes(rows, -(-2 * shape[-1] // alignment) * alignment, banks)
    rows, cols = (1, shape[0]) if len(shape) == 1 else shape[-2:]
    pages = -(-rows // TILE) * -(-cols // TILE)
    for d in shape[:-2]:
        pages *= d
    return interleaved_bytes(pages, tensor_bytes(TILE * TILE, dtype), banks)
