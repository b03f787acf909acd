"""Non-causal attention (encoders): specs/encoder-tiny.arch, a BERT-shaped masked LM, against HF
transformers' BertForMaskedLM in torch (weights copied by name), on ttnn's goldens on one chip and
a T3K (heads over the mesh) against HF, and on ttnn's mock n150 and T3K; a model whose every position
reads the whole sequence has no decode step, which every program refuses up front.

BERT adds a token-type embedding the language does not have: with token_type_ids all 0 (HF's default)
it adds row 0 of that table to every position, so the test folds it into the position table, an
exact rewrite. Everything else (post-norm LayerNorm blocks with eps 1e-12, exact GELU, q/k/v/o
biases, the MLM head's dense + GELU + LayerNorm, an output tied to the token embedding with its own
bias) is BERT's."""

import pytest

from ttspec.driver import compile_program, compile_source, load_model
from ttspec.runtime.device import run_worker
from ttspec.runtime.runner import golden_program, random_state_dict, run_torch
from ttspec.targets import get_target

from .conftest import SPECS, target_of
from .numerics import BF16_PCC, pcc

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("ttnn")

SPEC = SPECS / "encoder-tiny.arch"


def bert_config():
    return transformers.BertConfig(vocab_size=512, hidden_size=256, num_hidden_layers=2, num_attention_heads=8,
                                   intermediate_size=1024, max_position_embeddings=128, type_vocab_size=2,
                                   layer_norm_eps=1e-12, hidden_act="gelu", hidden_dropout_prob=0.0,
                                   attention_probs_dropout_prob=0.0)


def bert_state(hf) -> dict:
    """ttspec's names for BertForMaskedLM's weights (the token-type row 0 folded into the positions)."""
    sd = hf.state_dict()
    emb, head = "bert.embeddings.", "cls.predictions."
    state = {"tok.weight": sd[emb + "word_embeddings.weight"],
             "pos.weight": sd[emb + "position_embeddings.weight"] + sd[emb + "token_type_embeddings.weight"][0],
             "ln_emb.weight": sd[emb + "LayerNorm.weight"], "ln_emb.bias": sd[emb + "LayerNorm.bias"],
             "transform.weight": sd[head + "transform.dense.weight"],
             "transform.bias": sd[head + "transform.dense.bias"],
             "ln_head.weight": sd[head + "transform.LayerNorm.weight"],
             "ln_head.bias": sd[head + "transform.LayerNorm.bias"], "lm_head.bias": sd[head + "bias"]}
    names = {"attn.wq": "attention.self.query", "attn.wk": "attention.self.key", "attn.wv": "attention.self.value",
             "attn.wo": "attention.output.dense", "ln_1": "attention.output.LayerNorm",
             "mlp.up": "intermediate.dense", "mlp.down": "output.dense", "ln_2": "output.LayerNorm"}
    for layer in range(hf.config.num_hidden_layers):
        for ours, theirs in names.items():
            for part in ("weight", "bias"):
                state[f"layers.{layer}.{ours}.{part}"] = sd[f"bert.encoder.layer.{layer}.{theirs}.{part}"]
    return state


