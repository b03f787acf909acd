"""Golden mode: the generated TT-NN program, each ttnn op replaced by ttnn's own golden
function, against HF transformers logits for the same seeded random weights (bf16 weights
on the TT-NN side): PCC >= 0.999. A program with one op broken falls below 0.9."""

import pytest

from ttspec.driver import compile_source, load_model
from ttspec.runtime.runner import run_golden
from ttspec.targets import get_target

from .conftest import SPECS
from .test_torch_backend import HF, randomize

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("ttnn")


def pcc(a, b) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    return float((a @ b) / (a.norm() * b.norm()))


def rel_err(a, b) -> float:
    """||a - b|| / ||b||: sees a wrong scale or shift, which PCC does not."""
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm())


# bf16 programs against fp32 HF at seq 50. Measured: nano-trickster PCC 0.99934, rel 0.0363 (the
# worst of the four); gpt2 0.99993/0.0120; gqa 0.99963/0.0274; phi 0.99996/0.0089. Bounds: PCC
# 0.999 (1.5x the worst distance from 1) and relative error 0.06 (1.65x).
REL_MAX = 0.06


def hf_reference(spec, seq=64, seed=1):
    config = HF[spec]()
    hf = transformers.AutoModelForCausalLM.from_config(config).float().eval()
    randomize(hf, seed=seed)
    tokens = torch.randint(0, config.vocab_size, (2, seq), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        logits = hf(tokens).logits
    return hf.state_dict(), tokens, logits


@pytest.mark.parametrize("spec", ["nano-trickster.arch", "nano-trickster-gpt2.arch", "llama-gqa-tiny.arch",
                                  "phi-tiny.arch"])
def test_golden_matches_hf(spec):
    state, tokens, expected = hf_reference(spec, seq=50)  # not a tile multiple: exercises padding
    model = load_model(SPECS / spec)
    got, calls = run_golden(model, str(SPECS / spec), get_target("n150"), state, tokens)
    assert got.shape == expected.shape
    p, r = pcc(got, expected), rel_err(got, expected)
    print(f"{spec}: pcc {p:.6f} rel {r:.4f}")
    assert p >= 0.999 and r <= REL_MAX, (p, r)
    # ttnn's goldens did the work, including the fused QKV split and SDPA
    assert calls["transformer.split_query_key_value_and_split_heads"] == model.graph.repeats()[0].attrs["count"]
    assert calls["transformer.scaled_dot_product_attention"] > 0
    assert calls["linear"] > 0


@pytest.mark.parametrize("break_it", [
    ("x = ttnn.add(x, self.mlp(", "x = (self.mlp("),  # drop the MLP's residual add
    ('activation="silu"', 'activation="relu"'),  # the wrong gate activation
])
def test_broken_program_is_caught(break_it):
    spec = "nano-trickster.arch"
    state, tokens, expected = hf_reference(spec, seq=32)
    model = load_model(SPECS / spec)
    source = compile_source(model, str(SPECS / spec), "n150")
    old, new = break_it
    assert old in source
    broken = source.replace(old, new)
    got, _ = run_golden(model, str(SPECS / spec), get_target("n150"), state, tokens, source=broken)
    assert pcc(got, expected) < 0.9
