"""A program's stored parameters by ttspec name, and the same tensors from an HF state dict."""

import re
from collections.abc import Iterator

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
    for columns A to B of a fused, transposed one (GPT-2's c_attn), then transposed."""
    for pattern, hf_name, transform in HF_NAMES:
        match = re.fullmatch(pattern, name)
        if match:
            tensor = hf_state_dict[hf_name.format(*match.groups())]
            if transform == "transpose":
                return tensor.T
            if transform != "copy":
                kind, start, stop = transform.split(":")
                return tensor[int(start):int(stop)] if kind == "rows" else tensor[:, int(start):int(stop)].T
            return tensor
    raise KeyError(f"no HF name for {name}")


def from_hf_state_dict(hf_state_dict) -> dict:
    return {name: from_hf(name, hf_state_dict) for name in parameters()}
