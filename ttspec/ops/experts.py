"""Mixture of experts: top-k routing, a bank of gated expert MLPs, and the sigmoid of a shared expert's gate.

The stdlib's `moe` block (ttspec/stdlib/prelude.arch) composes them: a bias-free router linear gives
logits [*, E]; `topk_routing` turns them into dense routing weights [*, E] (zero for the experts a token
does not use); `expert_glu` runs every expert's gated MLP and sums them weighted by the routing weights:

    y = sum_e r_e * w2_e(act(w1_e x) * w3_e x)

with w1, w3 [E, hidden, d] and w2 [E, d, hidden], parameters of kind `experts`. Computing the dense sum
(every expert, zero weights included) is one correct implementation; FLOPs count the `top_k` experts each
token uses (what a sparse implementation computes), and the active parameters per token are the experts'
parameters times top_k / E (active_fraction).
"""

from __future__ import annotations

from fractions import Fraction
from typing import NamedTuple

from ..ir.layout import Layout, Placement
from ..ir.types import TensorType, numel
from .elementwise import ACTIVATIONS, complete_values
from .registry import (
    OUTPUT,
    ArgSpec,
    OpDef,
    OpError,
    ParamSpec,
    Storage,
    T,
    float_input,
    last_dim,
    positive,
    register,
)

SOFTMAX_PLACES = ("before", "after")


# ---------------------------------------------------------------- attributes
class TopkRoutingAttrs(NamedTuple):
    top_k: int
    softmax: str = "before"  # "before": softmax over all experts, then the top k; "after": over the top k only
    normalize: bool = False  # "before" only: the k kept weights renormalised to sum to 1


class ExpertGluAttrs(NamedTuple):
    hidden: int
    top_k: int  # the experts each token uses (nonzero routing weights): what FLOPs and active parameters count
    act: str = "silu"


# ---------------------------------------------------------------- shape rules
def _experts_of(routing: TensorType, what: str) -> int:
    experts = last_dim(routing, what)
    if experts < 1:
        raise OpError(f"{what} needs at least one expert, got {experts}")
    return experts


def _check_top_k(top_k: int, experts: int) -> None:
    positive(top_k, "top_k")
    if top_k > experts:
        raise OpError(f"top_k {top_k} exceeds the {experts} experts", arg="top_k",
                      hint="each token picks top_k of the experts: top_k <= experts")


def _routing_shape(ins, attrs: TopkRoutingAttrs, ctx):
    (logits,) = ins
    float_input(logits, "topk_routing")
    _check_top_k(attrs.top_k, _experts_of(logits, "topk_routing"))
    if attrs.softmax not in SOFTMAX_PLACES:
        raise OpError(f'softmax must be "before" or "after", got "{attrs.softmax}"', arg="softmax",
                      hint='"before": softmax over every expert, then the top k (Mixtral, Qwen-MoE, OLMoE)')
    return logits


def _experts_shape(ins, attrs: ExpertGluAttrs, ctx):
    x, routing = ins
    float_input(x, "expert_glu")
    float_input(routing, "expert_glu")
    last_dim(x, "expert_glu")
    experts = _experts_of(routing, "expert_glu")
    if x.shape[:-1] != routing.shape[:-1]:
        raise OpError(f"expert_glu: routing weights {routing} do not match the tokens of {x}",
                      hint="the routing weights are [..., experts] over the same tokens as x")
    positive(attrs.hidden, "hidden")
    _check_top_k(attrs.top_k, experts)
    if attrs.act not in ACTIVATIONS:
        raise OpError(f'unknown activation "{attrs.act}"', arg="act",
                      hint="choose one of " + ", ".join(f'"{a}"' for a in ACTIVATIONS))
    return x


def _experts_params(ins, a: ExpertGluAttrs) -> dict[str, ParamSpec]:
    x, routing = ins
    d, experts = last_dim(x, "expert_glu"), last_dim(routing, "expert_glu")
    return {"w1": ParamSpec((experts, a.hidden, d)), "w3": ParamSpec((experts, a.hidden, d)),
            "w2": ParamSpec((experts, d, a.hidden), init=OUTPUT)}


