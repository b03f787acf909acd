"""`ttspec import-hf`: a Hugging Face model directory (or its config.json) -> a readable .arch spec.

The config is read with `json` alone (no torch, no transformers). Each supported `model_type`
(llama, mistral, qwen2, qwen3, gemma, gemma2, phi, phi3, gpt2) has a reader that knows the
fields transformers' class for it reads, in the 4.x and the 5.x spellings, and what they mean.

The rule for fields (docs: README "Importing from Hugging Face"):
- a field the family's transformers class reads is mapped into the spec, or, when its value asks
  for something ttspec cannot express (a `longrope` rope type, `qk_layernorm: true`, ...), it is
  an error naming the field, its file and line;
- a field that cannot change the logits of a forward pass (token ids, dtypes, dropout rates,
  initialisation, cache and generation settings, HF bookkeeping, any `_private` key) is ignored
  by an explicit allow-list (IGNORED below);
- a field another family reads but this one does not (Phi-3-mini's `attention_bias: false`) is
  accepted when its value agrees with what this family computes, and is an error otherwise;
- anything else is unknown, and unknown may be semantic: an error naming the field, unless the
  user vouches for it with `--ignore FIELD`.
Fields that are absent take the defaults of transformers' (5.x) config class for the family,
listed in the spec's header. The sizes (vocab, width, layers, heads, MLP width, positions) have
no useful default and are required.
"""

from __future__ import annotations

import json
import keyword
import math
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from .elaborate.elaborator import MAX_REPEAT
from .errors import ArchError, Loc, SourceCache, UsageError, nearest_divisors
from .inputs import MAX_TOKENIZER_BYTES, MiB, parse_json, quote, read_text
from .ops.attention import ROPE_SCALINGS
from .ops.elementwise import GELU, GELU_TANH, RELU, SILU
from .ops.registry import MAX_PARAM_ELEMENTS

# ---------------------------------------------------------------- families
# model_type -> the transformers class whose computation the spec reproduces
HF_CLASSES = {
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
    "gemma": "GemmaForCausalLM",
    "gemma2": "Gemma2ForCausalLM",
    "phi": "PhiForCausalLM",
    "phi3": "Phi3ForCausalLM",
    "gpt2": "GPT2LMHeadModel",
}
LLAMA_LIKE = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi3")

# Fields that cannot change the logits of one forward pass, whatever their value.
IGNORED = frozenset({
    # bookkeeping
    "architectures", "model_type", "transformers_version", "auto_map", "torch_dtype", "dtype", "use_bfloat16",
    "torchscript", "tokenizer_class", "prefix", "task_specific_params", "finetuning_task", "id2label", "label2id",
    "num_labels", "problem_type", "output_attentions", "output_hidden_states", "return_dict", "use_return_dict",
    "tf_legacy_loss", "chunk_size_feed_forward", "is_decoder", "tie_encoder_decoder",
    # token ids
    "bos_token_id", "eos_token_id", "pad_token_id", "sep_token_id", "decoder_start_token_id",
    "forced_bos_token_id", "forced_eos_token_id",
    # training: initialisation, dropout, tensor-parallel slicing that computes the same product
    "initializer_range", "attention_dropout", "resid_pdrop", "embd_pdrop", "attn_pdrop", "hidden_dropout",
    "summary_first_dropout", "pretraining_tp",
    # inference cache and generation
    "use_cache", "cache_implementation", "max_length", "min_length", "do_sample", "early_stopping", "num_beams",
    "num_beam_groups", "diversity_penalty", "temperature", "top_k", "top_p", "typical_p", "repetition_penalty",
    "length_penalty", "no_repeat_ngram_size", "encoder_no_repeat_ngram_size", "bad_words_ids",
    "num_return_sequences", "output_scores", "return_dict_in_generate", "remove_invalid_values",
    "exponential_decay_length_penalty", "suppress_tokens", "begin_suppress_tokens",
})

# Fields some transformers classes read, with the value that means "as this family computes";
# a family that does not read one accepts exactly that value (and null / absent).
NEUTRAL = {
    "attention_bias": False, "mlp_bias": False, "qk_layernorm": False, "use_sliding_window": False,
    "use_mrope": False, "use_bidirectional_attention": False, "is_encoder_decoder": False,
    "add_cross_attention": False, "cross_attention_hidden_size": None, "pruned_heads": {},
    "partial_rotary_factor": 1.0, "attn_logit_softcapping": None, "final_logit_softcapping": None,
    "sliding_window": None, "layer_types": None, "quantization_config": None,
    "scale_attn_by_inverse_layer_idx": False, "scale_attn_weights": True,
}
# rope types: HF's "default" is ours without scaling; the others are our scaling names
LINEAR_ROPE, LLAMA3_ROPE = (s for s in ROPE_SCALINGS if s != "none")
SUPPORTED_ROPE = ("default", LINEAR_ROPE, LLAMA3_ROPE)
# HF activation name -> ours (HF's gelu, silu and relu are spelled as ours)
ACTIVATIONS = {"gelu_new": GELU_TANH.name, "gelu_pytorch_tanh": GELU_TANH.name, "swish": SILU.name,
               **{op.name: op.name for op in (GELU, SILU, RELU)}}
KEYWORDS = {"model", "let", "input", "output", "block", "kind", "return", "if", "else", "import", "repeat", "as",
            "where", "true", "false", "none", "and", "or", "not", "family", "target", "shard", "layer"}
