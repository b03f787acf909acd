"""The checkpoint families ttspec knows, one module each: its HF config fields (what `import-hf` reads),
its checkpoint names (the HF tensor for each of the spec's labels) and its short-form template, if any.
Adding a family is adding its module (and its template in ttspec/stdlib/families/) and listing it here.

The registry also resolves a model's `family` for the checkpoint mechanism (ttspec.checkpoints). Every
command loads it (the elaborator is given its names), so the family modules import the config readers
(hf_config) only inside the functions that read a config."""

from __future__ import annotations

from .. import checkpoints
from ..errors import ArchError
from . import gemma, gemma2, gpt2, llama, mistral, mixtral, olmoe, phi, phi3, qwen2, qwen2_moe, qwen3, qwen3_moe
from .family import Family
from .init import DEFAULT_INIT, InitRule

# family name == the `model_type` in HF's config.json; in the order messages list them
FAMILIES: dict[str, Family] = {f.FAMILY.name: f.FAMILY for f in (
    llama, mistral, qwen2, qwen3, gemma, gemma2, phi, phi3, gpt2, mixtral, qwen2_moe, qwen3_moe, olmoe)}


# The short forms the families declare, by family name: what the parser is handed (frontend/shortform.py).
SHORT_FORMS = {name: f.short_form for name, f in FAMILIES.items() if f.short_form is not None}


def family_list() -> str:
    """Every family, as hints that suggest one name them: `family llama`, `family gpt2`, ..."""
    return ", ".join(f"`family {name}`" for name in FAMILIES)


def rules_of(family: str) -> tuple[checkpoints.Rule, ...]:
    return FAMILIES[family].rules


def layouts_of(family: str) -> list[tuple[checkpoints.Rule, ...]]:
    """The family's checkpoint layouts: its hub files' first (what save_pretrained writes), then, for a
    mixture of experts, transformers 5's in-memory one (fused 3-D expert tensors)."""
    f = FAMILIES[family]
    return [f.rules] + ([f.fused_rules] if f.fused_rules else [])


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
    """(our-name regex, HF name, transform) for the rules this model uses, as generated programs embed them;
    a family with two layouts lists both (a program's from_hf takes the first whose tensors it is given)."""
    out: list[tuple[str, str, str]] = []
    for rules in layouts_of(model.family):
        out += [r for r in checkpoints.generated_rules(model, rules) if r not in out]
    return out


def init_rule(family: str | None) -> InitRule:
    """How a fresh model of `family` starts (families/init.py); a spec without a family: DEFAULT_INIT."""
    return FAMILIES[family].init if family is not None else DEFAULT_INIT


def _require_family(model) -> str:
    if model.family is None:
        raise ArchError(f"{model.name} names no checkpoint family", model.loc,
                        hint=f"add one of {family_list()} to the spec")
    return model.family


def plan_for(model, rules: tuple[checkpoints.Rule, ...] | None = None) -> list[checkpoints.HFTensor]:
    """The model's HF tensors (every layer), in the family's hub layout or the layout of `rules`."""
    from ..ir.graph import iter_params

    family = _require_family(model)
    shapes = {n: tuple(p.shape) for n, p in iter_params(model.graph) if not p.tied_to}
    return checkpoints.checkpoint_plan(family, rules or rules_of(family), shapes)


def to_hf_state_dict(model, ours: dict) -> dict:
    """Our tensors under HF names: each HF tensor joined from its parts (GPT-2's fused,
    transposed c_attn from q, k and v; Phi-3's qkv_proj and gate_up_proj by rows)."""
    plan = checkpoint_plan(_require_family(model), {name: tuple(t.shape) for name, t in ours.items()})
    return {t.name: t.join([ours[name] for name, _ in t.parts]) for t in plan}


def from_hf_state_dict(model, hf: dict) -> dict:
    """HF-named tensors under our names: every HF tensor read once and split by our shapes, an
    expert's tensors stacked (the exact inverse of to_hf_state_dict), from whichever of the
    family's layouts `hf` holds (a mixture of experts: hub files or transformers 5's fused)."""
    import torch

    plans = [plan_for(model, rules) for rules in layouts_of(_require_family(model))]
    plan = next((p for p in plans if all(t.name in hf for t in p)), plans[0])  # the first names what is missing
    out: dict = {}
    experts: dict[str, list] = {}
    for tensor in plan:
        for name, piece in tensor.split(hf[tensor.name]):
            if tensor.expert is None:
                out[name] = piece.contiguous()
            else:
                experts.setdefault(name, []).append(piece)
    for name, pieces in experts.items():
        out[name] = torch.stack(pieces)
    return out


__all__ = ["FAMILIES", "Family", "check_family_labels", "checkpoint_plan", "family_list", "from_hf_state_dict",
           "generated_rules", "init_rule", "layouts_of", "plan_for", "rules_of", "to_hf_state_dict"]
