"""HF transformers checkpoint layouts: how a family's parameter names map onto ttspec's.

A spec says `family llama` (or the short form's `family:` key); its parameters then carry
the labels that family's template uses, and `hf_name` gives the name HF transformers uses
for the same tensor, with the transform that turns HF's tensor into ours (GPT-2 stores
linear weights transposed, as Conv1D, and fuses q, k and v).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ArchError


@dataclass(frozen=True)
class Rule:
    ours: str  # regex over ttspec names; `(\d+)` captures the layer
    hf: str  # HF name; `{0}` is the captured layer
    transform: str = "copy"  # copy | transpose | split3:<i> (slice i of 3 along HF's output dim, then transpose)


LLAMA = (
    Rule(r"embedding\.weight", "model.embed_tokens.weight"),
    Rule(r"layers\.(\d+)\.attn_norm\.weight", "model.layers.{0}.input_layernorm.weight"),
    Rule(r"layers\.(\d+)\.attn\.wq\.(weight|bias)", "model.layers.{0}.self_attn.q_proj.{1}"),
    Rule(r"layers\.(\d+)\.attn\.wk\.(weight|bias)", "model.layers.{0}.self_attn.k_proj.{1}"),
    Rule(r"layers\.(\d+)\.attn\.wv\.(weight|bias)", "model.layers.{0}.self_attn.v_proj.{1}"),
    Rule(r"layers\.(\d+)\.attn\.wo\.(weight|bias)", "model.layers.{0}.self_attn.o_proj.{1}"),
    Rule(r"layers\.(\d+)\.mlp_norm\.weight", "model.layers.{0}.post_attention_layernorm.weight"),
    Rule(r"layers\.(\d+)\.mlp\.w1\.weight", "model.layers.{0}.mlp.gate_proj.weight"),
    Rule(r"layers\.(\d+)\.mlp\.w3\.weight", "model.layers.{0}.mlp.up_proj.weight"),
    Rule(r"layers\.(\d+)\.mlp\.w2\.weight", "model.layers.{0}.mlp.down_proj.weight"),
    Rule(r"norm\.weight", "model.norm.weight"),
    Rule(r"lm_head\.weight", "lm_head.weight"),
)

GPT2 = (
    Rule(r"wte\.weight", "transformer.wte.weight"),
    Rule(r"wpe\.weight", "transformer.wpe.weight"),
    Rule(r"layers\.(\d+)\.ln_1\.(weight|bias)", "transformer.h.{0}.ln_1.{1}"),
    Rule(r"layers\.(\d+)\.attn\.wq\.weight", "transformer.h.{0}.attn.c_attn.weight", "split3:0"),
    Rule(r"layers\.(\d+)\.attn\.wk\.weight", "transformer.h.{0}.attn.c_attn.weight", "split3:1"),
    Rule(r"layers\.(\d+)\.attn\.wv\.weight", "transformer.h.{0}.attn.c_attn.weight", "split3:2"),
    Rule(r"layers\.(\d+)\.attn\.wq\.bias", "transformer.h.{0}.attn.c_attn.bias", "split3:0"),
    Rule(r"layers\.(\d+)\.attn\.wk\.bias", "transformer.h.{0}.attn.c_attn.bias", "split3:1"),
    Rule(r"layers\.(\d+)\.attn\.wv\.bias", "transformer.h.{0}.attn.c_attn.bias", "split3:2"),
    Rule(r"layers\.(\d+)\.attn\.wo\.weight", "transformer.h.{0}.attn.c_proj.weight", "transpose"),
    Rule(r"layers\.(\d+)\.attn\.wo\.bias", "transformer.h.{0}.attn.c_proj.bias"),
    Rule(r"layers\.(\d+)\.ln_2\.(weight|bias)", "transformer.h.{0}.ln_2.{1}"),
    Rule(r"layers\.(\d+)\.mlp\.up\.weight", "transformer.h.{0}.mlp.c_fc.weight", "transpose"),
    Rule(r"layers\.(\d+)\.mlp\.up\.bias", "transformer.h.{0}.mlp.c_fc.bias"),
    Rule(r"layers\.(\d+)\.mlp\.down\.weight", "transformer.h.{0}.mlp.c_proj.weight", "transpose"),
    Rule(r"layers\.(\d+)\.mlp\.down\.bias", "transformer.h.{0}.mlp.c_proj.bias"),
    Rule(r"ln_f\.(weight|bias)", "transformer.ln_f.{0}"),
    Rule(r"lm_head\.weight", "lm_head.weight"),
)

PHI = (
    Rule(r"embedding\.weight", "model.embed_tokens.weight"),
    Rule(r"layers\.(\d+)\.input_layernorm\.(weight|bias)", "model.layers.{0}.input_layernorm.{1}"),
    Rule(r"layers\.(\d+)\.attn\.wq\.(weight|bias)", "model.layers.{0}.self_attn.q_proj.{1}"),
    Rule(r"layers\.(\d+)\.attn\.wk\.(weight|bias)", "model.layers.{0}.self_attn.k_proj.{1}"),
    Rule(r"layers\.(\d+)\.attn\.wv\.(weight|bias)", "model.layers.{0}.self_attn.v_proj.{1}"),
    Rule(r"layers\.(\d+)\.attn\.wo\.(weight|bias)", "model.layers.{0}.self_attn.dense.{1}"),
    Rule(r"layers\.(\d+)\.mlp\.up\.(weight|bias)", "model.layers.{0}.mlp.fc1.{1}"),
    Rule(r"layers\.(\d+)\.mlp\.down\.(weight|bias)", "model.layers.{0}.mlp.fc2.{1}"),
    Rule(r"final_layernorm\.(weight|bias)", "model.final_layernorm.{0}"),
    Rule(r"lm_head\.(weight|bias)", "lm_head.{0}"),
)

FAMILIES = {"llama": LLAMA, "gpt2": GPT2, "phi": PHI}


def family_list() -> str:
    """Every family, as hints that suggest one name them: `family llama`, `family gpt2`, ..."""
    return ", ".join(f"`family {name}`" for name in FAMILIES)


def expected_labels(family: str) -> list[str]:
    """The parameter names a family's rules accept, readable: `layers.N.attn.wq.{weight,bias}`."""
    labels = []
    for rule in FAMILIES[family]:
        text = rule.ours.replace(r"(\d+)", "N").replace("\\.", ".")
        text = re.sub(r"\(([^()]*)\)", lambda m: "{" + m.group(1).replace("|", ",") + "}", text)
        if text not in labels:
            labels.append(text)
    return labels


