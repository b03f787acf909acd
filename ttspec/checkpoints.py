"""HF transformers checkpoint layouts: how a family's parameter names map onto ttspec's.

A spec says `family llama` (or the short form's `family:` key; the name is HF's config.json
`model_type`); its parameters then carry the labels that family's template uses, and the
family's rules give the HF tensor that holds each one. One mechanism covers every layout: an
HF tensor is one or more of our tensors concatenated along our dim 0 ([out, in]), possibly
stored transposed (GPT-2's Conv1D and its fused c_attn; Phi-3's qkv_proj and gate_up_proj).
`checkpoint_plan` lists a model's HF tensors with the parts each holds; loading, saving and
the generated programs' `from_hf` all follow it, so the two directions stay exact inverses.
Mixtures of experts add two layouts (ttspec.families.moe_rules): one HF tensor per expert
(`experts.{expert}.w1.weight` in the rule's HF name: HF's tensor is slice [expert] of ours, which
loading stacks), and transformers 5's fused 3-D tensors, concatenated along our dim `axis` (1 for
`gate_up_proj` [E, 2I, d]: w1 then w3).

This module is the mechanism, given a family's rules; each family's rules live in its own module
of ttspec.families, whose registry resolves a model's `family` and calls in here.
"""

from __future__ import annotations

import re

from .errors import ArchError
from .records import FrozenRecord


class Rule(FrozenRecord):
    """One HF tensor and the ttspec parameter(s) it holds. `ours` are regexes over ttspec names
    (`(\\d+)` captures the layer; `{0}`, `{1}` in `hf` are the captures). Several `ours`: HF's
    tensor is their concatenation, in order, along dim 0 of our [out, in] orientation (Phi-3's
    qkv_proj rows q, k, v; gate_up_proj rows gate, up), split by our shapes, so q and k/v may
    differ in size. `transpose`: HF stores the (concatenated) matrix transposed, [in, out], as
    GPT-2's Conv1D does; vectors (biases) are never transposed. `axis`: the dim of ours the parts
    are concatenated along. `{expert}` in `hf`: one HF tensor per expert, slice [expert] of ours."""
    ours: tuple[str, ...]
    hf: str
    transpose: bool = False
    axis: int = 0

    @property
    def per_expert(self) -> bool:
        return EXPERT in self.hf


EXPERT = "{expert}"  # in an HF name: the expert's index (one HF tensor per expert)


def one(ours: str, hf: str, transpose: bool = False) -> Rule:
    return Rule((ours,), hf, transpose)


def fused(ours: tuple[str, ...], hf: str, transpose: bool = False, axis: int = 0) -> Rule:
    return Rule(tuple(ours), hf, transpose, axis)


L = r"layers\.(\d+)\."  # a layer's prefix in our names; `{0}` in HF names


# Buffers that older HF checkpoints saved beside the weights; they hold no parameters.
IGNORED_HF = re.compile(r"(.*\.)?(rotary_emb\.inv_freq|attn\.bias|attn\.masked_bias)")


def readable(pattern: str) -> str:
    text = pattern.replace(r"(\d+)", "N").replace("\\.", ".")
    return re.sub(r"\(([^()]*)\)", lambda m: "{" + m.group(1).replace("|", ",") + "}", text)


def expected_labels(rules: tuple[Rule, ...]) -> list[str]:
    """The parameter names a family's rules accept, readable: `layers.N.attn.wq.{weight,bias}`."""
    labels = []
    for rule in rules:
        for pattern in rule.ours:
            text = readable(pattern)
            if text not in labels:
                labels.append(text)
    return labels


def match_rule(rules: tuple[Rule, ...], name: str) -> tuple[Rule, int, str] | None:
    """(rule, which of its parts, HF name) for one of our parameter names, or None."""
    for rule in rules:
        for index, pattern in enumerate(rule.ours):
            m = re.fullmatch(pattern, name)
            if m:
                return rule, index, rule.hf.format(*m.groups(), expert=EXPERT)
    return None


