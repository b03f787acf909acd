"""Normalisations over the feature dim: RMSNorm and LayerNorm."""

from __future__ import annotations

from ..ir.layout import Layout, Placement
from .registry import (
    ArgSpec,
    OpDef,
    OpError,
    ParamSpec,
    Storage,
    T,
    TorchLowering,
    TTNNLowering,
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
        return ins[0]

    return rule


def _shard_norm(planner, node, layouts):
    """A norm reduces over whole rows: its input is gathered, its weights replicated."""
    node = planner.need(node, 0, Layout.REPLICATED, f"{node.op} needs whole rows")
    planner.place(node, Placement.REPLICATE)
    return planner.set_layout(node, Layout.REPLICATED)


def _ttnn_load_norm(node, refs, ctx) -> list[str]:
    lines = [f"{refs['weight']} = weights.norm({refs.module})"]
    if node.attrs.get("bias"):
        lines.append(f'{refs["bias"]} = weights.norm({refs.module}, "bias")')
    return lines


def _width(node) -> int:
    return node.type.shape[-1]


RMS_NORM = register(OpDef(
    "rms_norm", (T("x"), ArgSpec("eps", "float")), _norm_shape("rms_norm"),
    params=lambda ins, a: _norm_params(ins, a, False),
    doc="x / sqrt(mean(x^2) + eps) * weight.",
    kind="norm", storage=(("weight", Storage.VECTOR),), shard=_shard_norm,
    torch=TorchLowering(
        expr=lambda node, args, w, ctx: (f"F.rms_norm({args[0]}, ({_width(node)},), {w['weight']}, "
                                         f"{node.attrs['eps']!r})"),
        module=lambda node, ctx: f"nn.RMSNorm({_width(node)}, eps={node.attrs['eps']!r})"),
    ttnn=TTNNLowering(
        expr=lambda node, args, refs, ctx: f"ttnn.rms_norm({args[0]}, epsilon={node.attrs['eps']!r}, "
                                           f"weight={refs['weight']})",
        load=_ttnn_load_norm),
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
    ttnn=TTNNLowering(expr=_ttnn_layer_norm, load=_ttnn_load_norm),
))
