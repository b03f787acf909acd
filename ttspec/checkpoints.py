"""HF transformers checkpoint layouts: how a family's parameter names map onto ttspec's.

A spec says `family llama` (or the short form's `family:` key; the name is HF's config.json
`model_type`); its parameters then carry the labels that family's template uses, and the
family's rules give the HF tensor that holds each one. One mechanism covers every layout: an
HF tensor is one or more of our tensors concatenated along our dim 0 ([out, in]), possibly
stored transposed (GPT-2's Conv1D and its fused c_attn; Phi-3's qkv_proj and gate_up_proj).
`checkpoint_plan` lists a model's HF tensors with the parts each holds; loading, saving and
the generated programs' `from_hf` all follow it, so the two directions stay exact inverses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ArchError


@dataclass(frozen=True)
class Rule:
    """One HF tensor and the ttspec parameter(s) it holds. `ours` are regexes over ttspec names
    (`(\\d+)` captures the layer; `{0}`, `{1}` in `hf` are the captures). Several `ours`: HF's
    tensor is their concatenation, in order, along dim 0 of our [out, in] orientation (Phi-3's
    qkv_proj rows q, k, v; gate_up_proj rows gate, up), split by our shapes, so q and k/v may
    differ in size. `transpose`: HF stores the (concatenated) matrix transposed, [in, out], as
    GPT-2's Conv1D does; vectors (biases) are never transposed."""
    ours: tuple[str, ...]
    hf: str
    transpose: bool = False


def one(ours: str, hf: str, transpose: bool = False) -> Rule:
    return Rule((ours,), hf, transpose)


def fused(ours: tuple[str, ...], hf: str, transpose: bool = False) -> Rule:
    return Rule(tuple(ours), hf, transpose)


L = r"layers\.(\d+)\."  # a layer's prefix in our names; `{0}` in HF names


def _llama_like(attn_norm: str, mlp_norm: str, extra: tuple[Rule, ...] = ()) -> tuple[Rule, ...]:
    return (
        one(r"embedding\.weight", "model.embed_tokens.weight"),
        one(L + r"attn_norm\.weight", "model.layers.{0}." + attn_norm + ".weight"),
        one(L + r"attn\.wq\.(weight|bias)", "model.layers.{0}.self_attn.q_proj.{1}"),
        one(L + r"attn\.wk\.(weight|bias)", "model.layers.{0}.self_attn.k_proj.{1}"),
        one(L + r"attn\.wv\.(weight|bias)", "model.layers.{0}.self_attn.v_proj.{1}"),
        one(L + r"attn\.wo\.(weight|bias)", "model.layers.{0}.self_attn.o_proj.{1}"),
        one(L + r"mlp_norm\.weight", "model.layers.{0}." + mlp_norm + ".weight"),
        one(L + r"mlp\.w1\.(weight|bias)", "model.layers.{0}.mlp.gate_proj.{1}"),  # biases: llama's mlp_bias
        one(L + r"mlp\.w3\.(weight|bias)", "model.layers.{0}.mlp.up_proj.{1}"),
        one(L + r"mlp\.w2\.(weight|bias)", "model.layers.{0}.mlp.down_proj.{1}"),
        *extra,
        one(r"norm\.weight", "model.norm.weight"),
        one(r"lm_head\.weight", "lm_head.weight"),
    )


LLAMA = _llama_like("input_layernorm", "post_attention_layernorm")

QWEN3 = _llama_like("input_layernorm", "post_attention_layernorm", (
    one(L + r"attn\.q_norm\.weight", "model.layers.{0}.self_attn.q_norm.weight"),
    one(L + r"attn\.k_norm\.weight", "model.layers.{0}.self_attn.k_norm.weight"),
))

# Gemma 2 normalises before and after both attention and the MLP; HF's post_attention_layernorm
# is the norm after attention here (in Llama it is the norm before the MLP).
GEMMA2 = _llama_like("input_layernorm", "pre_feedforward_layernorm", (
    one(L + r"post_attn_norm\.weight", "model.layers.{0}.post_attention_layernorm.weight"),
    one(L + r"post_mlp_norm\.weight", "model.layers.{0}.post_feedforward_layernorm.weight"),
))