MAX_NAME = 40
MAX_INT = 1 << 40  # sizes beyond this are no model (and beyond what a spec's integers hold)
MAX_CONFIG_BYTES = 16 * MiB  # real config.json files are kilobytes; Phi-3's longrope lists make ~100 KB
# A spec names the window of each layer of one period of the layer pattern (`[none, sliding_window, ...][layer]`);
# a spec holds at most 8,000 tokens (frontend/source.py), two per entry. Real patterns repeat every 2 to 6 layers,
# or run once over the layers (Qwen2's max_window_layers: at most a few hundred entries).
MAX_LAYER_PATTERN = 1000
MAX_SHARDS_LISTED = 8  # weight files named in the header; the rest are counted
_REQUIRED = object()


@dataclass
class Imported:
    """The spec text and what it was made from."""

    text: str
    name: str
    family: str
    hf_class: str
    config_path: Path


# ---------------------------------------------------------------- reading config.json
def locate(path: str | Path) -> tuple[Path, Path | None]:
    """(config.json, model directory or None) for a model directory or a config.json path."""
    p = Path(path)
    if p.is_dir():
        config = p / "config.json"
        if not (config.exists() or config.is_symlink()):  # anything else there is refused by the reader, by kind
            raise ArchError(f"{quote(p)} has no config.json",
                            hint="import-hf takes a Hugging Face model directory (config.json, *.safetensors, "
                                 "tokenizer.json) or a config.json file")
        return config, p
    if not (p.exists() or p.is_symlink()):
        raise ArchError(f"no such file or directory: {quote(p)}")
    return p, None


def _key_locations(text: str) -> dict[tuple[str, ...], tuple[int, int, int]]:
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
        self.locs = _key_locations(self.text)
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


# ---------------------------------------------------------------- the model, as the spec will say it
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
    attn_scale: float | None = None  # query_pre_attn_scalar ** -0.5 when it is not head_dim's
    attn_scale_from: int | None = None
    attn_softcap: float | None = None
    windows: list[int | None] = field(default_factory=list)  # per layer; None: full causal attention
    mlp_kind: str = "glu"  # "glu" (gate, up, down) or "mlp" (up, down)
    act: str = SILU.name
    mlp_bias: bool = False
    residual: str = "sequential"  # "parallel" (Phi-2), "sandwich" (Gemma 2: norms before and after)
    tied: bool = False
    head_bias: bool = False
    final_softcap: float | None = None
    notes: list[str] = field(default_factory=list)
    # the config field each size came from (GPT-2 spells them n_embd, n_head, ...), for located errors
    keys: dict[str, str] = field(default_factory=dict)


def _activation(cfg: Config, key: str, value: str, family: str) -> str:
    if family == "gemma" and value == GELU.name:
        return GELU_TANH.name  # transformers maps Gemma's legacy "gelu" to the tanh approximation
    if value not in ACTIVATIONS:
        raise cfg.error(key, f"activation `{key}: {shown(value)}` cannot be expressed in ttspec",
                        hint="supported: " + ", ".join(f'"{a}"' for a in ACTIVATIONS))
    return ACTIVATIONS[value]


