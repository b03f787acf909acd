"""The checkpoint families ttspec knows, one module each: its HF config fields (what `import-hf` reads),
its checkpoint names (the HF tensor for each of the spec's labels) and its short-form template, if any.
Adding a family is adding its module (and its template in ttspec/stdlib/families/) and listing it here.

The registry also resolves a model's `family` for the checkpoint mechanism (ttspec.checkpoints). Every
command loads it (the elaborator is given its names), so the family modules import the config readers
(hf_config) only inside the functions that read a config."""

from __future__ import annotations

from .. import checkpoints
from ..errors import ArchError
from . import gemma, gemma2, gpt2, llama, mistral, phi, phi3, qwen2, qwen3
from .family import Family

# family name == the `model_type` in HF's config.json; in the order messages list them
FAMILIES: dict[str, Family] = {f.FAMILY.name: f.FAMILY for f in (
    llama, mistral, qwen2, qwen3, gemma, gemma2, phi, phi3, gpt2)}


# The short forms the families declare, by family name: what the parser is handed (frontend/shortform.py).
SHORT_FORMS = {name: f.short_form for name, f in FAMILIES.items() if f.short_form is not None}


def family_list() -> str:
    """Every family, as hints that suggest one name them: `family llama`, `family gpt2`, ..."""
    return ", ".join(f"`family {name}`" for name in FAMILIES)


def rules_of(family: str) -> tuple[checkpoints.Rule, ...]:
    return FAMILIES[family].rules


def check_family_labels(model) -> None:
    """The spec's family's label contract (checkpoints.check_labels); nothing to check without a family."""
    if model.family is None:
        return
    others = tuple(f for f in FAMILIES if f != model.family)
    checkpoints.check_labels(model, rules_of(model.family), others)


def checkpoint_plan(family: str, shapes: dict) -> list[checkpoints.HFTensor]:
    """The HF tensors that hold our parameters `shapes` (ttspec name -> shape) under `family`."""
    return checkpoints.checkpoint_plan(family, rules_of(family), shapes)


def generated_rules(model) -> list[tuple[str, str, str]]:
    """(our-name regex, HF name, transform) for the rules this model uses, as generated programs embed them."""
    return checkpoints.generated_rules(model, rules_of(model.family))


def _require_family(model) -> str:
    if model.family is None:
        raise ArchError(f"{model.name} names no checkpoint family", model.loc,
                        hint=f"add one of {family_list()} to the spec")
    return model.family


def plan_for(model) -> list[checkpoints.HFTensor]:
    """The model's HF tensors (every layer)."""
    from ..ir.graph import iter_params

    family = _require_family(model)
    return checkpoint_plan(family, {n: tuple(p.shape) for n, p in iter_params(model.graph) if not p.tied_to})


def to_hf_state_dict(model, ours: dict) -> dict:
    """Our tensors under HF names: each HF tensor joined from its parts (GPT-2's fused,
    transposed c_attn from q, k and v; Phi-3's qkv_proj and gate_up_proj by rows)."""
    plan = checkpoint_plan(_require_family(model), {name: tuple(t.shape) for name, t in ours.items()})
    return {t.name: t.join([ours[name] for name, _ in t.parts]) for t in plan}


def from_hf_state_dict(model, hf: dict) -> dict:
    """HF-named tensors under our names: every HF tensor read once and split by our shapes (the
    exact inverse of to_hf_state_dict)."""
    out: dict = {}
    for tensor in plan_for(model):
        for name, piece in tensor.split(hf[tensor.name]):
            out[name] = piece.contiguous()
    return out


__all__ = ["FAMILIES", "Family", "check_family_labels", "checkpoint_plan", "family_list", "from_hf_state_dict",
           "generated_rules", "plan_for", "rules_of", "to_hf_state_dict"]
