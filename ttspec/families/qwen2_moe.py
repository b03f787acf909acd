"""Qwen2-MoE (Qwen2MoeForCausalLM; Qwen1.5-MoE, Qwen2-57B-A14B): Qwen2's attention (biases on q, k and v
from qkv_bias) and, in the layers decoder_sparse_step and mlp_only_layers choose, a mixture of experts
(softmax over the experts, the top k, renormalised when norm_topk_prob) plus a shared expert behind a
sigmoid gate; the other layers have a dense SwiGLU of intermediate_size."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..ops.elementwise import SILU
from .family import Family
from .llama_like import LLAMA_RULES, LlamaLike
from .moe_config import SHARED_RULES, fused_moe_rules, moe_rules, read_routing, set_moe, sparse_layers

if TYPE_CHECKING:
    from .hf_config import Config, Desc

RULES = LLAMA_RULES + moe_rules("mlp", "gate_proj", "up_proj", "down_proj") + SHARED_RULES
FUSED_RULES = LLAMA_RULES + fused_moe_rules() + SHARED_RULES


def options(cfg: Config, desc: Desc) -> None:
    desc.qkv_bias = cfg.get("qkv_bias", "bool", True, note_default=False)
    desc.out_bias = False


def windows(cfg: Config, desc: Desc, dflt: dict) -> int | None:
    """transformers 5's rule: with use_sliding_window, even-numbered layers below max_window_layers slide;
    layer_types, when given, says it per layer."""
    from .hf_config import read_layer_windows  # on use: the core never loads it

    use = cfg.get("use_sliding_window", "bool", False, note_default=False)
    window = cfg.get("sliding_window", "int", dflt["window"], null=None, note_default=use, low=0)
    below = cfg.get("max_window_layers", "int", 28, note_default=use, low=0)
    if not use:
        if window:
            desc.notes.append(f"sliding_window {window} is not used (use_sliding_window is false)")
        window = None
    types = ["sliding_attention" if window is not None and (i + 1) % 2 and i < below else "full_attention"
             for i in range(desc.layers)]
    desc.windows = read_layer_windows(cfg, desc.layers, window, types)
    return window


def finish(cfg: Config, desc: Desc, head_dim: int) -> None:
    experts = cfg.get("num_experts", "int", 60, low=0)
    top_k = read_routing(cfg, experts, 4)
    hidden = cfg.get("moe_intermediate_size", "int", 1408)
    shared = cfg.get("shared_expert_intermediate_size", "int", 5632)
    normalize = cfg.get("norm_topk_prob", "bool", False)
    layers = sparse_layers(cfg, desc.layers, experts)
    if all(layers):
        desc.notes.append(f"intermediate_size {desc.mlp} is the dense layers' MLP width; every layer has experts")
    set_moe(desc, experts, top_k, hidden, normalize, layers, shared, True)


READER = LlamaLike("qwen2_moe", "Qwen2MoeForCausalLM",
                   dict(kv=16, head_dim=None, act=SILU.name, eps=1e-6, tied=False, window=4096),
                   options=options, windows=windows, finish=finish)
FAMILY = Family("qwen2_moe", READER.hf_class, RULES, READER.read, "rms_norm_eps", fused_rules=FUSED_RULES)
