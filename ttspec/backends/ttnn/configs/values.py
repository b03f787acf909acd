"""Typed TT-NN configuration values: what tt_transformers' `model_config.py` keeps in string-keyed
dicts, as frozen records. Each value renders (`code()`) as the expression tree that constructs its
ttnn object, so a generated program states every configuration explicitly, as tt_transformers does.

Pure: no ttnn, no torch. The names the trees read (`ttnn.WormholeComputeKernelConfig`, ...) are
ttnn 0.81.1's Python API (checked with `inspect` and on the mock device, tests/test_ttnn_configs.py).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from ...common.pyast import Const, Expr, List, Node, call, name

Fidelity = Literal["LoFi", "HiFi2", "HiFi3", "HiFi4"]
FIDELITIES: tuple[Fidelity, ...] = ("LoFi", "HiFi2", "HiFi3", "HiFi4")
Buffer = Literal["DRAM", "L1"]
Layout = Literal["INTERLEAVED", "WIDTH_SHARDED", "HEIGHT_SHARDED", "BLOCK_SHARDED"]
SHARDED: tuple[Layout, ...] = ("WIDTH_SHARDED", "HEIGHT_SHARDED", "BLOCK_SHARDED")
Activation = Literal["SILU", "RELU", "GELU"]  # ttnn.UnaryOpType members a matmul program can fuse


def _int(value: int) -> Const:
    return Const(int(value))


def _bool(value: bool) -> Const:
    return Const(bool(value))


def _coord(x: int, y: int) -> Expr:
    return call("ttnn.CoreCoord", _int(x), _int(y))


def _grid_size(grid: tuple[int, int]) -> Expr:
    """`compute_with_storage_grid_size`: a CoreCoord (x, y)."""
    return _coord(*grid)


def _activation(activation: Activation | None) -> Expr:
    if activation is None:
        return Const(None)
    return call("ttnn.UnaryWithParam", name(f"ttnn.UnaryOpType.{activation}"))


def _positive(config, *fields: str) -> None:
    for f in fields:
        value = getattr(config, f)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{type(config).__name__}.{f} must be a positive int, got {value!r}")


def _grid(config, grid) -> None:
    if len(grid) != 2 or any(not isinstance(v, int) or v < 1 for v in grid):
        raise ValueError(f"{type(config).__name__}: a core grid is (x, y) of positive ints, got {grid!r}")


# ---------------------------------------------------------------- compute kernel
class ComputeKernel(Node):
    """`ttnn.WormholeComputeKernelConfig`: the matrix engine's fidelity (LoFi 1 phase ... HiFi4 4
    phases per multiply), approximate SFPU math, 32-bit accumulation in the destination registers
    (halves how many output tiles a subblock may hold), and accumulation in L1 by the packer."""

    fidelity: Fidelity
    math_approx: bool = False
    fp32_dest_acc: bool = False
    packer_l1_acc: bool = True

    def __post_init__(self):
        if self.fidelity not in FIDELITIES:
            raise ValueError(f"unknown math fidelity {self.fidelity!r}; one of {', '.join(FIDELITIES)}")

    @property
    def dest_tiles(self) -> int:
        """Tiles the destination register file holds for one output subblock (half-sync mode):
        8 with 16-bit accumulation, 4 with fp32 (ttnn get_dest_reg_count)."""
        return 4 if self.fp32_dest_acc else 8

    def code(self) -> Expr:
        return call("ttnn.WormholeComputeKernelConfig",
                    math_fidelity=name(f"ttnn.MathFidelity.{self.fidelity}"),
                    math_approx_mode=_bool(self.math_approx), fp32_dest_acc_en=_bool(self.fp32_dest_acc),
                    packer_l1_acc=_bool(self.packer_l1_acc))


# tt_transformers' compute kernels (models/tt_transformers/tt/model_config.py, ModelArgs.__init__, and
# MathFidelitySetting: LOFI, HIFI2, HIFI2_FP16, HIFI4), the SDPA decode kernel (SDPA_DECODE_COMPUTE_PROGCFG),
# the prefill SDPA kernel (compute_kernel_config_sdpa) and the RMS norm's (models/common/rmsnorm.py).
LOFI = ComputeKernel("LoFi", math_approx=False, fp32_dest_acc=False, packer_l1_acc=True)
HIFI2 = ComputeKernel("HiFi2", math_approx=True, fp32_dest_acc=True, packer_l1_acc=True)
HIFI2_FP16 = ComputeKernel("HiFi2", math_approx=False, fp32_dest_acc=False, packer_l1_acc=True)
HIFI4 = ComputeKernel("HiFi4", math_approx=False, fp32_dest_acc=True, packer_l1_acc=True)
SDPA_DECODE_KERNEL = ComputeKernel("HiFi2", math_approx=False, fp32_dest_acc=False, packer_l1_acc=False)
SDPA_PREFILL_KERNEL = ComputeKernel("HiFi4", math_approx=False, fp32_dest_acc=True, packer_l1_acc=False)
NORM_KERNEL = ComputeKernel("HiFi2", math_approx=False, fp32_dest_acc=True, packer_l1_acc=True)


# ---------------------------------------------------------------- memory
class Memory(Node):
    """`ttnn.MemoryConfig`. Interleaved: pages spread over all banks of `buffer`. Sharded: one
    `shard` (height, width) per core, the cores filling the rectangle `grid` = (x, y) from core (0, 0)
    row by row: all of it, or its first `count` cores (the last row partly, as ttnn lays a matmul's
    output over the chip's grid). A DRAM-sharded tensor's grid is (banks, 1). A sharded config with no
    grid and no shard is ttnn's `L1_WIDTH_SHARDED_MEMORY_CONFIG` and friends: the op derives the spec."""

    buffer: Buffer = "DRAM"
    layout: Layout = "INTERLEAVED"
    grid: tuple[int, int] | None = None
    shard: tuple[int, int] | None = None
    count: int | None = None

    def __post_init__(self):
        if self.buffer not in ("DRAM", "L1"):
            raise ValueError(f"Memory.buffer is DRAM or L1, got {self.buffer!r}")
        if self.layout not in ("INTERLEAVED",) + SHARDED:
            raise ValueError(f"unknown memory layout {self.layout!r}")
        if (self.grid is None) != (self.shard is None):
            raise ValueError("a shard spec needs both its grid and its shard shape")
        if self.grid is not None:
            if self.layout == "INTERLEAVED":
                raise ValueError("an interleaved memory config has no shard spec")
            _grid(self, self.grid)
            _grid(self, self.shard)
            if self.buffer == "DRAM" and self.grid[1] != 1:
                raise ValueError("DRAM shards lie on one row of banks: grid (banks, 1)")
            x, y = self.grid
            if self.count is not None and not (x * (y - 1) < self.count <= x * y):
                raise ValueError(f"{self.count} cores do not end in the last row of a {x}x{y} grid")
        elif self.layout != "INTERLEAVED" and self.buffer == "DRAM":
            raise ValueError("a DRAM-sharded memory config names its banks and shard shape")
        elif self.count is not None:
            raise ValueError("a core count needs a grid")

    @property
    def sharded(self) -> bool:
        return self.layout != "INTERLEAVED"

    @property
    def cores(self) -> int:
        if self.grid is None:
            return 0
        return self.count if self.count is not None else self.grid[0] * self.grid[1]

    def ranges(self) -> list[tuple[tuple[int, int], tuple[int, int]]]:
        """The (start, end) core ranges, inclusive, of the sharded cores: whole rows, then the rest."""
        x = self.grid[0]
        rows, rest = divmod(self.cores, x)
        out = [((0, 0), (x - 1, rows - 1))] if rows else []
        return out + ([((0, rows), (rest - 1, rows))] if rest else [])

    def code(self) -> Expr:
        if self.grid is None:
            prefix = "" if self.layout == "INTERLEAVED" else self.layout + "_"
            return name(f"ttnn.{self.buffer}_{prefix}MEMORY_CONFIG")
        ranges = tuple(call("ttnn.CoreRange", _coord(*start), _coord(*end)) for start, end in self.ranges())
        spec = call("ttnn.ShardSpec", call("ttnn.CoreRangeSet", List(ranges)),
                    List(tuple(_int(v) for v in self.shard)), name("ttnn.ShardOrientation.ROW_MAJOR"))
        return call("ttnn.MemoryConfig", name(f"ttnn.TensorMemoryLayout.{self.layout}"),
                    name(f"ttnn.BufferType.{self.buffer}"), spec)


DRAM = Memory("DRAM")
L1 = Memory("L1")
L1_WIDTH_SHARDED = Memory("L1", "WIDTH_SHARDED")
L1_HEIGHT_SHARDED = Memory("L1", "HEIGHT_SHARDED")


# ---------------------------------------------------------------- programs
class DRAMShardedMatmul(Node):
    """`MatmulMultiCoreReuseMultiCastDRAMShardedProgramConfig`: decode (M = one tile row), weights
    width-sharded over the DRAM banks, the input width-sharded in L1; each worker streams its
    weight columns from its nearest bank. in0_block_w: K tiles per step; per_core_N: output
    column tiles per worker."""

    in0_block_w: int
    per_core_M: int
    per_core_N: int
    fused_activation: Activation | None = None

    def __post_init__(self):
        _positive(self, "in0_block_w", "per_core_M", "per_core_N")

    def code(self) -> Expr:
        return call("ttnn.MatmulMultiCoreReuseMultiCastDRAMShardedProgramConfig",
                    in0_block_w=_int(self.in0_block_w), per_core_M=_int(self.per_core_M),
                    per_core_N=_int(self.per_core_N), fused_activation=_activation(self.fused_activation))


class _MulticastMatmul(Node):
    """What the multicast matmul program configs share: the grid, the blocking of K, the output subblocks
    and each core's share of the output in tiles."""

    TTNN_CLASS: ClassVar[str]
    grid: tuple[int, int]
    in0_block_w: int
    out_subblock_h: int
    out_subblock_w: int
    per_core_M: int
    per_core_N: int
    fused_activation: Activation | None = None

    def __post_init__(self):
        _grid(self, self.grid)
        _positive(self, "in0_block_w", "out_subblock_h", "out_subblock_w", "per_core_M", "per_core_N")

    def options(self) -> dict[str, Expr]:
        """The config's own keyword arguments, beside the shared ones."""
        raise NotImplementedError

    def code(self) -> Expr:
        return call(self.TTNN_CLASS, compute_with_storage_grid_size=_grid_size(self.grid),
                    in0_block_w=_int(self.in0_block_w), out_subblock_h=_int(self.out_subblock_h),
                    out_subblock_w=_int(self.out_subblock_w), per_core_M=_int(self.per_core_M),
                    per_core_N=_int(self.per_core_N), fused_activation=_activation(self.fused_activation),
                    **self.options())


class Multicast1DMatmul(_MulticastMatmul):
    """`MatmulMultiCoreReuseMultiCast1DProgramConfig`: the output's columns split over the grid's
    cores, the input multicast to all of them (`mcast_in0`); batch folded into M."""

    TTNN_CLASS = "ttnn.MatmulMultiCoreReuseMultiCast1DProgramConfig"
    fuse_batch: bool = True
    mcast_in0: bool = True

    def options(self) -> dict[str, Expr]:
        return {"fuse_batch": _bool(self.fuse_batch), "mcast_in0": _bool(self.mcast_in0)}


class Multicast2DMatmul(_MulticastMatmul):
    """`MatmulMultiCoreReuseMultiCastProgramConfig`: prefill. Output rows split over the grid's y,
    columns over its x; the input multicast along rows, the weight along columns. A long sequence
    is folded into chunks of `per_core_M * 32 * grid_y` rows that run as a batch (fuse_batch off)."""

    TTNN_CLASS = "ttnn.MatmulMultiCoreReuseMultiCastProgramConfig"
    fuse_batch: bool = False
    transpose_mcast: bool = False

    def options(self) -> dict[str, Expr]:
        return {"transpose_mcast": _bool(self.transpose_mcast), "fuse_batch": _bool(self.fuse_batch)}


class ShardedNormProgram(Node):
    """`LayerNormShardedMultiCoreProgramConfig` (rms_norm and layer_norm on a width-sharded input):
    each core reduces `block_w` tiles of a row block of `block_h` tiles, `subblock_w` at a time."""

    grid: tuple[int, int]
    subblock_w: int
    block_h: int
    block_w: int
    inplace: bool = False

    def __post_init__(self):
        _grid(self, self.grid)
        _positive(self, "subblock_w", "block_h", "block_w")

    def code(self) -> Expr:
        return call("ttnn.LayerNormShardedMultiCoreProgramConfig",
                    compute_with_storage_grid_size=_grid_size(self.grid), subblock_w=_int(self.subblock_w),
                    block_h=_int(self.block_h), block_w=_int(self.block_w), inplace=_bool(self.inplace))


class SDPAProgram(Node):
    """`SDPAProgramConfig`. Decode: chunk sizes 0 (the op picks them from the cache length). Prefill:
    Q and K are processed in chunks of q_chunk / k_chunk rows (multiples of 32)."""

    grid: tuple[int, int]
    q_chunk: int = 0
    k_chunk: int = 0
    exp_approx: bool = False

    def __post_init__(self):
        _grid(self, self.grid)
        for f in ("q_chunk", "k_chunk"):
            value = getattr(self, f)
            if not isinstance(value, int) or value < 0 or value % 32:
                raise ValueError(f"SDPAProgram.{f} is 0 or a multiple of 32, got {value!r}")

    def code(self) -> Expr:
        return call("ttnn.SDPAProgramConfig", compute_with_storage_grid_size=_grid_size(self.grid),
                    q_chunk_size=_int(self.q_chunk), k_chunk_size=_int(self.k_chunk),
                    exp_approx_mode=_bool(self.exp_approx))


Program = DRAMShardedMatmul | Multicast1DMatmul | Multicast2DMatmul | ShardedNormProgram | SDPAProgram


class OpConfig(Node):
    """What one op of one mode states: its output memory, its program and its compute kernel.
    `keywords()` are the arguments the op call takes (`memory_config=`, `program_config=`,
    `compute_kernel_config=`), each left out when None."""

    memory: Memory | None = None
    program: Program | None = None
    compute: ComputeKernel | None = None

    def keywords(self) -> tuple[tuple[str, Expr], ...]:
        pairs = (("memory_config", self.memory), ("program_config", self.program),
                 ("compute_kernel_config", self.compute))
        return tuple((key, value.code()) for key, value in pairs if value is not None)
