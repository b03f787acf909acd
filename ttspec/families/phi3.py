"""Phi-3 (Phi3ForCausalLM): llama-like with fused qkv_proj and gate_up_proj tensors, a sliding window on
every layer, and RoPE on part of each head when partial_rotary_factor says so."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..checkpoints import L, fused, one
from ..ops.elementwise import SILU
from .family import Family
from .llama_like import LlamaLike, uniform_window

if TYPE_CHECKING:
    from .hf_config import Config, Desc

RULES = (
    one(r"embedding\.weight", "model.embed_tokens.weight"),
    one(L + r"attn_norm\.weight", "model.layers.{0}.input_layernorm.weight"),
    fused((L + r"attn\.wq\.weight", L + r"attn\.wk\.weight", L + r"attn\.wv\.weight"),
          "model.layers.{0}.self_attn.qkv_proj.weight"),
    one(L + r"attn\.wo\.weight", "model.layers.{0}.self_attn.o_proj.weight"),
    one(L + r"mlp_norm\.weight", "model.layers.{0}.post_attention_layernorm.weight"),
    fused((L + r"mlp\.w1\.weight", L + r"mlp\.w3\.weight"), "model.layers.{0}.mlp.gate_up_proj.weight"),
    one(L + r"mlp\.w2\.weight", "model.layers.{0}.mlp.down_proj.weight"),
    one(r"norm\.weight", "model.norm.weight"),
    one(r"lm_head\.weight", "lm_head.weight"),
)


def finish(cfg: Config, desc: Desc, head_dim: int) -> None:
    # read by the longrope rope type only, which is refused with the rope
    cfg.get("original_max_position_embeddings", "int", None, null=None, note_default=False)


READER = LlamaLike("phi3", "Phi3ForCausalLM",
                   dict(kv=None, head_dim=None, act=SILU.name, eps=1e-5, tied=False, window=None),
                   partial_rotary=True, windows=uniform_window, finish=finish)
FAMILY = Family("phi3", READER.hf_class, RULES, READER.read, "rms_norm_eps")
