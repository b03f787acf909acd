"""Linear maps: `linear` (own weight) and `tied_linear` (another module's weight)."""

from __future__ import annotations

from typing import NamedTuple

from ..errors import ArchError
from ..ir.layout import Layout, Placement
from ..ir.types import numel
from ..targets import SINGLE_CHIP_HINT, TILE
from .registry import (
    ZERO,
    ArgSpec,
    OpDef,
    OpError,
    ParamRef,
    ParamSpec,
    Storage,
    T,
    float_input,
    last_dim,
    positive,
    register,
)


class FusedPart(NamedTuple):
    """One projection folded into a fused linear: its component label and parameter names."""

    label: str  # the component's own name inside its parent ("wq", "q_proj" ...)
    params: tuple[tuple[str, str], ...]  # local name ("weight", "bias") -> parameter name


class FusedQKV(NamedTuple):
    """A linear that computes q, k and v at once (the QKV fusion pass, ttspec/passes/fuse.py):
    its output rows are [q heads; k heads; v heads], each head `head_dim` wide."""

    parts: tuple[FusedPart, FusedPart, FusedPart]
    heads: int
    kv_heads: int
    head_dim: int

    @property
    def param_names(self) -> list[str]:
        return [name for part in self.parts for _, name in part.params]


# ---------------------------------------------------------------- attributes
class LinearAttrs(NamedTuple):
    out: int
    bias: bool = False
    fused: FusedQKV | None = None  # set by the QKV fusion pass: the three projections this one computes
    activation: str | None = None  # set by the activation fusion pass: ttnn.linear's `activation=`


class TiedLinearAttrs(NamedTuple):
    weight: ParamRef
    bias: bool = False

    # read alike with LinearAttrs by the lowerings both ops share: a tied linear is never fused
    @property
    def fused(self) -> None:
        return None

    @property
    def activation(self) -> None:
        return None


def fused_qkv(node) -> FusedQKV | None:
    """The q, k and v projections a node computes at once, when it is a fused QKV linear."""
    return node.attrs.fused if node.op == LINEAR.name else None


# ---------------------------------------------------------------- shape and parameter rules
def _linear_params(ins, a: LinearAttrs):
    spec = {"weight": ParamSpec((a.out, last_dim(ins[0], "linear")))}
    if a.bias:
        spec["bias"] = ParamSpec((a.out,), init=ZERO)
    return spec


def _linear_shape(ins, attrs: LinearAttrs, ctx):
    (x,) = ins
    float_input(x, "linear")
    last_dim(x, "linear")
    positive(attrs.out, "out")
    return x.with_shape(x.shape[:-1] + (attrs.out,))


def _tied_params(ins, a: TiedLinearAttrs):
    ref = a.weight
    spec = {"weight": ParamSpec(ref.shape, tied_to=ref.name)}
    if a.bias:
        spec["bias"] = ParamSpec((ref.shape[0],), init=ZERO)
    return spec


def _tied_shape(ins, attrs: TiedLinearAttrs, ctx):
    (x,) = ins
    float_input(x, "tied_linear")
    ref = attrs.weight
    if len(ref.shape) != 2:
        raise OpError(f"cannot tie to {ref.name} of shape {list(ref.shape)}: need a matrix", arg="weight")
    rows, cols = ref.shape
    d = last_dim(x, "tied_linear")
    if d != cols:
        raise OpError(f"cannot tie to {ref.name} [{rows}, {cols}]: input has {d} features, not {cols}",
                      arg="weight")
    return x.with_shape(x.shape[:-1] + (rows,))


def out_features(node) -> int:
    return node.type.shape[-1]


