"""Mixtral (MixtralForCausalLM): Mistral's attention with a mixture of experts in every layer: softmax
over the experts, the top k renormalised; each expert a SwiGLU of intermediate_size."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..ops.elementwise import SILU
from .family import Family
from .llama_like import LlamaLike, llama_rules, uniform_window
from .moe_config import fused_moe_rules, moe_rules, read_experts, read_routing, set_moe

if TYPE_CHECKING:
    from .hf_config import Config, Desc

_ATTENTION = tuple(r for r in llama_rules("input_layernorm", "post_attention_layernorm") if ".mlp." not in r.hf)
RULES = _ATTENTION + moe_rules("block_sparse_moe", "w1", "w3", "w2")
FUSED_RULES = _ATTENTION + fused_moe_rules()


def finish(cfg: Config, desc: Desc, head_dim: int) -> None:
    experts = read_experts(cfg, "num_local_experts", 8, "num_experts")
    top_k = read_routing(cfg, experts, 2)
    set_moe(desc, experts, top_k, desc.mlp, True, [True] * desc.layers)


READER = LlamaLike("mixtral", "MixtralForCausalLM",
                   dict(kv=8, head_dim=None, act=SILU.name, eps=1e-5, tied=False, window=None, theta=1000000.0),
                   windows=uniform_window, finish=finish)
FAMILY = Family("mixtral", READER.hf_class, RULES, READER.read, "rms_norm_eps", fused_rules=FUSED_RULES)
