"""The configurations of a dense-compute MoE block's ops (backends/ttnn/rt/moe.py), per mode and row chunk, as
one typed record that renders (`code()`) as the runtime's `MoEOps(...)`: what a generated class states as a
member (with a comment) and passes to `moe(...)`.

Choices, each validated on ttnn 0.81.1's mock n150 and T3K (tests/test_moe_runtime.py):
- router (and the shared expert's [d, 1] gate): 1-D multicast on interleaved bf16 weights at HiFi4 with fp32
  accumulation: a routing decision flips on a small margin, so the router runs at full precision whatever
  the experts' format (tt-metal keeps Mixtral's gate in bf16 too);
- softmax over the experts: HiFi4, fp32 accumulation; the selector matmul (meshes): HiFi4 (one-hot, exact);
- the experts' batched matmuls [1, E, T, d] x [1, E, d, I]: 1-D multicast (what ttnn resolves for a batched
  weight; `MatmulMultiCoreReuseProgramConfig` would need the whole output width on one core, per_core_N == N),
  fuse_batch off since each expert has its own weight, at the expert format's kernel (rules.matmul_kernel:
  HiFi4 bf16, HiFi2 bfloat8_b, LoFi bfloat4_b);
- the sum over experts: HiFi4 with fp32 accumulation (the weighted outputs of k experts add up);
- every tensor between them DRAM-interleaved (the routing tensors are [T, E]: a few tiles).
Prefill runs chunks of at most PREFILL_ROWS rows (dense compute holds E_local copies of a chunk's rows).
"""

from __future__ import annotations

from ....targets import TILE, Target
from ...common.pyast import Const, Expr, Node, call
from .decode import decode_matmul_1d
from .rules import matmul_kernel, whole_tiles
from .values import DRAM, HIFI4, ComputeKernel, OpConfig

PREFILL_ROWS = 256  # rows of a prefill chunk at most (E_local x 256 x max(d, I) bf16 per matmul output)
CHUNK_ROWS = (256, 128, 64, 32)  # the chunk sizes a prefill program states, largest first
MOE_SOFTMAX = OpConfig(DRAM, None, HIFI4)
MOE_SUM = OpConfig(DRAM, None, HIFI4)


def _keywords(config: OpConfig) -> Expr:
    return call("dict", **dict(config.keywords()))


class MoEConfig(Node):
    """The configs of one MoE block's ops at `rows` rows (decode: 32 users; prefill: a chunk): the experts'
    batched matmuls and their sum; the router, softmax and selector where the runtime routes (moe_block; a
    generated program's router is a linear of its own and its topk_routing states the softmax's); the shared
    expert's linears where it has one."""

    rows: int
    gate: OpConfig
    up: OpConfig
    down: OpConfig
    combine: OpConfig = MOE_SUM  # the routing-weighted sum over the experts
    router: OpConfig | None = None
    softmax: OpConfig | None = None
    selector: OpConfig | None = None
    shared_w1: OpConfig | None = None
    shared_w3: OpConfig | None = None
    shared_w2: OpConfig | None = None

    def code(self) -> Expr:
        """`MoEOps(rows=..., memory=..., gate=dict(memory_config=..., program_config=...,
        compute_kernel_config=...), ...)`: the runtime's record of these configs (the ops it has)."""
        fields = ("gate", "up", "down", "combine", "router", "softmax", "selector", "shared_w1", "shared_w3",
                  "shared_w2")
        return call("MoEOps", rows=Const(self.rows), memory=DRAM.code(),
                    **{f: _keywords(getattr(self, f)) for f in fields if getattr(self, f) is not None})


def softmax_keywords() -> Expr:
    """The routing softmax's keywords (a generated program's topk_routing): HiFi4, fp32 accumulation."""
    return _keywords(MOE_SOFTMAX)


def expert_matmul(rows: int, k: int, n: int, weight_format: str, target: Target,
                  compute: ComputeKernel | None = None) -> OpConfig:
    """[1, E, rows, k] x [1, E, k, n]: the 1-D multicast program of a decode matmul of that shape
    (configs.decode.decode_matmul_1d), without folding the batch into M (each batch its own weight)."""
    config = decode_matmul_1d(k, n, weight_format, target, m=rows, compute=compute or matmul_kernel(weight_format))
    return config.replace(program=config.program.replace(fuse_batch=False))


def moe_config(rows: int, *, dim: int, hidden: int, experts: int, devices: int, weight_format: str,
               target: Target, shared: int | None = None, shared_format: str | None = None,
               routing: bool = True) -> MoEConfig:
    """One MoE block's configs at `rows` rows for a chip holding ceil(experts / devices) experts of a
    [dim -> hidden -> dim] gated MLP each (`weight_format`), with a shared expert of `shared` hidden units
    (split over the devices as an MLP's: its hidden width / devices per chip); its sigmoid gate, a [dim, 1]
    linear, runs with the router's config. `routing` False: no router and softmax (a generated program's
    router is its own linear, its topk_routing states the softmax)."""
    whole_tiles(rows, "MoE rows")
    local = -(-experts // devices)
    routed = experts if devices == 1 else -(-experts // TILE) * TILE  # a mesh pads the router to whole tiles
    router = decode_matmul_1d(dim, routed, "bf16", target, m=rows, compute=HIFI4)
    selector = None if devices == 1 else decode_matmul_1d(routed, local, "bf16", target, m=rows, compute=HIFI4)
    config = MoEConfig(rows, gate=expert_matmul(rows, dim, hidden, weight_format, target),
                       up=expert_matmul(rows, dim, hidden, weight_format, target),
                       down=expert_matmul(rows, hidden, dim, weight_format, target),
                       router=router if routing else None, softmax=MOE_SOFTMAX if routing else None,
                       selector=selector)
    if shared is None:
        return config
    fmt = shared_format or weight_format
    width = shared // devices  # the shared expert splits over the chips as an MLP: w1 / w3 by columns, w2 by rows
    return config.replace(shared_w1=decode_matmul_1d(dim, width, fmt, target, m=rows),
                          shared_w3=decode_matmul_1d(dim, width, fmt, target, m=rows),
                          shared_w2=decode_matmul_1d(width, dim, fmt, target, m=rows))


def moe_configs(mode: str, seq: int | None = None, **shape) -> dict[int, MoEConfig]:
    """Chunk rows -> configs, largest first: decode one tile of users; prefill each of CHUNK_ROWS that is at
    most PREFILL_ROWS and at most the (tile-padded) sequence `seq` (the runtime takes the largest dividing a
    prompt's rows)."""
    if mode == "decode":
        return {TILE: moe_config(TILE, **shape)}
    longest = PREFILL_ROWS if seq is None else min(PREFILL_ROWS, -(-seq // TILE) * TILE)
    return {rows: moe_config(rows, **shape) for rows in CHUNK_ROWS if rows <= longest}