PHI3 = (
    one(r"embedding\.weight", "model.embed_tokens.weight"),
    one(L + r"attn_norm\.weight", "model.layers.{0}.input_layernorm.weight"),
    fused((L + r"attn\.wq\.weight", L + r"attn\.wk\.weight", L + r"attn\.wv\.weight"),
          "model.layers.{0}.self_attn.qkv_proj.weight"),
    one(L + r"attn\.wo\.weight", "model.layers.{0}.self_attn.o_proj.weight"),
    one(L + r"mlp_norm\.weight", "model.layers.{0}.post_attention_layernorm.weight"),
    fused((L + r"mlp\.w1\.weight", L + r"mlp\.w3\.weight"), "model.layers.{0}.mlp.gate_up_proj.weight"),
    one(L + r"mlp\.w2\.weight", "model.layers.{0}.mlp.down_proj.weight"),
    one(r"norm\.weight", "model.norm.weight"),
    one(r"lm_head\.weight", "lm_head.weight"),
)

GPT2 = (
    one(r"wte\.weight", "transformer.wte.weight"),
    one(r"wpe\.weight", "transformer.wpe.weight"),
    one(L + r"ln_1\.(weight|bias)", "transformer.h.{0}.ln_1.{1}"),
    fused((L + r"attn\.wq\.weight", L + r"attn\.wk\.weight", L + r"attn\.wv\.weight"),
          "transformer.h.{0}.attn.c_attn.weight", transpose=True),
    fused((L + r"attn\.wq\.bias", L + r"attn\.wk\.bias", L + r"attn\.wv\.bias"),
          "transformer.h.{0}.attn.c_attn.bias"),
    one(L + r"attn\.wo\.weight", "transformer.h.{0}.attn.c_proj.weight", transpose=True),
    one(L + r"attn\.wo\.bias", "transformer.h.{0}.attn.c_proj.bias"),
    one(L + r"ln_2\.(weight|bias)", "transformer.h.{0}.ln_2.{1}"),
    one(L + r"mlp\.up\.weight", "transformer.h.{0}.mlp.c_fc.weight", transpose=True),
    one(L + r"mlp\.up\.bias", "transformer.h.{0}.mlp.c_fc.bias"),
    one(L + r"mlp\.down\.weight", "transformer.h.{0}.mlp.c_proj.weight", transpose=True),
    one(L + r"mlp\.down\.bias", "transformer.h.{0}.mlp.c_proj.bias"),
    one(r"ln_f\.(weight|bias)", "transformer.ln_f.{0}"),
    one(r"lm_head\.weight", "lm_head.weight"),
)

PHI = (
    one(r"embedding\.weight", "model.embed_tokens.weight"),
    one(L + r"input_layernorm\.(weight|bias)", "model.layers.{0}.input_layernorm.{1}"),
    one(L + r"attn\.wq\.(weight|bias)", "model.layers.{0}.self_attn.q_proj.{1}"),
    one(L + r"attn\.wk\.(weight|bias)", "model.layers.{0}.self_attn.k_proj.{1}"),
    one(L + r"attn\.wv\.(weight|bias)", "model.layers.{0}.self_attn.v_proj.{1}"),
    one(L + r"attn\.wo\.(weight|bias)", "model.layers.{0}.self_attn.dense.{1}"),
    one(L + r"mlp\.up\.(weight|bias)", "model.layers.{0}.mlp.fc1.{1}"),
    one(L + r"mlp\.down\.(weight|bias)", "model.layers.{0}.mlp.fc2.{1}"),
    one(r"final_layernorm\.(weight|bias)", "model.final_layernorm.{0}"),
    one(r"lm_head\.(weight|bias)", "lm_head.{0}"),
)

# family name == the `model_type` in HF's config.json
FAMILIES = {
    "llama": LLAMA,
    "mistral": LLAMA,
    "qwen2": LLAMA,  # q, k and v carry biases: layers.N.attn.{wq,wk,wv}.bias
    "qwen3": QWEN3,
    "gemma": LLAMA,  # HF stores the RMSNorm weight w and applies (1 + w): `rmsnorm(x, offset = 1.0)`
    "gemma2": GEMMA2,
    "phi": PHI,  # Phi-2
    "phi3": PHI3,
    "gpt2": GPT2,
}

# Buffers that older HF checkpoints saved beside the weights; they hold no parameters.
IGNORED_HF = re.compile(r"(.*\.)?(rotary_emb\.inv_freq|attn\.bias|attn\.masked_bias)")


def family_list() -> str:
    """Every family, as hints that suggest one name them: `family llama`, `family gpt2`, ..."""
    return ", ".join(f"`family {name}`" for name in FAMILIES)


def _readable(pattern: str) -> str:
    text = pattern.replace(r"(\d+)", "N").replace("\\.", ".")
    return re.sub(r"\(([^()]*)\)", lambda m: "{" + m.group(1).replace("|", ",") + "}", text)


