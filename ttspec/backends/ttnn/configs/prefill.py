"""Prefill configurations: 2-D multicast matmuls with the sequence folded into chunks whose circular
buffers fit L1, and SDPA with chunked Q and K (tt_transformers' matmul_config and SDPA_PROGCFG; the prompt's
length is known only when it runs, so the program states the SDPA programs by chunk and the rule choosing one)."""

from __future__ import annotations

from math import ceil

from ....targets import TILE, Target
from ...common.pyast import Node
from .rules import (
    PREFILL_CHUNK_ROWS,
    TILE_BYTES,
    ConfigError,
    Role,
    l1_cb_bytes,
    largest_divisor,
    matmul_grid,
    matmul_kernel,
    whole_tiles,
)
from .values import DRAM, SDPA_PREFILL_KERNEL, Activation, ComputeKernel, Multicast2DMatmul, OpConfig, SDPAProgram


def interm_format(compute: ComputeKernel, output_format: str) -> str:
    """The partial sums' format: fp32 with fp32 accumulation, else bf16 when the packer accumulates in
    L1, else the output's (ttnn's matmul factories choose interm0's data format so)."""
    if compute.fp32_dest_acc:
        return "fp32"
    return "bf16" if compute.packer_l1_acc else output_format


def multicast_l1_bytes(program: Multicast2DMatmul, k_tiles: int, weight_format: str, output_format: str,
                       compute: ComputeKernel, input_format: str = "bf16") -> int:
    """Circular-buffer bytes per core of the 2-D multicast factory (matmul_multicore_reuse_mcast_2d_program_
    factory.cpp): input and weight blocks double-buffered when K takes more than one block, the output block
    once, and the partial sums in a buffer of their own when their format differs from the output's."""
    depth = 2 if k_tiles > program.in0_block_w else 1
    in0 = depth * program.per_core_M * program.in0_block_w * TILE_BYTES[input_format]
    in1 = depth * program.per_core_N * program.in0_block_w * TILE_BYTES[weight_format]
    out_tiles = program.per_core_M * program.per_core_N
    interm = interm_format(compute, output_format)
    partials = 0 if interm == output_format else out_tiles * TILE_BYTES[interm]
    return in0 + in1 + out_tiles * TILE_BYTES[output_format] + partials


class PrefillMatmul(Node):
    """A prefill matmul of m rows run as `chunks` chunks of `chunk_rows` (the program reshapes the input
    to [1, chunks, chunk_rows, k]); `l1_bytes` is its circular buffers' estimate per core."""

    chunk_rows: int
    chunks: int
    op: OpConfig
    l1_bytes: int


def _program(chunk_tiles, k_tiles, n_tiles, target, compute, fused_activation, fits):
    """The 2-D program for one chunk with the widest K block that `fits`, or None."""
    gx, gy = matmul_grid(target)
    gx, gy = min(gx, n_tiles), min(gy, chunk_tiles)
    per_core_n = ceil(n_tiles / gx)
    for in0_block_w in range(min(8, k_tiles), 0, -1):
        if k_tiles % in0_block_w:
            continue
        program = Multicast2DMatmul((gx, gy), in0_block_w, out_subblock_h=1,
                                    out_subblock_w=largest_divisor(per_core_n, min(4, compute.dest_tiles)),
                                    per_core_M=ceil(chunk_tiles / gy), per_core_N=per_core_n,
                                    fuse_batch=False, fused_activation=fused_activation)
        if fits(program):
            return program
    return None


