"""The families built like Llama (llama, mistral, qwen2, qwen3, gemma, gemma2, phi3): pre-norm decoders with
RoPE, grouped-query attention and a gated MLP. They share most config.json fields; each family's module says
what its transformers class reads beyond them (biases, q/k norms, sliding windows, Gemma's scaling) through
the hooks of its `LlamaLike`, called in a fixed order so that defaults and refusals come out in one order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..checkpoints import L, Rule, one
from ..ops.elementwise import GELU

if TYPE_CHECKING:
    from .hf_config import Config, Desc


def llama_rules(attn_norm: str, mlp_norm: str, extra: tuple[Rule, ...] = ()) -> tuple[Rule, ...]:
    """The checkpoint layout of LlamaForCausalLM, with the family's names for the two norms and its extra tensors."""
    return (
        one(r"embedding\.weight", "model.embed_tokens.weight"),
        one(L + r"attn_norm\.weight", "model.layers.{0}." + attn_norm + ".weight"),
        one(L + r"attn\.wq\.(weight|bias)", "model.layers.{0}.self_attn.q_proj.{1}"),
        one(L + r"attn\.wk\.(weight|bias)", "model.layers.{0}.self_attn.k_proj.{1}"),
        one(L + r"attn\.wv\.(weight|bias)", "model.layers.{0}.self_attn.v_proj.{1}"),
        one(L + r"attn\.wo\.(weight|bias)", "model.layers.{0}.self_attn.o_proj.{1}"),
        one(L + r"mlp_norm\.weight", "model.layers.{0}." + mlp_norm + ".weight"),
        one(L + r"mlp\.w1\.(weight|bias)", "model.layers.{0}.mlp.gate_proj.{1}"),  # biases: llama's mlp_bias
        one(L + r"mlp\.w3\.(weight|bias)", "model.layers.{0}.mlp.up_proj.{1}"),
        one(L + r"mlp\.w2\.(weight|bias)", "model.layers.{0}.mlp.down_proj.{1}"),
        *extra,
        one(r"norm\.weight", "model.norm.weight"),
        one(r"lm_head\.weight", "lm_head.weight"),
    )


LLAMA_RULES = llama_rules("input_layernorm", "post_attention_layernorm")


def read_attention_bias(cfg: Config, desc: Desc) -> None:
    """`attention_bias`: biases on q, k, v and o together (Llama, Qwen3, Gemma)."""
    desc.qkv_bias = desc.out_bias = cfg.get("attention_bias", "bool", False, note_default=False)


@dataclass(frozen=True)
class LlamaLike:
    """How one llama-like family reads config.json. The shared fields are read first (sizes, head_dim, eps,
    tying, RoPE, the activation), then the hooks: `options` (biases, norms, scaling: what the family's class
    reads besides), `windows` (sets desc.windows, returns the sliding window), `finish` (fields read last)."""

    name: str
    hf_class: str
    defaults: dict  # transformers 5.x config-class defaults for fields a config may leave out
    act_key: str = "hidden_act"
    # a second spelling of the activation that must agree when present (transformers 4 and 5 differ for Gemma)
    other_act_key: str | None = None
    legacy_gelu_tanh: bool = False  # the family's "gelu" is the tanh approximation (Gemma)
    partial_rotary: bool = False  # RoPE may rotate part of each head (Phi-3's partial_rotary_factor)
    options: Callable[[Config, Desc], None] | None = None
    windows: Callable[[Config, Desc, dict], int | None] | None = None
    finish: Callable[[Config, Desc, int], None] | None = None

    def read(self, cfg: Config) -> Desc:
        from .hf_config import (  # on use: the core never loads it
            Desc,
            head_dim_key,
            read_head_dim,
            read_rope,
            read_sizes,
        )

        dflt = self.defaults
        s = read_sizes(cfg, dflt["kv"])
        head_dim = read_head_dim(cfg, s["d"], s["heads"], dflt["head_dim"])
        eps = cfg.get("rms_norm_eps", "float", dflt["eps"])
        desc = Desc(self.name, self.hf_class, eps=eps, **s)
        desc.head_dim = head_dim if head_dim * s["heads"] != s["d"] else None
        desc.tied = cfg.get("tie_word_embeddings", "bool", dflt["tied"])
        desc.rope = read_rope(cfg, desc, head_dim, head_dim_key=head_dim_key(cfg, dflt["head_dim"]),
                              partial=self.partial_rotary, theta_default=dflt.get("theta", 10000.0))
        self.read_activation(cfg, desc)
        if self.options is not None:
            self.options(cfg, desc)
        window = self.windows(cfg, desc, dflt) if self.windows is not None else None
        self.check_windows(cfg, desc, window)
        if self.finish is not None:
            self.finish(cfg, desc, head_dim)
        return desc

    def read_activation(self, cfg: Config, desc: Desc) -> None:
        """The activation: transformers 5 reads hidden_activation for gemma2 and hidden_act for the others;
        4.x Gemma read hidden_activation when set. When a config has both, they must agree."""
        from .hf_config import read_activation  # on use: the core never loads it

        act_key = self.act_key
        act_value = cfg.get(act_key, "str", self.defaults["act"])
        desc.act = read_activation(cfg, act_key, act_value, self.legacy_gelu_tanh)
        other = self.other_act_key
        if other is not None:
            other_value = cfg.get(other, "str", None, null=None, note_default=False)
            if other_value is not None and read_activation(cfg, other, other_value, self.legacy_gelu_tanh) != desc.act:
                raise cfg.error(other, f"{other} \"{other_value}\" and {act_key} \"{act_value}\" disagree",
                                hint=f"transformers 5 reads {act_key} for {self.name} (transformers 4 read "
                                     "hidden_activation when set): make them agree")
        if self.legacy_gelu_tanh and act_value == GELU.name:
            desc.notes.append('hidden_act "gelu" is Gemma\'s legacy name for the tanh approximation (as transformers '
                              'reads it)')

    def check_windows(self, cfg: Config, desc: Desc, window: int | None) -> None:
        """Windows as long as the context are no windows; a spec lists one period of the layers' pattern."""
        from .hf_config import MAX_LAYER_PATTERN, periodic  # on use: the core never loads it

        if any(w is not None and w >= desc.max_seq for w in desc.windows):
            desc.notes.append(f"sliding_window {window} >= max_position_embeddings {desc.max_seq}: every position "
                              "is inside the window, so the spec omits it (add `window = ...` if you raise max_seq)")
            desc.windows = [None if w is not None and w >= desc.max_seq else w for w in desc.windows]
        period = periodic(desc.windows)
        if period > MAX_LAYER_PATTERN:
            key = "layer_types" if cfg.has("layer_types") else "max_window_layers"
            raise cfg.error(key, f"the layers' pattern of sliding and full attention repeats only after {period:,} "
                                 f"layers; a spec lists at most {MAX_LAYER_PATTERN:,} per-layer windows",
                            hint="real models repeat every few layers, or slide from max_window_layers on in at most "
                                 "a few hundred layers")


def uniform_window(cfg: Config, desc: Desc, dflt: dict) -> int | None:
    """One sliding window for every layer (Mistral, Phi-3)."""
    window = cfg.get("sliding_window", "int", dflt["window"], null=None)
    desc.windows = [window] * desc.layers
    return window
