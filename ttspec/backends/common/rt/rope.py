"""Rotary embedding's inverse frequencies, shared by both backends' Rotary helpers: plain RoPE, linear
scaling, and Llama 3's piecewise scaling (as HF transformers' rope init functions compute them)."""

import math

import torch


def rope_inverse_frequencies(rot: int, theta: float, scaling: str = "none", factor: float = 1.0,
                             low_freq_factor: float = 1.0, high_freq_factor: float = 4.0,
                             original_max_positions: int = 8192) -> torch.Tensor:
    """The `rot // 2` inverse frequencies of the rotated features of a head (float32)."""
    inv_freq = 1.0 / theta ** (torch.arange(0, rot, 2, dtype=torch.int64).float() / rot)
    if scaling == "linear":
        return inv_freq / factor
    if scaling != "llama3":
        return inv_freq
    # Llama 3: long wavelengths slow down by `factor`, short ones stay, the band between is blended
    wavelen = 2 * math.pi / inv_freq
    low_wavelen = original_max_positions / low_freq_factor
    high_wavelen = original_max_positions / high_freq_factor
    scaled = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
    smooth = (original_max_positions / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return torch.where(medium, smoothed, scaled)
