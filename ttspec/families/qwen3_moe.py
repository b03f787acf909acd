"""Qwen3-MoE (Qwen3MoeForCausalLM; Qwen3-30B-A3B, Qwen3-235B-A22B): Qwen3's attention (per-head RMSNorm
of q and k) and, in the layers decoder_sparse_step and mlp_only_layers choose, a mixture of experts
(softmax over the experts, the top k, renormalised when norm_topk_prob); the other layers have a dense
SwiGLU of intermediate_size. One sliding window for every layer when use_sliding_window."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..ops.elementwise import SILU
from .family import Family
from .llama_like import LlamaLike, read_attention_bias
from .moe_config import fused_moe_rules, moe_rules, read_experts, read_routing, set_moe, sparse_layers
from .qwen3 import RULES as QWEN3_RULES

if TYPE_CHECKING:
    from .hf_config import Config, Desc

RULES = QWEN3_RULES + moe_rules("mlp", "gate_proj", "up_proj", "down_proj")
FUSED_RULES = QWEN3_RULES + fused_moe_rules()


def options(cfg: Config, desc: Desc) -> None:
    read_attention_bias(cfg, desc)
    desc.qk_norm = True


def windows(cfg: Config, desc: Desc, dflt: dict) -> int | None:
    """Qwen3MoeConfig keeps sliding_window only when use_sliding_window; the attention then slides on
    every layer. max_window_layers (in Qwen3-MoE configs, from Qwen2's) is read by no Qwen3-MoE class."""
    use = cfg.get("use_sliding_window", "bool", False, note_default=False)
    window = cfg.get("sliding_window", "int", dflt["window"], null=None, note_default=use)
    below = cfg.get("max_window_layers", "int", None, null=None, note_default=False, low=0)
    if below is not None:
        desc.notes.append(f"max_window_layers {below} is not read by {desc.hf_class}")
    if not use:
        if window is not None:
            desc.notes.append(f"sliding_window {window} is not used (use_sliding_window is false)")
        window = None
    desc.windows = [window] * desc.layers
    return window


def finish(cfg: Config, desc: Desc, head_dim: int) -> None:
    experts = read_experts(cfg, "num_experts", 128, "num_local_experts")
    top_k = read_routing(cfg, experts, 8)
    hidden = cfg.get("moe_intermediate_size", "int", 768)
    normalize = cfg.get("norm_topk_prob", "bool", False)
    layers = sparse_layers(cfg, desc.layers, experts)
    if all(layers):
        desc.notes.append(f"intermediate_size {desc.mlp} is the dense layers' MLP width; every layer has experts")
    set_moe(desc, experts, top_k, hidden, normalize, layers)


READER = LlamaLike("qwen3_moe", "Qwen3MoeForCausalLM",
                   dict(kv=4, head_dim=None, act=SILU.name, eps=1e-6, tied=False, window=4096),
                   options=options, windows=windows, finish=finish)
FAMILY = Family("qwen3_moe", READER.hf_class, RULES, READER.read, "rms_norm_eps", fused_rules=FUSED_RULES)
