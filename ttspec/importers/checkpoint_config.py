"""A checkpoint's config.json checked against the spec it is loaded into.

Tensor names and shapes cannot tell two models apart that differ in rope_theta, eps, the
activation, sliding windows, softcaps, the attention scale or rope scaling (Mistral-7B v0.1 and
v0.2 have the same tensors): the logits are simply wrong. So a checkpoint whose config.json
names the spec's family is compared with the spec field by field. One mapping decides what a
config means: `ttspec import-hf`'s (importers.hf), which writes the spec the config describes; that
spec and the user's are compiled and read by the same function (`semantics`), so the two sides
can differ only where the models differ. A disagreement is refused at the config field that
sets it (config.json:LINE:COL), naming the spec's value and where it is.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ArchError, Loc, Note
from ..inputs import quote
from ..ir.graph import Graph, Model, Node, in_stdlib, iter_params, layer_pattern, layer_variants
from ..ops import TOPK_ROUTING
from ..ops.queries import model_fields

_ROPE_WHERE = ("rope_parameters", "rope_scaling")  # transformers 5's and 4's dicts
_LAYER = re.compile(r"layers\.(\d+)\.")  # checkpoints.L: a layer's prefix in ttspec's names


@dataclass(frozen=True)
class Seen:
    """One value a model computes with, and where the spec says it (None for the imported spec)."""
    value: object
    where: Loc | None = None


# field -> the config keys (paths) that set it, the one transformers reads first listed first
FIELDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "vocab": (("vocab_size",),),
    "hidden": (("hidden_size",), ("n_embd",)),
    "heads": (("num_attention_heads",), ("n_head",)),
    "kv_heads": (("num_key_value_heads",), ("num_attention_heads",), ("n_head",)),
    "head_dim": (("head_dim",), ("hidden_size",), ("n_embd",)),
    "intermediate": (("intermediate_size",), ("n_inner",)),
    "positions": (("n_positions",), ("max_position_embeddings",)),
    "norm": (("model_type",),),
    "eps": (("rms_norm_eps",), ("layer_norm_eps",), ("layer_norm_epsilon",)),
    "norm_offset": (("model_type",),),
    "embedding_scale": (("model_type",),),
    "activation": (("hidden_activation",), ("hidden_act",), ("activation_function",)),
    "rope": (("rope_parameters",), ("rope_scaling",), ("rope_theta",), ("model_type",)),
    "rope.theta": (*((w, "rope_theta") for w in _ROPE_WHERE), ("rope_theta",)),
    "rope.fraction": (*((w, "partial_rotary_factor") for w in _ROPE_WHERE), ("partial_rotary_factor",)),
    "rope.style": (("model_type",),),
    "rope.scaling": tuple((w, k) for w in _ROPE_WHERE for k in ("rope_type", "type")) + (("rope_scaling",),),
    "rope.factor": tuple((w, "factor") for w in _ROPE_WHERE),
    "rope.low_freq_factor": tuple((w, "low_freq_factor") for w in _ROPE_WHERE),
    "rope.high_freq_factor": tuple((w, "high_freq_factor") for w in _ROPE_WHERE),
    "rope.original_max_positions": (*((w, "original_max_position_embeddings") for w in _ROPE_WHERE),
                                    ("original_max_position_embeddings",), ("max_position_embeddings",)),
    "window": (("layer_types",), ("use_sliding_window",), ("sliding_window",), ("max_window_layers",)),
    "attn_scale": (("query_pre_attn_scalar",), ("head_dim",)),
    "attn_softcap": (("attn_logit_softcapping",),),
    "final_softcap": (("final_logit_softcapping",),),
    "tied": (("tie_word_embeddings",),),
    # mixtures of experts: the shapes fix the expert count and widths, not how many a token uses or their weights
    "top_k": (("num_experts_per_tok",),),
    "routing": (("norm_topk_prob",), ("model_type",)),
}
# what each field is, in messages about the spec's side
WHAT = {"vocab": "vocabulary", "hidden": "width", "heads": "attention heads", "kv_heads": "key/value heads",
        "head_dim": "head_dim", "intermediate": "MLP width", "positions": "learned positions",
        "norm": "norm", "eps": "norm eps", "norm_offset": "norm weight offset",
        "embedding_scale": "embedding scale", "activation": "activation", "rope": "rotary embedding",
        "rope.theta": "rope theta", "rope.fraction": "rope fraction", "rope.style": "rope style",
        "rope.scaling": "rope scaling", "rope.factor": "rope factor",
        "rope.low_freq_factor": "rope low_freq_factor", "rope.high_freq_factor": "rope high_freq_factor",
        "rope.original_max_positions": "rope original_max_positions", "window": "attention window",
        "attn_scale": "attention scale", "attn_softcap": "attention softcap", "final_softcap": "final logit softcap",
        "tied": "output head", "top_k": "experts per token", "routing": "routing weights"}
# per attention layer, compared layer by layer; the others are compared as sets of values
PER_LAYER = ("heads", "kv_heads", "head_dim", "rope", "rope.theta", "rope.fraction", "rope.style", "rope.scaling",
             "rope.factor", "rope.low_freq_factor", "rope.high_freq_factor", "rope.original_max_positions",
             "window", "attn_scale", "attn_softcap")


def layer_count(model: Model) -> int:
    """How many layers the spec's stored parameters span (`layers.N.` in ttspec's names)."""
    count = 0
    for name, _ in iter_params(model.graph):
        m = _LAYER.match(name)
        if m:
            count = max(count, int(m.group(1)) + 1)
    return count


def _seq_bound(model: Model) -> int | None:
    """The bound on the tokens' sequence dim: windows at least this long see every position."""
    for node in model.graph.topo():
        if node.is_input and len(node.type.shape) >= 2:
            dim = node.type.shape[-1]
            return dim if isinstance(dim, int) else model.bounds.get(dim)
    return None


