"""Qwen3 (Qwen3ForCausalLM): Qwen2's windows, attention_bias like Llama's, and RMSNorm on q and k."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..checkpoints import L, one
from ..ops.elementwise import SILU
from .family import Family
from .llama_like import LlamaLike, llama_rules, read_attention_bias
from .qwen2 import windows_from_max_window_layers

if TYPE_CHECKING:
    from .hf_config import Config, Desc

RULES = llama_rules("input_layernorm", "post_attention_layernorm", (
    one(L + r"attn\.q_norm\.weight", "model.layers.{0}.self_attn.q_norm.weight"),
    one(L + r"attn\.k_norm\.weight", "model.layers.{0}.self_attn.k_norm.weight"),
))


def options(cfg: Config, desc: Desc) -> None:
    read_attention_bias(cfg, desc)
    desc.qk_norm = True


READER = LlamaLike("qwen3", "Qwen3ForCausalLM",
                   dict(kv=32, head_dim=128, act=SILU.name, eps=1e-6, tied=False, window=4096),
                   options=options, windows=windows_from_max_window_layers)
FAMILY = Family("qwen3", READER.hf_class, RULES, READER.read, "rms_norm_eps")
