"""What the `ttspec train` tests share: tiny gpt2- and llama-family specs, the HF configs of the same models, a
text to train on, and the CLI run in-process."""

import json
from pathlib import Path

from ttspec.cli.main import main

from .conftest import ROOT

GPT2_TINY = """model tiny_gpt2
family gpt2

let vocab = 256
let d = 32
let layers = 2
let heads = 4
let max_seq = 64

input tokens: int32[batch, seq] where seq <= max_seq

block decoder(x: [batch, seq, d]) -> [batch, seq, d] kind decoder {
    x = x + attention(layernorm(x) as ln_1, heads = heads, qkv_bias = true) as attn
    x = x + mlp(layernorm(x) as ln_2, hidden = 4 * d, act = "gelu_tanh") as mlp
    return x
}

h = token_embedding(tokens, vocab, d) as wte
h = learned_positions(h, max_seq) as wpe
h = repeat(layers) decoder(h) as layers
h = layernorm(h) as ln_f
output logits = lm_head(h, vocab, tied = wte)
"""

LLAMA_TINY = """model tiny_llama
family llama

let vocab = 256
let d = 32
let layers = 2
let heads = 4
let kv_heads = 2
let max_seq = 64
let eps = 1e-6

input tokens: int32[batch, seq] where seq <= max_seq

block decoder(x: [batch, seq, d]) -> [batch, seq, d] kind decoder {
    x = x + attention(rmsnorm(x, eps = eps) as attn_norm, heads = heads, kv_heads = kv_heads,
                      rope = rope(theta = 10000.0)) as attn
    x = x + swiglu(rmsnorm(x, eps = eps) as mlp_norm, hidden = 64) as mlp
    return x
}

h = token_embedding(tokens, vocab, d) as embedding
h = repeat(layers) decoder(h) as layers
h = rmsnorm(h, eps = eps) as norm
output logits = lm_head(h, vocab)
"""


def hf_config(family: str):
    import transformers

    if family == "gpt2":
        return transformers.GPT2Config(vocab_size=256, n_embd=32, n_layer=2, n_head=4, n_positions=64, n_inner=128,
                                       activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0,
                                       attn_pdrop=0.0, layer_norm_epsilon=1e-5, tie_word_embeddings=True)
    return transformers.LlamaConfig(vocab_size=256, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                    num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64,
                                    rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False,
                                    attention_dropout=0.0)


def text(size: int) -> bytes:
    """`size` bytes of English-like text: the project's own Python sources, repeated as needed."""
    data = b"".join(p.read_bytes() for p in sorted((ROOT / "ttspec").rglob("*.py")))
    return (data * (size // len(data) + 1))[:size]


def train(*args: str) -> int:
    return main(["train", *map(str, args)])


def metrics(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def one_thread():
    """Torch on one thread while a training test runs (restored after): tiny models gain nothing from a second
    thread, and on a busy CI machine its spin-waits cost several times the work."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