@pytest.fixture(scope="module")
def bert():
    """(model, ttspec-named weights, tokens [2, 40] (not a tile multiple: 24 padded positions), HF's logits)."""
    hf = transformers.BertForMaskedLM(bert_config()).float().eval()
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in hf.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if "LayerNorm" in name:
                p.copy_(1.0 + 0.2 * noise if name.endswith("weight") else 0.2 * noise)
            else:
                p.copy_(0.2 * noise if name.endswith("bias") else 0.08 * noise)
    tokens = torch.randint(0, 512, (2, 40), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = hf(tokens).logits
    return load_model(SPEC), bert_state(hf), tokens, expected


def test_torch_program_matches_hf_bert(bert):
    model, state, tokens, expected = bert
    got = run_torch(model, str(SPEC), state, tokens)
    err = (got - expected).abs().max().item()
    print(f"encoder-tiny torch vs HF BertForMaskedLM: max |diff| {err:.2e}, max |logit| {expected.abs().max():.2f}")
    assert got.shape == expected.shape and err <= 1e-4, err


@pytest.mark.parametrize("target", ["n150", "n300", "t3k"])
def test_golden_matches_hf_bert(bert, target):
    """ttnn's goldens (bf16 weights) against HF in fp32: PCC >= 0.999 over a sequence of 40, padded to
    64 with the padded keys masked; with the mask dropped the padding reaches every real position."""
    model, state, tokens, expected = bert
    source = compile_source(model, str(SPEC), target_of(target))
    assert "is_causal=True" not in source  # no causal SDPA in the model
    program, module = golden_program(model, str(SPEC), get_target(target), state, source=source)
    got = program(tokens)
    p = pcc(got, expected)
    assert module.ttnn.calls["transformer.scaled_dot_product_attention"] == 2  # one per layer
    unmasked, _ = golden_program(model, str(SPEC), get_target(target), state,
                                 source=source.replace("self.state.length = seq", "self.state.length = None"))
    broken = pcc(unmasked(tokens), expected)
    print(f"encoder-tiny golden {target} vs HF: pcc {p:.6f}; padded keys left unmasked: {broken:.4f}")
    assert got.shape == expected.shape and p >= BF16_PCC, p
    assert broken < 0.99, broken


SOFTCAPPED = """model softcapped_encoder
input tokens: int32[batch, seq] where seq <= 64
h = token_embedding(tokens, 128, 64) as tok
h = h + attention(h, heads = 2, causal = false, softcap = 5.0) as attn
output logits = lm_head(h, 128)
"""


def test_softcapped_non_causal_golden_matches_torch(write_spec):
    """softcap with causal = false: ttnn's SDPA has no softcap, so the golden-backed composition runs
    with the padding mask alone; against the torch program (fp32) on the same weights."""
    path = write_spec(SOFTCAPPED, "softcapped.arch")
    model = load_model(path)
    state = random_state_dict(model, 1)
    tokens = torch.randint(0, 128, (2, 40), generator=torch.Generator().manual_seed(2))
    expected = run_torch(model, str(path), state, tokens)
    program, module = golden_program(model, str(path), get_target("n150"), state)
    got = program(tokens)
    p = pcc(got, expected)
    print(f"softcapped non-causal golden n150 vs torch: pcc {p:.6f}")
    assert module.ttnn.calls["tanh"] == 1 and "transformer.scaled_dot_product_attention" not in module.ttnn.calls
    assert got.shape == expected.shape and p >= BF16_PCC, p


@pytest.mark.parametrize("target", ["n150", "t3k"])
def test_encoder_forward_on_mock(target):
    """ttnn's mock device validates the forward (SDPA with is_causal=False and the padding mask, heads
    split over the T3K) with the weights allocated on it; 40 positions padded to 64."""
    model = load_model(SPEC)
    source, build = compile_program(model, str(SPEC), target_of(target))
    result = run_worker(model, source, "mock", target, state=None, tokens=torch.zeros(2, 40, dtype=torch.int64))
    assert tuple(result["logits"].shape) == (2, 40, 512)
    assert build.memory.kv_bytes_per_token == 0  # no KV cache: the memory model counts none
    predicted, allocated = build.memory.weights_total, result["dram_bytes_allocated"]
    print(f"encoder-tiny on mock {target}: allocated {allocated:,} B per chip, planned {predicted:,}")
    assert predicted <= allocated <= predicted * 1.005 + 8 * 2**20


def test_encoder_programs_refuse_to_decode(bert, run_cli):
    """No decode step, no KV cache: allocate_cache, prefill, decode and generate refuse with the spec's
    location, as the torch program does; `ttspec generate` refuses before compiling."""
    model, state, tokens, _ = bert
    source = compile_source(model, str(SPEC), target_of("n300"))
    assert "def decode_step" not in source and "KVCache(" not in source
    program, module = golden_program(model, str(SPEC), get_target("n300"), state, source=source)
    why = "encoder-tiny.arch:18:23: non-causal attention cannot decode"  # where the spec says causal = false
    assert why in module.CANNOT_DECODE
    one = torch.zeros(1, dtype=torch.long)
    for call in (lambda: program.allocate_cache(1, 64), lambda: program.prefill(tokens[0], 0),
                 lambda: program.decode(one, one), lambda: program.decode_greedy(one, one),
                 lambda: module.generate(program, [[1, 2]], 4)):
        with pytest.raises(NotImplementedError, match=why):
            call()
    out = run_cli("generate", SPEC, "--target", "n150", "--mode", "golden", "--prompt", "hi")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert f"{SPEC.relative_to(SPECS.parent)}:18:23: error: non-causal attention cannot decode" in out.stderr