def prefill_matmul(m: int, k: int, n: int, weight_format: str, target: Target, *, role: Role | None = None,
                   compute: ComputeKernel | None = None, fused_activation: Activation | None = None,
                   output_format: str = "bf16") -> PrefillMatmul:
    """y[m, n] = x[m, k] @ w[k, n] in prefill: chunks of the most rows dividing m, at most tt_transformers'
    prefill cutoff (1024 rows on Wormhole, 512 on Blackhole), whose buffers fit L1; rows split over the
    grid's y, columns over its x, out_subblock_h 1 and out_subblock_w the largest <= 4 dividing per_core_N
    (tt_transformers get_out_subblock_w)."""
    m_tiles, k_tiles = whole_tiles(m, "prefill rows"), whole_tiles(k, "prefill K")
    n_tiles = ceil(n / TILE)
    compute = compute or matmul_kernel(weight_format, role)
    cutoff = PREFILL_CHUNK_ROWS[target.arch] // TILE

    budget = l1_cb_bytes(target)

    def fits(program):
        return multicast_l1_bytes(program, k_tiles, weight_format, output_format, compute) <= budget

    for chunk_tiles in range(min(m_tiles, cutoff), 0, -1):
        if m_tiles % chunk_tiles:
            continue
        program = _program(chunk_tiles, k_tiles, n_tiles, target, compute, fused_activation, fits)
        if program is not None:
            l1 = multicast_l1_bytes(program, k_tiles, weight_format, output_format, compute)
            return PrefillMatmul(chunk_tiles * TILE, m_tiles // chunk_tiles, OpConfig(DRAM, program, compute), l1)
    raise ConfigError(f"no 2-D multicast program for a [{m}, {k}] x [{k}, {n}] matmul fits L1 on {target.name}")



def prefill_programs(k: int, n: int, weight_format: str, target: Target, chunks: tuple[int, ...], *,
                     role: Role | None = None, fused_activation: Activation | None = None) -> dict[int, PrefillMatmul]:
    """chunked_linear's table, chunk rows -> the program of one chunk of exactly that many rows, largest first:
    prefill_matmul's choice for each of `chunks`, keyed by the rows its program was made for (a chunk whose
    buffers do not fit L1 runs as smaller ones: bf16 Mistral-7B's w1 at 1024 rows takes 512; keyed by 1024, its
    program would meet 32 tiles of rows with per_core_M 2, and ttnn refuses num_blocks_y 16 > grid.y 8; so would
    every 1024-row entry on Blackhole, whose cutoff is 512 rows)."""
    def one(rows):
        return prefill_matmul(rows, k, n, weight_format, target, role=role, fused_activation=fused_activation)

    table: dict[int, PrefillMatmul] = {}
    for rows in chunks:
        p = one(rows)
        if p.chunk_rows not in table:  # (a smaller chunk: its own entry, one chunk of its rows)
            table[p.chunk_rows] = p if p.chunks == 1 else one(p.chunk_rows)
    return dict(sorted(table.items(), reverse=True))

# tt_transformers' SDPA_PROGCFG: Q and K chunks of 256 rows from 2048 tokens on, of 64 below. A prompt padded to whole
# tiles need not be a multiple of those: its chunk is the first (from length, chunk) here whose length it reaches and
# whose chunk divides it (ttnn 0.81.1 pads a partial chunk, measured on the mock; a dividing chunk computes no padding)
SDPA_CHUNKS = ((2048, 256), (2048, 128), (0, 64), (0, 32))


def sdpa_chunk(seq_len: int) -> int:
    """The Q and K chunk of a prompt of `seq_len` tokens (SDPA_CHUNKS' rule)."""
    return next(c for least, c in SDPA_CHUNKS if seq_len >= least and seq_len % c == 0)


def prefill_sdpa_programs(target: Target) -> tuple[tuple[int, int, SDPAProgram], ...]:
    """The prefill SDPA programs by SDPA_CHUNKS: (from length, chunk, program), the rule's order."""
    return tuple((least, c, SDPAProgram(matmul_grid(target), q_chunk=c, k_chunk=c)) for least, c in SDPA_CHUNKS)


def prefill_sdpa(seq_len: int, target: Target) -> OpConfig:
    """tt_transformers' SDPA_PROGCFG (SDPA_CHUNKS' rule), exact exp, at HiFi4 with fp32 accumulation
    (compute_kernel_config_sdpa)."""
    whole_tiles(seq_len, "prefill length")
    chunk = sdpa_chunk(seq_len)
    return OpConfig(DRAM, SDPAProgram(matmul_grid(target), q_chunk=chunk, k_chunk=chunk), SDPA_PREFILL_KERNEL)
