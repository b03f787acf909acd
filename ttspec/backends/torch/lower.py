"""How the PyTorch reference computes each op: one row per op, returning structured code
(ttspec/backends/common/pyast.py).

A row's `expr(node, args, weights, ctx)` is the op applied to argument expressions; `weights`
maps the op's local parameter names ("weight", "bias") to expressions (None for a
parameter-free op). The same expression runs a full forward pass, a prefill and a decode step:
an op whose result depends on positions asks the context for them (ctx.positions(),
ctx.kv_cache(...)) and says so with `positions`, so the forward methods on its path take `pos`.
`module(node, ctx)`: for a labelled parameter-owning op, the nn.Module that holds its weights
(nn.Linear, nn.RMSNorm ...), `note(node)` a comment beside it; `call(node, attr, args, ctx)`
then applies it. `decode_check(node, graph)` raises Unsupported for a use that cannot run one
token at a time against a KV cache (the program's decode then refuses). `saved`: what autograd keeps
from the row's code for the backward pass (training's activation memory, training_memory.py); `view`:
its result is a view of its first input (no memory of its own).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from ...ir.types import numel
from ...ops import (
    ADD,
    APPLY_ROPE,
    ATTEND,
    EMBEDDING,
    EXPERT_GLU,
    GELU,
    GELU_TANH,
    LAYER_NORM,
    LINEAR,
    MERGE_HEADS,
    MUL,
    POSITION_EMBEDDING,
    RELU,
    RMS_NORM,
    SCALE,
    SIGMOID,
    SILU,
    SINUSOIDAL_POSITIONS,
    SOFTCAP,
    SPLIT_HEADS,
    TIED_LINEAR,
    TOPK_ROUTING,
    Unsupported,
)
from ..common.pyast import BinOp, Const, Expr, Tuple, call


class Saved(NamedTuple):
    """What autograd keeps of one op's forward for its backward, as the row's code runs in torch 2.x: its inputs
    by position, its output, and `extra(node, ins, out)` more elements of values the code makes and keeps
    (a norm's statistics, an attention's log-sum-exp), each in its input's dtype."""

    inputs: tuple[int, ...] = ()
    output: bool = False
    extra: Callable[..., int] | None = None


@dataclass(frozen=True)
class TorchLowering:
    expr: Callable[..., Expr]
    module: Callable[..., Expr] | None = None
    call: Callable[..., Expr] | None = None
    note: Callable[..., str] | None = None
    positions: bool = False
    decode_check: Callable[..., None] | None = None
    saved: Saved = Saved()
    view: bool = False


def _width(node) -> int:
    return node.type.shape[-1]


def _bias(node, w) -> Expr:
    return w["bias"] if node.attrs.bias else Const(None)


# ---------------------------------------------------------------- linear maps
def _linear(node, args, w, ctx) -> Expr:
    return call("F.linear", args[0], w["weight"], _bias(node, w))


def _linear_module(node, ctx) -> Expr:
    in_dim = ctx.graph.node(node.inputs[0]).type.shape[-1]
    return call("nn.Linear", Const(in_dim), Const(node.attrs.out), bias=Const(node.attrs.bias))


def _tied_module(node, ctx) -> Expr:
    rows, cols = node.attrs.weight.shape
    return call("nn.Linear", Const(cols), Const(rows), bias=Const(node.attrs.bias))


# ---------------------------------------------------------------- norms
def _rms_weight(node, weight: Expr) -> Expr:
    offset = node.attrs.offset
    return BinOp(Const(offset), "+", weight) if offset else weight


def _rms_norm(node, args, w, ctx) -> Expr:
    return call("F.rms_norm", args[0], Tuple((Const(_width(node)),)), _rms_weight(node, w["weight"]),
                Const(node.attrs.eps))


def _rms_norm_call(node, attr, args, ctx) -> Expr:
    """A labelled norm is an nn.RMSNorm (its parameter: `weight`); with an offset it is applied
    through F.rms_norm with (offset + weight)."""
    if not node.attrs.offset:
        return attr(*args)
    return call("F.rms_norm", args[0], attr.attr("normalized_shape"), _rms_weight(node, attr.attr("weight")),
                attr.attr("eps"))


