"""The torch reference backend against HF transformers: same seeded random weights, same
tokens, logits within 1e-4 in fp32. Biases and norm weights are perturbed away from 0 and 1
so that a dropped bias or norm weight fails."""

import importlib.util
import sys

import pytest

from ttspec.backends.torch.backend import compile_torch
from ttspec.driver import load_model

from .conftest import SPECS

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def load_generated(model, spec, tmp_path):
    path = tmp_path / f"{model.name}_torch.py"
    path.write_text(compile_torch(model, str(spec)))
    module_spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[path.stem] = module
    module_spec.loader.exec_module(module)
    return module


def randomize(hf_model, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in hf_model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if "norm" in name or name.split(".")[-2].startswith("ln_"):
                p.copy_(1.0 + 0.2 * noise) if name.endswith("weight") else p.copy_(0.2 * noise)
            elif name.endswith("bias"):
                p.copy_(0.2 * noise)
            else:
                p.copy_(0.08 * noise)


HF = {
    "nano-trickster.arch": lambda: transformers.LlamaConfig(
        vocab_size=256, hidden_size=256, num_hidden_layers=6, num_attention_heads=8, num_key_value_heads=8,
        intermediate_size=768, max_position_embeddings=512, rms_norm_eps=1e-6, rope_theta=10000.0,
        tie_word_embeddings=True),
    "nano-trickster-gpt2.arch": lambda: transformers.GPT2Config(
        vocab_size=256, n_embd=256, n_layer=6, n_head=8, n_positions=512, n_inner=768, tie_word_embeddings=True,
        activation_function="gelu_new", layer_norm_epsilon=1e-5),
    "nano-trickster-short.arch": lambda: transformers.LlamaConfig(
        vocab_size=256, hidden_size=256, num_hidden_layers=6, num_attention_heads=8, num_key_value_heads=8,
        intermediate_size=768, max_position_embeddings=512, rms_norm_eps=1e-6, rope_theta=10000.0,
        tie_word_embeddings=True),
    "phi-tiny.arch": lambda: transformers.PhiConfig(
        vocab_size=512, hidden_size=320, num_hidden_layers=2, num_attention_heads=4, intermediate_size=1280,
        partial_rotary_factor=0.4, rope_theta=10000.0, layer_norm_eps=1e-5, hidden_act="gelu_new",
        max_position_embeddings=256, tie_word_embeddings=False),
    "llama-gqa-tiny.arch": lambda: transformers.LlamaConfig(
        vocab_size=512, hidden_size=256, num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=2,
        intermediate_size=768, max_position_embeddings=1024, rms_norm_eps=1e-5, rope_theta=500000.0,
        tie_word_embeddings=False),
}


@pytest.mark.parametrize("spec", sorted(HF))
def test_matches_hf_logits(spec, tmp_path):
    torch.manual_seed(0)
    config = HF[spec]()
    config._attn_implementation = "eager"
    hf = transformers.AutoModelForCausalLM.from_config(config).float().eval()
    randomize(hf, seed=1)
    model = load_model(SPECS / spec)
    generated = load_generated(model, SPECS / spec, tmp_path)
    ours = getattr(generated, next(n for n in dir(generated) if n.lower() == model.name.replace("_", "")))()
    ours.load_hf_state_dict(hf.state_dict())
    ours.eval()
    vocab = config.vocab_size
    tokens = torch.randint(0, vocab, (2, 48), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = hf(tokens).logits
        got = ours(tokens)
    assert got.shape == expected.shape == (2, 48, vocab)
    err = (got - expected).abs().max().item()
    assert err <= 1e-4, err
    assert expected.abs().max().item() > 1.0  # the comparison is not between near-zero tensors


def test_a_dropped_bias_is_caught(tmp_path):
    """The same check fails when the generated model ignores one bias."""
    config = HF["nano-trickster-gpt2.arch"]()
    hf = transformers.AutoModelForCausalLM.from_config(config).float().eval()
    randomize(hf, seed=1)
    model = load_model(SPECS / "nano-trickster-gpt2.arch")
    generated = load_generated(model, SPECS / "nano-trickster-gpt2.arch", tmp_path)
    ours = generated.NanoTricksterGpt2()
    ours.load_hf_state_dict(hf.state_dict())
    with torch.no_grad():
        ours.layers[3].mlp.up.bias.zero_()
        tokens = torch.randint(0, 256, (1, 16), generator=torch.Generator().manual_seed(3))
        err = (ours(tokens) - hf(tokens).logits).abs().max().item()
    assert err > 1e-2