def _head_dim(cfg: Config, d: int, heads: int, default) -> int:
    if default is None:  # derived, as transformers derives it
        if d % heads and not cfg.has("head_dim"):
            raise cfg.error("num_attention_heads", f"num_attention_heads={heads} does not divide hidden_size={d} "
                                                   "and the config gives no head_dim")
        return cfg.get("head_dim", "int", d // heads, null=d // heads, note_default=False)
    return cfg.get("head_dim", "int", default, null=default)


def _head_dim_key(cfg: Config, default) -> str:
    """The field head_dim comes from: its own, or hidden_size (divided by the heads) when derived."""
    return "head_dim" if cfg.has("head_dim") or default is not None else "hidden_size"


def _rope(cfg: Config, family: str, head_dim: int, max_seq: int, partial_default: float = 1.0,
          head_dim_key: str = "head_dim") -> dict:
    """rope(...) arguments from rope_parameters (5.x) or rope_theta + rope_scaling (4.x), each checked
    against the range ttspec's rope() takes (ops/attention.py) where the config gives it."""
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

    rope_type = params.get("rope_type", params.get("type", "default"))
    if "type" in params and "rope_type" in params and params["type"] != params["rope_type"]:
        raise cfg.error((where, "type"), f"`{where}.type` and `{where}.rope_type` disagree")
    type_key = (where, "rope_type" if "rope_type" in params else "type")
    if not isinstance(rope_type, str) or rope_type not in SUPPORTED_ROPE:
        shown_type = quote(rope_type, limit=80) if isinstance(rope_type, str) else shown(rope_type)
        raise cfg.error(type_key, f"rope type `{shown_type}` (`{'.'.join(type_key)}`) cannot be expressed in ttspec "
                                  "yet", hint="supported rope types: " + ", ".join(SUPPORTED_ROPE))
    theta = one("rope_theta", "rope_theta", 10000.0)
    if theta <= 0:  # transformers would raise 0 to negative powers: inf and NaN frequencies
        raise cfg.error(where_of("rope_theta"), f"`rope_theta` = {theta!r}: RoPE's base must be positive",
                        hint="real models use 10000.0 to 1000000.0")
    fraction = one("partial_rotary_factor", "partial_rotary_factor", partial_default, note=partial_default != 1.0)
    if fraction != 1.0 and family not in ("phi", "phi3"):
        raise cfg.error(where_of("partial_rotary_factor"),
                        f"partial_rotary_factor = {fraction}: {HF_CLASSES[family]} rotates whole heads",
                        hint="only phi and phi3 apply a partial rotary factor")
    if not 0 < fraction <= 1:
        raise cfg.error(where_of("partial_rotary_factor"),
                        f"`partial_rotary_factor` = {fraction!r}: the rotated fraction of each head must be in (0, 1]",
                        hint="Phi-2 rotates 0.4 of each head, Phi-1.5 0.5")
    # rope() rotates pairs of features: a whole, even, non-zero number of them
    rot = head_dim * fraction
    if abs(rot - round(rot)) > 1e-9 or round(rot) % 2 or round(rot) == 0:
        if fraction != 1.0:
            raise cfg.error(where_of("partial_rotary_factor"),
                            f"partial_rotary_factor {fraction!r} of head_dim {head_dim} gives {rot!r} rotary "
                            "dimensions; ttspec needs an even whole number",
                            hint="choose a factor that makes head_dim * factor even, e.g. 0.25 or 0.5")
        derived = "" if head_dim_key == "head_dim" else f" ({head_dim_key} / num_attention_heads)"
        raise cfg.error(head_dim_key, f"head_dim {head_dim}{derived} is odd: RoPE rotates each head's features in "
                                      "pairs, so head_dim must be even", hint="real models use 64, 80, 96 or 128")
    args = {"theta": _float(theta)}
    if fraction != 1.0:
        args["fraction"] = _float(fraction)
    known = {"rope_type", "type", "rope_theta", "partial_rotary_factor"}
    if rope_type == LINEAR_ROPE:
        args["scaling"] = f'"{LINEAR_ROPE}"'
        args["factor"] = _float(_rope_number(cfg, where, params, "factor"))
        known |= {"factor"}
    elif rope_type == LLAMA3_ROPE:
        args["scaling"] = f'"{LLAMA3_ROPE}"'
        factors = {key: _rope_number(cfg, where, params, key) for key in ("factor", "low_freq_factor",
                                                                           "high_freq_factor")}
        if factors["high_freq_factor"] <= factors["low_freq_factor"]:  # transformers divides by their difference
            raise cfg.error((where, "high_freq_factor"),
                            f"llama3 rope scaling needs high_freq_factor > low_freq_factor, got "
                            f"{factors['high_freq_factor']!r} and {factors['low_freq_factor']!r}",
                            hint="Llama 3.1 uses low_freq_factor 1.0 and high_freq_factor 4.0")
        args |= {key: _float(value) for key, value in factors.items()}
        original = params.get("original_max_position_embeddings")
        if original is None:  # transformers: the top-level field (Phi-3's), else max_position_embeddings
            original = cfg.get("original_max_position_embeddings", "int", max_seq, null=max_seq, note_default=False)
        args["original_max_positions"] = str(check_kind(cfg, (where, "original_max_position_embeddings"),
                                                        original, "int"))
        known |= {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}
    for key, value in params.items():
        if key not in known and value is not None:
            raise cfg.error((where, key), f"`{where}.{quote(key, limit=80)}` is not part of rope type `{rope_type}` "
                                          "as ttspec computes it", hint="remove it if it has no effect")
    return args


def _rope_number(cfg: Config, where: str, params: dict, key: str) -> float:
    if params.get(key) is None:
        raise cfg.error(where, f"`{where}` of type `{params.get('rope_type', params.get('type'))}` has no `{key}`",
                        hint=f"add `\"{key}\": ...` to `{where}` (transformers requires it for this rope type)")
    value = check_kind(cfg, (where, key), params[key], "float")
    if value <= 0:
        raise cfg.error((where, key), f"`{where}.{key}` = {value!r}: a rope scaling factor must be positive",
                        hint="Llama 3.1 uses factor 8.0, low_freq_factor 1.0, high_freq_factor 4.0")
    return value


def _layer_windows(cfg: Config, layers: int, window: int | None, types_default: list[str] | None) -> list:
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


def _layers(cfg: Config, key: str) -> int:
    """The layer count, refused before anything per layer is built when no spec can repeat that many."""
    layers = cfg.get(key, "int")
    if layers > MAX_REPEAT:
        raise cfg.error(key, f"`{key}` = {layers:,} is more layers than ttspec compiles (at most {MAX_REPEAT:,})",
                        hint="a spec repeats its decoder block at most 100,000 times; real models have at most a "
                             "few hundred layers")
    return layers


def _sizes(cfg: Config, family: str, kv_default) -> dict:
    d = cfg.get("hidden_size", "int")
    heads = cfg.get("num_attention_heads", "int")
    return {
        "vocab": cfg.get("vocab_size", "int"),
        "d": d,
        "layers": _layers(cfg, "num_hidden_layers"),
        "heads": heads,
        "kv_heads": cfg.get("num_key_value_heads", "int", heads if kv_default is None else kv_default, null=heads),
        "mlp": cfg.get("intermediate_size", "int"),
        "max_seq": cfg.get("max_position_embeddings", "int"),
    }


SIZE_KEYS = {"vocab": "vocab_size", "d": "hidden_size", "layers": "num_hidden_layers", "heads": "num_attention_heads",
             "kv_heads": "num_key_value_heads", "mlp": "intermediate_size", "max_seq": "max_position_embeddings",
             "head_dim": "head_dim"}


def _check_values(cfg: Config, desc: Desc, eps_key: str) -> None:
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


# transformers 5.x config-class defaults per family, for fields a config may leave out
DEFAULTS = {
    "llama": dict(kv=None, head_dim=None, act=SILU.name, eps=1e-6, tied=False),
    "mistral": dict(kv=8, head_dim=None, act=SILU.name, eps=1e-6, tied=False, window=4096),
    "qwen2": dict(kv=32, head_dim=None, act=SILU.name, eps=1e-6, tied=False, window=4096),
    "qwen3": dict(kv=32, head_dim=128, act=SILU.name, eps=1e-6, tied=False, window=4096),
    "gemma": dict(kv=16, head_dim=256, act="gelu_pytorch_tanh", eps=1e-6, tied=True),
    "gemma2": dict(kv=4, head_dim=256, act="gelu_pytorch_tanh", eps=1e-6, tied=True, window=4096),
    "phi": dict(kv=None, head_dim=None, act="gelu_new", eps=1e-5, tied=False),
    "phi3": dict(kv=None, head_dim=None, act=SILU.name, eps=1e-5, tied=False, window=None),
    "gpt2": dict(act="gelu_new", eps=1e-5, tied=True),
}


def _llama_like(cfg: Config, family: str) -> Desc:
    dflt = DEFAULTS[family]
    s = _sizes(cfg, family, dflt["kv"])
    head_dim = _head_dim(cfg, s["d"], s["heads"], dflt["head_dim"])
    eps = cfg.get("rms_norm_eps", "float", dflt["eps"])
    desc = Desc(family, HF_CLASSES[family], eps=eps, **s)
    desc.head_dim = head_dim if head_dim * s["heads"] != s["d"] else None
    desc.tied = cfg.get("tie_word_embeddings", "bool", dflt["tied"])
    desc.rope = _rope(cfg, family, head_dim, s["max_seq"], head_dim_key=_head_dim_key(cfg, dflt["head_dim"]))
    # activation: transformers 5 reads hidden_activation for gemma2 and hidden_act for the others; 4.x Gemma read
    # hidden_activation when set. When a config has both, they must agree.
    act_key = "hidden_activation" if family == "gemma2" else "hidden_act"
    act_value = cfg.get(act_key, "str", dflt["act"])
    desc.act = _activation(cfg, act_key, act_value, family)
    if family in ("gemma", "gemma2"):
        other = "hidden_act" if family == "gemma2" else "hidden_activation"
        other_value = cfg.get(other, "str", None, null=None, note_default=False)
        if other_value is not None and _activation(cfg, other, other_value, family) != desc.act:
            raise cfg.error(other, f"{other} \"{other_value}\" and {act_key} \"{act_value}\" disagree",
                            hint=f"transformers 5 reads {act_key} for {family} (transformers 4 read hidden_activation "
                                 "when set): make them agree")
    if family == "gemma" and act_value == GELU.name:
        desc.notes.append('hidden_act "gelu" is Gemma\'s legacy name for the tanh approximation (as transformers '
                          'reads it)')
    if family in ("llama", "qwen3", "gemma", "gemma2"):
        desc.qkv_bias = desc.out_bias = cfg.get("attention_bias", "bool", False, note_default=False)
    if family == "qwen2":
        desc.qkv_bias, desc.out_bias = True, False
    if family == "llama":
        desc.mlp_bias = cfg.get("mlp_bias", "bool", False, note_default=False)
    if family == "qwen3":
        desc.qk_norm = True
    if family in ("gemma", "gemma2"):
        desc.embed_scale, desc.norm_offset = True, 1.0
        if cfg.get("use_bidirectional_attention", "bool", False, null=False, note_default=False):
            raise cfg.error("use_bidirectional_attention", "use_bidirectional_attention = true cannot be expressed "
                                                           "in ttspec (its attention is causal)")
    # sliding windows
    window = None
    types_default = None
    if family in ("mistral", "phi3"):
        window = cfg.get("sliding_window", "int", dflt["window"], null=None)
        desc.windows = [window] * s["layers"]
    elif family in ("qwen2", "qwen3"):
        use = cfg.get("use_sliding_window", "bool", False, note_default=False)
        window = cfg.get("sliding_window", "int", dflt["window"], null=None, note_default=use)
        first = cfg.get("max_window_layers", "int", 28, note_default=use, low=0)  # 0: every layer slides
        if not use:
            if window is not None:
                desc.notes.append(f"sliding_window {window} is not used (use_sliding_window is false)")
            window = None
        types_default = ["sliding_attention" if window is not None and i >= first else "full_attention"
                         for i in range(s["layers"])]
    elif family == "gemma2":
        window = cfg.get("sliding_window", "int", dflt["window"], null=None)
        types_default = ["sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(s["layers"])]
    if family in ("qwen2", "qwen3", "gemma2"):
        desc.windows = _layer_windows(cfg, s["layers"], window, types_default)
    if any(w is not None and w >= s["max_seq"] for w in desc.windows):
        desc.notes.append(f"sliding_window {window} >= max_position_embeddings {s['max_seq']}: every position is "
                          "inside the window, so the spec omits it (add `window = ...` if you raise max_seq)")
        desc.windows = [None if w is not None and w >= s["max_seq"] else w for w in desc.windows]
    period = _periodic(desc.windows)
    if period > MAX_LAYER_PATTERN:
        key = "layer_types" if cfg.has("layer_types") else "max_window_layers"
        raise cfg.error(key, f"the layers' pattern of sliding and full attention repeats only after {period:,} "
                             f"layers; a spec lists at most {MAX_LAYER_PATTERN:,} per-layer windows",
                        hint="real models repeat every few layers, or slide from max_window_layers on in at most a "
                             "few hundred layers")
    if family == "gemma2":
        desc.residual = "sandwich"
        scalar = cfg.get("query_pre_attn_scalar", "float", 256)
        if scalar <= 0:  # transformers scales by scalar ** -0.5
            raise cfg.error("query_pre_attn_scalar", f"`query_pre_attn_scalar` = {scalar!r}: attention scales "
                                                     "scores by its inverse square root, so it must be positive",
                            hint="Gemma 2 uses head_dim (256), or hidden_size / num_attention_heads (144 for 27B)")
        if scalar != head_dim:
            desc.attn_scale, desc.attn_scale_from = scalar ** -0.5, scalar
        desc.attn_softcap = _softcap(cfg, "attn_logit_softcapping", 50.0)
        desc.final_softcap = _softcap(cfg, "final_logit_softcapping", 30.0)
    if family == "phi3":
        # read by the longrope rope type only, which is refused above
        cfg.get("original_max_position_embeddings", "int", None, null=None, note_default=False)
    _check_values(cfg, desc, "rms_norm_eps")
    return desc


def _softcap(cfg: Config, key: str, default: float) -> float | None:
    cap = cfg.get(key, "float", default, null=None)
    if cap is not None and cap <= 0:  # transformers divides by it
        raise cfg.error(key, f"`{key}` = {cap!r}: a softcap must be positive (null turns it off)",
                        hint="Gemma 2 caps attention logits at 50.0 and final logits at 30.0")
    return cap


def _phi(cfg: Config, family: str) -> Desc:
    dflt = DEFAULTS["phi"]
    s = _sizes(cfg, family, None)
    head_dim = _head_dim(cfg, s["d"], s["heads"], None)
    desc = Desc(family, HF_CLASSES[family], eps=cfg.get("layer_norm_eps", "float", dflt["eps"]), **s)
    desc.head_dim = head_dim if head_dim * s["heads"] != s["d"] else None
    desc.norm, desc.residual, desc.mlp_kind = "layernorm", "parallel", "mlp"
    desc.qkv_bias = desc.out_bias = desc.mlp_bias = desc.head_bias = True
    desc.tied = cfg.get("tie_word_embeddings", "bool", dflt["tied"])
    desc.rope = _rope(cfg, family, head_dim, s["max_seq"], partial_default=0.5, head_dim_key=_head_dim_key(cfg, None))
    desc.act = _activation(cfg, "hidden_act", cfg.get("hidden_act", "str", dflt["act"]), family)
    if cfg.get("qk_layernorm", "bool", False, note_default=False):
        raise cfg.error("qk_layernorm", "qk_layernorm = true (LayerNorm on q and k) cannot be expressed in ttspec yet")
    _check_values(cfg, desc, "layer_norm_eps")
    return desc


def _gpt2(cfg: Config, family: str) -> Desc:
    dflt = DEFAULTS["gpt2"]
    keys = {"d": cfg.pick("n_embd", "hidden_size"), "heads": cfg.pick("n_head", "num_attention_heads"),
            "layers": cfg.pick("n_layer", "num_hidden_layers"),
            "max_seq": cfg.pick("n_positions", "max_position_embeddings"),
            "mlp": "n_inner" if cfg.has("n_inner") else cfg.pick("n_embd", "hidden_size")}
    d = cfg.get(keys["d"], "int")
    heads = cfg.get(keys["heads"], "int")
    if d % heads:
        raise cfg.error(keys["heads"], f"n_head={heads} does not divide n_embd={d}")
    inner = cfg.get("n_inner", "int", None, null=None, note_default=False)
    desc = Desc(family, HF_CLASSES[family], vocab=cfg.get("vocab_size", "int"), d=d,
                layers=_layers(cfg, keys["layers"]), heads=heads, kv_heads=heads,
                mlp=inner or 4 * d, max_seq=cfg.get(keys["max_seq"], "int"),
                eps=cfg.get("layer_norm_epsilon", "float", dflt["eps"]), keys=keys)
    if inner is None:
        desc.notes.append(f"n_inner is null: the MLP is 4 * n_embd = {4 * d} wide")
    desc.norm, desc.mlp_kind, desc.learned_positions = "layernorm", "mlp", True
    desc.qkv_bias = desc.out_bias = desc.mlp_bias = True
    desc.act = _activation(cfg, "activation_function", cfg.get("activation_function", "str", dflt["act"]), family)
    desc.tied = cfg.get("tie_word_embeddings", "bool", dflt["tied"])
    cfg.raw("n_ctx")  # GPT-2's legacy copy of n_positions; transformers does not read it
    for key in ("summary_type", "summary_use_proj", "summary_activation", "summary_proj_to_labels",
                "n_special", "predict_special_tokens", "reorder_and_upcast_attn"):
        cfg.raw(key)  # the double-heads classifier, OpenAI GPT leftovers, fp32 upcasting: not the LM's logits
    _check_values(cfg, desc, "layer_norm_epsilon")
    return desc


READERS = {f: _llama_like for f in LLAMA_LIKE} | {"phi": _phi, "gpt2": _gpt2}


def _check_leftovers(cfg: Config, family: str) -> None:
    """Every field is mapped, ignorable, neutral-valued, or vouched for; else an error naming it."""
    for key, value in cfg.data.items():
        if key in cfg.used or key in IGNORED or key.startswith("_"):
            continue
        if key in NEUTRAL:  # known to change the computation: --ignore does not apply
            if value is None or value == NEUTRAL[key]:
                continue
            raise cfg.error(key, f"`{key}: {shown(value)}` is not something {HF_CLASSES[family]} computes, "
                                 f"and ttspec cannot express it for model_type {family}",
                            hint=f"{HF_CLASSES[family]} has no such setting; check the config's model_type")
        if key in cfg.ignore:
            continue
        raise cfg.error(key, f"unknown field `{quote(key, limit=80)}` in config.json for model_type {family}: "
                             "ttspec cannot tell whether it changes the computation",
                        hint="if it does not (an id, a training or generation setting), pass "
                             f"`--ignore {quote(key, limit=80)}`")


# ---------------------------------------------------------------- the spec text
def _float(value: float) -> str:
    text = repr(float(value))
    if "e" in text:
        mantissa, exp = text.split("e")
        return f"{mantissa}e{int(exp)}"
    return text


def _exact(value: float) -> str:
    """A number as the spec writes it, exactly: an integral value as an integer (256, as configs write it), any
    other as the shortest text that reads back as the same double."""
    if value.is_integer() and abs(value) < 2 ** 53:
        return str(int(value))
    return _float(value)


def model_name(text: str, fallback: str) -> str:
    """A valid ttspec identifier from a directory name: Qwen2.5-0.5B -> qwen2_5_0_5b."""
    name = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or fallback
    if name[0].isdigit():
        name = "m_" + name
    if name in KEYWORDS or keyword.iskeyword(name):
        name += "_model"
    return name[:MAX_NAME].rstrip("_")


def check_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or name in KEYWORDS or keyword.iskeyword(name) \
            or len(name) > MAX_NAME:
        raise UsageError(f"--name {name!r} is not a valid model name",
                         hint=f"a name is letters, digits and `_`, not starting with a digit, at most {MAX_NAME} "
                              "characters, and not a keyword")
    return name


def _call(prefix: str, name: str, args: list[str], suffix: str = "", width: int = 110) -> list[str]:
    """`prefix name(a, b, ...) suffix`, wrapped after commas with continuation lines aligned."""
    return _wrap(f"{prefix}{name}(", args, ")" + suffix, width)


def _wrap(head: str, items: list[str], tail: str, width: int = 110) -> list[str]:
    """head + items joined by ", " + tail, wrapped after commas, continuation lines under the first item."""
    lines, line = [], head
    for i, item in enumerate(items):
        piece = item + (", " if i < len(items) - 1 else tail)
        if len(line) + len(piece.rstrip()) > width and line != head:
            lines.append(line.rstrip())
            line = " " * len(head) + piece
        else:
            line += piece
    lines.append(line.rstrip())
    return lines


def _periodic(windows: list) -> int:
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


def _summary(desc: Desc) -> str:
    if desc.kv_heads == desc.heads:
        attn = f"{desc.heads} heads"
    elif desc.kv_heads == 1:
        attn = f"MQA {desc.heads} heads"
    else:
        attn = f"GQA {desc.heads}/{desc.kv_heads}"
    if desc.head_dim:
        attn += f" of {desc.head_dim}"
    if desc.qkv_bias and desc.family not in ("phi", "gpt2"):
        attn += ", q/k/v biases" if not desc.out_bias else ", attention biases"
    if desc.qk_norm:
        attn += ", q/k RMSNorm"
    mlp = {SILU.name: "SwiGLU", GELU_TANH.name: "GeGLU (tanh)", GELU.name: "GeGLU", RELU.name: "ReGLU"}[desc.act] \
        if desc.mlp_kind == "glu" else f"{desc.act} MLP"
    parts = [attn, f"{mlp} {desc.mlp}"]
    if desc.rope:
        r = f"RoPE theta {desc.rope['theta'].removesuffix('.0')}"
        if "fraction" in desc.rope:
            r += f" on {desc.rope['fraction']} of each head"
        if "scaling" in desc.rope:
            r += f" with {desc.rope['scaling'].strip(chr(34))} scaling"
        parts.append(r)
    else:
        parts.append("learned positions")
    windows = {w for w in desc.windows if w is not None}
    if windows:
        parts.append(f"sliding window {', '.join(map(str, sorted(windows)))}"
                     + (" on some layers" if None in desc.windows else ""))
    if desc.attn_softcap or desc.final_softcap:
        parts.append("logit softcapping")
    parts.append(f"{desc.max_seq:,} positions")
    parts.append("tied output head" if desc.tied else "untied output head")
    return ", ".join(parts) + "."


def render(desc: Desc, name: str, source: str, version: str | None, arch_given: bool,
           defaults: list[tuple[str, object]]) -> str:
    # the path and the version are outside text: quoted to one line without control characters, so a newline
    # in either cannot end the comment and put text into the spec
    out = [f"# {quote(source.rstrip('/'), limit=300)}: imported by `ttspec import-hf`",
           f"# HF architecture: {desc.hf_class} (model_type {desc.family}"
           + (f", config written by transformers {quote(version, limit=60)})" if version else ")"),
           *textwrap.wrap(_summary(desc), 100, initial_indent="# ", subsequent_indent="# ")]
    if not arch_given:
        out.append("# note: the config names no `architectures`; the class is model_type's")
    for n in desc.notes:
        out += textwrap.wrap(f"note: {n}", 100, initial_indent="# ", subsequent_indent="#   ")
    if defaults:
        listed = ", ".join(f"{k} = {json.dumps(v)}" for k, v in defaults)
        out += textwrap.wrap(f"not in the config, so transformers' defaults: {listed}", 100, initial_indent="# ",
                             subsequent_indent="# ")
    out += [f"model {name}", f"family {desc.family:<17}# parameters load from HF {desc.hf_class} checkpoints", ""]
    lets = [("vocab", desc.vocab), ("d", desc.d), ("layers", desc.layers), ("heads", desc.heads)]
    if desc.kv_heads != desc.heads:
        lets.append(("kv_heads", desc.kv_heads))
    if desc.head_dim:
        lets.append(("head_dim", desc.head_dim))
    lets += [("mlp", desc.mlp), ("max_seq", desc.max_seq)]
    out += [f"let {k} = {v}" for k, v in lets]
    out.append(f"let eps = {_float(desc.eps)}")
    windows = sorted({w for w in desc.windows if w is not None})
    if windows:
        out.append(f"let sliding_window = {windows[0]}")
    if desc.attn_scale is not None:
        out.append(f"let attn_scale = {_exact(desc.attn_scale_from)} ** -0.5     # query_pre_attn_scalar")
    if desc.rope:
        out += _call("let rotary = ", "rope", [f"{k} = {v}" for k, v in desc.rope.items()], width=100)
    out += ["", "input tokens: int32[batch, seq] where seq <= max_seq", ""]

    # per-layer variation: only the window varies between layers
    period = _periodic(desc.windows) if desc.windows else 1
    per_layer = period > 1
    window_arg = None
    if desc.windows and not per_layer and desc.windows[0] is not None:
        window_arg = "window = sliding_window"
    if per_layer:
        window_arg = "window = window"

    norm_args = ["eps = eps"] + ([f"offset = {_float(desc.norm_offset)}"] if desc.norm_offset else [])

    def norm(x: str, label: str) -> str:
        return f"{desc.norm}({x}, {', '.join(norm_args)}) as {label}"

    def attention(x: str) -> list[str]:
        args = ["heads = heads"]
        if desc.kv_heads != desc.heads:
            args.append("kv_heads = kv_heads")
        if desc.head_dim:
            args.append("head_dim = head_dim")
        if desc.qkv_bias:
            args.append("qkv_bias = true")
            if not desc.out_bias:
                args.append("out_bias = false")
        if desc.qk_norm:
            args += ["qk_norm = true", "qk_norm_eps = eps"]
        if desc.rope:
            args.append("rope = rotary")
        if window_arg:
            args.append(window_arg)
        if desc.attn_softcap is not None:
            args.append(f"softcap = {_float(desc.attn_softcap)}")
        if desc.attn_scale is not None:
            args.append("scale = attn_scale")
        return [x] + args

    def mlp_call(x: str) -> tuple[str, list[str]]:
        bias = ["bias = true"] if desc.mlp_bias and desc.mlp_kind == "glu" else []
        if desc.mlp_kind == "mlp":
            return "mlp", [x, "hidden = mlp", f'act = "{desc.act}"'] + ([] if desc.mlp_bias else ["bias = false"])
        if desc.act == SILU.name:
            return "swiglu", [x, "hidden = mlp"] + bias
        if desc.act in (GELU.name, GELU_TANH.name):
            return "geglu", [x, "hidden = mlp"] + (["approximate = true"] if desc.act == GELU_TANH.name else []) + bias
        return "glu", [x, "hidden = mlp", f'act = "{desc.act}"'] + bias

    # the family's labels (checkpoints.py maps them to HF names): pre-attention norm, pre-MLP norm, token
    # embedding, final norm
    labels = {"gpt2": tuple("ln_1 ln_2 wte ln_f".split()),
              "phi": ("input_layernorm", None) + tuple("embedding final_layernorm".split())}.get(
        desc.family, tuple("attn_norm mlp_norm embedding norm".split()))
    params = "x: [batch, seq, d]" + (", window = none" if per_layer else "")
    out.append(f"block decoder({params}) -> [batch, seq, d] kind decoder {{")
    ind = "    "
    if desc.residual == "parallel":
        out.append(f"{ind}n = {norm('x', labels[0])}")
        out += _call(f"{ind}return x + ", "attention", attention("n"), " as attn")
        name, args = mlp_call("n")
        out += _call(f"{ind}         + ", name, args, " as mlp")
    elif desc.residual == "sandwich":
        out += _call(f"{ind}a = ", "attention", attention(norm("x", labels[0])), " as attn")
        out.append(f"{ind}x = x + {norm('a', 'post_attn_norm')}")
        name, args = mlp_call(norm("x", labels[1]))
        out += _call(f"{ind}m = ", name, args, " as mlp")
        out.append(f"{ind}x = x + {norm('m', 'post_mlp_norm')}")
        out.append(f"{ind}return x")
    else:
        out += _call(f"{ind}x = x + ", "attention", attention(norm("x", labels[0])), " as attn")
        name, args = mlp_call(norm("x", labels[1]))
        out += _call(f"{ind}x = x + ", name, args, " as mlp")
        out.append(f"{ind}return x")
    out += ["}", ""]

    embed = f"h = token_embedding(tokens, vocab, d) as {labels[2]}"
    if desc.embed_scale:
        embed += " * d ** 0.5"
    out.append(embed)
    if desc.learned_positions:
        out.append("h = learned_positions(h, max_seq) as wpe")
    if per_layer:
        values = ["sliding_window" if w is not None else "none" for w in desc.windows[:period]]
        index = "layer" if period == len(desc.windows) else f"layer % {period}"
        out += _wrap("h = repeat(layers) decoder(h, window = [", values, f"][{index}]) as layers")
    else:
        out.append("h = repeat(layers) decoder(h) as layers")
    out.append(f"h = {norm('h', labels[3])}")
    head_args = ["h", "vocab"] + ([f"tied = {labels[2]}"] if desc.tied else []) + (
        ["bias = true"] if desc.head_bias else [])
    head = f"lm_head({', '.join(head_args)})"
    if desc.final_softcap is not None:
        head = f"softcap({head}, {_float(desc.final_softcap)})"
    out.append(f"output logits = {head}")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- entry point
def import_hf(path: str | Path, name: str | None = None, ignore: tuple[str, ...] = ()) -> Imported:
    config_path, directory = locate(path)
    cfg = Config(config_path, tuple(ignore))
    if not cfg.has("model_type"):
        raise ArchError(f"{cfg.name} has no `model_type`, which names the model's family",
                        hint="supported model types: " + ", ".join(READERS))
    model_type = cfg.get("model_type", "str")
    if model_type not in READERS:
        raise cfg.error("model_type", f"model_type `{quote(model_type, limit=80)}` is not a family ttspec imports",
                        hint="supported: " + ", ".join(READERS))
    hf_class = HF_CLASSES[model_type]
    archs = cfg.data.get("architectures")
    if archs is not None:
        if not (isinstance(archs, list) and len(archs) == 1 and isinstance(archs[0], str)):
            raise cfg.error("architectures", f"`architectures` should name one class, got {shown(archs)}")
        if archs[0] != hf_class:
            raise cfg.error("architectures", f"architecture `{quote(archs[0], limit=80)}` is not one ttspec imports "
                                             f"for model_type {model_type}",
                            hint=f"ttspec imports {hf_class} (a causal LM with its output head)")
    desc = READERS[model_type](cfg, model_type)
    if cfg.get("is_encoder_decoder", "bool", False, null=False, note_default=False) \
            or cfg.get("add_cross_attention", "bool", False, null=False, note_default=False):
        key = "is_encoder_decoder" if cfg.data.get("is_encoder_decoder") else "add_cross_attention"
        raise cfg.error(key, f"`{key}: true`: cross-attention cannot be expressed in ttspec")
    if cfg.has("quantization_config"):
        raise cfg.error("quantization_config", "a quantized checkpoint (quantization_config) cannot be imported",
                        hint="import the unquantized model; ttspec chooses device weight dtypes itself "
                             "(--weights-dtype)")
    if model_type == "gpt2":
        for key, want in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False)):
            if cfg.get(key, "bool", want, null=want, note_default=False) != want:
                raise cfg.error(key, f"`{key}: {json.dumps(not want)}` cannot be expressed in ttspec",
                                hint="ttspec's attention scales scores by 1/sqrt(head_dim)")
    if cfg.data.get("pruned_heads"):
        raise cfg.error("pruned_heads", "pruned attention heads cannot be expressed in ttspec")
    cfg.used |= {"pruned_heads", "quantization_config"}
    _check_leftovers(cfg, model_type)
    version = cfg.data.get("transformers_version")
    source = str(path)
    if directory is not None:
        label = directory.resolve().name
    else:
        label = config_path.resolve().parent.name
    name = check_name(name) if name else model_name(label, model_type)
    defaults = [(k, v) for k, v in cfg.defaults]
    text = render(desc, name, source, version if isinstance(version, str) else None, archs is not None, defaults)
    if directory is not None:
        text = _with_directory_notes(text, directory, desc)
    _check_spec(cfg, text)
    return Imported(text, name, model_type, hf_class, config_path)