def expected_labels(family: str) -> list[str]:
    """The parameter names a family's rules accept, readable: `layers.N.attn.wq.{weight,bias}`."""
    labels = []
    for rule in FAMILIES[family]:
        for pattern in rule.ours:
            text = _readable(pattern)
            if text not in labels:
                labels.append(text)
    return labels


def match_rule(family: str, name: str) -> tuple[Rule, int, str] | None:
    """(rule, which of its parts, HF name) for one of our parameter names, or None."""
    for rule in FAMILIES[family]:
        for index, pattern in enumerate(rule.ours):
            m = re.fullmatch(pattern, name)
            if m:
                return rule, index, rule.hf.format(*m.groups())
    return None


def hf_rule(family: str, name: str) -> tuple[str, Rule, int]:
    """(HF name, rule, part index) for one of our parameter names."""
    found = match_rule(family, name)
    if found is None:
        raise ArchError(f"parameter `{name}` has no HF name under `family {family}`",
                        hint=f"{family} names its parameters " + ", ".join(expected_labels(family)))
    rule, index, hf = found
    return hf, rule, index


def check_family_labels(model) -> None:
    """The family's label contract: every stored parameter has an HF name under the spec's
    family, and the parts of a fused HF tensor are all there. The error points at the
    component's call site in the user's spec."""
    if model.family is None:
        return
    chains = {}
    for name, chain in stored_params_once(model.graph, "", []):
        chains[name] = chain
        if match_rule(model.family, name) is None:
            labels = ", ".join(expected_labels(model.family))
            others = ", ".join(f for f in FAMILIES if f != model.family)
            raise ArchError(
                f"parameter `{name}` has no HF name under `family {model.family}`", _user_loc(chain) or model.loc,
                hint=f"family {model.family} names its parameters {labels}; relabel the component with "
                     f"`as LABEL` to match, choose another family ({others}), or drop the `family` line "
                     "to load weights under ttspec's own names")
    try:
        checkpoint_plan(model.family, {name: () for name in chains})
    except PlanError as e:
        name = e.parameter
        raise ArchError(str(e), _user_loc(chains[name]) if name in chains else model.loc,
                        hint=e.diagnostic.hint) from None


@dataclass(frozen=True)
class HFTensor:
    """One tensor of an HF checkpoint: our tensors `parts` ((name, shape), in order)
    concatenated along dim 0, stored transposed where `transpose` (matrices only)."""
    name: str
    parts: tuple[tuple[str, tuple[int, ...]], ...]
    transpose: bool = False

    @property
    def shape(self) -> tuple[int, ...]:
        first = self.parts[0][1]
        shape = (sum(s[0] for _, s in self.parts), *first[1:]) if first else ()
        return shape[::-1] if self.transpose and len(shape) == 2 else shape

    @property
    def flipped(self) -> bool:
        return self.transpose and len(self.parts[0][1]) == 2

    def split(self, tensor) -> list[tuple[str, object]]:
        """HF's tensor -> our tensors (views where no copy is needed)."""
        if self.flipped:
            tensor = tensor.T
        if len(self.parts) == 1:
            return [(self.parts[0][0], tensor)]
        pieces = tensor.split([shape[0] for _, shape in self.parts], dim=0)
        return [(name, piece) for (name, _), piece in zip(self.parts, pieces)]

    def join(self, tensors: list):
        """Our tensors, in `parts` order -> HF's tensor (the inverse of `split`)."""
        import torch

        tensor = tensors[0] if len(tensors) == 1 else torch.cat(tensors, dim=0)
        return (tensor.T if self.flipped else tensor).contiguous()


