"""How the generated TT-NN program computes a mixture of experts (the registry's topk_routing and expert_glu,
ttspec/ops/experts.py; the stdlib's `moe` block): the runtime's dense-compute MoE (backends/ttnn/rt/moe.py,
docs/design-moe.md) with every op's configuration stated as a member of the class (configs/moe.py).

- topk_routing(logits) -> `moe_routing_weights(logits, top_k=, softmax=, normalize=, softmax_op=, memory_config=,
  experts=)`:
  softmax before or after ttnn.topk (stable: the lowest index first on ties), renormalised or not, scattered
  into dense routing weights [..., E]. The router is the block's own linear (lower.py's row).
- expert_glu(x, routing) -> `moe_experts(x, routing, (w1, w3, w2), act=, ops=)`: every expert's gated MLP as
  batched matmuls [1, E, rows, d] x [1, E, d, I] weighted by the routing weights and summed over the experts;
  prefill in row chunks (ops: chunk rows -> MoEOps), decode on its tile of users. Weights: `weights.experts`
  (the bank [E, out, in] as [1, E, in, out]) in the experts kind's format (--weights-dtype experts=...).

On a 1-D mesh the experts are split over the tensor-parallel axis (as tt-metal runs Mixtral on T3K) where the
plan places the bank by expert (the registry's sharding rule for expert_glu, ops/experts.py: Placement.EXPERTS,
partial sums out): each chip holds ceil(E / chips) experts (weights.experts(split="experts"), zero experts in the
last chips' spare slots), keeps its experts' routing weights with its one-hot selector (moe_selector, a member
made in __init__) and returns a partial sum, which the planner's collective (reduce_scatter or all_reduce, as
after an MLP's w2) completes: this lowering emits none. A bank the plan replicates (a 2-D plan) is whole on
every chip.
"""

from __future__ import annotations

from ...ir.layout import Placement
from ...ops import GELU, RELU, SILU, Unsupported
from ..common.pyast import Assign, Const, Dict, Expr, Stmt, Tuple, call, name
from .configs.moe import moe_configs, softmax_keywords
from .configs.rules import ConfigError
from .decode_configs import weight_format

# what ttnn.mul's input_tensor_a_activations applies (rt/moe.py's MOE_ACTIVATIONS)
ACTIVATIONS = (SILU.name, GELU.name, RELU.name)


def check_experts(node, graph) -> None:
    d = graph.node(node.inputs[0]).type.shape[-1]
    if node.attrs.act not in ACTIVATIONS:
        raise Unsupported(f'an expert activation "{node.attrs.act}" is not lowered to TT-NN (one of '
                          f'{", ".join(ACTIVATIONS)})', hint="the torch target (--target torch) runs it")
    if d % 32 or node.attrs.hidden % 32:
        raise Unsupported(f"experts of width {d} -> {node.attrs.hidden} are not lowered to TT-NN: the batched "
                          "expert matmuls take whole 32-wide tiles", hint="use widths that are multiples of 32")


def expert_chips(node, ctx) -> int:
    """The chips of the tensor-parallel axis the bank is split over by expert (the plan's Placement.EXPERTS;
    the planner reduces the partial sums), or 1 where the plan keeps it whole."""
    mesh = ctx.mesh
    if mesh.strategy != "1d" or node.shard.on(mesh.axis) != Placement.EXPERTS:
        return 1
    return mesh.devices


def routing(node, args, refs, ctx) -> Expr:
    """topk_routing: the dense routing weights, its softmax's config a member of the class."""
    a = node.attrs
    softmax = ctx.config_member(node, "routing_softmax", softmax_keywords(),
                                "MoE routing: softmax over the experts at HiFi4 with fp32 accumulation (a routing "
                                "decision turns on small margins); topk, scatter and their tensors DRAM-interleaved")
    experts = ctx.graph.node(node.inputs[0]).type.shape[-1]  # the router's width (the cost walk reads it)
    return call("moe_routing_weights", args[0], top_k=Const(a.top_k), softmax=Const(a.softmax),
                normalize=Const(a.normalize), softmax_op=softmax, memory_config=name("ttnn.DRAM_MEMORY_CONFIG"),
                experts=Const(experts))


def load_experts(node, refs, ctx) -> list[Stmt]:
    dtype = ctx.weight_dtype(node.module)
    options = {} if dtype is None else {"dtype": name(f"ttnn.{'bfloat16' if dtype == 'bf16' else dtype}")}
    if expert_chips(node, ctx) > 1:  # each chip of the tensor-parallel axis its own experts
        options["split"] = Const("experts")
    # the bank (w1, w3, w2) in the leaf's one weight member
    return [Assign(refs["weight"], Tuple(tuple(call("weights.experts", refs.module, Const(w), **options)
                                               for w in ("w1", "w3", "w2"))))]


def _experts(mode: str):
    def expr(node, args, refs, ctx) -> Expr:
        graph = ctx.graph
        dim = graph.node(node.inputs[0]).type.shape[-1]
        experts = graph.node(node.inputs[1]).type.shape[-1]
        fmt = weight_format(node, ctx)
        chips = expert_chips(node, ctx)
        try:
            configs = moe_configs(mode, dim=dim, hidden=node.attrs.hidden, experts=experts, devices=chips,
                                  weight_format=fmt, target=ctx.backend.target, routing=False)
        except ConfigError as e:
            raise Unsupported(f"no TT-NN configuration for these experts: {e}") from None
        table = Dict(tuple((Const(rows), config.code()) for rows, config in configs.items()))
        first = next(iter(configs.values())).gate.program
        what = ("decode: one tile of users" if mode == "decode" else
                f"prefill: row chunks of {', '.join(str(r) for r in configs)}")
        held = f"{-(-experts // chips)} of {experts} experts per chip (its selector at HiFi4)" if chips > 1 else \
            f"{experts} experts"
        ops = ctx.config_member(node, f"experts_{mode}", table,
                                f"{what}; {held} {dim} -> {node.attrs.hidden} -> {dim} {fmt} as batched "
                                f"matmuls, 1-D multicast over {first.grid[0]}x{first.grid[1]} cores (batch not "
                                "fused: each expert its weight), summed over the experts at HiFi4")
        if chips == 1:
            return call("moe_experts", args[0], args[1], refs["weight"], act=Const(node.attrs.act), ops=ops)
        selector = ctx.member(node, "selector", call("moe_selector", name("weights.device"), Const(experts)))
        # this chip's partial sum: the planner's collective after it adds them up
        return call("moe_experts", args[0], args[1], refs["weight"], act=Const(node.attrs.act), ops=ops,
                    selector=selector)

    return expr


experts_prefill = _experts("prefill")
experts_decode = _experts("decode")
