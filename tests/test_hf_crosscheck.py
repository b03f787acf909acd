"""Independent cross-check: build each shipped model with HF transformers on torch's meta
device (no memory, no download) and compare totals and per-layer parts with ttspec."""

import pytest

from ttspec.analysis.params_report import params_report
from ttspec.driver import load_model

from .conftest import SPECS

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def llama(vocab, d, layers, heads, kv, mlp, max_seq, tied, eps):
    return transformers.LlamaConfig(vocab_size=vocab, hidden_size=d, num_hidden_layers=layers,
                                    num_attention_heads=heads, num_key_value_heads=kv, intermediate_size=mlp,
                                    max_position_embeddings=max_seq, tie_word_embeddings=tied, rms_norm_eps=eps)


def gpt2(vocab, d, layers, heads, max_seq, mlp):
    return transformers.GPT2Config(vocab_size=vocab, n_embd=d, n_layer=layers, n_head=heads, n_positions=max_seq,
                                   n_inner=mlp, tie_word_embeddings=True)


HF_CONFIGS = {
    "nano-trickster.arch": lambda: llama(256, 256, 6, 8, 8, 768, 512, True, 1e-6),
    "tinyllama-1.1b.arch": lambda: llama(32000, 2048, 22, 32, 4, 5632, 2048, False, 1e-5),
    "llama-3.1-8b.arch": lambda: llama(128256, 4096, 32, 32, 8, 14336, 131072, False, 1e-5),
    "llama-3.1-70b.arch": lambda: llama(128256, 8192, 80, 64, 8, 28672, 131072, False, 1e-5),
    "gpt2.arch": lambda: gpt2(50257, 768, 12, 12, 1024, 3072),
    "llama-gqa-tiny.arch": lambda: llama(512, 256, 4, 8, 2, 768, 1024, False, 1e-5),
    "nano-trickster-gpt2.arch": lambda: gpt2(256, 256, 6, 8, 512, 768),
    "phi-tiny.arch": lambda: transformers.PhiConfig(vocab_size=512, hidden_size=320, num_hidden_layers=2,
                                                    num_attention_heads=4, intermediate_size=1280,
                                                    partial_rotary_factor=0.4, tie_word_embeddings=False),
    "phi-2.arch": lambda: transformers.PhiConfig(vocab_size=51200, hidden_size=2560, num_hidden_layers=32,
                                                 num_attention_heads=32, intermediate_size=10240,
                                                 partial_rotary_factor=0.4, tie_word_embeddings=False),
}


def hf_counts(config):
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config)
    total = sum(p.numel() for p in model.parameters())  # parameters() yields tied tensors once
    layer = model.base_model.layers[0] if hasattr(model.base_model, "layers") else model.base_model.h[0]
    attn = sum(p.numel() for n, p in layer.named_parameters() if "attn" in n)
    mlp = sum(p.numel() for n, p in layer.named_parameters() if "mlp" in n)
    norm = sum(p.numel() for n, p in layer.named_parameters() if "norm" in n or n.startswith("ln_"))
    assert attn + mlp + norm == sum(p.numel() for p in layer.parameters())
    return total, {"attention": attn, "mlp": mlp, "norm": norm}


@pytest.mark.parametrize("spec", sorted(HF_CONFIGS))
def test_matches_transformers(spec):
    total, per_layer = hf_counts(HF_CONFIGS[spec]())
    report = params_report(load_model(SPECS / spec))
    assert report["total"] == total
    (layers,) = [c for c in report["components"] if "repeat" in c]
    assert layers["per_layer_by_kind"] == per_layer
