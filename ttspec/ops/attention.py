"""Heads and attention: split/merge heads, rotary positions, scaled dot-product attention, and
the fused QKV split that the lowering pass makes of three projections."""

from __future__ import annotations

import math
from typing import NamedTuple

from ..errors import ArchError, divisors, nearest_divisors
from ..ir.layout import Layout
from .elementwise import same_layout
from .registry import (
    ArgSpec,
    Config,
    ConfigDef,
    OpDef,
    OpError,
    T,
    last_dim,
    positive,
    register,
    register_config,
)


# ---------------------------------------------------------------- attributes
class SplitHeadsAttrs(NamedTuple):
    heads: int


class ApplyRopeAttrs(NamedTuple):
    rope: Config


class AttendAttrs(NamedTuple):
    causal: bool = True
    scale: float | None = None  # None: 1/sqrt(head_dim)
    window: int | None = None
    softcap: float | None = None


class SplitQKVHeadsAttrs(NamedTuple):
    heads: int
    kv_heads: int


class QKVPartAttrs(NamedTuple):
    index: int  # 1: k, 2: v
    kv_heads: int


# ---------------------------------------------------------------- split and merge heads
def _split_heads_shape(ins, attrs: SplitHeadsAttrs, ctx):
    (x,) = ins
    if x.rank != 3:
        raise OpError(f"split_heads needs [batch, seq, features], got {x}")
    width = last_dim(x, "split_heads")
    heads = positive(attrs.heads, "heads")
    if width % heads:
        near = [str(d) for d in nearest_divisors(width, heads)]
        raise OpError(f"heads={heads} does not divide {width} features", arg="heads",
                      hint=f"nearest divisors of {width}: {', '.join(near)}", values=near)
    b, s, _ = x.shape
    return x.with_shape((b, heads, s, width // heads))


def _shard_split_heads(planner, node, layouts):
    """Unfused projections: split features become split heads when every device holds whole heads."""
    if layouts[0] == Layout.PARTIAL or (layouts[0] == Layout.SPLIT and (node.attrs.heads % planner.devices
                                                                       or planner.hidden_side)):
        node = planner.need(node, 0, Layout.REPLICATED, "heads are cut from complete values")
    if planner.layout_of(node.inputs[0]) == Layout.SPLIT:
        node = planner.hold_heads(node, node.attrs.heads // planner.devices)
    return planner.set_layout(node, planner.layout_of(node.inputs[0]))


SPLIT_HEADS = register(OpDef(
    "split_heads", (T("x"), ArgSpec("heads", "int")), _split_heads_shape, SplitHeadsAttrs,
    doc="[b, s, heads*head_dim] -> [b, heads, s, head_dim].", shard=_shard_split_heads,
    var_name=lambda node: "heads",
))


def _merge_heads_shape(ins, attrs, ctx):
    (x,) = ins
    if x.rank != 4:
        raise OpError(f"merge_heads needs [batch, heads, seq, head_dim], got {x}")
    b, h, s, dh = x.shape
    if not (isinstance(h, int) and isinstance(dh, int)):
        raise OpError(f"merge_heads needs concrete heads and head_dim, got {x}")
    return x.with_shape((b, s, h * dh))


MERGE_HEADS = register(OpDef(
    "merge_heads", (T("x"),), _merge_heads_shape,
    doc="[b, heads, s, head_dim] -> [b, s, heads*head_dim].", shard=same_layout,
    var_name=lambda node: "y",
))


# ---------------------------------------------------------------- rotary positions
ROPE_STYLES = ("half", "interleaved")
ROPE_SCALINGS = ("none", "linear", "llama3")


def rotary_dims(head_dim: int, rope: Config) -> int:
    """How many leading features of each head rotate (partial rotary: a fraction of head_dim)."""
    return int(round(head_dim * rope.get("fraction")))


def _check_rope(f: dict) -> None:
    for key in ("theta", "factor", "low_freq_factor", "high_freq_factor"):
        value = f[key]
        if not math.isfinite(value):
            raise OpError(f"{key} must be finite, got {value}", arg=key)
        if value <= 0:
            raise OpError(f"{key} must be positive, got {value}", arg=key)
    if not 0 < f["fraction"] <= 1:
        raise OpError(f"fraction must be in (0, 1], got {f['fraction']}", arg="fraction")
    if f["style"] not in ROPE_STYLES:
        raise OpError(f"unknown rope style {f['style']!r}", arg="style",
                      hint="style is \"half\" (HF/GPT-NeoX rotate-half) or \"interleaved\" (GPT-J, Meta)")
    if f["scaling"] not in ROPE_SCALINGS:
        raise OpError(f"unknown rope scaling {f['scaling']!r}", arg="scaling",
                      hint="scaling is one of " + ", ".join(f'"{s}"' for s in ROPE_SCALINGS))
    if f["scaling"] == "llama3" and f["high_freq_factor"] <= f["low_freq_factor"]:
        raise OpError(f"llama3 scaling needs high_freq_factor > low_freq_factor, got {f['high_freq_factor']} "
                      f"and {f['low_freq_factor']}", arg="high_freq_factor")
    if f["original_max_positions"] <= 0:
        raise OpError(f"original_max_positions must be positive, got {f['original_max_positions']}",
                      arg="original_max_positions")


ROPE = register_config(ConfigDef("rope", (
    ArgSpec("theta", "float", 10000.0),
    ArgSpec("fraction", "float", 1.0),
    ArgSpec("style", "str", "half"),
    ArgSpec("scaling", "str", "none"),
    ArgSpec("factor", "float", 1.0),
    ArgSpec("low_freq_factor", "float", 1.0),
    ArgSpec("high_freq_factor", "float", 4.0),
    ArgSpec("original_max_positions", "int", 8192),
), _check_rope, doc="Rotary positions: base theta, partial-rotary fraction, layout style, scaling."))


def _apply_rope_shape(ins, attrs: ApplyRopeAttrs, ctx):
    (x,) = ins
    if x.rank != 4:
        raise OpError(f"apply_rope needs [batch, heads, seq, head_dim], got {x}")
    dh = last_dim(x, "apply_rope")
    rope = attrs.rope
    rot = rotary_dims(dh, rope)
    if abs(dh * rope.get("fraction") - rot) > 1e-9 or rot % 2 or rot == 0:
        raise OpError(f"rope fraction {rope.get('fraction')} of head_dim {dh} gives {dh * rope.get('fraction')}"
                      " rotary dims; need a positive even integer", arg="rope",
                      hint="choose fraction so that head_dim * fraction is even, e.g. 0.25 or 0.5")
    return x


APPLY_ROPE = register(OpDef(
    "apply_rope", (T("x"), ArgSpec("rope", "rope")), _apply_rope_shape, ApplyRopeAttrs,
    doc="Rotary position embedding on [b, heads, s, head_dim]; see rope(...) for the options.",
    shard=same_layout,
))


# ---------------------------------------------------------------- attention
def _attend_flops(ins, out, attrs: AttendAttrs):
    """q k^T and the weighted sum of v, 2 FLOPs per multiply-add, for each (query, key) pair an
    attention kernel computes. Without a window every query is scored against every key (causal
    attention included: flash kernels compute the masked half of the diagonal blocks too, and the
    count has always been the dense one). With a window each query is scored against
    min(window, keys) keys, the band a windowed kernel (ttnn's SDPA with sliding_window_size)
    computes; the dense compositions (the torch reference, and the TT-NN program's softcapped
    attention, which masks a full q k^T) do the full product, which this count leaves out."""
    b, hq, sq, dh = ins[0]
    sk = ins[1][2]
    dv = ins[2][3]
    keys = sk if attrs.window is None else min(attrs.window, sk)
    return 2 * b * hq * sq * keys * dh + 2 * b * hq * sq * keys * dv


def _attend_shape(ins, attrs: AttendAttrs, ctx):
    q, k, v = ins
    for t, n in ((q, "q"), (k, "k"), (v, "v")):
        if t.rank != 4:
            raise OpError(f"attend needs {n} as [batch, heads, seq, head_dim], got {t}", arg=n)
    if q.shape[0] != k.shape[0] or k.shape[:3] != v.shape[:3]:
        raise OpError(f"attend: q {q}, k {k} and v {v} disagree on batch, heads or seq")
    if q.shape[3] != k.shape[3]:
        raise OpError(f"attend: q head_dim {q.shape[3]} != k head_dim {k.shape[3]}")
    if attrs.causal and q.shape[2] != k.shape[2]:
        raise OpError(f"causal attention needs q and k of the same length, got {q.shape[2]} and {k.shape[2]}")
    if attrs.scale is not None and not (math.isfinite(attrs.scale) and attrs.scale > 0):
        raise OpError(f"scale must be a positive finite number, got {attrs.scale}", arg="scale")
    window, softcap = attrs.window, attrs.softcap
    if window is not None:
        if window <= 0:
            raise OpError(f"window must be a positive number of tokens, got {window}", arg="window",
                          hint="window = W lets each query see the last W tokens, itself included "
                               "(HF's sliding_window); `window = none` attends to the whole context")
        if not attrs.causal:
            raise OpError("a sliding window needs causal attention", arg="window",
                          hint="drop `causal = false`, or the window")
    if softcap is not None and not (math.isfinite(softcap) and softcap > 0):
        raise OpError(f"softcap must be a positive finite number, got {softcap}", arg="softcap",
                      hint="attention logits become softcap * tanh(logits / softcap); Gemma 2 uses 50.0")
    hq, hkv = q.shape[1], k.shape[1]
    if hq % hkv:
        valid = divisors(hq)
        listed = ", ".join(map(str, valid if 0 < len(valid) <= 12 else nearest_divisors(hq, hkv)))
        raise OpError(f"kv_heads={hkv} does not divide heads={hq}", arg="k",
                      hint=f"kv_heads must divide heads; valid: {listed}")
    return q.with_shape(q.shape[:3] + (v.shape[3],))


def _shard_attend(planner, node, layouts):
    """Each device attends with its own query heads and the KV heads they read."""
    q_layout = layouts[0]
    if q_layout == Layout.SPLIT:
        kv_heads = planner.input_node(node, 1).type.shape[1]
        for i in (1, 2):
            if layouts[i] != Layout.SPLIT and kv_heads % planner.devices:
                raise ArchError(f"kv_heads={kv_heads} cannot be split over {planner.devices_text}, and these k/v "
                                "projections are not fused with q (the QKV fusion replicates KV heads)",
                                node.loc, hint="compute q, k and v as three linears of one input")
            node = planner.need(node, i, Layout.SPLIT, "each device attends with its own heads")
        # its KV cache holds the KV heads one device reads: split, or one copied head (fused QKV)
        held = kv_heads if node.shard.local_kv_heads is None else node.shard.local_kv_heads
        node = planner.hold_heads(node, kv_heads=max(held // planner.devices, 1))
    else:
        for i in range(3):
            node = planner.need(node, i, Layout.REPLICATED, "attention on complete heads")
    return planner.set_layout(node, planner.layout_of(node.inputs[0]))


def attention_scale(node, graph) -> float:
    """The factor q k^T is scaled by: the spec's, else 1/sqrt(head_dim)."""
    if node.attrs.scale is not None:
        return node.attrs.scale
    return 1 / math.sqrt(graph.node(node.inputs[0]).type.shape[-1])


def materialises_scores(node) -> bool:
    """Whether the TT-NN lowering of this attend holds its [heads, seq, seq] logits in DRAM (the
    softcapped composition); ttnn's fused attention streams them through L1."""
    return node.op == ATTEND.name and node.attrs.softcap is not None


ATTEND = register(OpDef(
    "attend", (T("q"), T("k"), T("v"), ArgSpec("causal", "bool", True), ArgSpec("scale", "float", None, optional=True),
               ArgSpec("window", "int", None, optional=True), ArgSpec("softcap", "float", None, optional=True)),
    _attend_shape, AttendAttrs, flops=_attend_flops,
    doc="softmax(mask(softcap(q k^T * scale))) v over [b, heads, s, head_dim]; GQA when k/v have fewer heads. "
        "window = W: query i sees keys i - W < j <= i; softcap = c: logits -> c * tanh(logits / c).",
    shard=_shard_attend,
    var_name=lambda node: "y",
))


# ---------------------------------------------------------------- made by the QKV fusion pass
def _split_qkv_shape(ins, attrs: SplitQKVHeadsAttrs, ctx):
    (x,) = ins
    total = attrs.heads + 2 * attrs.kv_heads
    width = last_dim(x, "split_qkv_heads")
    if x.rank != 3 or width % total:
        raise OpError(f"split_qkv_heads needs [batch, seq, {total} * head_dim], got {x}")
    b, s, _ = x.shape
    return x.with_shape((b, attrs.heads, s, width // total))


def _shard_split_qkv(planner, node, layouts):
    """A column-parallel fused projection gives each device whole q heads and the KV heads they
    read: KV heads are split when the devices divide them and copied when they divide the devices."""
    n = planner.devices
    heads, kv = node.attrs.heads, node.attrs.kv_heads
    if layouts[0] == Layout.PARTIAL or (layouts[0] == Layout.SPLIT and planner.hidden_side):
        node = planner.need(node, 0, Layout.REPLICATED, "heads are cut from complete values")
        return planner.set_layout(node, Layout.REPLICATED)
    if layouts[0] != Layout.SPLIT:
        return planner.set_layout(node, layouts[0])
    if heads % n:
        raise ArchError(f"heads={heads} cannot be split over {planner.devices_text}", node.loc,
                        hint="tensor parallelism gives each device whole heads; " + planner.meshes_dividing(heads, kv),
                        notes=planner.origins(node, "heads"))
    if kv % n == 0:
        local_kv = kv // n
    elif n % kv == 0:
        local_kv = 1
        planner.note(f"{node.module}: {kv} KV head{'s' if kv > 1 else ''} over {n} devices: each KV head is "
                     f"replicated on {n // kv} devices")
        fused = planner.input_node(node, 0).attrs.fused
        for part in fused.parts[1:]:  # the k and v projections
            for _, name in part.params:
                planner.copy_kv(name, n // kv)
    else:
        raise ArchError(f"kv_heads={kv} over {planner.devices_text}: neither divides the other", node.loc,
                        hint="KV heads are split when the devices divide them and copied when they divide the "
                             "devices; " + planner.meshes_dividing(heads, kv),
                        notes=planner.origins(node, "kv_heads"))
    return planner.set_layout(planner.hold_heads(node, heads // n, local_kv), Layout.SPLIT)


def _qkv_part_shape(ins, attrs: QKVPartAttrs, ctx):
    (q,) = ins
    b, _, s, dh = q.shape
    return q.with_shape((b, attrs.kv_heads, s, dh))


QKV_PART = register(OpDef(
    "qkv_part", (T("qkv"), ArgSpec("index", "int"), ArgSpec("kv_heads", "int")), _qkv_part_shape, QKVPartAttrs,
    doc="k (index 1) or v (index 2) of a split_qkv_heads: [b, kv_heads, s, head_dim].",
    in_spec=False, shard=same_layout,
))

SPLIT_QKV_HEADS = register(OpDef(
    "split_qkv_heads", (T("x"), ArgSpec("heads", "int"), ArgSpec("kv_heads", "int")), _split_qkv_shape,
    SplitQKVHeadsAttrs,
    doc="Fused [b, s, (heads + 2 kv_heads) * head_dim] -> q [b, heads, s, head_dim]; k and v via qkv_part.",
    in_spec=False, shard=_shard_split_qkv,
    results=("q", "k", "v"), part_op=QKV_PART.name,
))
