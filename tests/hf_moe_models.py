"""Tiny random HF mixture-of-experts models of the four families import-hf knows (mixtral, qwen2_moe,
qwen3_moe, olmoe), shared by tests/test_hf_moe.py (import, checkpoints, torch logits and generate) and
tests/test_moe_golden_hf.py (golden n150 and T3K against HF). `save_tiny` builds one with transformers'
own config class, gives it seeded random weights, saves it with save_pretrained (one tensor per expert, the
hub layout) and writes the spec `import-hf` makes of its directory."""

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
T = pytest.importorskip("transformers")


def save_tiny(config, folder: Path, seed: int = 1):
    """(HF model in fp32 with random weights, its saved folder, the imported spec's path)."""
    from ttspec.importers.hf import import_hf

    from .test_torch_backend import randomize

    config._attn_implementation = "eager"
    hf = T.AutoModelForCausalLM.from_config(config).float().eval()
    randomize(hf, seed=seed)
    hf.save_pretrained(folder)
    spec = folder / "spec.arch"
    spec.write_text(import_hf(folder).text)
    return hf, folder, spec


# T3K-sized (8 heads of 32 over 8 chips, every family's experts a multiple of the 8 chips, expert and shared
# widths whole tiles): the golden comparisons run these on n150 and on T3K (1x8, experts over the chips).
WIDE = dict(vocab_size=256, hidden_size=256, intermediate_size=64, num_hidden_layers=2, num_attention_heads=8,
            num_key_value_heads=8, max_position_embeddings=128, pad_token_id=0, bos_token_id=0, eos_token_id=0)
WIDE_MOE = dict(num_experts=16, num_experts_per_tok=4, moe_intermediate_size=64)
WIDE_MODELS = {
    "mixtral": lambda: T.MixtralConfig(**WIDE, num_local_experts=8, num_experts_per_tok=2),  # 1 expert per chip
    "qwen2_moe": lambda: T.Qwen2MoeConfig(**WIDE, **WIDE_MOE, norm_topk_prob=False,
                                          shared_expert_intermediate_size=128),  # gated shared expert
    "qwen3_moe": lambda: T.Qwen3MoeConfig(**WIDE, **WIDE_MOE, norm_topk_prob=True),
    "olmoe": lambda: T.OlmoeConfig(**dict(WIDE, intermediate_size=64), num_experts=16, num_experts_per_tok=4),
    # a dense layer between two sparse ones (mlp_only_layers)
    "qwen3_moe_mixed": lambda: T.Qwen3MoeConfig(**dict(WIDE, num_hidden_layers=3), **WIDE_MOE, norm_topk_prob=True,
                                                mlp_only_layers=[1]),
}
