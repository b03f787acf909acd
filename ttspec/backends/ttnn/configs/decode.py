"""Decode configurations (one token per user, users padded to one 32-row tile): DRAM-sharded weight
matmuls with L1 width-sharded activations, the sharded norm, SDPA decode and the LM head split
into column chunks that fit L1 (tech_reports/LLMs/llms.md 4.6; tt_transformers' decode configs)."""

from __future__ import annotations

from math import ceil

from ....targets import TILE, Target, core_grids
from ...common.pyast import Node
from .rules import (
    BLACKHOLE_LM_HEAD_COLUMNS,
    LM_HEAD_COLUMNS_PER_CORE,
    TILE_BYTES,
    ConfigError,
    Role,
    cores_for_k,
    cores_for_k_and_n,
    largest_divisor,
    lm_head_cores,
    matmul_grid,
    matmul_kernel,
    rectangle,
    whole_tiles,
)
from .values import (
    DRAM,
    L1_HEIGHT_SHARDED,
    L1_WIDTH_SHARDED,
    NORM_KERNEL,
    SDPA_DECODE_KERNEL,
    Activation,
    ComputeKernel,
    DRAMShardedMatmul,
    Memory,
    Multicast1DMatmul,
    OpConfig,
    SDPAProgram,
    ShardedNormProgram,
)