def _walk(graph: Graph, chain: tuple = ()):
    """(node, its graph, the enclosing (graph, repeat node) pairs) for every node, layer by layer."""
    for node in graph.topo():
        if node.is_repeat:
            bodies = [body for body, _ in layer_variants(node)]
            for v in layer_pattern(node):
                yield from _walk(bodies[v], chain + ((graph, node),))
        else:
            yield node, graph, chain


def _user_loc(node: Node, graph: Graph, chain: tuple, attr: str | None, model: Model) -> Loc | None:
    """Where the user's spec says a node's value: the attribute's own origin, the node, the innermost
    component call in the user's files, the repeat, or the model line."""
    def outside(loc):
        return loc is not None and not in_stdlib(loc)

    origin = node.origins.get(attr) if attr else None
    for candidate in (origin, node.loc):
        if outside(candidate):
            return candidate
    for g, module in ((graph, node.module), *((g, r.module) for g, r in reversed(chain))):
        parts = module.split(".") if module else []
        while parts:
            info = g.modules.get(".".join(parts))
            if info is not None and outside(info.loc):
                return info.loc
            parts.pop()
    for _, repeat in reversed(chain):
        if outside(repeat.loc):
            return repeat.loc
    return model.loc


def semantics(model: Model, seq_bound: int | None, locate: bool = True) -> dict[str, list[Seen]]:
    """Every value of the fields in FIELDS that `model` computes with, in graph order, layers
    expanded. Windows at least `seq_bound` long are no window (every position is inside them)."""
    out: dict[str, list[Seen]] = {name: [] for name in FIELDS}

    def add(field, value, node, graph, chain, attr=None):
        out[field].append(Seen(value, _user_loc(node, graph, chain, attr, model) if locate else None))

    top = model.graph
    for node, graph, chain in _walk(top):
        for field, value, attr in _routing_fields(node):
            add(field, value, node, graph, chain, attr)
        for field, value, where, attr in model_fields(node, graph, top_level=not chain):
            if field == "window" and value is not None and seq_bound is not None and value >= seq_bound:
                value = None
            add(field, value, where, graph, chain, attr)
    if not out["final_softcap"]:
        out["final_softcap"] = [Seen(None, model.loc)]
    return out


