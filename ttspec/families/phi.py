"""Phi-2 (PhiForCausalLM): LayerNorm, attention and MLP in parallel off one norm, biases throughout, and
RoPE on part of each head (partial_rotary_factor, 0.5 by default)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..checkpoints import L, one
from .family import Family

if TYPE_CHECKING:
    from .hf_config import Config, Desc

NAME, HF_CLASS = "phi", "PhiForCausalLM"
DEFAULTS = dict(kv=None, head_dim=None, act="gelu_new", eps=1e-5, tied=False)  # transformers 5.x PhiConfig

RULES = (
    one(r"embedding\.weight", "model.embed_tokens.weight"),
    one(L + r"input_layernorm\.(weight|bias)", "model.layers.{0}.input_layernorm.{1}"),
    one(L + r"attn\.wq\.(weight|bias)", "model.layers.{0}.self_attn.q_proj.{1}"),
    one(L + r"attn\.wk\.(weight|bias)", "model.layers.{0}.self_attn.k_proj.{1}"),
    one(L + r"attn\.wv\.(weight|bias)", "model.layers.{0}.self_attn.v_proj.{1}"),
    one(L + r"attn\.wo\.(weight|bias)", "model.layers.{0}.self_attn.dense.{1}"),
    one(L + r"mlp\.up\.(weight|bias)", "model.layers.{0}.mlp.fc1.{1}"),
    one(L + r"mlp\.down\.(weight|bias)", "model.layers.{0}.mlp.fc2.{1}"),
    one(r"final_layernorm\.(weight|bias)", "model.final_layernorm.{0}"),
    one(r"lm_head\.(weight|bias)", "lm_head.{0}"),
)


def read(cfg: Config) -> Desc:
    from .hf_config import (  # on use: the core never loads it
        Desc,
        head_dim_key,
        read_activation,
        read_head_dim,
        read_rope,
        read_sizes,
    )

    s = read_sizes(cfg, None)
    head_dim = read_head_dim(cfg, s["d"], s["heads"], None)
    desc = Desc(NAME, HF_CLASS, eps=cfg.get("layer_norm_eps", "float", DEFAULTS["eps"]), **s)
    desc.head_dim = head_dim if head_dim * s["heads"] != s["d"] else None
    desc.norm, desc.residual, desc.mlp_kind = "layernorm", "parallel", "mlp"
    desc.qkv_bias = desc.out_bias = desc.mlp_bias = desc.head_bias = desc.biased_throughout = True
    desc.labels = ("input_layernorm", None) + tuple("embedding final_layernorm".split())
    desc.tied = cfg.get("tie_word_embeddings", "bool", DEFAULTS["tied"])
    desc.rope = read_rope(cfg, desc, head_dim, partial_default=0.5, head_dim_key=head_dim_key(cfg, None), partial=True)
    desc.act = read_activation(cfg, "hidden_act", cfg.get("hidden_act", "str", DEFAULTS["act"]))
    if cfg.get("qk_layernorm", "bool", False, note_default=False):
        raise cfg.error("qk_layernorm", "qk_layernorm = true (LayerNorm on q and k) cannot be expressed in ttspec yet")
    return desc


FAMILY = Family(NAME, HF_CLASS, RULES, read, "layer_norm_eps")