def _width_sharded(rows: int, width: int, cores: int, target: Target) -> Memory:
    grid = rectangle(cores, matmul_grid(target))
    if grid is None:
        raise ConfigError(f"{cores} cores form no rectangle of the {target.name} grid")
    return Memory("L1", "WIDTH_SHARDED", grid, (rows, width // cores))


class DecodeMatmul(Node):
    """A decode weight matmul: where its weight lives (`weight`: width-sharded over the DRAM banks), the
    L1 width-sharded layout its input must have (`input`), and the op's own configuration."""

    k: int
    n: int
    cores: int
    weight: Memory
    input: Memory
    op: OpConfig

    def output(self, target: Target) -> Memory:
        """The layout the op writes (its memory config, L1_WIDTH_SHARDED, leaves ttnn to derive it): per_core_N
        tiles on each of the first `cores` cores of the chip's whole grid, row by row (on Wormhole's 8-wide
        grid the input's rectangle; on Blackhole's 11-wide one not). A consumer wanting another layout reshards."""
        width = core_grids(target).compute[0]
        grid = (min(width, self.cores), ceil(self.cores / width))
        return Memory("L1", "WIDTH_SHARDED", grid, (self.input.shard[0], self.op.program.per_core_N * TILE),
                      count=self.cores)


def dram_weight(k: int, n: int, target: Target) -> Memory:
    """A [k, n] weight width-sharded over the chip's DRAM banks: shard (k, ceil(n / (32 * banks)) * 32)
    (tt_transformers create_dram_sharded_mem_config)."""
    banks = core_grids(target).dram_banks
    return Memory("DRAM", "WIDTH_SHARDED", (banks, 1), (k, ceil(n / (TILE * banks)) * TILE))


def decode_matmul(k: int, n: int, weight_format: str, target: Target, *, m: int = TILE, cores: int | None = None,
                  role: Role | None = None, compute: ComputeKernel | None = None,
                  fused_activation: Activation | None = None) -> DecodeMatmul:
    """y[m, n] = x[m, k] @ w[k, n] in decode: `cores` workers (default: the most dividing both K's and N's
    tiles, tt_transformers' MLP rule) each take k / cores input columns in L1 and ceil(N tiles / cores)
    output tiles (per_core_N), in0_block_w the largest divisor <= 8 of their K tiles."""
    k_tiles = whole_tiles(k, "decode matmul K")
    if not 1 <= m <= TILE:
        raise ConfigError(f"a DRAM-sharded decode matmul takes one tile row (at most {TILE} users), got {m}")
    n_tiles = ceil(n / TILE)
    cores = cores or cores_for_k_and_n(k_tiles, n_tiles, target)
    if k_tiles % cores:
        raise ConfigError(f"{cores} cores do not divide K's {k_tiles} tiles")
    program = DRAMShardedMatmul(in0_block_w=largest_divisor(k_tiles // cores), per_core_M=1,
                                per_core_N=ceil(n_tiles / cores), fused_activation=fused_activation)
    compute = compute or matmul_kernel(weight_format, role)
    return DecodeMatmul(k, n, cores, dram_weight(k, n, target), _width_sharded(TILE, k, cores, target),
                        OpConfig(L1_WIDTH_SHARDED, program, compute))


def attention_matmul(k: int, n: int, weight_format: str, target: Target, role: Role = "wqkv",
                     **options) -> DecodeMatmul:
    """QKV and output projections: the input grid is the attention norm's (cores nearest 32 dividing K's
    tiles, tt_transformers' attn_input_grid), so the norm's sharded output feeds the matmul unchanged."""
    return decode_matmul(k, n, weight_format, target, cores=cores_for_k(whole_tiles(k, "K"), target), role=role,
                         **options)


def decode_matmul_1d(k: int, n: int, weight_format: str, target: Target, *, m: int = TILE,
                     role: Role | None = None, compute: ComputeKernel | None = None,
                     fused_activation: Activation | None = None) -> OpConfig:
    """A decode matmul on interleaved tensors (where weights cannot be DRAM-sharded: tt_transformers' Galaxy
    configs), 1-D multicast: the output's column tiles split over the grid (fewer rows when N has fewer
    tiles than cores), in0 multicast; out_subblock_w the largest divisor of per_core_N within the destination
    tiles, out_subblock_h the largest dividing per_core_M within what is left (tt_transformers
    matmul_1d_config)."""
    k_tiles, m_tiles = whole_tiles(k, "decode matmul K"), ceil(m / TILE)
    n_tiles = ceil(n / TILE)
    compute = compute or matmul_kernel(weight_format, role)
    gx, gy = matmul_grid(target)
    gx = min(gx, n_tiles)
    gy = max(1, min(gy, n_tiles // gx))
    per_core_n = ceil(n_tiles / (gx * gy))
    dest = compute.dest_tiles
    subblock_w = largest_divisor(per_core_n, dest)
    subblock_h = largest_divisor(m_tiles, dest // subblock_w)
    in0_block_w = largest_divisor(k_tiles, max(1, min(8, k_tiles // (gx * gy))))
    program = Multicast1DMatmul((gx, gy), in0_block_w, subblock_h, subblock_w, per_core_M=m_tiles,
                                per_core_N=per_core_n, fuse_batch=True, mcast_in0=True,
                                fused_activation=fused_activation)
    return OpConfig(DRAM, program, compute)


class DecodeNorm(Node):
    """The sharded RMS/layer norm of a [32, width] row block: input and output share `memory`."""

    memory: Memory
    op: OpConfig


def decode_norm(width: int, target: Target, *, m: int = TILE, cores: int | None = None) -> DecodeNorm:
    """Width-sharded norm over `cores` (default: nearest 32 dividing the width's tiles, as the attention
    input grid), block_w = width tiles / cores, subblock_w the largest <= 4 dividing it (tt_transformers
    create_sharded_norm_config), fp32 accumulation at HiFi2 (models/common/rmsnorm.py)."""
    tiles = whole_tiles(width, "norm width")
    cores = cores or cores_for_k(tiles, target)
    if tiles % cores:
        raise ConfigError(f"{cores} cores do not divide the norm's {tiles} tiles")
    block_h = ceil(m / TILE)
    memory = _width_sharded(block_h * TILE, width, cores, target)
    block_w = tiles // cores
    program = ShardedNormProgram(memory.grid, subblock_w=largest_divisor(block_w, 4), block_h=block_h,
                                 block_w=block_w)
    return DecodeNorm(memory, OpConfig(memory, program, NORM_KERNEL))


class DecodeSDPA(Node):
    """SDPA decode over the paged/contiguous cache: `heads` is the L1 height-sharded layout of Q (one
    user per core, nlp_create_qkv_heads_decode's output); the op writes DRAM, and `concat_input` is the
    height-sharded layout nlp_concat_heads_decode reads (heads padded to a tile, one user per core)."""

    heads: Memory
    op: OpConfig
    concat_input: Memory


def decode_sdpa(local_heads: int, head_dim: int, users: int, target: Target) -> DecodeSDPA:
    """tt_transformers' SDPA_DECODE_PROGCFG (grid 8x8, chunk sizes 0, exact exp) at HiFi2 without fp32
    accumulation (SDPA_DECODE_COMPUTE_PROGCFG); the concat input height-sharded over one core per user."""
    whole_tiles(head_dim, "head_dim")
    if not 1 <= users <= TILE:
        raise ConfigError(f"decode SDPA takes 1 to {TILE} users per chip, got {users}")
    user_grid = rectangle(users, matmul_grid(target))
    if user_grid is None:
        raise ConfigError(f"{users} users form no rectangle of cores on {target.name}")
    concat = Memory("L1", "HEIGHT_SHARDED", user_grid, (ceil(local_heads / TILE) * TILE, head_dim))
    program = SDPAProgram(matmul_grid(target), q_chunk=0, k_chunk=0, exp_approx=False)
    return DecodeSDPA(L1_HEIGHT_SHARDED, OpConfig(DRAM, program, SDPA_DECODE_KERNEL), concat)


class LMHead(Node):
    """The LM head of one chip as column chunks: chunk i computes columns [starts[i], starts[i] + widths[i])."""

    widths: tuple[int, ...]
    matmuls: tuple[DecodeMatmul, ...]

    @property
    def starts(self) -> tuple[int, ...]:
        return tuple(sum(self.widths[:i]) for i in range(len(self.widths)))


def lm_head_columns(k: int, target: Target, weight_format: str = "bfloat8_b") -> int:
    """The most columns one chunk may have: tt_transformers' L1 budget per core times the head's cores
    (measured for bfloat8_b; a wider format's tiles take proportionally fewer columns), in whole tiles so that
    every chunk but the last starts and ends on a tile."""
    if target.arch == "blackhole":
        return BLACKHOLE_LM_HEAD_COLUMNS
    columns = LM_HEAD_COLUMNS_PER_CORE * lm_head_cores(k, target)
    if TILE_BYTES[weight_format] > TILE_BYTES["bfloat8_b"]:
        columns = columns * TILE_BYTES["bfloat8_b"] // TILE_BYTES[weight_format]
    return columns // TILE * TILE


def lm_head_chunks(k: int, vocab: int, weight_format: str, target: Target, *, devices: int = 1,
                   compute: ComputeKernel | None = None) -> LMHead:
    """Split one chip's `vocab / devices` head columns into equal chunks of at most `lm_head_columns`
    (the last takes the rest), each a DRAM-sharded matmul on the LM-head grid."""
    columns = ceil(vocab / devices)
    most = lm_head_columns(k, target, weight_format)
    count = ceil(columns / most)
    widths = (most,) * (count - 1) + (columns - most * (count - 1),)
    cores = lm_head_cores(k, target)
    return LMHead(widths, tuple(decode_matmul(k, w, weight_format, target, cores=cores, role="lm_head",
                                              compute=compute) for w in widths))
