"""What the fields of a Hugging Face config.json mean, shared by the families' readers (ttspec.families.*):
config.json read with every key located, the model as the spec will say it (Desc), and the readers of
the fields several families have (sizes, head_dim, RoPE, sliding windows, softcaps), each checked against
what ttspec compiles with a refusal located at the field. The families decide which of these they read;
ttspec.importers.hf checks what is left over and writes the spec.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..elaborate import MAX_REPEAT
from ..errors import ArchError, Loc, SourceCache, nearest_divisors
from ..inputs import MiB, parse_json, quote, read_text
from ..ops.attention import ROPE_SCALINGS
from ..ops.elementwise import GELU, GELU_TANH, RELU, SILU
from ..ops.registry import MAX_PARAM_ELEMENTS

LINEAR_ROPE, LLAMA3_ROPE = (s for s in ROPE_SCALINGS if s != "none")
SUPPORTED_ROPE = ("default", LINEAR_ROPE, LLAMA3_ROPE)
# HF activation name -> ours (HF's gelu, silu and relu are spelled as ours)
ACTIVATIONS = {"gelu_new": GELU_TANH.name, "gelu_pytorch_tanh": GELU_TANH.name, "swish": SILU.name,
               **{op.name: op.name for op in (GELU, SILU, RELU)}}


MAX_INT = 1 << 40  # sizes beyond this are no model (and beyond what a spec's integers hold)
MAX_CONFIG_BYTES = 16 * MiB  # real config.json files are kilobytes; Phi-3's longrope lists make ~100 KB
# A spec names the window of each layer of one period of the layer pattern (`[none, sliding_window, ...][layer]`);
# a spec holds at most 8,000 tokens (frontend/source.py), two per entry. Real patterns repeat every 2 to 6 layers,
# or run once over the layers (Qwen2's max_window_layers: at most a few hundred entries).
MAX_LAYER_PATTERN = 1000
_REQUIRED = object()


def key_locations(text: str) -> dict[tuple[str, ...], tuple[int, int, int]]:
    """Where each object key of a JSON document is: key path -> (line, column, length)."""
    locs: dict[tuple[str, ...], tuple[int, int, int]] = {}
    stack: list[tuple[str, object]] = []  # ("{", last key) or ("[", index)
    line, col, i, n = 1, 1, 0, len(text)
    expect_key = False
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if expect_key and stack and stack[-1][0] == "{":
                try:
                    key = json.loads(text[i:j + 1])
                except ValueError:
                    key = text[i + 1:j]
                stack[-1] = ("{", key)
                path = tuple(str(k) for kind, k in stack if k is not None)
                locs[path] = (line, col, j + 1 - i)  # json keeps the last of duplicate keys: point at it
                expect_key = False
            col += j + 1 - i
            i = j + 1
            continue
        if c == "{":
            stack.append(("{", None))
            expect_key = True
        elif c == "[":
            stack.append(("[", None))
        elif c in "}]":
            if stack:
                stack.pop()
        elif c == ",":
            expect_key = bool(stack) and stack[-1][0] == "{"
        if c == "\n":
            line, col = line + 1, 1
        else:
            col += 1
        i += 1
    return locs


class Config:
    """config.json with a record of what was read, what was defaulted, and where each key is."""

    def __init__(self, path: Path, ignore: tuple[str, ...] = ()):
        self.path = path
        # the path as locations show it: one line, control characters visible (a directory may be named anything)
        self.name = quote(path, limit=4096)
        # a regular file only, size-limited; nesting, integers and numbers bounded (inputs.py)
        self.text = read_text(path, "config.json", MAX_CONFIG_BYTES)
        SourceCache().add(self.name, self.text)  # excerpts quote the text read, not the file as it is later
        data = parse_json(self.text, self.name, "config.json")
        if not isinstance(data, dict):
            raise ArchError(f"a config.json holds a JSON object of fields, not a {type(data).__name__}",
                            Loc(self.name, 1, 1))
        self.data = data
        self.locs = key_locations(self.text)
        self.used: set[str] = set()
        self.defaults: list[tuple[str, object]] = []
        self.ignore = set(ignore)

    def loc(self, *keys: str) -> Loc | None:
        where = self.locs.get(tuple(keys))
        return Loc(self.name, where[0], where[1], where[2]) if where else None

    def error(self, keys: str | tuple[str, ...], message: str, hint: str | None = None) -> ArchError:
        keys = (keys,) if isinstance(keys, str) else keys
        return ArchError(message, self.loc(*keys) or Loc(self.name, 1, 1), hint=hint)

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def raw(self, key: str, default=None):
        self.used.add(key)
        return self.data.get(key, default)

    def get(self, key: str, kind: str, default=_REQUIRED, *, null=_REQUIRED, note_default: bool = True, low: int = 1):
        """The field's value, checked against `kind` ("int", "float", "bool", "str", "dict", "list").
        Absent: `default` (recorded for the header) or, without one, an error naming the field.
        JSON null: `null` when given (what transformers makes of None), else as absent."""
        self.used.add(key)
        if key not in self.data or (self.data[key] is None and null is _REQUIRED):
            if default is _REQUIRED:
                raise ArchError(f"{self.name} has no `{key}`, which the spec needs",
                                hint=f"add `\"{key}\": ...` to the config; ttspec does not guess sizes "
                                     "(transformers' class default is another model's)")
            if note_default and key not in self.data:
                self.defaults.append((key, default))
            return default
        value = self.data[key]
        if value is None:
            return null
        return check_kind(self, (key,), value, kind, low)

    def pick(self, *names: str):
        """The first of several spellings of one field that is present (GPT-2's n_embd ...)."""
        return next((k for k in names if k in self.data), names[0])


def shown(value) -> str:
    """A config value as messages quote it: JSON (control characters escaped), one line, bounded."""
    return quote(json.dumps(value), limit=80)


def check_kind(cfg: Config, keys: tuple[str, ...], value, kind: str, low: int = 1):
    """`value` as `kind`, or a located refusal; an int must be in [low, MAX_INT] (sizes and counts: from 1)."""
    name = quote(".".join(keys), limit=80)
    ok = {"int": isinstance(value, int) and not isinstance(value, bool),
          "float": isinstance(value, (int, float)) and not isinstance(value, bool),
          "bool": isinstance(value, bool), "str": isinstance(value, str), "dict": isinstance(value, dict),
          "list": isinstance(value, list)}[kind]
    if kind == "int" and isinstance(value, float) and value.is_integer():
        value, ok = int(value), True
    if not ok:
        spelled = {"int": "a whole number (42)", "float": "a number (1e-05)", "bool": "true or false",
                   "str": 'a string ("silu")', "dict": "an object ({...})", "list": "a list ([...])"}[kind]
        raise cfg.error(keys, f"`{name}` should be {'an' if kind == 'int' else 'a'} {kind}, got {shown(value)}",
                        hint=f"transformers reads `{name}` as {spelled}")
    if kind == "int" and not low <= value <= MAX_INT:
        raise cfg.error(keys, f"`{name}` must be at least {low}, got {value}" if value < low and low != 1 else
                        f"`{name}` must be positive, got {value}" if value < low else
                        f"`{name}` = {value} is too large (at most {MAX_INT:,})",
                        hint="sizes, counts and positions are positive whole numbers; ttspec takes up to 2**40")
    if kind == "float" and not math.isfinite(value):
        raise cfg.error(keys, f"`{name}` must be finite, got {value}", hint="JSON numbers are finite")
    return float(value) if kind == "float" else value


@dataclass
class Desc:
    family: str
    hf_class: str
    vocab: int
    d: int
    layers: int
    heads: int
    kv_heads: int
    mlp: int
    max_seq: int
    eps: float
    head_dim: int | None = None  # only when it differs from d / heads
    norm: str = "rmsnorm"  # or "layernorm"
    norm_offset: float = 0.0  # Gemma: weight applied as (1 + w)
    embed_scale: bool = False  # Gemma: embedding * sqrt(d)
    learned_positions: bool = False  # GPT-2
    rope: dict | None = None  # rope(...) arguments in order, spec text values
    qkv_bias: bool = False
    out_bias: bool = False
    qk_norm: bool = False
    qk_norm_scope: str = "head"  # or "projection": OLMoE's norms over the whole q and k projections
    attn_scale: float | None = None  # query_pre_attn_scalar ** -0.5 when it is not head_dim's
    attn_scale_from: int | None = None
    attn_softcap: float | None = None
    windows: list[int | None] = field(default_factory=list)  # per layer; None: full causal attention
    window_period: int | None = None  # the family's period of `windows` when they follow its rule (Gemma 2: 2)
    mlp_kind: str = "glu"  # "glu" (gate, up, down) or "mlp" (up, down)
    act: str = SILU.name
    mlp_bias: bool = False
    residual: str = "sequential"  # "parallel" (Phi-2), "sandwich" (Gemma 2: norms before and after)
    tied: bool = False
    head_bias: bool = False
    final_softcap: float | None = None
    notes: list[str] = field(default_factory=list)
    # the family's labels (its checkpoint rules map them to HF names): pre-attention norm, pre-MLP norm (None: the
    # MLP shares the attention's norm), token embedding, final norm
    # (split from one string: the label `embedding` is also an op's name, which only ttspec/ops may spell)
    labels: tuple[str | None, ...] = tuple("attn_norm mlp_norm embedding norm".split())
    biased_throughout: bool = False  # every linear layer has a bias (Phi-2, GPT-2): the summary does not say so
    # the config field each size came from (GPT-2 spells them n_embd, n_head, ...), for located errors
    keys: dict[str, str] = field(default_factory=dict)
    moe: MoeDesc | None = None  # a mixture of experts (families/moe_config.py)


@dataclass
class MoeDesc:
    """A mixture of experts as the stdlib's `moe` block takes it, and which layers have one."""
    experts: int
    top_k: int
    hidden: int  # each expert's width
    normalize: bool  # the top k probabilities renormalised to sum 1
    layers: list[bool]  # per layer: the MoE block (True) or the dense MLP of width Desc.mlp
    shared: int | None = None  # a shared expert's width (Qwen-MoE)
    shared_gate: bool = False  # the shared expert behind sigmoid(linear(x, 1))


def read_activation(cfg: Config, key: str, value: str, legacy_gelu_tanh: bool = False) -> str:
    """Our activation for HF's name; `legacy_gelu_tanh`: the family's "gelu" means the tanh approximation."""
    if legacy_gelu_tanh and value == GELU.name:
        return GELU_TANH.name  # transformers maps Gemma's legacy "gelu" to the tanh approximation
    if value not in ACTIVATIONS:
        raise cfg.error(key, f"activation `{key}: {shown(value)}` cannot be expressed in ttspec",
                        hint="supported: " + ", ".join(f'"{a}"' for a in ACTIVATIONS))
    return ACTIVATIONS[value]


def read_head_dim(cfg: Config, d: int, heads: int, default) -> int:
    if default is None:  # derived, as transformers derives it
        if d % heads and not cfg.has("head_dim"):
            raise cfg.error("num_attention_heads", f"num_attention_heads={heads} does not divide hidden_size={d} "
                                                   "and the config gives no head_dim")
        return cfg.get("head_dim", "int", d // heads, null=d // heads, note_default=False)
    return cfg.get("head_dim", "int", default, null=default)


def head_dim_key(cfg: Config, default) -> str:
    """The field head_dim comes from: its own, or hidden_size (divided by the heads) when derived."""
    return "head_dim" if cfg.has("head_dim") or default is not None else "hidden_size"


def read_rope(cfg: Config, desc: Desc, head_dim: int, partial_default: float = 1.0, head_dim_key: str = "head_dim",
              partial: bool = False, theta_default: float = 10000.0) -> dict:
    """rope(...) arguments from rope_parameters (5.x) or rope_theta + rope_scaling (4.x), each checked
    against the range ttspec's rope() takes (ops/attention.py) where the config gives it. `partial`: the
    family may rotate part of each head (partial_rotary_factor)."""
    where, params = _rope_params(cfg)

    def one(key: str, top: str, default: float, note: bool = True):
        inner = params.get(key)
        if inner is not None:
            inner = check_kind(cfg, (where, key), inner, "float")
        outer = cfg.get(top, "float", None, null=None, note_default=False)
        if inner is not None and outer is not None and inner != outer:
            raise cfg.error((where, key), f"`{where}.{key}` = {inner} and `{top}` = {outer} disagree")
        value = inner if inner is not None else outer
        if value is None and note:
            cfg.defaults.append((top, default))
        return default if value is None else value

    def where_of(key: str) -> tuple[str, ...]:
        return (where, key) if key in params else (key,)

    rope_type = _rope_type(cfg, where, params)
    theta = one("rope_theta", "rope_theta", theta_default)
    if theta <= 0:  # transformers would raise 0 to negative powers: inf and NaN frequencies
        raise cfg.error(where_of("rope_theta"), f"`rope_theta` = {theta!r}: RoPE's base must be positive",
                        hint="real models use 10000.0 to 1000000.0")
    fraction = one("partial_rotary_factor", "partial_rotary_factor", partial_default, note=partial_default != 1.0)
    if fraction != 1.0 and not partial:
        raise cfg.error(where_of("partial_rotary_factor"),
                        f"partial_rotary_factor = {fraction}: {desc.hf_class} rotates whole heads",
                        hint="only phi and phi3 apply a partial rotary factor")
    if not 0 < fraction <= 1:
        raise cfg.error(where_of("partial_rotary_factor"),
                        f"`partial_rotary_factor` = {fraction!r}: the rotated fraction of each head must be in (0, 1]",
                        hint="Phi-2 rotates 0.4 of each head, Phi-1.5 0.5")
    _check_rotary_dims(cfg, head_dim, fraction, where_of("partial_rotary_factor"), head_dim_key)
    args = {"theta": spec_float(theta)}
    if fraction != 1.0:
        args["fraction"] = spec_float(fraction)
    known = {"rope_type", "type", "rope_theta", "partial_rotary_factor"} | _rope_scaling(cfg, desc, where, params,
                                                                                         rope_type, args)
    for key, value in params.items():
        if key not in known and value is not None:
            raise cfg.error((where, key), f"`{where}.{quote(key, limit=80)}` is not part of rope type `{rope_type}` "
                                          "as ttspec computes it", hint="remove it if it has no effect")
    return args


def _rope_params(cfg: Config) -> tuple[str, dict]:
    """(the field that holds them, the rope parameters): transformers 5's rope_parameters or 4's rope_scaling."""
    params5 = cfg.get("rope_parameters", "dict", None, null=None, note_default=False)
    scaling4 = cfg.get("rope_scaling", "dict", None, null=None, note_default=False)
    if params5 is not None and scaling4 is not None and params5 != scaling4:
        raise cfg.error("rope_scaling", "the config has both `rope_parameters` (transformers 5) and `rope_scaling` "
                                        "(transformers 4), and they differ", hint="keep one of them")
    where = "rope_scaling" if scaling4 is not None else "rope_parameters"
    params = dict(scaling4 if scaling4 is not None else params5 or {})
    layered = [k for k in params if k.endswith("_attention")]
    if layered:
        raise cfg.error((where, layered[0]), f"`{where}` differs per layer type ({', '.join(layered)}); ttspec "
                                             "imports one rotary embedding for all layers")
    return where, params


def _rope_type(cfg: Config, where: str, params: dict) -> str:
    rope_type = params.get("rope_type", params.get("type", "default"))
    if "type" in params and "rope_type" in params and params["type"] != params["rope_type"]:
        raise cfg.error((where, "type"), f"`{where}.type` and `{where}.rope_type` disagree")
    type_key = (where, "rope_type" if "rope_type" in params else "type")
    if not isinstance(rope_type, str) or rope_type not in SUPPORTED_ROPE:
        shown_type = quote(rope_type, limit=80) if isinstance(rope_type, str) else shown(rope_type)
        raise cfg.error(type_key, f"rope type `{shown_type}` (`{'.'.join(type_key)}`) cannot be expressed in ttspec "
                                  "yet", hint="supported rope types: " + ", ".join(SUPPORTED_ROPE))
    return rope_type


def _check_rotary_dims(cfg: Config, head_dim: int, fraction: float, fraction_key: tuple[str, ...],
                       head_dim_key: str) -> None:
    """rope() rotates pairs of features: a whole, even, non-zero number of them."""
    rot = head_dim * fraction
    if abs(rot - round(rot)) > 1e-9 or round(rot) % 2 or round(rot) == 0:
        if fraction != 1.0:
            raise cfg.error(fraction_key,
                            f"partial_rotary_factor {fraction!r} of head_dim {head_dim} gives {rot!r} rotary "
                            "dimensions; ttspec needs an even whole number",
                            hint="choose a factor that makes head_dim * factor even, e.g. 0.25 or 0.5")
        derived = "" if head_dim_key == "head_dim" else f" ({head_dim_key} / num_attention_heads)"
        raise cfg.error(head_dim_key, f"head_dim {head_dim}{derived} is odd: RoPE rotates each head's features in "
                                      "pairs, so head_dim must be even", hint="real models use 64, 80, 96 or 128")


def _rope_scaling(cfg: Config, desc: Desc, where: str, params: dict, rope_type: str, args: dict) -> set[str]:
    """The scaling's rope(...) arguments, added to `args`; returns the parameters the scaling reads."""
    if rope_type == LINEAR_ROPE:
        args["scaling"] = f'"{LINEAR_ROPE}"'
        args["factor"] = spec_float(rope_number(cfg, where, params, "factor"))
        return {"factor"}
    if rope_type != LLAMA3_ROPE:
        return set()
    args["scaling"] = f'"{LLAMA3_ROPE}"'
    factors = {key: rope_number(cfg, where, params, key) for key in ("factor", "low_freq_factor", "high_freq_factor")}
    if factors["high_freq_factor"] <= factors["low_freq_factor"]:  # transformers divides by their difference
        raise cfg.error((where, "high_freq_factor"),
                        f"llama3 rope scaling needs high_freq_factor > low_freq_factor, got "
                        f"{factors['high_freq_factor']!r} and {factors['low_freq_factor']!r}",
                        hint="Llama 3.1 uses low_freq_factor 1.0 and high_freq_factor 4.0")
    args |= {key: spec_float(value) for key, value in factors.items()}
    original = params.get("original_max_position_embeddings")
    if original is None:  # transformers: the top-level field (Phi-3's), else max_position_embeddings
        original = cfg.get("original_max_position_embeddings", "int", desc.max_seq, null=desc.max_seq,
                           note_default=False)
    args["original_max_positions"] = str(check_kind(cfg, (where, "original_max_position_embeddings"), original, "int"))
    return {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}


def rope_number(cfg: Config, where: str, params: dict, key: str) -> float:
    if params.get(key) is None:
        raise cfg.error(where, f"`{where}` of type `{params.get('rope_type', params.get('type'))}` has no `{key}`",
                        hint=f"add `\"{key}\": ...` to `{where}` (transformers requires it for this rope type)")
    value = check_kind(cfg, (where, key), params[key], "float")
    if value <= 0:
        raise cfg.error((where, key), f"`{where}.{key}` = {value!r}: a rope scaling factor must be positive",
                        hint="Llama 3.1 uses factor 8.0, low_freq_factor 1.0, high_freq_factor 4.0")
    return value


def read_layer_windows(cfg: Config, layers: int, window: int | None, types_default: list[str] | None) -> list:
    """Per-layer sliding windows from layer_types (5.x) or the family's rule (types_default)."""
    types = cfg.get("layer_types", "list", None, null=None, note_default=False)
    key = ("layer_types",)
    if types is None:
        types = types_default or ["full_attention"] * layers
    elif len(types) != layers:
        raise cfg.error(key, f"`layer_types` has {len(types)} entries for num_hidden_layers={layers}")
    out = []
    for i, t in enumerate(types):
        if not isinstance(t, str):
            raise cfg.error(key, f"layer_types[{i}] should be a string, got {shown(t)}")
        t = {"attention": "full_attention"}.get(t, t)
        if t == "full_attention":
            out.append(None)
        elif t == "sliding_attention":
            if window is None:
                raise cfg.error(key, f"layer_types[{i}] is \"sliding_attention\" but the config has no sliding "
                                     "window (sliding_window is null or use_sliding_window is false)")
            out.append(window)
        else:
            raise cfg.error(key, f"layer_types[{i}] = {shown(t)} cannot be expressed in ttspec",
                            hint="supported layer types: \"full_attention\", \"sliding_attention\"")
    return out


def read_layers(cfg: Config, key: str) -> int:
    """The layer count, refused before anything per layer is built when no spec can repeat that many."""
    layers = cfg.get(key, "int")
    if layers > MAX_REPEAT:
        raise cfg.error(key, f"`{key}` = {layers:,} is more layers than ttspec compiles (at most {MAX_REPEAT:,})",
                        hint="a spec repeats its decoder block at most 100,000 times; real models have at most a "
                             "few hundred layers")
    return layers


def read_sizes(cfg: Config, kv_default) -> dict:
    d = cfg.get("hidden_size", "int")
    heads = cfg.get("num_attention_heads", "int")
    return {
        "vocab": cfg.get("vocab_size", "int"),
        "d": d,
        "layers": read_layers(cfg, "num_hidden_layers"),
        "heads": heads,
        "kv_heads": cfg.get("num_key_value_heads", "int", heads if kv_default is None else kv_default, null=heads),
        "mlp": cfg.get("intermediate_size", "int"),
        "max_seq": cfg.get("max_position_embeddings", "int"),
    }


SIZE_KEYS = {"vocab": "vocab_size", "d": "hidden_size", "layers": "num_hidden_layers", "heads": "num_attention_heads",
             "kv_heads": "num_key_value_heads", "mlp": "intermediate_size", "max_seq": "max_position_embeddings",
             "head_dim": "head_dim"}


def check_values(cfg: Config, desc: Desc, eps_key: str) -> None:
    """The sizes and the norms' epsilon against what ttspec compiles (the rules of ops/norms.py,
    ops/attention.py and ops/registry.py), each refusal located at the config field that gives it;
    rope, windows and softcaps are checked where they are read."""
    keys = SIZE_KEYS | desc.keys

    def given(key: str, value) -> str:  # a default is not the user's text: say where the value came from
        return f"{key} = {value:,}" + ("" if key in cfg.data else " (transformers' default: the config has none)")

    if not 0 < desc.eps < 1:
        raise cfg.error(eps_key, f"`{eps_key}` = {desc.eps!r}: a norm's epsilon must be in (0, 1)",
                        hint="real models use 1e-5 or 1e-6")
    if desc.heads % desc.kv_heads:
        near = " or ".join(map(str, nearest_divisors(desc.heads, desc.kv_heads)))
        raise cfg.error(keys["kv_heads"], f"{given(keys['kv_heads'], desc.kv_heads)} does not divide "
                                          f"{given(keys['heads'], desc.heads)}",
                        hint=f"each K/V head serves the same number of query heads; the nearest that divide "
                             f"{desc.heads}: {near}" + ("" if keys["kv_heads"] in cfg.data else
                                                        f" (add `\"{keys['kv_heads']}\": ...` to the config)"))
    # [heads * head_dim, d]; [d, d] when head_dim is hidden / heads
    query = (("heads", desc.heads), ("head_dim", desc.head_dim)) if desc.head_dim else (("d", desc.d),)
    weights = [("the token embedding", (("vocab", desc.vocab), ("d", desc.d))),
               ("the query projection", (*query, ("d", desc.d))),
               ("the MLP's input projection", (("mlp", desc.mlp), ("d", desc.d)))]
    if desc.learned_positions:
        weights.append(("the position table", (("max_seq", desc.max_seq), ("d", desc.d))))
    for what, factors in weights:
        elements = math.prod(value for _, value in factors)
        if elements > MAX_PARAM_ELEMENTS:
            named = [(keys.get(k, k), value) for k, value in factors]
            blame = max(named, key=lambda kv: kv[1])[0]
            raise cfg.error(blame, f"{what} would have {elements:,} elements ("
                                   + " x ".join(f"{k} {v:,}" for k, v in named)
                                   + "); ttspec holds at most 2**48 elements in one weight",
                            hint="the largest weights of real models have about 2**30 elements; check the sizes")


def read_softcap(cfg: Config, key: str, default: float) -> float | None:
    cap = cfg.get(key, "float", default, null=None)
    if cap is not None and cap <= 0:  # transformers divides by it
        raise cfg.error(key, f"`{key}` = {cap!r}: a softcap must be positive (null turns it off)",
                        hint="Gemma 2 caps attention logits at 50.0 and final logits at 30.0")
    return cap


def spec_float(value: float) -> str:
    text = repr(float(value))
    if "e" in text:
        mantissa, exp = text.split("e")
        return f"{mantissa}e{int(exp)}"
    return text


def spec_exact(value: float) -> str:
    """A number as the spec writes it, exactly: an integral value as an integer (256, as configs write it), any
    other as the shortest text that reads back as the same double."""
    if value.is_integer() and abs(value) < 2 ** 53:
        return str(int(value))
    return spec_float(value)


def periodic(windows: list) -> int:
    """The shortest p with windows[i] == windows[i % p] for every i: the length less the longest proper
    prefix that is also a suffix (Knuth-Morris-Pratt's failure function), in linear time."""
    n = len(windows)
    border = [0] * n
    k = 0
    for i in range(1, n):
        while k and windows[i] != windows[k]:
            k = border[k - 1]
        if windows[i] == windows[k]:
            k += 1
        border[i] = k
    return n - border[-1] if n else 1