def _check_spec(cfg: Config, text: str) -> None:
    """The spec made, through `ttspec check`'s own steps before it is written or printed. Every value was
    checked at its config field above; this catches a rule of the compiler those checks do not know
    yet, and reports it against config.json (the user's file), never against a spec nobody wrote."""
    from .checkpoints import check_family_labels
    from .driver import verify
    from .elaborate.elaborator import elaborate
    from .frontend.parser import parse_source

    name = "<the spec imported from config.json>"
    try:
        model = elaborate(parse_source(text, name), cfg.path.resolve().parent)
        verify(model)
        check_family_labels(model)
    except ArchError as e:
        line = ""
        if e.loc is not None and e.loc.file == name:
            line = f" (spec line {e.loc.line}: `{text.split(chr(10))[e.loc.line - 1].strip()}`)"
        raise ArchError(f"ttspec cannot compile the spec this config makes: {e.diagnostic.message}{line}",
                        Loc(cfg.name, 1, 1), hint="one of the config's values is outside what ttspec compiles, "
                                                  "and import-hf does not check it by field yet: please report it, "
                                                  "with this config") from None


def _with_directory_notes(text: str, directory: Path, desc: Desc) -> str:
    """What the directory holds besides config.json, as header comments: weights, tokenizer size."""
    notes = []
    index = directory / "model.safetensors.index.json"
    shards = sorted(p.name for p in directory.glob("*.safetensors"))
    if index.is_file():
        notes.append(f"weights: model.safetensors.index.json ({len(shards)} shards)")
    elif shards:  # file names are outside text: quoted, and a few named (the header stays a few lines)
        listed = [quote(s, limit=100) for s in shards[:MAX_SHARDS_LISTED]]
        more = len(shards) - len(listed)
        notes.append("weights: " + ", ".join(listed) + (f" and {more:,} more" if more else ""))
    tokens = _tokenizer_size(directory / "tokenizer.json")
    if tokens is not None:
        extra = "" if tokens == desc.vocab else f" for an embedding of {desc.vocab:,} rows"
        if tokens > desc.vocab:
            extra += " (ids past the embedding would fail)"
        notes.append(f"tokenizer.json: {tokens:,} token ids{extra}")
    if not notes:
        return text
    lines = text.split("\n")
    at = next(i for i, line in enumerate(lines) if line.startswith("model "))
    return "\n".join(lines[:at] + [f"# {n}" for n in notes] + lines[at:])


def _tokenizer_size(path: Path) -> int | None:
    """1 + the largest token id in a tokenizers JSON file (vocabulary and added tokens), or None when there
    is no tokenizer.json or it lists no ids. One that is there is read as every file from outside is
    (inputs.py: a regular file, size-limited, bounded JSON), so a FIFO, a dangling link or JSON nested
    100,000 deep is refused with a message."""
    if not (path.exists() or path.is_symlink()):
        return None
    name, text = quote(path, limit=4096), read_text(path, "tokenizer.json", MAX_TOKENIZER_BYTES)
    try:
        data = parse_json(text, name, "tokenizer.json")
    except ArchError:
        SourceCache().add(name, text)  # the excerpt quotes the text read, not the file as it is now
        raise
    model = data.get("model") if isinstance(data, dict) else None
    vocab = model.get("vocab") if isinstance(model, dict) else None
    ids = list(vocab.values()) if isinstance(vocab, dict) else []
    added = data.get("added_tokens") if isinstance(data, dict) else None
    ids += [t.get("id") for t in added if isinstance(t, dict)] if isinstance(added, list) else []
    ids = [i for i in ids if isinstance(i, int) and not isinstance(i, bool) and i >= 0]
    return max(ids) + 1 if ids else None
