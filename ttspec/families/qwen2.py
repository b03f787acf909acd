"""Qwen2 (Qwen2ForCausalLM): Llama's layout with biases on q, k and v (not o), and sliding windows from
max_window_layers on when use_sliding_window is set."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..ops.elementwise import SILU
from .family import Family
from .llama_like import LLAMA_RULES, LlamaLike

if TYPE_CHECKING:
    from .hf_config import Config, Desc


def options(cfg: Config, desc: Desc) -> None:
    desc.qkv_bias, desc.out_bias = True, False  # layers.N.attn.{wq,wk,wv}.bias


def windows_from_max_window_layers(cfg: Config, desc: Desc, dflt: dict) -> int | None:
    """Qwen2 and Qwen3: layers from max_window_layers on slide, when use_sliding_window is true; layer_types
    (transformers 5) overrides that rule."""
    from .hf_config import read_layer_windows  # on use: the core never loads it

    use = cfg.get("use_sliding_window", "bool", False, note_default=False)
    window = cfg.get("sliding_window", "int", dflt["window"], null=None, note_default=use)
    first = cfg.get("max_window_layers", "int", 28, note_default=use, low=0)  # 0: every layer slides
    if not use:
        if window is not None:
            desc.notes.append(f"sliding_window {window} is not used (use_sliding_window is false)")
        window = None
    types_default = ["sliding_attention" if window is not None and i >= first else "full_attention"
                     for i in range(desc.layers)]
    desc.windows = read_layer_windows(cfg, desc.layers, window, types_default)
    return window


READER = LlamaLike("qwen2", "Qwen2ForCausalLM",
                   dict(kv=32, head_dim=None, act=SILU.name, eps=1e-6, tied=False, window=4096),
                   options=options, windows=windows_from_max_window_layers)
FAMILY = Family("qwen2", READER.hf_class, LLAMA_RULES, READER.read, "rms_norm_eps")
