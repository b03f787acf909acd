"""What ttnn's allocator books for the weights a program stores interleaved over a chip's DRAM banks.

An interleaved tensor's pages (a TILE tensor's 32x32 tiles; a ROW_MAJOR tensor's rows, each aligned to the
DRAM alignment) go round-robin over the chip's banks, and the allocator books the same range in every bank:
`banks * ceil(pages / banks)` pages, whatever the tensor's own page count. A big matrix loses at most
banks - 1 pages to this; a small one (a bias or norm vector of one row of tiles, a tensor-parallel slice of a
tiny model's matrix) is booked at up to `banks` times its own bytes. Measured on ttnn 0.81.1's mock n150
(12 banks): a [1, 96] bf16 TILE bias (3 tiles) books 24,576 B; a [32, 416] bfloat8_b matrix (13 tiles) 26,112 B;
a [256, 32] bf16 ROW_MAJOR table 16,896 B (22 rows of 64 B per bank); a [7, 10] one 384 B (rows aligned to 32 B).

The memory model (memory.py) counts each parameter at its own tiles (the bytes the cost model streams); this
module adds the allocator's rounding per tensor the program uploads: a fused QKV's q, k and v weights (and their
biases) are one tensor, every other parameter its own; DRAM width-sharded matrices are booked by their shards
(memory.dram_sharded_bytes) and take no rounding here.
"""

from __future__ import annotations

from ..ir.graph import Graph, Model, layer_variants
from ..ir.sharding import ONE_CHIP, ShardPlan
from ..ops.linear import fused_qkv
from ..ops.queries import lookup_tables, matrix_roles
from ..targets import TILE, Target, core_grids
from ..weight_formats import WeightFormats, tensor_bytes

# DRAM alignment of a page (tt-metal's HAL: 32 B on Wormhole, measured above; 64 B on Blackhole)
DRAM_ALIGNMENT = {"wormhole_b0": 32, "blackhole": 64}


def interleaved_bytes(pages: int, page_bytes: int, banks: int) -> int:
    """Bytes the allocator books for `pages` pages of `page_bytes` interleaved over `banks` banks."""
    return banks * -(-pages // banks) * page_bytes


def booked_bytes(shape: tuple[int, ...], table: bool, dtype: str, banks: int, alignment: int) -> int:
    """Bytes booked for one interleaved tensor of chip shape `shape`: a lookup table ROW_MAJOR bf16 (a page per
    row), anything else TILE in `dtype` (bf16 for a vector)."""
    from .memory import tiles

    if table:
        rows = 1
        for d in shape[:-1]:
            rows *= d
        return interleaved_bytes(rows, -(-2 * shape[-1] // alignment) * alignment, banks)
    return interleaved_bytes(tiles(shape) // (TILE * TILE), tensor_bytes(TILE * TILE, dtype), banks)


def _fused_groups(graph: Graph, prefix: str, out: dict[str, dict[str, str]]) -> None:
    """out[prefix][param name] = the name of the tensor it is uploaded in (fused QKV parts: one per weight/bias)."""
    groups = out.setdefault(prefix, {})
    for node in graph.topo():
        fused = fused_qkv(node)
        for part in fused.parts if fused else ():
            for which, name in part.params:
                groups[name] = f"{node.module}.{which}"
    for node in graph.repeats():
        for body, _ in layer_variants(node):
            _fused_groups(body, f"{prefix}{node.module}.*.", out)


def bank_rounding(model: Model, lowered: Model, formats: WeightFormats, target: Target, plan: ShardPlan = ONE_CHIP,
                  sharded: tuple = ()) -> dict[str, int]:
    """Bytes by parameter kind the allocator books for the program's interleaved weights beyond their tiles
    (the module doc); `sharded`: the program's DRAM width-sharded matrices (memory.ShardedMatrix)."""
    from .memory import chip_bytes, padded_shapes, param_chip_layout

    banks = core_grids(target).dram_banks
    alignment = DRAM_ALIGNMENT.get(target.arch, 32)
    fused: dict[str, dict[str, str]] = {}
    _fused_groups(lowered.graph, "", fused)
    # tensor -> [Matrix, chip shape, table, own bytes, count]
    tensors: dict[tuple[str, str], list] = {}

    def visit(graph: Graph, prefix: str, count: int) -> None:
        tables, padded, roles = lookup_tables(graph), padded_shapes(graph), matrix_roles(graph)
        groups = fused.get(prefix, {})
        for name in graph.params:
            matrix, shape, table = param_chip_layout(graph, prefix, name, plan, tables, padded, roles)
            key = (prefix + str(id(graph)), groups.get(name, name))
            own = chip_bytes(matrix, shape, table, formats)
            if key in tensors:  # another part of a fused tensor: its rows follow the first part's
                t = tensors[key]
                t[1] = (t[1][0] + shape[0],) + shape[1:]
                t[3] += own
            else:
                tensors[key] = [matrix, shape, table, own, count]
        for node in graph.repeats():
            for body, n in layer_variants(node):
                visit(body, f"{prefix}{node.module}.*.", count * n)

    visit(model.graph, "", 1)
    left = {(m.kind, m.n, m.k, m.dtype): m.count for m in sharded}  # [out, in] chip shapes DRAM-sharded
    out: dict[str, int] = {}
    for matrix, shape, table, own, count in tensors.values():
        dtype = formats.dtype(matrix) if len(shape) >= 2 and not table else "bf16"
        key = (matrix.kind, *shape, dtype) if len(shape) == 2 and not table else None
        if key in left and left[key] > 0:
            taken = min(count, left[key])
            left[key] -= taken
            count -= taken
        if count:
            extra = booked_bytes(shape, table, dtype, banks, alignment) - own
            out[matrix.kind] = out.get(matrix.kind, 0) + count * extra
    return out