def hf_rule(family: str, name: str) -> tuple[str, str]:
    """(HF name, transform) for one of our parameter names."""
    for rule in FAMILIES[family]:
        m = re.fullmatch(rule.ours, name)
        if m:
            return rule.hf.format(*m.groups()), rule.transform
    raise ArchError(f"parameter `{name}` has no HF name under `family {family}`",
                    hint=f"{family} names its parameters " + ", ".join(expected_labels(family)))


def check_family_labels(model) -> None:
    """The family's label contract: every stored parameter has an HF name under the spec's
    family. The error points at the component's call site in the user's spec."""
    if model.family is None:
        return
    for name, chain in stored_params_once(model.graph, "", []):
        if not any(re.fullmatch(rule.ours, name) for rule in FAMILIES[model.family]):
            labels = ", ".join(expected_labels(model.family))
            others = ", ".join(f for f in FAMILIES if f != model.family)
            raise ArchError(
                f"parameter `{name}` has no HF name under `family {model.family}`", _user_loc(chain) or model.loc,
                hint=f"family {model.family} names its parameters {labels}; relabel the component with "
                     f"`as LABEL` to match, choose another family ({others}), or drop the `family` line "
                     "to load weights under ttspec's own names")


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
    """Our tensors under HF names: the inverse of each rule's transform (GPT-2's fused,
    transposed c_attn is reassembled from q, k and v)."""
    import torch

    if model.family is None:
        raise ArchError(f"{model.name} names no checkpoint family", model.loc,
                        hint=f"add one of {family_list()} to the spec")
    out: dict = {}
    fused: dict[str, list] = {}
    for name, tensor in ours.items():
        hf, transform = hf_rule(model.family, name)
        if transform == "copy":
            out[hf] = tensor
        elif transform == "transpose":
            out[hf] = tensor.T.contiguous()
        else:
            fused.setdefault(hf, [None, None, None])[int(transform[-1])] = tensor
    for hf, parts in fused.items():
        out[hf] = torch.cat([p.T if p.dim() == 2 else p for p in parts], dim=-1).contiguous()
    return out


def from_hf_state_dict(model, hf: dict) -> dict:
    """HF-named tensors under our names: each rule's transform (the inverse of to_hf_state_dict)."""
    out: dict = {}
    for name in _stored_names(model):
        hf_name, transform = hf_rule(model.family, name)
        tensor = hf[hf_name]
        if transform.startswith("split3:"):
            tensor = tensor.chunk(3, dim=-1)[int(transform[-1])]
            tensor = tensor.T if tensor.dim() == 2 else tensor
        elif transform == "transpose":
            tensor = tensor.T
        out[name] = tensor.contiguous()
    return out


def _stored_names(model) -> list[str]:
    from .ir.graph import iter_params

    return [name for name, p in iter_params(model.graph) if not p.tied_to]
