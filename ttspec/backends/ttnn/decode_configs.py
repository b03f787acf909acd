"""The decode step's weight-matmul configurations, chosen by the configuration layer (configs/) for each
linear of the lowered graph at the shape one chip computes, and stated in the program as members of the
class that runs it, each with a comment saying what it is (tt_transformers' model_config, without its
string keys).

The layer matmuls (fused QKV, wo, w1, w3, w2) run DRAM-sharded where lower_matmul.py's plan takes the whole
program (one Wormhole chip or a 1-D mesh, whole-tile shapes, Llama-style layers); this module serves the rest:
the LM head, and every linear of a program the plan refuses (Galaxy's 2-D mesh, Blackhole, widths off tiles,
biases, GELU MLPs), whose comment then says why. These run the 1-D multicast program
(configs.decode.decode_matmul_1d) on DRAM-interleaved weights with the compute kernel their format calls for
(LoFi for bfloat4_b, HiFi2 for bfloat8_b), their output interleaved in L1.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...ir.layout import Placement
from ...ops import MERGE_HEADS
from ...ops.linear import fused_qkv
from ...ops.queries import matrix_of
from ...targets import TILE
from ..common.pyast import Expr
from .configs.decode import decode_matmul_1d
from .configs.rules import KIND_ROLES, ConfigError, Role, matmul_kernel
from .configs.values import Multicast1DMatmul

# a kind's matmul group for its compute kernel: configs.rules.matmul_kernel depends only on the group's kind
# (attention keeps fp32 accumulation), so the first group of each kind in the one kind -> groups table serves
_KIND_ROLE: dict[str, Role] = {kind: roles[0] for kind, roles in KIND_ROLES.items()}


@dataclass(frozen=True)
class DecodeLinear:
    """One linear's decode call: its program config (None: ttnn's own, where no 1-D program serves the
    shape) and compute kernel, each a member of the class (`self.wqkv_decode`, `self.hifi2_kernel`)."""

    program: Expr | None
    compute: Expr


def local_matmul_shape(node, ctx) -> tuple[int, int]:
    """(K, N) of the [K, N] weight one chip holds for a linear: heads zero-padded to tiles as Weights.linear
    pads them, the output split by column-parallel (and padded vocabulary) axes, the input by row-parallel
    ones (ttspec/ir/sharding.py placements)."""
    graph = ctx.graph
    k = graph.node(node.inputs[0]).type.shape[-1]
    n = node.shard.padded_out or node.type.shape[-1]
    fused = fused_qkv(node)
    heads = None if fused is None else (fused.heads, fused.kv_heads, fused.kv_heads)
    source = graph.node(node.inputs[0])
    if source.op == MERGE_HEADS.name:
        _, merged, _, head_dim = graph.node(source.inputs[0]).type.shape
        k = merged * (-(-head_dim // TILE) * TILE)
    for ax in ctx.mesh.axes:
        placement = node.shard.on(ax.axis)
        if placement in (Placement.COLUMN, Placement.VOCAB):
            n //= ax.devices
            if heads is not None:
                heads = tuple(device_heads(count, ax.devices) for count in heads)
        elif placement in (Placement.ROW, Placement.HIDDEN):
            k //= ax.devices
    if heads is not None:  # q, k and v heads, each padded to whole tiles
        n = sum(heads) * (-(-fused.head_dim // TILE) * TILE)
    return k, n


def device_heads(count: int, devices: int) -> int:
    """Heads of one part of a fused QKV that each device holds: its share, or one copy where there are fewer
    heads than devices (Weights.linear's qkv_heads reorder, rt/mesh.py by_device: KV heads repeated)."""
    return count // devices if count % devices == 0 else 1


def weight_format(node, ctx) -> str:
    """The format of this linear's weight: its kind's or matrix role's (`--weights-dtype`)."""
    formats = getattr(ctx.backend, "weight_formats", None)
    return "bf16" if formats is None else formats.dtype(matrix_of(ctx.graph, node.module))


def role_of(node, graph) -> Role | None:
    """The matmul group whose compute kernel a linear takes: its matrix role, else its kind's first group."""
    matrix = matrix_of(graph, node.module)
    return matrix.role or _KIND_ROLE.get(matrix.kind)


def kernel_member(node, ctx) -> Expr:
    """The class member holding the compute kernel of a linear's weight format (shared by its linears)."""
    fmt = weight_format(node, ctx)
    kernel = matmul_kernel(fmt, role_of(node, ctx.graph))
    accumulate = "fp32" if kernel.fp32_dest_acc else "16-bit"
    return ctx.config_member(node, f"{kernel.fidelity.lower()}{'_fp32' if kernel.fp32_dest_acc else ''}_kernel",
                             kernel.code(), f"decode: {fmt} weights at {kernel.fidelity}, {accumulate} accumulation")


def decode_linear(node, ctx, why: str | None = None) -> DecodeLinear:
    """The decode configuration of one linear, its members made where the class first needs them; `why`: the
    reason it is not DRAM-sharded, for its comment."""
    k, n = local_matmul_shape(node, ctx)
    fmt = weight_format(node, ctx)
    role = role_of(node, ctx.graph)
    kernel = matmul_kernel(fmt, role)
    compute = kernel_member(node, ctx)
    stem = node.module.rsplit(".", 1)[-1] if node.module else "matmul"
    try:
        program = decode_matmul_1d(k, n, fmt, ctx.backend.target, role=role).program
    except ConfigError as e:  # a width that is not whole tiles: ttnn chooses the program, the kernel is stated
        compute_only = f"decode: {stem} ({k} -> {n}) runs ttnn's own matmul program: {e}"
        return DecodeLinear(None, ctx.config_member(node, f"{stem}_decode_kernel", kernel.code(), compute_only))
    return DecodeLinear(ctx.config_member(node, f"{stem}_decode", program.code(), _describe(k, n, fmt, program, why)),
                        compute)


def _describe(k: int, n: int, fmt: str, program: Multicast1DMatmul, why: str | None) -> str:
    x, y = program.grid
    return (f"decode: {k} -> {n} {fmt}, 1-D multicast over {x}x{y} cores, {program.per_core_N} output tiles "
            "per core, weight DRAM-interleaved (shared with prefill)" + (f"; not DRAM-sharded: {why}" if why else ""))
