"""Mistral (MistralForCausalLM): Llama's layout with a sliding window on every layer."""

from ..ops.elementwise import SILU
from .family import Family
from .llama_like import LLAMA_RULES, LlamaLike, uniform_window

READER = LlamaLike("mistral", "MistralForCausalLM",
                   dict(kv=8, head_dim=None, act=SILU.name, eps=1e-6, tied=False, window=4096), windows=uniform_window)
FAMILY = Family("mistral", READER.hf_class, LLAMA_RULES, READER.read, "rms_norm_eps")
