"""Normalisations over the feature dim: RMSNorm and LayerNorm.

Both normalise over the last dim, so on [batch, heads, seq, head_dim] values they are per-head
norms (Qwen3's q/k norms). RMSNorm's `offset` multiplies by (offset + weight): Gemma stores w
and applies 1 + w.
"""

from __future__ import annotations

import math
from dataclasses import replace

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
    stay split; only partial sums are completed first. Over the columns of a 2-D plan, which hold
    slices of hidden, the norm is distributed instead (_shard_distributed_norm)."""
    if planner.hidden_side and node.type.rank == 3 and planner.splits_features(node.type.shape[-1]):
        return _shard_distributed_norm(planner, node, layouts)
    planner.place(node, Placement.REPLICATE)
    if node.type.rank == 4 and layouts[0] != Layout.PARTIAL:
        return planner.set_layout(node, layouts[0])
    node = planner.need(node, 0, Layout.REPLICATED, f"{node.op} needs whole rows")
    return planner.set_layout(node, Layout.REPLICATED)


def _shard_distributed_norm(planner, node, layouts):
    """tt-metal's distributed norm (models/tt_transformers/tt/distributed_norm.py on Galaxy): each
    chip sums its slice of hidden (x^2, and x for a LayerNorm: one tile of statistics per chip),
    the statistics are gathered over the columns, and each chip normalises its own slice with its
    slice of the weights. Only the statistics cross the wire, and the output stays split for the
    row-parallel projection that reads it."""
    if layouts[0] != Layout.SPLIT:
        node = planner.need(node, 0, Layout.SPLIT, f"a distributed {node.op} normalises each chip's slice of hidden")
    source = planner.input_node(node, 0)
    mean = node.op == LAYER_NORM_NAME
    stats = planner.insert(NORM_STATISTICS.name, [source.id], {"mean": mean},
                           source.type.with_shape(source.type.shape[:-1] + (TILE * (2 if mean else 1),)),
                           reader=node, layout=Layout.SPLIT)
    gathered = planner.convert(stats, Layout.REPLICATED, f"{node.op}'s statistics of every slice of hidden", node)
    planner.place(node, Placement.HIDDEN)
    node = replace(node, inputs=[source.id, gathered], attrs=dict(node.attrs, distributed=True,
                                                                  placement=Placement.HIDDEN))
    return planner.set_layout(node, Layout.SPLIT)


def _stats_shape(ins, attrs, ctx):
    (x,) = ins
    return x.with_shape(x.shape[:-1] + (TILE * (2 if attrs["mean"] else 1),))


def _ttnn_statistics(node, args, refs, ctx) -> str:
    kind = "layer" if node.attrs["mean"] else "rms"
    ctx.helper("norm_statistics")
    # float32 statistics: a sum of squares over thousands of features, rounded to bf16's 8 bits on each chip,
    # moved the logits 25% further from fp32 than the single chip's (golden, nano-trickster); float32 ones
    # need the fp32-accumulating kernel config. The distributed norm ops take [1, batch, seq, width].
    return (f"ttnn.{kind}_norm_pre_all_gather(ttnn.unsqueeze({args[0]}, 0), dtype=ttnn.float32, "
            "compute_kernel_config=STATISTICS_KERNEL)")


NORM_STATISTICS = register(OpDef(
    "norm_statistics", (T("x"), ArgSpec("mean", "bool", False)), _stats_shape, in_spec=False,
    doc="Made by the sharding planner for a distributed norm: each chip's sum(x^2) (and sum(x) with `mean`) over "
        "its slice of the last dim, one tile wide each; gathered over the mesh and read by the norm.",
    shard=lambda planner, node, layouts: planner.set_layout(node, layouts[0]),
    ttnn=TTNNLowering(expr=_ttnn_statistics), var_name=lambda node: "stats",
))
LAYER_NORM_NAME = "layer_norm"
STATISTICS_BYTES = 4  # a value of norm_statistics' output: float32 (_ttnn_statistics)


def _ttnn_check_norm(node, graph) -> None:
    width = node.type.shape[-1]
    if node.type.rank == 4 and width % TILE:
        raise Unsupported(f"a per-head {node.op} over head_dim {width} is not lowered to TT-NN: heads are zero-padded "
                          f"to {-(-width // TILE) * TILE} features there, which would change the mean",
                          hint="use a head_dim that is a multiple of 32, or --target torch")


def _ttnn_load_norm(node, refs, ctx) -> list[str]:
    split = ctx.mesh.split_argument(node.attrs.get("placements", {})) if ctx.mesh else ""
    split = f", {split}" if split else ""
    offset = node.attrs.get("offset", 0.0)
    if offset:  # folded into the weight as it is placed: ttnn.rms_norm multiplies by it
        ctx.helper("norm_offset")
        return [f"{refs['weight']} = weights.norm({refs.module}, offset={offset!r}{split})"]
    lines = [f"{refs['weight']} = weights.norm({refs.module}{split})"]
    if node.attrs.get("bias"):
        lines.append(f'{refs["bias"]} = weights.norm({refs.module}, "bias"{split})')
    return lines


def _ttnn_rms_norm(node, args, refs, ctx) -> str:
    if node.attrs.get("distributed"):  # args[1]: the gathered statistics (_shard_distributed_norm)
        return (f"ttnn.squeeze(ttnn.rms_norm_post_all_gather(ttnn.unsqueeze({args[0]}, 0), {args[1]}, "
                f"epsilon={node.attrs['eps']!r}, weight={refs['weight']}, dtype=ttnn.bfloat16, "
                "compute_kernel_config=STATISTICS_KERNEL), 0)")
    return f"ttnn.rms_norm({args[0]}, epsilon={node.attrs['eps']!r}, weight={refs['weight']})"


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
    ttnn=TTNNLowering(expr=_ttnn_rms_norm, load=_ttnn_load_norm, check=_ttnn_check_norm),
))


def _torch_layer_norm(node, args, w, ctx) -> str:
    bias = w["bias"] if node.attrs["bias"] else "None"
    return f"F.layer_norm({args[0]}, ({_width(node)},), {w['weight']}, {bias}, {node.attrs['eps']!r})"


def _ttnn_layer_norm(node, args, refs, ctx) -> str:
    bias = f", bias={refs['bias']}" if node.attrs["bias"] else ""
    if node.attrs.get("distributed"):  # args[1]: the gathered statistics (_shard_distributed_norm)
        return (f"ttnn.squeeze(ttnn.layer_norm_post_all_gather(ttnn.unsqueeze({args[0]}, 0), {args[1]}, "
                f"epsilon={node.attrs['eps']!r}, weight={refs['weight']}{bias}, dtype=ttnn.bfloat16, "
                "compute_kernel_config=STATISTICS_KERNEL), 0)")
    return f"ttnn.layer_norm({args[0]}, epsilon={node.attrs['eps']!r}, weight={refs['weight']}{bias})"


LAYER_NORM = register(OpDef(
    LAYER_NORM_NAME, (T("x"), ArgSpec("eps", "float"), ArgSpec("bias", "bool", True)), _norm_shape("layer_norm"),
    params=lambda ins, a: _norm_params(ins, a, a["bias"]),
    doc="(x - mean) / sqrt(var + eps) * weight (+ bias).",
    kind="norm", storage=(("weight", Storage.VECTOR), ("bias", Storage.VECTOR)), shard=_shard_norm,
    torch=TorchLowering(
        expr=_torch_layer_norm,
        module=lambda node, ctx: f"nn.LayerNorm({_width(node)}, eps={node.attrs['eps']!r}, bias={node.attrs['bias']})"),
    ttnn=TTNNLowering(expr=_ttnn_layer_norm, load=_ttnn_load_norm, check=_ttnn_check_norm),
))