def hf_rule(family: str, rules: tuple[Rule, ...], name: str) -> tuple[str, Rule, int]:
    """(HF name, rule, part index) for one of our parameter names under `family`'s `rules`."""
    found = match_rule(rules, name)
    if found is None:
        raise ArchError(f"parameter `{name}` has no HF name under `family {family}`",
                        hint=f"{family} names its parameters " + ", ".join(expected_labels(rules)))
    rule, index, hf = found
    return hf, rule, index


def check_labels(model, rules: tuple[Rule, ...], other_families: tuple[str, ...]) -> None:
    """The family's label contract: every stored parameter has an HF name under the spec's
    family (whose rules are `rules`), and the parts of a fused HF tensor are all there. The
    error points at the component's call site in the user's spec; its hint offers the
    `other_families`."""
    chains = {}
    for name, chain in stored_params_once(model.graph, "", []):
        chains[name] = chain
        if match_rule(rules, name) is None:
            labels = ", ".join(expected_labels(rules))
            others = ", ".join(other_families)
            raise ArchError(
                f"parameter `{name}` has no HF name under `family {model.family}`", _user_loc(chain) or model.loc,
                hint=f"family {model.family} names its parameters {labels}; relabel the component with "
                     f"`as LABEL` to match, choose another family ({others}), or drop the `family` line "
                     "to load weights under ttspec's own names")
    try:
        checkpoint_plan(model.family, rules, {name: () for name in chains})
    except PlanError as e:
        name = e.parameter
        raise ArchError(str(e), _user_loc(chains[name]) if name in chains else model.loc,
                        hint=e.diagnostic.hint) from None


class HFTensor(FrozenRecord):
    """One tensor of an HF checkpoint: our tensors `parts` ((name, shape), in order)
    concatenated along our dim `axis`, stored transposed where `transpose` (matrices only);
    with `expert` set, slice [expert] of our one part (hub checkpoints store experts apart)."""
    name: str
    parts: tuple[tuple[str, tuple[int, ...]], ...]
    transpose: bool = False
    axis: int = 0
    expert: int | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        first = self.parts[0][1]
        if self.expert is not None:
            return tuple(first[1:])
        shape = list(first)
        if shape:
            shape[self.axis] = sum(s[self.axis] for _, s in self.parts)
        return tuple(shape[::-1]) if self.transpose and len(shape) == 2 else tuple(shape)

    @property
    def flipped(self) -> bool:
        return self.transpose and len(self.parts[0][1]) == 2

    def split(self, tensor) -> list[tuple[str, object]]:
        """HF's tensor -> our tensors (views where no copy is needed); an expert's tensor -> its slice of ours."""
        if self.flipped:
            tensor = tensor.T
        if len(self.parts) == 1:
            return [(self.parts[0][0], tensor)]
        pieces = tensor.split([shape[self.axis] for _, shape in self.parts], dim=self.axis)
        return [(name, piece) for (name, _), piece in zip(self.parts, pieces)]

    def join(self, tensors: list):
        """Our tensors, in `parts` order -> HF's tensor (the inverse of `split`)."""
        import torch

        if self.expert is not None:
            return tensors[0][self.expert].contiguous()
        tensor = tensors[0] if len(tensors) == 1 else torch.cat(tensors, dim=self.axis)
        return (tensor.T if self.flipped else tensor).contiguous()


