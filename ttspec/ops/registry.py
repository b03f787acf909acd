"""The registry of primitive ops: one place holds everything ttspec knows about an op.

Each OpDef carries its signature, shape rule, parameter rule and FLOP rule. Later passes
(lowerings, sharding) add their knowledge here too, so adding an op touches one file.
Everything richer (attention, SwiGLU, norms with defaults, heads) is written in the .arch
language itself, in ttspec/stdlib/.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import nearest_divisors
from ..ir.types import Dim, TensorType, broadcast, numel

REQUIRED = object()


class OpError(Exception):
    """A shape or attribute problem; the elaborator attaches the source location."""

    def __init__(self, message: str, hint: str | None = None, arg: str | None = None):
        super().__init__(message)
        self.message, self.hint, self.arg = message, hint, arg


@dataclass(frozen=True)
class ArgSpec:
    name: str
    kind: str  # tensor | int | float | bool | str | rope | ref
    default: object = REQUIRED
    optional: bool = False  # may be `none`


@dataclass(frozen=True)
class ParamSpec:
    shape: tuple[int, ...]
    tied_to: str | None = None  # full name of the parameter this one shares storage with


@dataclass(frozen=True)
class ParamRef:
    """A resolved `tied = <module>` argument: that module's weight."""

    name: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Config:
    """A structured value such as `rope(theta = 10000)`; immutable and hashable."""

    kind: str
    fields: tuple[tuple[str, object], ...]

    def get(self, key: str):
        return dict(self.fields)[key]

    def __str__(self) -> str:
        return f"{self.kind}({', '.join(f'{k}={v!r}' for k, v in self.fields)})"


@dataclass
class ShapeContext:
    """What a shape rule may consult beyond its inputs: bounds on symbolic dims."""

    bounds: dict[str, int] = field(default_factory=dict)


ShapeRule = Callable[[list[TensorType], dict, ShapeContext], TensorType]
ParamRule = Callable[[list[TensorType], dict], dict[str, ParamSpec]]
FlopRule = Callable[[list[tuple[int, ...]], tuple[int, ...], dict], int]


@dataclass(frozen=True)
class OpDef:
    name: str
    args: tuple[ArgSpec, ...]
    shape: ShapeRule
    params: ParamRule = lambda ins, attrs: {}
    flops: FlopRule = lambda ins, out, attrs: 0
    doc: str = ""

    @property
    def tensor_args(self) -> list[str]:
        return [a.name for a in self.args if a.kind == "tensor"]


REGISTRY: dict[str, OpDef] = {}


def op(name: str, args: list[ArgSpec], *, params: ParamRule | None = None,
       flops: FlopRule | None = None, doc: str = ""):
    def register(shape: ShapeRule) -> ShapeRule:
        extra = {}
        if params is not None:
            extra["params"] = params
        if flops is not None:
            extra["flops"] = flops
        REGISTRY[name] = OpDef(name, tuple(args), shape, doc=doc, **extra)
        return shape

    return register


def T(name: str) -> ArgSpec:
    return ArgSpec(name, "tensor")


def _last(t: TensorType, what: str) -> int:
    if t.rank == 0:
        raise OpError(f"{what} needs a tensor with at least one dim, got {t}")
    d = t.shape[-1]
    if not isinstance(d, int):
        raise OpError(f"{what} needs a concrete last dim, got symbolic `{d}` in {t}",
                      hint="the feature dim must be a number, e.g. [batch, seq, 256]")
    return d


def _float_input(t: TensorType, what: str) -> None:
    if t.is_int:
        raise OpError(f"{what} needs a float tensor, got {t}",
                      hint="token ids must go through embedding(...) first")


def _positive(attrs: dict, key: str) -> int:
    v = attrs[key]
    if v <= 0:
        raise OpError(f"{key} must be positive, got {v}", arg=key)
    return v


# ---------------------------------------------------------------- embeddings and positions
@op("embedding", [T("ids"), ArgSpec("vocab", "int"), ArgSpec("dim", "int")],
    params=lambda ins, a: {"weight": ParamSpec((a["vocab"], a["dim"]))},
    doc="Token ids -> vectors: a [vocab, dim] lookup table.")
def _embedding(ins, attrs, ctx):
    (ids,) = ins
    if not ids.is_int:
        raise OpError(f"embedding needs integer token ids, got {ids}", arg="ids",
                      hint="declare the input as e.g. `input tokens: int32[batch, seq]`")
    _positive(attrs, "vocab")
    _positive(attrs, "dim")
    return TensorType("float", ids.shape + (attrs["dim"],))


