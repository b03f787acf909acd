"""Choosing TT-NN configurations from shapes, the target and the weight format: the rules of
tt-metal's LLM guide (tech_reports/LLMs/llms.md) and tt_transformers (models/tt_transformers/tt/
model_config.py), stated once, each with the ttnn constraint it must satisfy.

ttnn 0.81.1's constraints, as its matmul and layer-norm validation states them (ttnn/cpp/ttnn/
operations/matmul/device/matmul_device_operation.cpp, the DRAM-sharded and 2-D multicast branches;
the layer-norm sharded program config), which tests/test_ttnn_configs.py checks every choice
against:
- DRAM-sharded matmul: input A WIDTH_SHARDED in L1, ROW_MAJOR, with M = per_core_M = shard height
  / 32 = 1 tile; Kt % in0_block_w == 0 and (shard width / 32) % in0_block_w == 0; the weight
  WIDTH_SHARDED; the output sharded like the input; in0_block_w, per_core_M, per_core_N > 0.
- 1-D and 2-D multicast: the grid within the device grid; per_core_M % out_subblock_h == 0,
  per_core_N % out_subblock_w == 0, out_subblock_h * out_subblock_w <= the destination tiles (8, or 4
  with fp32 accumulation); Kt % in0_block_w == 0; its circular buffers fit in L1 (L1_REGION).
- Sharded norm: block_w == width tiles / cores, block_w % subblock_w == 0, subblock_w <= 4 with fp32
  accumulation, block_h == shard height / 32.
"""

from __future__ import annotations

from ....targets import TILE, Target, core_grids
from ...common.pyast import Node
from .values import HIFI2, HIFI2_FP16, HIFI4, LOFI, ComputeKernel

# Bytes of one 32x32 tile per format (bfloat8_b / bfloat4_b: 1024 / 512 B of mantissas + 64 B of shared
# exponents; tt-metal tt::tile_size).
TILE_BYTES = {"bf16": 2048, "bfloat8_b": 1088, "bfloat4_b": 576, "fp32": 4096}
# Where a program's statically allocated circular buffers may lie in each core's L1: ttnn 0.81.1 refuses a program
# whose buffers "grow to" an end address beyond the first number (Wormhole 1,499,136 B, Blackhole 1,572,864 B);
# they start at the second. Measured on the mock n150 and p150: the end addresses reported for refused 2-D
# multicast programs (Wormhole 1,670,496 and 1,613,152 B; Blackhole 1,676,416 B) exceed the buffer sizes
# multicast_l1_bytes computes for them by exactly that base (tests/test_ttnn_configs.py checks both).
L1_REGION = {"wormhole_b0": (1_499_136, 105_824), "blackhole": (1_572_864, 111_744)}

# tt_transformers' LM-head column budget per core (model_config.py: '128256 / 4 was experimentally the maximum
# columns that worked per device ... on 48 cores, so 668 columns per core is close to the L1 limit'); on
# Blackhole it splits the head at 128256 // 8 columns per device.
LM_HEAD_COLUMNS_PER_CORE = 668
BLACKHOLE_LM_HEAD_COLUMNS = 128256 // 8
# Rows of one prefill matmul chunk (tt_transformers prefill_len_cutoff: 1024 on Wormhole, 512 on Blackhole):
# longer sequences are folded into a batch of chunks of this many rows.
PREFILL_CHUNK_ROWS = {"wormhole_b0": 1024, "blackhole": 512}
# tt_transformers sizes its grids on 8x8 on every chip ("TODO Improve configuration for BH").
MATMUL_GRID_CAP = (8, 8)

Role = str  # a matmul group, tt_transformers' TensorGroup: "wqkv", "wo", "ff1_ff3", "ff2", "lm_head"
ROLES = ("wqkv", "wo", "ff1_ff3", "ff2", "lm_head")
ATTENTION_ROLES = ("wqkv", "wo")


class ConfigError(ValueError):
    """No configuration satisfies ttnn's constraints for these shapes on this target."""


def l1_cb_bytes(target: Target) -> int:
    """The L1 bytes per core a program's circular buffers may take on `target`'s chips."""
    end, base = L1_REGION[target.arch]
    return end - base


# ---------------------------------------------------------------- fidelity per weight format
def matmul_kernel(weight_format: str, role: Role | None = None) -> ComputeKernel:
    """The compute kernel a weight matmul runs at: LoFi for bfloat4_b, HiFi2 for bfloat8_b (with fp32
    accumulation in attention, 16-bit in the MLP and head "to save L1"), HiFi4 for bf16: tt_transformers'
    performance and accuracy settings (ModelOptimizations, MathFidelitySetting)."""
    if weight_format == "bfloat4_b":
        return LOFI
    if weight_format == "bfloat8_b":
        return HIFI2 if role in ATTENTION_ROLES else HIFI2_FP16
    if weight_format == "bf16":
        return HIFI4
    raise ConfigError(f"no compute kernel for weight format {weight_format!r}")


