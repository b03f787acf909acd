"""Block floats (bfloat8_b, bfloat4_b) as a TT-NN device stores weight matrices, so the PyTorch
reference computes with the same rounded weights."""

import re

import torch

from .header import BLOCK_FLOAT_WEIGHTS


def block_float_dtype(name):
    """The block float a parameter is stored in on the device (`*` in a pattern: a layer's index)."""
    for pattern, dtype in BLOCK_FLOAT_WEIGHTS.items():
        if re.fullmatch(re.escape(pattern).replace(r"\*", r"\d+"), name):
            return dtype
    return None


def block_float(weight, dtype):
    """`weight` [out, in] rounded as ttnn stores a linear's [in, out] operand as `dtype`: every 16
    consecutive output features of an input row share the largest one's exponent, and each keeps 7
    (bfloat8_b) or 3 (bfloat4_b) bits of magnitude and a sign, rounded to nearest even from the 24
    bits of significand aligned to the shared exponent (tested equal to ttnn's own host conversion)."""
    if weight.dim() == 3:  # a bank of experts' matrices [experts, out, in]: each expert's as a linear's
        return torch.stack([block_float(w, dtype) for w in weight])
    bits = {"bfloat8_b": 7, "bfloat4_b": 3}[dtype]
    rows = weight.detach().float().T  # [in, out]
    out = rows.shape[-1]
    groups = torch.nn.functional.pad(rows, (0, -out % 16)).reshape(-1, 16)
    groups = groups.masked_fill(groups.abs() < torch.finfo(torch.float32).tiny, 0.0)  # ttnn encodes subnormals as 0
    exponent = torch.frexp(groups).exponent - 1  # floor(log2 |x|), exactly (frexp's mantissa is in [0.5, 1))
    shared = torch.where(groups == 0, -126, exponent).amax(dim=1, keepdim=True).float()
    # ttnn aligns each value's 24-bit significand to the shared exponent with a right shift, dropping
    # the bits below 2**(shared - 23) before it rounds: what lies past a tie only in those bits is a tie
    unit = torch.pow(2.0, shared - 23)
    groups = torch.trunc(groups / unit) * unit
    step = torch.pow(2.0, shared - (bits - 1))
    limit = 2**bits - 1
    rounded = torch.round(groups / step).clamp(-limit, limit) * step
    return rounded.reshape(rows.shape[0], -1)[:, :out].T.contiguous().to(weight.dtype)


