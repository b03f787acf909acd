"""Normalisations over the feature dim: RMSNorm and LayerNorm.

Both normalise over the last dim, so on [batch, heads, seq, head_dim] values they are per-head
norms (Qwen3's q/k norms). RMSNorm's `offset` multiplies by (offset + weight): Gemma stores w
and applies 1 + w.
"""

from __future__ import annotations

import math

from ..ir.layout import Layout, Placement
from ..targets import TILE
from .registry import (
    ArgSpec,
    OpDef,
    OpError,
    ParamSpec,
    Storage,
    T,
    TorchLowering,
    TTNNLowering,
    Unsupported,
    float_input,
    last_dim,
    register,
)


def _norm_params(ins, a, with_bias):
    d = last_dim(ins[0], "norm")
    spec = {"weight": ParamSpec((d,))}
    if with_bias:
        spec["bias"] = ParamSpec((d,))
    return spec


def _norm_shape(name):
    def rule(ins, attrs, ctx):
        float_input(ins[0], name)
        last_dim(ins[0], name)
        if not 0 < attrs["eps"] < 1:
            raise OpError(f"eps must be in (0, 1), got {attrs['eps']}", arg="eps")
        if not math.isfinite(attrs.get("offset", 0.0)):
            raise OpError(f"offset must be finite, got {attrs['offset']}", arg="offset",
                          hint="Gemma's norms use offset = 1.0 (they multiply by 1 + weight)")
        return ins[0]

    return rule


def _shard_norm(planner, node, layouts):
    """A norm reduces over whole rows: its input is gathered, its weights replicated. On
    [batch, heads, seq, head_dim] values (split on heads) each row is one head's, so split heads
    stay split; only partial sums are completed first."""
    planner.place(node, Placement.REPLICATE)
    if node.type.rank == 4 and layouts[0] != Layout.PARTIAL:
        return planner.set_layout(node, layouts[0])
    node = planner.need(node, 0, Layout.REPLICATED, f"{node.op} needs whole rows")
    return planner.set_layout(node, Layout.REPLICATED)


def _ttnn_check_norm(node, graph) -> None:
    width = node.type.shape[-1]
    if node.type.rank == 4 and width % TILE:
        raise Unsupported(f"a per-head {node.op} over head_dim {width} is not lowered to TT-NN: heads are zero-padded "
                          f"to {-(-width // TILE) * TILE} features there, which would change the mean",
                          hint="use a head_dim that is a multiple of 32, or --target torch")


def _ttnn_load_norm(node, refs, ctx) -> list[str]:
    offset = node.attrs.get("offset", 0.0)
    if offset:  # folded into the weight as it is placed: ttnn.rms_norm multiplies by it
        ctx.helper("norm_offset")
        return [f"{refs['weight']} = weights.norm({refs.module}, offset={offset!r})"]
    lines = [f"{refs['weight']} = weights.norm({refs.module})"]
    if node.attrs.get("bias"):
        lines.append(f'{refs["bias"]} = weights.norm({refs.module}, "bias")')
    return lines


def _width(node) -> int:
    return node.type.shape[-1]


def _torch_rms_weight(node, weight: str) -> str:
    offset = node.attrs["offset"]
    return f"{offset!r} + {weight}" if offset else weight


def _torch_rms_norm(node, args, w, ctx) -> str:
    return f"F.rms_norm({args[0]}, ({_width(node)},), {_torch_rms_weight(node, w['weight'])}, {node.attrs['eps']!r})"


def _torch_rms_norm_call(node, attr, args, ctx) -> str:
    """A labelled norm is an nn.RMSNorm (its parameter: `weight`); with an offset it is applied
    through F.rms_norm with (offset + weight)."""
    if not node.attrs["offset"]:
        return f"{attr}({', '.join(args)})"
    return (f"F.rms_norm({args[0]}, {attr}.normalized_shape, {_torch_rms_weight(node, attr + '.weight')}, "
            f"{attr}.eps)")


RMS_NORM = register(OpDef(
    "rms_norm", (T("x"), ArgSpec("eps", "float"), ArgSpec("offset", "float", 0.0)), _norm_shape("rms_norm"),
    params=lambda ins, a: _norm_params(ins, a, False),
    doc="x / sqrt(mean(x^2) + eps) * (offset + weight) over the last dim; offset 1.0 is Gemma's (1 + w).",
    kind="norm", storage=(("weight", Storage.VECTOR),), shard=_shard_norm,
    torch=TorchLowering(
        expr=_torch_rms_norm,
        module=lambda node, ctx: f"nn.RMSNorm({_width(node)}, eps={node.attrs['eps']!r})",
        call=_torch_rms_norm_call),
    ttnn=TTNNLowering(
        expr=lambda node, args, refs, ctx: f"ttnn.rms_norm({args[0]}, epsilon={node.attrs['eps']!r}, "
                                           f"weight={refs['weight']})",
        load=_ttnn_load_norm, check=_ttnn_check_norm),
))


def _torch_layer_norm(node, args, w, ctx) -> str:
    bias = w["bias"] if node.attrs["bias"] else "None"
    return f"F.layer_norm({args[0]}, ({_width(node)},), {w['weight']}, {bias}, {node.attrs['eps']!r})"


def _ttnn_layer_norm(node, args, refs, ctx) -> str:
    bias = f", bias={refs['bias']}" if node.attrs["bias"] else ""
    return f"ttnn.layer_norm({args[0]}, epsilon={node.attrs['eps']!r}, weight={refs['weight']}{bias})"


LAYER_NORM = register(OpDef(
    "layer_norm", (T("x"), ArgSpec("eps", "float"), ArgSpec("bias", "bool", True)), _norm_shape("layer_norm"),
    params=lambda ins, a: _norm_params(ins, a, a["bias"]),
    doc="(x - mean) / sqrt(var + eps) * weight (+ bias).",
    kind="norm", storage=(("weight", Storage.VECTOR), ("bias", Storage.VECTOR)), shard=_shard_norm,
    torch=TorchLowering(
        expr=_torch_layer_norm,
        module=lambda node, ctx: f"nn.LayerNorm({_width(node)}, eps={node.attrs['eps']!r}, bias={node.attrs['bias']})"),
    ttnn=TTNNLowering(expr=_ttnn_layer_norm, load=_ttnn_load_norm, check=_ttnn_check_norm),
))