def _layer_norm(node, args, w, ctx) -> Expr:
    return call("F.layer_norm", args[0], Tuple((Const(_width(node)),)), w["weight"], _bias(node, w),
                Const(node.attrs.eps))


# ---------------------------------------------------------------- positions
def _position_ids(args, ctx) -> Expr:
    """Each token's position: a learned table's rows at the positions of a prefill or decode step."""
    return ctx.helper("position_ids")(args[0], ctx.positions())


def _sinusoidal(node, args, w, ctx) -> Expr:
    return ctx.helper("sinusoidal_positions")(args[0], ctx.positions(), base=Const(node.attrs.base))


def _rotary(node, args, w, ctx) -> Expr:
    """Rotated at each token's position (pos: a prefill's 0..T-1, a decode step's per-user position)."""
    return ctx.rotary(node.attrs.rope, node.type.shape[-1])(args[0], ctx.positions())


# ---------------------------------------------------------------- attention
def _attend(node, args, w, ctx) -> Expr:
    """Causal attention keeps its keys and values in a KV cache of its own (`self.cache`), written
    at each token's position; a decode step's queries read it up to their positions (and window)."""
    a = node.attrs
    extra: list[Expr] = []
    options: dict[str, Expr] = {}
    if a.causal:
        k, v = (ctx.graph.node(i).type.shape for i in node.inputs[1:])
        extra = [ctx.positions(), ctx.kv_cache(node, k[1], k[3], v[3])]
    else:
        options["causal"] = Const(False)
    for key, value in (("scale", a.scale), ("window", a.window), ("softcap", a.softcap)):
        if value is not None:
            options[key] = Const(value)
    return ctx.helper("attend")(*args, *extra, **options)


def _decode_check_attend(node, graph) -> None:
    if not node.attrs.causal:
        raise Unsupported("non-causal attention cannot decode: every token attends to later ones, which a "
                          "decode step has not seen", hint="generation needs causal attention (drop `causal = false`)")


def _unary(function: str, **options) -> Callable[..., Expr]:
    return lambda node, args, w, ctx: call(function, args[0], **options)


def _softcap(node, args, w, ctx) -> Expr:
    cap = Const(node.attrs.cap)
    return BinOp(cap, "*", call("torch.tanh", BinOp(args[0], "/", cap)))


# ---------------------------------------------------------------- mixture of experts
def _topk_routing(node, args, w, ctx) -> Expr:
    a = node.attrs
    options = {key: Const(value) for key, value, default in (("softmax", a.softmax, "before"),
                                                             ("normalize", a.normalize, False)) if value != default}
    return ctx.helper("topk_routing")(args[0], Const(a.top_k), **options)


def _act(node) -> dict[str, Expr]:
    return {} if node.attrs.act == "silu" else {"act": Const(node.attrs.act)}


def _expert_glu(node, args, w, ctx) -> Expr:
    return ctx.helper("expert_glu")(*args, w["w1"], w["w3"], w["w2"], **_act(node))


def _experts_module(node, ctx) -> Expr:
    """The bank as an Experts module: w1, w3 [E, hidden, d] and w2 [E, d, hidden] nn.Parameters."""
    experts, d = ctx.graph.node(node.inputs[1]).type.shape[-1], node.type.shape[-1]
    return ctx.helper("Experts")(Const(experts), Const(node.attrs.hidden), Const(d), **_act(node))


# ---------------------------------------------------------------- what training keeps (elements; `ins`, `out`: shapes)
def _rows(shape) -> int:
    return numel(shape[:-1])


def _rms_kept(node, ins, out) -> int:
    """F.rms_norm (composite in torch 2.x): the normalised copy and each row's 1/rms."""
    return numel(ins[0]) + _rows(ins[0])


def _attend_kept(node, ins, out) -> int:
    """SDPA's log-sum-exp per query and head; softcapped attention runs the composition, which keeps its scores
    [batch, heads, seq, keys] three times (tanh, softmax, the masked scores); a mask: one float [seq, keys]."""
    batch, heads, seq = out[:3]
    keys = ins[1][-2]
    if node.attrs.softcap is not None:
        return 3 * batch * heads * seq * keys
    return batch * heads * seq + (seq * keys if node.attrs.window is not None else 0)


