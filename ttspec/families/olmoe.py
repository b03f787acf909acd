"""OLMoE (OlmoeForCausalLM): Llama's attention with RMSNorm over the whole q and k projections (before the
heads are split), and a mixture of experts in every layer: softmax over the experts, the top k (renormalised
when norm_topk_prob); each expert a SwiGLU of intermediate_size."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..checkpoints import L, one
from ..ops.elementwise import SILU
from .family import Family
from .hf_config import head_dim_key
from .llama_like import LlamaLike, llama_rules, read_attention_bias
from .moe_config import fused_moe_rules, moe_rules, read_experts, read_routing, set_moe

if TYPE_CHECKING:
    from .hf_config import Config, Desc

_ATTENTION = tuple(r for r in llama_rules("input_layernorm", "post_attention_layernorm", (
    one(L + r"attn\.q_norm\.weight", "model.layers.{0}.self_attn.q_norm.weight"),
    one(L + r"attn\.k_norm\.weight", "model.layers.{0}.self_attn.k_norm.weight"),
)) if ".mlp." not in r.hf)
RULES = _ATTENTION + moe_rules("mlp", "gate_proj", "up_proj", "down_proj")
FUSED_RULES = _ATTENTION + fused_moe_rules()


def options(cfg: Config, desc: Desc) -> None:
    read_attention_bias(cfg, desc)
    desc.qk_norm, desc.qk_norm_scope = True, "projection"
    clip = cfg.get("clip_qkv", "float", None, null=None, note_default=False)
    if clip is not None:
        raise cfg.error("clip_qkv", f"`clip_qkv: {clip!r}` clamps q, k and v to [-{clip!r}, {clip!r}], which ttspec "
                                    "cannot express yet", hint="the published OLMoE models have clip_qkv null")


def finish(cfg: Config, desc: Desc, head_dim: int) -> None:
    if desc.head_dim is not None:  # transformers sizes the norms by hidden_size, not by the projections
        raise cfg.error(head_dim_key(cfg, None),
                        f"head_dim {head_dim} x num_attention_heads is not hidden_size, but OlmoeAttention sizes "
                        "q_norm by hidden_size and k_norm by hidden_size / num_attention_heads x "
                        "num_key_value_heads, so its norms would not match its q and k projections (transformers "
                        "cannot run this config)",
                        hint="the published OLMoE models have head_dim = hidden_size / num_attention_heads")
    experts = read_experts(cfg, "num_experts", 64, "num_local_experts")
    top_k = read_routing(cfg, experts, 8)
    normalize = cfg.get("norm_topk_prob", "bool", False)
    set_moe(desc, experts, top_k, desc.mlp, normalize, [True] * desc.layers)


READER = LlamaLike("olmoe", "OlmoeForCausalLM",
                   dict(kv=None, head_dim=None, act=SILU.name, eps=1e-5, tied=False),
                   options=options, finish=finish)
FAMILY = Family("olmoe", READER.hf_class, RULES, READER.read, "rms_norm_eps", fused_rules=FUSED_RULES)
