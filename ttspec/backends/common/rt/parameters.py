"""A program's stored parameters by ttspec name, and the same tensors from an HF state dict."""

import re
from collections.abc import Iterator

import torch

from .header import HF_NAMES, PARAMETERS


def parameters() -> Iterator[str]:
    """Every stored parameter's ttspec name, layers expanded: `layers.*6.x` is x in layers 0 to 5,
    `layers.[0:3,5].x` (layers that differ in structure) x in layers 0, 1, 2 and 5, `layers.[1:9:2].x` in
    the odd layers 1 to 7."""
    for name in PARAMETERS:
        every = re.fullmatch(r"(.*)\.\*(\d+)\.(.*)", name)
        some = re.fullmatch(r"(.*)\.\[([\d:,]+)\]\.(.*)", name)
        if every:
            head, count, tail = every.groups()
            layers = range(int(count))
        elif some:
            head, spans, tail = some.groups()
            layers = [i for span in spans.split(",") for i in _span(span)]
        else:
            yield name
            continue
        for i in layers:
            yield f"{head}.{i}.{tail}"


def _span(text: str) -> range:
    """`5`, or a Python slice `0:3` (0, 1, 2), `1:9:2` (1, 3, 5, 7)."""
    bounds = [int(b) for b in text.split(":")]
    return range(bounds[0], bounds[0] + 1) if len(bounds) == 1 else range(*bounds)


def from_hf(name: str, hf_state_dict):
    """One of our parameters from an HF state dict: `transpose` for a matrix HF stores [in, out]
    (GPT-2's Conv1D); `rows:A:B` for rows A to B of a fused HF tensor (Phi-3's qkv_proj), `cols:A:B`
    for columns A to B of a fused, transposed one (GPT-2's c_attn), then transposed; `rows1:A:B` for
    A to B along dim 1 (transformers 5's experts.gate_up_proj); `experts:E` for E tensors, one per
    expert, stacked (hub checkpoints). A name with two layouts (per-expert hub files, fused in
    memory) has a rule for each: the first whose tensors the state dict holds applies."""
    missing = None  # the first HF name a matching rule looked for, as the KeyError names it
    for pattern, hf_name, transform in HF_NAMES:
        match = re.fullmatch(pattern, name)
        if not match:
            continue
        if transform.startswith("experts:"):
            names = [hf_name.format(*match.groups(), expert=e) for e in range(int(transform.split(":")[1]))]
            if names[0] not in hf_state_dict:
                missing = missing or names[0]
                continue
            return torch.stack([hf_state_dict[n] for n in names])
        key = hf_name.format(*match.groups())
        if key not in hf_state_dict:
            missing = missing or key
            continue
        tensor = hf_state_dict[key]
        if transform == "transpose":
            return tensor.T
        if transform != "copy":
            kind, start, stop = transform.split(":")
            if kind == "rows1":
                return tensor[:, int(start):int(stop)]
            return tensor[int(start):int(stop)] if kind == "rows" else tensor[:, int(start):int(stop)].T
        return tensor
    raise KeyError(missing or f"no HF name for {name}")


def from_hf_state_dict(hf_state_dict) -> dict:
    return {name: from_hf(name, hf_state_dict) for name in parameters()}