class Precision(Node):
    """One matmul group's weight format and compute kernel."""

    dtype: str
    compute: ComputeKernel


def precision(weight_format: str, role: Role) -> Precision:
    return Precision(weight_format, matmul_kernel(weight_format, role))


# tt_transformers' performance preset (ModelOptimizations.performance: FF1/FF3 bfp4 at LoFi, everything else
# at its default bfp8; PERF.md's "performance" rows): attention bfloat8_b, MLP w1/w3 bfloat4_b, w2
# bfloat8_b, LM head bfloat8_b.
PERFORMANCE = {"wqkv": "bfloat8_b", "wo": "bfloat8_b", "ff1_ff3": "bfloat4_b", "ff2": "bfloat8_b",
               "lm_head": "bfloat8_b"}
# which groups each `--weights-dtype` kind (ttspec params' kinds) covers
KIND_ROLES = {"attention": ("wqkv", "wo"), "mlp": ("ff1_ff3", "ff2"), "head": ("lm_head",)}


def performance_preset(**overrides: str | Precision) -> dict[Role, Precision]:
    """The performance preset, with groups overridden by a format (its kernel follows `matmul_kernel`)
    or by a whole Precision (a chosen fidelity): `performance_preset(ff2="bfloat4_b")`."""
    unknown = sorted(set(overrides) - set(ROLES))
    if unknown:
        raise ConfigError(f"unknown matmul group {', '.join(unknown)}; groups: {', '.join(ROLES)}")
    chosen = {role: precision(dtype, role) for role, dtype in PERFORMANCE.items()}
    for role, value in overrides.items():
        chosen[role] = value if isinstance(value, Precision) else precision(value, role)
    return chosen


def precision_from_formats(formats) -> dict[Role, Precision]:
    """Per-group precision from a `--weights-dtype` WeightFormats (weight_formats.py: a group's matrix role
    where it names one, else its kind's format)."""
    from ....weight_formats import Matrix

    return {role: precision(formats.dtype(Matrix(kind, role)), role) for kind, roles in KIND_ROLES.items()
            for role in roles}


# ---------------------------------------------------------------- core counts
def largest_divisor(n: int, limit: int = 8) -> int:
    """The largest divisor of n not above `limit` (tt_transformers find_largest_divisor)."""
    return next(d for d in range(min(limit, n), 0, -1) if n % d == 0)


def rectangle(cores: int, grid: tuple[int, int]) -> tuple[int, int] | None:
    """(x, y) of a `cores`-core rectangle of the grid, fewest rows first (tt_transformers find_grid)."""
    for rows in range(1, grid[1] + 1):
        if cores % rows == 0 and cores // rows <= grid[0]:
            return cores // rows, rows
    return None


def matmul_grid(target: Target) -> tuple[int, int]:
    """The (x, y) grid matmuls, norms and SDPA are laid out on: the chip's, at most 8x8."""
    x, y = core_grids(target).compute
    return min(x, MATMUL_GRID_CAP[0]), min(y, MATMUL_GRID_CAP[1])


def cores_for_k(k_tiles: int, target: Target, aim: int = 32) -> int:
    """A core count dividing K's tiles, nearest `aim` (tt_transformers find_grid / dram_shard_core_grid_
    for_k, used for attention inputs and norms): 32 cores give 128-wide shards of a 4096-wide row."""
    grid = matmul_grid(target)
    counts = sorted(range(1, grid[0] * grid[1] + 1), key=lambda c: abs(c - aim))
    return next(c for c in counts if k_tiles % c == 0 and rectangle(c, grid))


def cores_for_k_and_n(k_tiles: int, n_tiles: int, target: Target) -> int:
    """The most cores dividing both K's and N's tiles (tt_transformers find_grid_k_n, used for the MLP)."""
    grid = matmul_grid(target)
    return next(c for c in range(grid[0] * grid[1], 0, -1)
                if k_tiles % c == 0 and n_tiles % c == 0 and rectangle(c, grid))


def lm_head_cores(k: int, target: Target) -> int:
    """tt_transformers' LM-head grid: rows of 8 cores (fewer when needed) with K divisible by 32 per core."""
    grid = matmul_grid(target)
    for cols in range(grid[0], 0, -1):
        for rows in range(grid[1], 0, -1):
            if k % (TILE * rows * cols) == 0:
                return rows * cols
    raise ConfigError(f"LM head: K {k} is not a whole number of tiles")


def whole_tiles(size: int, what: str) -> int:
    """`size` in tiles; a clear error when it is not a whole number of them."""
    if size < 1 or size % TILE:
        raise ConfigError(f"{what} {size} is not a positive multiple of {TILE}")
    return size // TILE
