"""Llama (LlamaForCausalLM): the reference llama-like family; also the lesson's short form's default."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..frontend.shortform import ShortForm
from ..ops.elementwise import SILU
from .family import Family
from .llama_like import LLAMA_RULES, LlamaLike, read_attention_bias

if TYPE_CHECKING:
    from .hf_config import Config, Desc


def options(cfg: Config, desc: Desc) -> None:
    read_attention_bias(cfg, desc)
    desc.mlp_bias = cfg.get("mlp_bias", "bool", False, note_default=False)


READER = LlamaLike("llama", "LlamaForCausalLM", dict(kv=None, head_dim=None, act=SILU.name, eps=1e-6, tied=False),
                   options=options)
# The lesson's short form (nano-trickster's): its sizes as `let` bindings before stdlib/families/llama.arch.
SHORT_FORM = ShortForm("llama.arch", "RMSNorm, RoPE, SwiGLU, no biases", {
    "num_kv_heads": "num_heads", "rope_theta": 10000.0, "norm_eps": 1e-6, "tie_embeddings": True})
FAMILY = Family("llama", READER.hf_class, LLAMA_RULES, READER.read, "rms_norm_eps", short_form=SHORT_FORM)
