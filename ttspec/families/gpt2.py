"""GPT-2 (GPT2LMHeadModel): LayerNorm, learned positions, a GELU MLP, biases throughout, fused and
transposed (Conv1D) attention weights, and its own field names (n_embd, n_head, n_layer, ...)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ..checkpoints import L, fused, one
from ..frontend.shortform import ShortForm
from .family import Family
from .init import GPT2_INIT

if TYPE_CHECKING:
    from .hf_config import Config, Desc

NAME, HF_CLASS = "gpt2", "GPT2LMHeadModel"
DEFAULTS = dict(act="gelu_new", eps=1e-5, tied=True)  # transformers 5.x GPT2Config

RULES = (
    one(r"wte\.weight", "transformer.wte.weight"),
    one(r"wpe\.weight", "transformer.wpe.weight"),
    one(L + r"ln_1\.(weight|bias)", "transformer.h.{0}.ln_1.{1}"),
    fused((L + r"attn\.wq\.weight", L + r"attn\.wk\.weight", L + r"attn\.wv\.weight"),
          "transformer.h.{0}.attn.c_attn.weight", transpose=True),
    fused((L + r"attn\.wq\.bias", L + r"attn\.wk\.bias", L + r"attn\.wv\.bias"),
          "transformer.h.{0}.attn.c_attn.bias"),
    one(L + r"attn\.wo\.weight", "transformer.h.{0}.attn.c_proj.weight", transpose=True),
    one(L + r"attn\.wo\.bias", "transformer.h.{0}.attn.c_proj.bias"),
    one(L + r"ln_2\.(weight|bias)", "transformer.h.{0}.ln_2.{1}"),
    one(L + r"mlp\.up\.weight", "transformer.h.{0}.mlp.c_fc.weight", transpose=True),
    one(L + r"mlp\.up\.bias", "transformer.h.{0}.mlp.c_fc.bias"),
    one(L + r"mlp\.down\.weight", "transformer.h.{0}.mlp.c_proj.weight", transpose=True),
    one(L + r"mlp\.down\.bias", "transformer.h.{0}.mlp.c_proj.bias"),
    one(r"ln_f\.(weight|bias)", "transformer.ln_f.{0}"),
    one(r"lm_head\.weight", "lm_head.weight"),
)


def read(cfg: Config) -> Desc:
    from .hf_config import Desc, read_activation, read_layers  # on use: the core never loads it

    keys = {"d": cfg.pick("n_embd", "hidden_size"), "heads": cfg.pick("n_head", "num_attention_heads"),
            "layers": cfg.pick("n_layer", "num_hidden_layers"),
            "max_seq": cfg.pick("n_positions", "max_position_embeddings"),
            "mlp": "n_inner" if cfg.has("n_inner") else cfg.pick("n_embd", "hidden_size")}
    d = cfg.get(keys["d"], "int")
    heads = cfg.get(keys["heads"], "int")
    if d % heads:
        raise cfg.error(keys["heads"], f"n_head={heads} does not divide n_embd={d}")
    inner = cfg.get("n_inner", "int", None, null=None, note_default=False)
    desc = Desc(NAME, HF_CLASS, vocab=cfg.get("vocab_size", "int"), d=d,
                layers=read_layers(cfg, keys["layers"]), heads=heads, kv_heads=heads,
                mlp=inner or 4 * d, max_seq=cfg.get(keys["max_seq"], "int"),
                eps=cfg.get("layer_norm_epsilon", "float", DEFAULTS["eps"]), keys=keys)
    if inner is None:
        desc.notes.append(f"n_inner is null: the MLP is 4 * n_embd = {4 * d} wide")
    desc.norm, desc.mlp_kind, desc.learned_positions = "layernorm", "mlp", True
    desc.qkv_bias = desc.out_bias = desc.mlp_bias = desc.biased_throughout = True
    desc.labels = ("ln_1", "ln_2", "wte", "ln_f")
    desc.act = read_activation(cfg, "activation_function", cfg.get("activation_function", "str", DEFAULTS["act"]))
    desc.tied = cfg.get("tie_word_embeddings", "bool", DEFAULTS["tied"])
    cfg.raw("n_ctx")  # GPT-2's legacy copy of n_positions; transformers does not read it
    for key in ("summary_type", "summary_use_proj", "summary_activation", "summary_proj_to_labels",
                "n_special", "predict_special_tokens", "reorder_and_upcast_attn"):
        cfg.raw(key)  # the double-heads classifier, OpenAI GPT leftovers, fp32 upcasting: not the LM's logits
    return desc


def refuse(cfg: Config) -> None:
    """GPT-2's switches for the attention scale: ttspec scales as the defaults do."""
    for key, want in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False)):
        if cfg.get(key, "bool", want, null=want, note_default=False) != want:
            raise cfg.error(key, f"`{key}: {json.dumps(not want)}` cannot be expressed in ttspec",
                            hint="ttspec's attention scales scores by 1/sqrt(head_dim)")


# The short form: its sizes as `let` bindings before stdlib/families/gpt2.arch.
SHORT_FORM = ShortForm("gpt2.arch", "LayerNorm, learned positions, GELU MLP, biases", {
    "norm_eps": 1e-5, "tie_embeddings": True})
FAMILY = Family(NAME, HF_CLASS, RULES, read, "layer_norm_epsilon", refuse=refuse,
                layers_keys=("n_layer", "num_hidden_layers"), short_form=SHORT_FORM, init=GPT2_INIT)
