"""Gemma (GemmaForCausalLM): Llama's layout; the embedding scaled by sqrt(d), RMSNorm weights applied as
(1 + w) (`rmsnorm(x, offset = 1.0)`), a tied head, and "gelu" meaning the tanh approximation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .family import Family
from .llama_like import LLAMA_RULES, LlamaLike, read_attention_bias

if TYPE_CHECKING:
    from .hf_config import Config, Desc


def options(cfg: Config, desc: Desc) -> None:
    """Gemma and Gemma 2: attention_bias, the scaled embedding and offset norms; causal attention only."""
    read_attention_bias(cfg, desc)
    desc.embed_scale, desc.norm_offset = True, 1.0
    if cfg.get("use_bidirectional_attention", "bool", False, null=False, note_default=False):
        raise cfg.error("use_bidirectional_attention", "use_bidirectional_attention = true cannot be expressed "
                                                       "in ttspec (its attention is causal)")


READER = LlamaLike("gemma", "GemmaForCausalLM",
                   dict(kv=16, head_dim=256, act="gelu_pytorch_tanh", eps=1e-6, tied=True),
                   other_act_key="hidden_activation", legacy_gelu_tanh=True, options=options)
FAMILY = Family("gemma", READER.hf_class, LLAMA_RULES, READER.read, "rms_norm_eps")