def _experts_kept(node, ins, out) -> int:
    """expert_glu runs each expert on its routed tokens (top_k per token): each keeps the gathered input, the
    gate and up projections, the activation, their product and the weighted output."""
    tokens = _rows(ins[0]) * node.attrs.top_k
    return tokens * (2 * out[-1] + 4 * node.attrs.hidden)


LINEAR_KEEPS = Saved(inputs=(0,))  # y = x W^T: dW needs x (W is a parameter, not an activation)
ACTIVATION_KEEPS = Saved(inputs=(0,))  # silu, gelu: the derivative at the input


LOWERINGS: dict[str, TorchLowering] = {
    EMBEDDING.name: TorchLowering(
        lambda node, args, w, ctx: call("F.embedding", args[0], w["weight"]),
        module=lambda node, ctx: call("nn.Embedding", Const(node.attrs.vocab), Const(node.attrs.dim)),
        saved=Saved(inputs=(0,))),
    POSITION_EMBEDDING.name: TorchLowering(
        lambda node, args, w, ctx: call("F.embedding", _position_ids(args, ctx), w["weight"]),
        module=lambda node, ctx: call("nn.Embedding", Const(node.attrs.max_positions), Const(_width(node))),
        call=lambda node, attr, args, ctx: attr(_position_ids(args, ctx)), positions=True),
    SINUSOIDAL_POSITIONS.name: TorchLowering(_sinusoidal, positions=True),
    LINEAR.name: TorchLowering(_linear, module=_linear_module, saved=LINEAR_KEEPS),
    TIED_LINEAR.name: TorchLowering(_linear, module=_tied_module,
                                    note=lambda node: f"weight tied to {node.attrs.weight.name}", saved=LINEAR_KEEPS),
    RMS_NORM.name: TorchLowering(
        _rms_norm, call=_rms_norm_call,
        module=lambda node, ctx: call("nn.RMSNorm", Const(_width(node)), eps=Const(node.attrs.eps)),
        saved=Saved(inputs=(0,), extra=_rms_kept)),
    LAYER_NORM.name: TorchLowering(
        _layer_norm,
        module=lambda node, ctx: call("nn.LayerNorm", Const(_width(node)), eps=Const(node.attrs.eps),
                                      bias=Const(node.attrs.bias)),
        saved=Saved(inputs=(0,), extra=lambda node, ins, out: 2 * _rows(ins[0]))),
    ADD.name: TorchLowering(lambda node, args, w, ctx: BinOp(args[0], "+", args[1])),
    MUL.name: TorchLowering(lambda node, args, w, ctx: BinOp(args[0], "*", args[1]), saved=Saved(inputs=(0, 1))),
    SCALE.name: TorchLowering(lambda node, args, w, ctx: BinOp(args[0], "*", Const(node.attrs.factor))),
    SOFTCAP.name: TorchLowering(_softcap, saved=Saved(extra=lambda node, ins, out: numel(out))),  # tanh's output
    RELU.name: TorchLowering(_unary("F.relu"), saved=Saved(output=True)),
    GELU.name: TorchLowering(_unary("F.gelu"), saved=ACTIVATION_KEEPS),
    GELU_TANH.name: TorchLowering(_unary("F.gelu", approximate=Const("tanh")), saved=ACTIVATION_KEEPS),
    SILU.name: TorchLowering(_unary("F.silu"), saved=ACTIVATION_KEEPS),
    SPLIT_HEADS.name: TorchLowering(
        lambda node, args, w, ctx: ctx.helper("split_heads")(args[0], Const(node.attrs.heads)), view=True),
    MERGE_HEADS.name: TorchLowering(lambda node, args, w, ctx: ctx.helper("merge_heads")(args[0])),
    APPLY_ROPE.name: TorchLowering(_rotary, positions=True),
    ATTEND.name: TorchLowering(_attend, positions=True, decode_check=_decode_check_attend,
                               saved=Saved(inputs=(0, 1, 2), output=True, extra=_attend_kept)),
    SIGMOID.name: TorchLowering(_unary("torch.sigmoid"), saved=Saved(output=True)),
    TOPK_ROUTING.name: TorchLowering(_topk_routing, saved=Saved(extra=lambda node, ins, out: 2 * numel(ins[0]))),
    EXPERT_GLU.name: TorchLowering(_expert_glu, module=_experts_module, saved=Saved(extra=_experts_kept)),
}