ROUTING = {False: "the top k of a softmax over every expert", True: "the top k renormalised to sum 1"}


def _routing_fields(node: Node):
    """A mixture of experts' routing: the experts a token uses, and whether their weights are renormalised
    (softmax "after" the top k is the same as "before" with normalize)."""
    if node.op == TOPK_ROUTING.name:
        yield "top_k", node.attrs.top_k, "top_k"
        yield "routing", ROUTING[node.attrs.softmax == "after" or node.attrs.normalize], "normalize"


def same(a, b) -> bool:
    """Specs write the config's floats back (repr), so floats agree to rounding; the rest exactly."""
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
    return a == b


def show(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def show_field(field: str, value) -> str:
    if field == "window":
        return "none (every position)" if value is None else str(value)
    if field == "tied":
        return "tied to the embedding" if value else "untied"
    if field == "rope":
        return "a rotary embedding" if value else "no rotary embedding"
    if field == "final_softcap" and value is None:
        return "no softcap"
    if field == "embedding_scale" and value is None:
        return "unscaled"
    return show(value)


@dataclass
class Disagreement:
    field: str
    checkpoint: object
    spec: Seen
    layer: int | None = None


def disagreements(spec: dict[str, list[Seen]], checkpoint: dict[str, list[Seen]]) -> list[Disagreement]:
    """Fields whose values differ, in FIELDS order. Per-layer fields pair attention layers in
    order; the rest compare the sets of values each side uses."""
    found = []
    for name in FIELDS:
        ours, theirs = spec[name], checkpoint[name]
        if not ours and not theirs:
            continue
        if name in PER_LAYER and len(ours) == len(theirs):
            for i, (a, b) in enumerate(zip(ours, theirs)):
                if not same(a.value, b.value):
                    found.append(Disagreement(name, b.value, a, i))
                    break
            continue
        values = _distinct(t.value for t in theirs)
        odd = next((a for a in ours if not any(same(a.value, v) for v in values)), None)
        if odd is not None:
            found.append(Disagreement(name, values[0] if values else None, odd))
            continue
        used = _distinct(a.value for a in ours)
        missing = next((v for v in values if not any(same(u, v) for u in used)), None)
        if values and missing is not None and ours:
            found.append(Disagreement(name, missing, ours[0]))
    return found


def _distinct(values) -> list:
    """The values once each, in order (a model uses one or two eps, activations ...: linear in the layers)."""
    out: list = []
    for v in values:
        if not any(same(v, u) for u in out):
            out.append(v)
    return out


class ConfigText:
    """config.json's text and data, and where each key is (families.hf_config's key scan)."""

    def __init__(self, path: Path, data: dict, text: str):
        from ..families.hf_config import key_locations

        self.path, self.data, self.text = path, data, text
        self.locs = key_locations(text)

    def present(self, keys: tuple[str, ...]):
        value = self.data
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                return False, None
            value = value[key]
        return True, value

    def loc(self, keys: tuple[str, ...]) -> Loc:
        where = self.locs.get(tuple(keys))
        return Loc(str(self.path), where[0], where[1], where[2]) if where else Loc(str(self.path), 1, 1)


def _message(cfg: ConfigText, d: Disagreement, family: str) -> tuple[str, Loc]:
    """`KEY is VALUE but the spec says VALUE (spec.arch:L:C)`, at the config key that sets the field."""
    keys = next((k for k in FIELDS[d.field] if cfg.present(k)[0]), None)
    ours, theirs = show_field(d.field, d.spec.value), show_field(d.field, d.checkpoint)
    tail = f" but the spec says {ours}" + (f" ({d.spec.where})" if d.spec.where else "")
    layer = f"layer {d.layer}: " if d.layer is not None and d.field == "window" else ""
    if keys is None:  # transformers' default for the family applies
        top = next((k for k in FIELDS[d.field] if len(k) == 1), FIELDS[d.field][0])  # the 4.x spelling
        return (f"{layer}{cfg.path.name} has no `{'.'.join(top)}`, so the checkpoint's "
                f"{WHAT[d.field]} is {family}'s default, {theirs},{tail}", cfg.loc(()))
    if keys == ("model_type",):  # not a config field: what every model of the family computes
        return f"{layer}a `{family}` checkpoint's {WHAT[d.field]} is {theirs}{tail}", cfg.loc(keys)
    raw, name = cfg.present(keys)[1], ".".join(keys)
    if keys == ("layer_types",) and d.layer is not None and isinstance(raw, list) and d.layer < len(raw):
        raw, name, layer = raw[d.layer], f"layer_types[{d.layer}]", ""
    if isinstance(raw, (dict, list)):
        return f"{layer}{name} means {theirs}{tail}", cfg.loc(keys)
    raw_text = quote(json.dumps(raw), 60)
    same_text = raw == d.checkpoint or (isinstance(raw, (int, float)) and not isinstance(raw, bool)
                                        and isinstance(d.checkpoint, (int, float)) and same(raw, d.checkpoint))
    meaning = "" if same_text else f" ({WHAT[d.field]} {theirs})"
    return f"{layer}{name} is {raw_text}{meaning}{tail}", cfg.loc(keys)


def check_config(model: Model, config_path: Path, data: dict, text: str) -> None:
    """Refuse a checkpoint whose config.json (`data`, read from `text`) describes another model than
    `model` (a spec with a family, the config's model_type)."""
    from ..analysis.interpreters import verify
    from ..elaborate import elaborate
    from ..families import FAMILIES
    from ..frontend.parser import parse_source
    from .hf import import_hf

    cfg = ConfigText(config_path, data, text)
    hint = (f"the checkpoint and the spec describe different models: write the spec for this checkpoint with "
            f"`ttspec import-hf {quote(config_path.parent)}`, or correct the spec")
    # the layer count first: an imported spec of 10^9 layers would take as long to read back
    layers = layer_count(model)
    for key in FAMILIES[model.family].layers_keys:
        value = data.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            if value != layers:
                raise ArchError(f"{key} is {value} but the spec has {layers} layer(s)", cfg.loc((key,)), hint=hint)
            break
    note = Note("while checking the checkpoint's config.json against the spec (as `ttspec import-hf` reads it)")
    try:
        # fields import-hf does not know are unknown, not disagreements: the check is about what it maps
        imported = import_hf(config_path, name="checkpoint", ignore=tuple(k for k in data if isinstance(k, str)))
    except ArchError as e:
        e.diagnostic.notes.append(note)
        raise
    name = f"<{config_path} as imported>"
    try:
        theirs = elaborate(parse_source(imported.text, name), config_path.parent, FAMILIES)
        verify(theirs)
    except ArchError as e:
        raise ArchError(f"{config_path.name} describes a model ttspec cannot compute: {e.diagnostic.message}",
                        Loc(str(config_path), 1, 1), hint=e.diagnostic.hint, notes=[note]) from None
    bound = _seq_bound(model)
    found = disagreements(semantics(model, bound), semantics(theirs, bound, locate=False))
    if found:
        message, loc = _message(cfg, found[0], model.family)
        more = [Note(_message(cfg, d, model.family)[0], _message(cfg, d, model.family)[1]) for d in found[1:4]]
        if len(found) > 4:
            more.append(Note(f"and {len(found) - 4} more field(s) disagree"))
        raise ArchError(message, loc, hint=hint, notes=more)
