"""A program's stored parameters by ttspec name, and the same tensors from an HF state dict."""

import re
from collections.abc import Iterator

import torch

from .header import HF_NAMES, PARAMETERS


def parameters() -> Iterator[str]:
    """Every stored parameter's ttspec name, layers expanded."""
    for name in PARAMETERS:
        if "*" not in name:
            yield name
            continue
        head, count, tail = re.fullmatch(r"(.*)\.\*(\d+)\.(.*)", name).groups()
        for i in range(int(count)):
            yield f"{head}.{i}.{tail}"


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
