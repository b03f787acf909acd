"""Gemma 2 (Gemma2ForCausalLM): Gemma with norms before and after both attention and the MLP, sliding
windows on alternate layers, a query scale from query_pre_attn_scalar, and softcapped logits."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..checkpoints import L, one
from .family import Family
from .gemma import options
from .llama_like import LlamaLike, llama_rules

if TYPE_CHECKING:
    from .hf_config import Config, Desc

# Gemma 2 normalises before and after both attention and the MLP; HF's post_attention_layernorm
# is the norm after attention here (in Llama it is the norm before the MLP).
RULES = llama_rules("input_layernorm", "pre_feedforward_layernorm", (
    one(L + r"post_attn_norm\.weight", "model.layers.{0}.post_attention_layernorm.weight"),
    one(L + r"post_mlp_norm\.weight", "model.layers.{0}.post_feedforward_layernorm.weight"),
))


def alternating_windows(cfg: Config, desc: Desc, dflt: dict) -> int | None:
    """Even layers (0, 2, ...) slide, odd ones attend to everything; layer_types (transformers 5) overrides."""
    from .hf_config import read_layer_windows  # on use: the core never loads it

    window = cfg.get("sliding_window", "int", dflt["window"], null=None)
    types_default = ["sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(desc.layers)]
    desc.windows = read_layer_windows(cfg, desc.layers, window, types_default)
    if desc.windows == [window if (i + 1) % 2 else None for i in range(desc.layers)]:
        desc.window_period = 2  # the family's alternation: `[..][layer % 2]` even when the stack is 2 layers deep
    return window


def finish(cfg: Config, desc: Desc, head_dim: int) -> None:
    from .hf_config import read_softcap  # on use: the core never loads it

    desc.residual = "sandwich"
    scalar = cfg.get("query_pre_attn_scalar", "float", 256)
    if scalar <= 0:  # transformers scales by scalar ** -0.5
        raise cfg.error("query_pre_attn_scalar", f"`query_pre_attn_scalar` = {scalar!r}: attention scales "
                                                 "scores by its inverse square root, so it must be positive",
                        hint="Gemma 2 uses head_dim (256), or hidden_size / num_attention_heads (144 for 27B)")
    if scalar != head_dim:
        desc.attn_scale, desc.attn_scale_from = scalar ** -0.5, scalar
    desc.attn_softcap = read_softcap(cfg, "attn_logit_softcapping", 50.0)
    desc.final_softcap = read_softcap(cfg, "final_logit_softcapping", 30.0)


READER = LlamaLike("gemma2", "Gemma2ForCausalLM",
                   dict(kv=4, head_dim=256, act="gelu_pytorch_tanh", eps=1e-6, tied=True, window=4096),
                   act_key="hidden_activation", other_act_key="hidden_act", options=options,
                   windows=alternating_windows, finish=finish)
FAMILY = Family("gemma2", READER.hf_class, RULES, READER.read, "rms_norm_eps")