def _check_positions_fit(seq: Dim, table_rows: int, ctx: ShapeContext) -> None:
    if isinstance(seq, int):
        if seq > table_rows:
            raise OpError(f"sequence length {seq} exceeds the {table_rows} learned positions",
                          arg="max_positions")
        return
    bound = ctx.bounds.get(seq)
    if bound is None:
        raise OpError(f"`{seq}` is unbounded but the position table has {table_rows} rows",
                      hint=f"constrain the input, e.g. `where {seq} <= {table_rows}`")
    if bound > table_rows:
        raise OpError(f"`{seq}` may reach {bound} but the position table has only {table_rows} rows",
                      arg="max_positions", hint=f"use max_positions >= {bound} or `where {seq} <= {table_rows}`")


@op("position_embedding", [T("x"), ArgSpec("max_positions", "int")],
    params=lambda ins, a: {"weight": ParamSpec((a["max_positions"], _last(ins[0], "position_embedding")))},
    doc="Learned absolute positions: rows [0, seq) of a [max_positions, dim] table, shape [seq, dim].")
def _position_embedding(ins, attrs, ctx):
    (x,) = ins
    if x.rank < 2:
        raise OpError(f"position_embedding needs [..., seq, dim], got {x}")
    _positive(attrs, "max_positions")
    _check_positions_fit(x.shape[-2], attrs["max_positions"], ctx)
    return TensorType("float", (x.shape[-2], _last(x, "position_embedding")))


@op("sinusoidal_positions", [T("x"), ArgSpec("base", "float", 10000.0)],
    doc="Fixed sin/cos positions (Vaswani et al.), shape [seq, dim]; no parameters.")
def _sinusoidal(ins, attrs, ctx):
    (x,) = ins
    if x.rank < 2:
        raise OpError(f"sinusoidal_positions needs [..., seq, dim], got {x}")
    d = _last(x, "sinusoidal_positions")
    if d % 2:
        raise OpError(f"sinusoidal positions need an even dim, got {d}")
    return TensorType("float", (x.shape[-2], d))


# ---------------------------------------------------------------- linear maps
def _linear_params(ins, a):
    spec = {"weight": ParamSpec((a["out"], _last(ins[0], "linear")))}
    if a["bias"]:
        spec["bias"] = ParamSpec((a["out"],))
    return spec


@op("linear", [T("x"), ArgSpec("out", "int"), ArgSpec("bias", "bool", False)],
    params=_linear_params,
    flops=lambda ins, out, a: 2 * numel(ins[0]) * a["out"],
    doc="y = x @ W.T (+ b); W is [out, in] as in torch.nn.Linear.")
def _linear(ins, attrs, ctx):
    (x,) = ins
    _float_input(x, "linear")
    _last(x, "linear")
    _positive(attrs, "out")
    return x.with_shape(x.shape[:-1] + (attrs["out"],))


def _tied_params(ins, a):
    ref: ParamRef = a["weight"]
    spec = {"weight": ParamSpec(ref.shape, tied_to=ref.name)}
    if a["bias"]:
        spec["bias"] = ParamSpec((ref.shape[0],))
    return spec


@op("tied_linear", [T("x"), ArgSpec("weight", "ref"), ArgSpec("bias", "bool", False)],
    params=_tied_params,
    flops=lambda ins, out, a: 2 * numel(ins[0]) * a["weight"].shape[0],
    doc="y = x @ E.T with E another module's [out, in] weight (e.g. the token embedding).")
def _tied_linear(ins, attrs, ctx):
    (x,) = ins
    _float_input(x, "tied_linear")
    ref: ParamRef = attrs["weight"]
    if len(ref.shape) != 2:
        raise OpError(f"cannot tie to {ref.name} of shape {list(ref.shape)}: need a matrix", arg="weight")
    rows, cols = ref.shape
    d = _last(x, "tied_linear")
    if d != cols:
        raise OpError(f"cannot tie to {ref.name} [{rows}, {cols}]: input has {d} features, not {cols}",
                      arg="weight")
    return x.with_shape(x.shape[:-1] + (rows,))


# ---------------------------------------------------------------- norms
def _norm_params(ins, a, with_bias):
    d = _last(ins[0], "norm")
    spec = {"weight": ParamSpec((d,))}
    if with_bias:
        spec["bias"] = ParamSpec((d,))
    return spec


def _check_eps(attrs):
    if not 0 < attrs["eps"] < 1:
        raise OpError(f"eps must be in (0, 1), got {attrs['eps']}", arg="eps")


@op("rms_norm", [T("x"), ArgSpec("eps", "float")],
    params=lambda ins, a: _norm_params(ins, a, False),
    doc="x / sqrt(mean(x^2) + eps) * weight.")
def _rms_norm(ins, attrs, ctx):
    _float_input(ins[0], "rms_norm")
    _last(ins[0], "rms_norm")
    _check_eps(attrs)
    return ins[0]