class PlanError(ArchError):
    """A fused HF tensor whose parts the spec does not all have; `parameter` names the part present."""

    def __init__(self, message: str, parameter: str, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.parameter = parameter


def checkpoint_plan(family: str, rules: tuple[Rule, ...], shapes: dict) -> list[HFTensor]:
    """The HF tensors that hold our parameters `shapes` (ttspec name -> shape) under `family`'s
    `rules`, in the order their first part appears, each with its parts in order."""
    groups: dict[str, tuple[Rule, dict[int, tuple[str, tuple[int, ...]]]]] = {}
    for name, shape in shapes.items():
        hf, rule, index = hf_rule(family, rules, name)
        rule_of, parts = groups.setdefault(hf, (rule, {}))
        if index in parts or rule_of is not rule:
            raise PlanError(f"`{parts.get(index, (name,))[0]}` and `{name}` both load from HF's `{hf}`", name)
        parts[index] = (name, tuple(shape))
    plan = []
    for hf, (rule, parts) in groups.items():
        if len(parts) != len(rule.ours):
            have = parts[min(parts)][0]
            missing = ", ".join(f"`{readable(rule.ours[i])}`" for i in range(len(rule.ours)) if i not in parts)
            raise PlanError(
                f"under `family {family}` HF's `{hf}` holds " + ", ".join(f"`{readable(p)}`" for p in rule.ours)
                + f" concatenated; the spec has `{have}` but not {missing}", have,
                hint="label the components so that every part of the fused tensor is present")
        ordered = tuple(parts[i] for i in range(len(rule.ours)))
        if rule.per_expert:  # one HF tensor per expert: as many as our tensor's first dim
            shape = ordered[0][1]
            plan += [HFTensor(hf.format(expert=e), ordered, expert=e) for e in range(shape[0] if shape else 1)]
        else:
            plan.append(HFTensor(hf, ordered, rule.transpose, rule.axis))
    return plan


def generated_rules(model, rules: tuple[Rule, ...]) -> list[tuple[str, str, str]]:
    """(our-name regex, HF name, transform) for the rules this model uses, as generated programs
    embed them. transform: `copy`; `transpose` (HF stores [in, out]); `rows:A:B` (rows A to B of
    a fused HF tensor); `cols:A:B` (columns A to B of a fused, transposed one, then transposed);
    `rows1:A:B` (A to B along dim 1: transformers 5's gate_up_proj [E, 2I, d]); `experts:E` (E HF
    tensors, one per expert, `{expert}` in the name, stacked).
    Offsets come from the model's shapes, the first layer of each structure standing for its layers."""
    from .ir.graph import iter_params

    every = {name: tuple(p.shape) for name, p in iter_params(model.graph) if not p.tied_to}
    chains = dict(stored_params_once(model.graph))
    shapes = {name: every[name] for name in chains}
    out: list[tuple[str, str, str]] = []
    for tensor in checkpoint_plan(model.family, rules, shapes):
        start = 0
        for name, shape in tensor.parts:
            rule, index, _ = match_rule(rules, name)
            stop = start + (shape[rule.axis] if shape else 0)
            if rule.per_expert:
                transform = f"experts:{shape[0]}"
            elif len(rule.ours) > 1:
                transform = f"{'cols' if tensor.flipped else 'rows' if rule.axis == 0 else 'rows1'}:{start}:{stop}"
            else:
                transform = "transpose" if tensor.flipped else "copy"
            entry = (rule.ours[index], rule.hf, transform)
            clash = next((e for e in out if e[:2] == entry[:2] and e != entry), None)
            if clash is not None:  # layers that differ in structure, with other sizes in one fused tensor
                hf = rule.hf.replace("{0}", "N")
                raise ArchError(f"`{hf}` would be split as {clash[2]} in some layers and {transform} in others: "
                                "the layers differ in the sizes of a fused checkpoint tensor",
                                _user_loc(chains[name]) or model.loc,
                                hint="give the fused parts the same sizes in every layer, or drop the `family` "
                                     "line to load weights under ttspec's own names")
            if entry not in out:
                out.append(entry)
            start = stop
    order = {pattern: i for i, pattern in enumerate(p for r in rules for p in r.ours)}
    return sorted(out, key=lambda e: order[e[0]])


def stored_params_once(graph, prefix: str = "", chain: list | None = None):
    """(name, [(graph, module path), ...] innermost first) for every stored parameter; a repeat's
    layers once per structure (ir.graph.layer_structures), as the first layer that has it."""
    from .ir.graph import layer_structures

    chain = chain or []
    for p in graph.params.values():
        if not p.tied_to:
            yield prefix + p.name, [(graph, p.module)] + chain
    for node in graph.repeats():
        for body, layers in layer_structures(node):
            yield from stored_params_once(body, f"{prefix}{node.module}.{layers[0]}.", [(graph, node.module)] + chain)


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