class PlanError(ArchError):
    """A fused HF tensor whose parts the spec does not all have; `parameter` names the part present."""

    def __init__(self, message: str, parameter: str, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.parameter = parameter


def checkpoint_plan(family: str, shapes: dict) -> list[HFTensor]:
    """The HF tensors that hold our parameters `shapes` (ttspec name -> shape), in the order
    their first part appears, each with its parts in order."""
    groups: dict[str, tuple[Rule, dict[int, tuple[str, tuple[int, ...]]]]] = {}
    for name, shape in shapes.items():
        hf, rule, index = hf_rule(family, name)
        rule_of, parts = groups.setdefault(hf, (rule, {}))
        if index in parts or rule_of is not rule:
            raise PlanError(f"`{parts.get(index, (name,))[0]}` and `{name}` both load from HF's `{hf}`", name)
        parts[index] = (name, tuple(shape))
    plan = []
    for hf, (rule, parts) in groups.items():
        if len(parts) != len(rule.ours):
            have = parts[min(parts)][0]
            missing = ", ".join(f"`{_readable(rule.ours[i])}`" for i in range(len(rule.ours)) if i not in parts)
            raise PlanError(
                f"under `family {family}` HF's `{hf}` holds " + ", ".join(f"`{_readable(p)}`" for p in rule.ours)
                + f" concatenated; the spec has `{have}` but not {missing}", have,
                hint="label the components so that every part of the fused tensor is present")
        plan.append(HFTensor(hf, tuple(parts[i] for i in range(len(rule.ours))), rule.transpose))
    return plan


def plan_for(model) -> list[HFTensor]:
    """The model's HF tensors (every layer)."""
    from .ir.graph import iter_params

    if model.family is None:
        raise ArchError(f"{model.name} names no checkpoint family", model.loc,
                        hint=f"add one of {family_list()} to the spec")
    return checkpoint_plan(model.family, {n: tuple(p.shape) for n, p in iter_params(model.graph) if not p.tied_to})


def generated_rules(model) -> list[tuple[str, str, str]]:
    """(our-name regex, HF name, transform) for the rules this model uses, as generated programs
    embed them. transform: `copy`; `transpose` (HF stores [in, out]); `rows:A:B` (rows A to B of
    a fused HF tensor); `cols:A:B` (columns A to B of a fused, transposed one, then transposed).
    Offsets come from the model's shapes: every layer has the same ones."""
    from .ir.graph import iter_params

    every = {name: tuple(p.shape) for name, p in iter_params(model.graph) if not p.tied_to}
    shapes = {name: every[name] for name, _ in stored_params_once(model.graph)}  # layer 0 stands for all
    out: list[tuple[str, str, str]] = []
    for tensor in checkpoint_plan(model.family, shapes):
        start = 0
        for name, shape in tensor.parts:
            rule, index, _ = match_rule(model.family, name)
            stop = start + (shape[0] if shape else 0)
            if len(rule.ours) > 1:
                transform = f"{'cols' if tensor.flipped else 'rows'}:{start}:{stop}"
            else:
                transform = "transpose" if tensor.flipped else "copy"
            entry = (rule.ours[index], rule.hf, transform)
            if entry not in out:
                out.append(entry)
            start = stop
    order = {pattern: i for i, pattern in enumerate(p for r in FAMILIES[model.family] for p in r.ours)}
    return sorted(out, key=lambda e: order[e[0]])


def stored_params_once(graph, prefix: str = "", chain: list | None = None):
    """(name, [(graph, module path), ...] innermost first) for every stored parameter; a repeat's
    body once, as its layer 0 (layer variants have the same parameters: ir.graph.layer_variants)."""
    chain = chain or []
    for p in graph.params.values():
        if not p.tied_to:
            yield prefix + p.name, [(graph, p.module)] + chain
    for node in graph.repeats():
        yield from stored_params_once(node.attrs["body"], f"{prefix}{node.module}.0.", [(graph, node.module)] + chain)


def _user_loc(chain: list):
    """The innermost component with a location in the user's files rather than the stdlib."""
    for graph, path in chain:
        parts = path.split(".") if path else []
        while parts:
            info = graph.modules.get(".".join(parts))
            if info is not None and info.loc is not None and not info.loc.file.startswith("<stdlib>"):
                return info.loc
            parts.pop()
    return None


def to_hf_state_dict(model, ours: dict) -> dict:
    """Our tensors under HF names: each HF tensor joined from its parts (GPT-2's fused,
    transposed c_attn from q, k and v; Phi-3's qkv_proj and gate_up_proj by rows)."""
    if model.family is None:
        raise ArchError(f"{model.name} names no checkpoint family", model.loc,
                        hint=f"add one of {family_list()} to the spec")
    plan = checkpoint_plan(model.family, {name: tuple(t.shape) for name, t in ours.items()})
    return {t.name: t.join([ours[name] for name, _ in t.parts]) for t in plan}


def from_hf_state_dict(model, hf: dict) -> dict:
    """HF-named tensors under our names: every HF tensor read once and split by our shapes (the
    exact inverse of to_hf_state_dict)."""
    out: dict = {}
    for tensor in plan_for(model):
        for name, piece in tensor.split(hf[tensor.name]):
            out[name] = piece.contiguous()
    return out