@op("layer_norm", [T("x"), ArgSpec("eps", "float"), ArgSpec("bias", "bool", True)],
    params=lambda ins, a: _norm_params(ins, a, a["bias"]),
    doc="(x - mean) / sqrt(var + eps) * weight (+ bias).")
def _layer_norm(ins, attrs, ctx):
    _float_input(ins[0], "layer_norm")
    _last(ins[0], "layer_norm")
    _check_eps(attrs)
    return ins[0]


# ---------------------------------------------------------------- heads and attention
@op("split_heads", [T("x"), ArgSpec("heads", "int")],
    doc="[b, s, heads*head_dim] -> [b, heads, s, head_dim].")
def _split_heads(ins, attrs, ctx):
    (x,) = ins
    if x.rank != 3:
        raise OpError(f"split_heads needs [batch, seq, features], got {x}")
    width = _last(x, "split_heads")
    heads = _positive(attrs, "heads")
    if width % heads:
        near = ", ".join(map(str, nearest_divisors(width, heads)))
        raise OpError(f"heads={heads} does not divide {width} features", arg="heads",
                      hint=f"nearest divisors of {width}: {near}")
    b, s, _ = x.shape
    return x.with_shape((b, heads, s, width // heads))


@op("merge_heads", [T("x")], doc="[b, heads, s, head_dim] -> [b, s, heads*head_dim].")
def _merge_heads(ins, attrs, ctx):
    (x,) = ins
    if x.rank != 4:
        raise OpError(f"merge_heads needs [batch, heads, seq, head_dim], got {x}")
    b, h, s, dh = x.shape
    if not (isinstance(h, int) and isinstance(dh, int)):
        raise OpError(f"merge_heads needs concrete heads and head_dim, got {x}")
    return x.with_shape((b, s, h * dh))


ROPE_STYLES = ("half", "interleaved")
ROPE_SCALINGS = ("none", "linear", "llama3")


def rotary_dims(head_dim: int, rope: Config) -> int:
    """How many leading features of each head rotate (partial rotary: a fraction of head_dim)."""
    return int(round(head_dim * rope.get("fraction")))


@op("apply_rope", [T("x"), ArgSpec("rope", "rope")],
    doc="Rotary position embedding on [b, heads, s, head_dim]; see rope(...) for the options.")
def _apply_rope(ins, attrs, ctx):
    (x,) = ins
    if x.rank != 4:
        raise OpError(f"apply_rope needs [batch, heads, seq, head_dim], got {x}")
    dh = _last(x, "apply_rope")
    rope: Config = attrs["rope"]
    rot = rotary_dims(dh, rope)
    if abs(dh * rope.get("fraction") - rot) > 1e-9 or rot % 2 or rot == 0:
        raise OpError(f"rope fraction {rope.get('fraction')} of head_dim {dh} gives {dh * rope.get('fraction')}"
                      " rotary dims; need a positive even integer", arg="rope",
                      hint="choose fraction so that head_dim * fraction is even, e.g. 0.25 or 0.5")
    return x


def _attend_flops(ins, out, attrs):
    b, hq, sq, dh = ins[0]
    sk = ins[1][2]
    dv = ins[2][3]
    return 2 * b * hq * sq * sk * dh + 2 * b * hq * sq * sk * dv


@op("attend", [T("q"), T("k"), T("v"), ArgSpec("causal", "bool", True), ArgSpec("scale", "float", None, optional=True)],
    flops=_attend_flops,
    doc="softmax(q k^T * scale + mask) v over [b, heads, s, head_dim]; GQA when k/v have fewer heads.")
def _attend(ins, attrs, ctx):
    q, k, v = ins
    for t, n in ((q, "q"), (k, "k"), (v, "v")):
        if t.rank != 4:
            raise OpError(f"attend needs {n} as [batch, heads, seq, head_dim], got {t}", arg=n)
    if q.shape[0] != k.shape[0] or k.shape[:3] != v.shape[:3]:
        raise OpError(f"attend: q {q}, k {k} and v {v} disagree on batch, heads or seq")
    if q.shape[3] != k.shape[3]:
        raise OpError(f"attend: q head_dim {q.shape[3]} != k head_dim {k.shape[3]}")
    if attrs["causal"] and q.shape[2] != k.shape[2]:
        raise OpError(f"causal attention needs q and k of the same length, got {q.shape[2]} and {k.shape[2]}")
    hq, hkv = q.shape[1], k.shape[1]
    if hq % hkv:
        valid = ", ".join(str(d) for d in range(1, hq + 1) if hq % d == 0)
        raise OpError(f"kv_heads={hkv} does not divide heads={hq}", arg="k",
                      hint=f"kv_heads must divide heads; valid: {valid}")
    return q.with_shape(q.shape[:3] + (v.shape[3],))


# ---------------------------------------------------------------- elementwise
def _binary(name):
    @op(name, [T("a"), T("b")], doc=f"Elementwise {name} with numpy broadcasting.")
    def rule(ins, attrs, ctx):
        a, b = ins
        _float_input(a, name)
        _float_input(b, name)
        out = broadcast(a.shape, b.shape)
        if out is None:
            raise OpError(f"cannot {name} {a} and {b}: shapes do not broadcast")
        return TensorType("float", out)

    return rule


_binary("add")
_binary("mul")

ACTIVATIONS = {
    "relu": "max(x, 0)",
    "gelu": "x * Phi(x), the exact (erf) GELU",
    "gelu_tanh": "the tanh approximation of GELU (GPT-2's gelu_new)",
    "silu": "x * sigmoid(x), a.k.a. swish",
}


def _unary(name, doc):
    @op(name, [T("x")], doc=doc)
    def rule(ins, attrs, ctx):
        _float_input(ins[0], name)
        return ins[0]

    return rule


for _name, _doc in ACTIVATIONS.items():
    _unary(_name, _doc)


# ---------------------------------------------------------------- configs
@dataclass(frozen=True)
class ConfigDef:
    name: str
    fields: tuple[ArgSpec, ...]
    check: Callable[[dict], None]
    doc: str = ""


def _check_rope(f: dict) -> None:
    if f["theta"] <= 0:
        raise OpError(f"theta must be positive, got {f['theta']}", arg="theta")
    if not 0 < f["fraction"] <= 1:
        raise OpError(f"fraction must be in (0, 1], got {f['fraction']}", arg="fraction")
    if f["style"] not in ROPE_STYLES:
        raise OpError(f"unknown rope style {f['style']!r}", arg="style",
                      hint="style is \"half\" (HF/GPT-NeoX rotate-half) or \"interleaved\" (GPT-J, Meta)")
    if f["scaling"] not in ROPE_SCALINGS:
        raise OpError(f"unknown rope scaling {f['scaling']!r}", arg="scaling",
                      hint="scaling is one of " + ", ".join(f'"{s}"' for s in ROPE_SCALINGS))


CONFIGS: dict[str, ConfigDef] = {
    "rope": ConfigDef("rope", (
        ArgSpec("theta", "float", 10000.0),
        ArgSpec("fraction", "float", 1.0),
        ArgSpec("style", "str", "half"),
        ArgSpec("scaling", "str", "none"),
        ArgSpec("factor", "float", 1.0),
        ArgSpec("low_freq_factor", "float", 1.0),
        ArgSpec("high_freq_factor", "float", 4.0),
        ArgSpec("original_max_positions", "int", 8192),
    ), _check_rope, doc="Rotary positions: base theta, partial-rotary fraction, layout style, scaling."),
}


# ---------------------------------------------------------------- target-specific ops made by lowering passes
# (ttspec/lower.py): never written in a spec, but typed like every other op so that the
# interpreters run on lowered graphs too.
@op("split_qkv_heads", [T("x"), ArgSpec("heads", "int"), ArgSpec("kv_heads", "int")],
    doc="Fused [b, s, (heads + 2 kv_heads) * head_dim] -> q [b, heads, s, head_dim]; k and v via qkv_part.")
def _split_qkv_heads(ins, attrs, ctx):
    (x,) = ins
    total = attrs["heads"] + 2 * attrs["kv_heads"]
    width = _last(x, "split_qkv_heads")
    if x.rank != 3 or width % total:
        raise OpError(f"split_qkv_heads needs [batch, seq, {total} * head_dim], got {x}")
    b, s, _ = x.shape
    return x.with_shape((b, attrs["heads"], s, width // total))


@op("qkv_part", [T("qkv"), ArgSpec("index", "int"), ArgSpec("kv_heads", "int")],
    doc="k (index 1) or v (index 2) of a split_qkv_heads: [b, kv_heads, s, head_dim].")
def _qkv_part(ins, attrs, ctx):
    (q,) = ins
    b, _, s, dh = q.shape
    return q.with_shape((b, attrs["kv_heads"], s, dh))


# ---------------------------------------------------------------- collectives, inserted by the sharding planner
# (ttspec/shard.py). Types in the IR stay logical (unsharded), so their shape rule is the
# identity; what they move is described by the plan.
def _collective(name, doc):
    @op(name, [T("x"), ArgSpec("dim", "int", -1), ArgSpec("axis", "int", 1)], doc=doc)
    def rule(ins, attrs, ctx):
        return ins[0]

    return rule


_collective("all_gather", "Gather the shards of `dim` from the devices along mesh axis `axis`.")
_collective("reduce_scatter", "Sum partial results over mesh axis `axis`, leaving each device one slice of `dim`.")
_collective("all_reduce", "Sum partial results over mesh axis `axis`; every device gets the total.")
_collective("mesh_partition", "Each device keeps its own slice of `dim` of a replicated value (no data moves).")