# ---------------------------------------------------------------- sharding (Megatron-style)
def _shard_linear(planner, node, layouts):
    """Column-parallel on a complete input, row-parallel on a split one; the output head splits
    the (padded) vocabulary; what does not split into whole tiles is replicated."""
    n = planner.devices
    forced = planner.override(node)
    if planner.hidden_side:
        return _shard_hidden_side(planner, node, layouts[0], forced)
    if forced is not None:
        return _shard_forced(planner, node, layouts[0], forced)
    layout = layouts[0]
    if layout == Layout.PARTIAL:
        node = planner.need(node, 0, Layout.REPLICATED, "a linear reads complete values")
        layout = Layout.REPLICATED
    if layout == Layout.SPLIT and node.attrs.activation:  # an activation needs complete sums
        node = planner.need(node, 0, Layout.REPLICATED, "a linear with a fused activation reads complete values")
        layout = Layout.REPLICATED
    if layout == Layout.SPLIT:  # the input features are split, so the weight's input rows are too
        return planner.set_layout(planner.place(node, Placement.ROW), Layout.PARTIAL)
    out = out_features(node)
    fused = node.attrs.fused
    if fused is not None:
        if fused.head_dim % TILE:
            raise ArchError(f"head_dim {fused.head_dim} is not a multiple of {TILE}: padded heads are not yet "
                            "combined with tensor parallelism", node.loc,
                            hint=f"compile this spec for a single chip ({SINGLE_CHIP_HINT})")
        return planner.set_layout(planner.place(node, Placement.COLUMN), Layout.SPLIT)
    multiple = planner.vocab_multiple  # n tiles; in a 2-D plan, also whole tiles over the columns
    if node.op == TIED_LINEAR.name or (planner.is_output_head(node) and (out % n or out % multiple
                                                                         and multiple > n * TILE)):
        padded = -(-out // multiple) * multiple
        if padded != out:
            columns = multiple // (n * TILE)
            over = f" in whole tiles over the {columns} columns that all-reduce it" if columns > 1 else ""
            planner.note(f"{node.module}: vocab {out} padded to {padded} (zero rows) to split over {n} devices{over}; "
                         "the padding is cut from the logits")
        return planner.set_layout(planner.place(node, Placement.VOCAB, padded_rows=padded), Layout.SPLIT)
    if out % n == 0 and (out // n) % TILE == 0:
        return planner.set_layout(planner.place(node, Placement.COLUMN), Layout.SPLIT)
    planner.note(f"{node.module}: {out} output features do not split into whole tiles over {n} devices; "
                 "its weight is replicated")
    return planner.set_layout(planner.place(node, Placement.REPLICATE), Layout.REPLICATED)


def _shard_hidden_side(planner, node, layout, forced):
    """The columns of a 2-D plan split every matmul on its hidden-side dim (tt-metal's Galaxy models):
    a projection out of the residual stream (input features = hidden) is row-parallel over them and
    leaves partial sums; one back into it (output features = hidden) is column-parallel and leaves the
    residual's hidden slices. A fused activation (it needs complete sums), an output head's vocabulary
    (the rows split it) or a spec's `shard ... replicate` keep the weight whole on this axis. A spec's
    column/row statements place the rows' (tensor-parallel) split. A weight keeps one split per dim:
    the side the rows split is not split again."""
    keep_whole = forced is not None and forced.placement == Placement.REPLICATE
    in_features = planner.input_node(node, 0).type.shape[-1]
    rows = node.shard.placed  # the tensor-parallel axis's, planned first
    in_free = Placement.ROW not in rows
    out_free = not rows & {Placement.COLUMN, Placement.VOCAB}
    if not keep_whole and in_free and not node.attrs.activation and planner.splits_features(in_features):
        if layout != Layout.SPLIT:
            node = planner.need(node, 0, Layout.SPLIT, "the weight's input features (hidden) are split over "
                                "the mesh columns")
        return planner.set_layout(planner.place(node, Placement.ROW), Layout.PARTIAL)
    node = planner.need(node, 0, Layout.REPLICATED, "a linear reads complete values")
    head = node.op == TIED_LINEAR.name or planner.is_output_head(node)
    if not keep_whole and out_free and not head and node.attrs.fused is None \
            and planner.splits_features(out_features(node)):
        return planner.set_layout(planner.place(node, Placement.COLUMN), Layout.SPLIT)
    return planner.set_layout(planner.place(node, Placement.REPLICATE), Layout.REPLICATED)


def _shard_forced(planner, node, layout, forced):
    """A spec's `shard "pattern" replicate|column|row` statement for this linear."""
    placement, out, n = forced.placement, out_features(node), planner.devices
    if placement == Placement.ROW:
        if layout != Layout.SPLIT:
            raise ArchError(f'shard "{forced.pattern}" row: a row-parallel linear needs split input features, '
                            f"but `{node.module}` reads a complete value", forced.placement_loc,
                            hint="row-parallel fits the projection after a column-parallel one (wo, w2)")
        return planner.set_layout(planner.place(node, Placement.ROW), Layout.PARTIAL)
    node = planner.need(node, 0, Layout.REPLICATED, f'shard "{forced.pattern}" {placement} reads complete values')
    if placement == Placement.COLUMN:
        if node.attrs.fused:
            raise ArchError("a fused QKV projection is always split by heads", forced.placement_loc)
        if out % n or (out // n) % TILE:
            raise ArchError(f"`{node.module}`: {out} output features do not split into whole tiles over "
                            f"{planner.devices_text}", forced.placement_loc, hint="use `replicate`")
        return planner.set_layout(planner.place(node, Placement.COLUMN), Layout.SPLIT)
    return planner.set_layout(planner.place(node, Placement.REPLICATE), Layout.REPLICATED)


def _var_name(node) -> str:
    return "qkv" if node.attrs.fused else "h"


def _linear_flops(ins, out, a) -> int:
    return 2 * numel(ins[0]) * out[-1]


LINEAR = register(OpDef(
    "linear", (T("x"), ArgSpec("out", "int"), ArgSpec("bias", "bool", False)), _linear_shape, LinearAttrs,
    params=_linear_params, flops=_linear_flops,
    doc="y = x @ W.T (+ b); W is [out, in] as in torch.nn.Linear.",
    kind="linear", storage=(("weight", Storage.MATRIX),), shard=_shard_linear,
    var_name=_var_name,
))

TIED_LINEAR = register(OpDef(
    "tied_linear", (T("x"), ArgSpec("weight", "ref"), ArgSpec("bias", "bool", False)), _tied_shape, TiedLinearAttrs,
    params=_tied_params, flops=_linear_flops,
    doc="y = x @ E.T with E another module's [out, in] weight (e.g. the token embedding).",
    kind="head", storage=(("weight", Storage.MATRIX),), shard=_shard_linear,
))