def _experts_flops(ins, out, a: ExpertGluAttrs) -> int:
    """The top_k experts each token uses: three [hidden, d] matmuls each (2 FLOPs per multiply-add)."""
    d = out[-1]
    return 2 * (numel(out) // d) * a.top_k * 3 * d * a.hidden


def active_fraction(graph, node) -> Fraction | None:
    """The part of a node's parameters one token uses, where it is not all of them: top_k / E of an
    expert bank's (None for every other op)."""
    if node.op != EXPERT_GLU.name:
        return None
    return Fraction(node.attrs.top_k, graph.params[node.params["w1"]].shape[0])


def experts_read(top_k: int, experts: int, tokens: int) -> float:
    """The expected number of distinct experts `tokens` tokens use, each its top_k of `experts` with the
    choices taken as independent and uniform: E * (1 - (1 - k/E)^tokens) (what a step reads of the bank)."""
    return experts * (1 - (1 - top_k / experts) ** max(tokens, 1))


# ---------------------------------------------------------------- sharding
def experts_per_device(experts: int, devices: int) -> int:
    """The whole experts each device of an axis holds of a bank split by expert (Placement.EXPERTS): ceil(E / n);
    the last devices' spare slots are zero experts (no routing weight reaches them)."""
    return -(-experts // devices)


def _shard_experts(planner, node, layouts):
    """Experts over the tensor-parallel axis, as tt-metal runs Mixtral on T3K: every chip routes every token
    (complete x and routing weights in), holds ceil(E / chips) whole experts of the bank (its dim 0: Placement
    .EXPERTS; zero experts fill the last chips' spare slots), gives the experts it does not hold zero weight and
    returns a partial sum, which the planner reduces as it reduces an MLP's w2 (a reduce_scatter into a split
    residual stream, else an all_reduce). A 2-D plan keeps the whole bank on every chip (no nested layout yet:
    docs/design-2d-tp.md)."""
    for i in range(len(node.inputs)):
        node = planner.need(node, i, Layout.REPLICATED, f"{node.op} routes every token on every chip")
    if planner.plan.strategy != "1d":
        return planner.set_layout(planner.place(node, Placement.REPLICATE), Layout.REPLICATED)
    experts, n = planner.input_node(node, 1).type.shape[-1], planner.devices
    local = experts_per_device(experts, n)
    if experts % n:
        spare = local * n - experts
        planner.note(f"{node.module}: {experts} experts over {n} devices: {local} per device, the last "
                     f"{spare} slot{'s' if spare > 1 else ''} zero experts (no routing weight reaches them)")
    return planner.set_layout(planner.place(node, Placement.EXPERTS), Layout.PARTIAL)


TOPK_ROUTING = register(OpDef(
    "topk_routing", (T("logits"), ArgSpec("top_k", "int"), ArgSpec("softmax", "str", "before"),
                     ArgSpec("normalize", "bool", False)), _routing_shape, TopkRoutingAttrs,
    doc="Router logits [*, E] -> dense routing weights [*, E]: the top_k experts' weights, zero elsewhere. "
        'softmax "before": softmax over all E, keep the top k, renormalise them to sum 1 when `normalize`; '
        '"after": softmax over the top k logits. Ties: the lowest expert index first.',
    shard=complete_values, var_name=lambda node: "routing",
))

EXPERT_GLU = register(OpDef(
    "expert_glu", (T("x"), T("routing"), ArgSpec("hidden", "int"), ArgSpec("top_k", "int"),
                   ArgSpec("act", "str", "silu")), _experts_shape, ExpertGluAttrs,
    params=_experts_params, flops=_experts_flops,
    doc="sum_e routing[..., e] * w2[e] @ (act(w1[e] @ x) * (w3[e] @ x)): E gated MLPs, w1 and w3 [E, hidden, d] "
        "(gate, up), w2 [E, d, hidden] (down); top_k: the nonzero routing weights per token (FLOPs count them).",
    kind="experts",
    storage=(("w1", Storage.MATRIX), ("w3", Storage.MATRIX), ("w2", Storage.MATRIX)), shard=_shard_experts,
))

SIGMOID = register(OpDef(
    "sigmoid", (T("x"),), lambda ins, attrs, ctx: (float_input(ins[0], "sigmoid"), ins[0])[1],
    doc="1 / (1 + exp(-x)) (a shared expert's gate).", shard=complete_values,
))
