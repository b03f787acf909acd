"""Block-float weights in golden mode: bfloat8_b and bfloat4_b weights are rounded by ttnn's own
host conversion (ttspec/runtime/golden.py: quantise), so a program compiled with
--weights-dtype bfloat8_b or bfloat4_b has a measured accuracy: logits against HF transformers
for the same weights, PCC and relative error printed and bounded per format."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttspec.driver import compile_source, load_model
from ttspec.targets import get_target

from .conftest import SPECS

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("ttnn")

from ttspec.runtime.golden import GoldenTTNN, quantise  # noqa: E402
from ttspec.runtime.runner import run_golden  # noqa: E402

from .conftest import formats_of, target_of  # noqa: E402
from .numerics import (  # noqa: E402
    BF16_MEAN,
    BF16_P99,
    BF16_PCC,
    BF16_REL,
    assert_bf16_accurate,
    block_float_error_bounds,
    block_float_steps,
    error_stats,
    pcc,
    rel_err,
)
from .test_golden import hf_reference  # noqa: E402


@pytest.fixture(scope="module")
def ttnn_module():
    return GoldenTTNN()._ttnn


def test_quantise_is_ttnns_block_float(ttnn_module):
    t = ttnn_module
    x = torch.randn(64, 96, generator=torch.Generator().manual_seed(0))
    q8, q4 = quantise(t, x, t.bfloat8_b), quantise(t, x, t.bfloat4_b)
    assert q8.shape == q4.shape == x.shape and q8.dtype == torch.bfloat16
    r8, r4 = rel_err(q8.float(), x), rel_err(q4.float(), x)
    (low8, high8), (low4, high4) = block_float_error_bounds(x, "bfloat8_b"), block_float_error_bounds(x, "bfloat4_b")
    print(f"bfloat8_b rel err {r8:.4f} in ({low8:.4f}, {high8:.4f}), bfloat4_b {r4:.4f} in ({low4:.4f}, {high4:.4f})")
    # 7 and 3 mantissa bits under a shared exponent (tests/numerics.py): every value within one step of
    # its block (2^-6, 2^-2 of the block's top power of two), and in all between a quarter of a
    # uniform rounding's RMS and one step. Measured 0.0072 and 0.117 on unit normals. Quantisation
    # skipped (0), or one format's rounding in place of the other's, falls outside.
    assert ((q8.float() - x).abs() <= block_float_steps(x, "bfloat8_b")).all()
    assert ((q4.float() - x).abs() <= block_float_steps(x, "bfloat4_b")).all()
    assert low8 < r8 < high8 < low4 < r4 < high4
    # a shared exponent per 16 values of a tile row: 1e-3 beside 1.0 does not survive bfloat8_b,
    # while bf16 (an exponent per value) keeps it
    row = torch.zeros(32, 32)
    row[:, 0], row[:, 1], row[:, 16 + 1] = 1.0, 1e-3, 1e-3
    q = quantise(t, row, t.bfloat8_b)
    assert q[0, 0] == 1.0 and q[0, 1] == 0 and abs(q[0, 17].item() - 1e-3) < 1e-5  # 17: the next block
    # an odd shape (not whole tiles) comes back as it went in
    assert quantise(t, torch.ones(40, 50), t.bfloat8_b).shape == (40, 50)


@pytest.mark.parametrize("spec", ["nano-trickster.arch", "llama-gqa-tiny.arch"])
def test_block_float_accuracy_against_hf(spec):
    state, tokens, expected = hf_reference(spec, seq=50)
    model = load_model(SPECS / spec)
    results = {}
    for dtype in ("bf16", "bfloat8_b", "bfloat4_b"):
        source = compile_source(model, str(SPECS / spec), target_of("n150"), formats_of(dtype))
        got, _ = run_golden(model, str(SPECS / spec), get_target("n150"), state, tokens, formats_of(dtype),
                            source=source)
        results[dtype] = got.float()
        print(f"{spec} {dtype}: pcc {pcc(got.float(), expected):.6f} rel {rel_err(got.float(), expected):.4f}")
    # Measured (HF reference with randomize()'s weights, 2x50 tokens):
    #   nano-trickster  bf16 0.99934/0.036  bfloat8_b 0.99771/0.068  bfloat4_b 0.7095/0.764
    #   llama-gqa-tiny  bf16 0.99963/0.027  bfloat8_b 0.99865/0.052  bfloat4_b 0.7950/0.640
    # (PCC/relative RMS error: robust statistics over 25,600 logits). Bounds from the formats
    # (tests/numerics.py): bf16 its budget, PCC 0.999 and 16u = 0.0625. bfloat8_b: each weight matrix
    # rounds with a relative error of 0.0072 on normal weights (format bounds 0.0018-0.025); the about
    # 25 matrices on a path of these models (4 a layer and the head) add independent errors in
    # quadrature, sqrt(25) x 0.0072 = 0.036, beside bf16's 0.0625: 0.072, bound 2x that, 0.15, and
    # PCC 1 - 0.15^2 / 2 = 0.989. bfloat4_b: 0.117 a matrix, sqrt(25) x 0.117 = 0.6, so no bound
    # from the format short of "still the signal": PCC >= 0.6 and relative error <= 1 (predicting
    # zeros gives 1). Block-float rounding is integer arithmetic on the host, the same on every CPU;
    # only the bf16 activations' part varies, 10x and more below these bounds.
    bounds = {"bf16": (BF16_PCC, BF16_REL), "bfloat8_b": (0.989, 0.15), "bfloat4_b": (0.6, 1.0)}
    for dtype, (min_pcc, max_rel) in bounds.items():
        p, r = pcc(results[dtype], expected), rel_err(results[dtype], expected)
        assert p >= min_pcc and r <= max_rel, (dtype, p, r)
    # the formats are really applied: each coarser one is measurably further from HF
    errors = [rel_err(results[d], expected) for d in ("bf16", "bfloat8_b", "bfloat4_b")]
    assert errors[0] * 1.5 < errors[1] and errors[1] * 5 < errors[2], errors


# ---------------------------------------------------------------- the torch reference holds the same weights
def _torch_rounding():
    """The generated torch program's block_float (any program compiled with a block format has it)."""
    from ttspec.backends.torch.backend import compile_torch
    from ttspec.runtime.runner import load_program

    model = load_model(SPECS / "llama-gqa-tiny.arch")
    module = load_program(compile_torch(model, "specs/llama-gqa-tiny.arch", formats_of("bfloat8_b")), "gqa_torch_bf8")
    return module.block_float


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 70), st.integers(1, 70), st.sampled_from([1e-3, 0.02, 1.0, 300.0]),
       st.sampled_from(["bfloat8_b", "bfloat4_b"]), st.booleans(), st.integers(0, 2**16))
def test_torch_block_float_is_ttnns_conversion(ttnn_module, out, inputs, scale, dtype, bf16, seed):
    """The torch program's rounding of a [out, in] weight equals ttnn's own host conversion of the
    [in, out] operand the TT-NN program uploads (golden.quantise), value for value: bf16 or fp32
    weights, any shape (tile padding included), zero groups and wide ranges of magnitudes."""
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(out, inputs, generator=gen) * scale * torch.exp(torch.randn(out, inputs, generator=gen))
    weight[:, 0] = 0.0  # an all-zero group when out <= 16
    if bf16:
        weight = weight.to(torch.bfloat16)
    device = quantise(ttnn_module, weight.T.contiguous(), getattr(ttnn_module, dtype)).float().T
    assert torch.equal(_torch_rounding()(weight, dtype).float(), device)


@pytest.mark.parametrize("formats", ["attention=bfloat8_b,mlp=bfloat4_b", "performance"])
def test_torch_program_with_block_floats_matches_the_golden_program(formats):
    """`--weights-dtype attention=bfloat8_b,mlp=bfloat4_b` (or per matrix: `performance`, w1/w3 bfloat4_b and the
    rest bfloat8_b) on the torch target: the torch program holds the
    TT-NN program's rounded weights, so it lands as close to that golden program as the plain torch
    reference does to the bf16 one (bf16 activations aside), and far from the unrounded reference.
    Robust statistics and bounds from tests/numerics.py; u = 2^-8 of mean |logit|."""
    from ttspec.runtime.runner import random_hf_state_dict, run_torch

    spec = "specs/llama-gqa-tiny.arch"
    model = load_model(SPECS / "llama-gqa-tiny.arch")
    state = random_hf_state_dict(model, seed=2)
    tokens = torch.randint(0, 512, (2, 40), generator=torch.Generator().manual_seed(4))
    plain = run_torch(model, spec, state, tokens).float()
    rounded = run_torch(model, spec, state, tokens, formats_of(formats)).float()
    golden_bf16, _ = run_golden(model, spec, get_target("n150"), state, tokens)
    golden_q, _ = run_golden(model, spec, get_target("n150"), state, tokens, formats_of(formats),
                             source=compile_source(model, spec, target_of("n150"), formats_of(formats)))
    # each golden program is its torch program (same weights, fp32) up to bf16's rounding of the
    # activations: the bf16 budget (measured on llama-gqa-tiny: rounded pair mean 3.6u, p99 12u; plain pair 3.8u, 12.7u)
    assert_bf16_accurate(golden_bf16.float(), plain, "bf16 golden vs torch")
    assert_bf16_accurate(golden_q.float(), rounded, "block-float golden vs rounded torch")
    # and the rounding is really there: the rounded torch program is far outside that budget of the
    # unrounded one (measured PCC 0.962, 38x the budget's distance from 1; mean 70u, p99 235u: over 2x
    # the budget's 16u and 48u)
    apart = error_stats(rounded, plain)
    print(f"rounded vs unrounded torch: {apart}")
    assert apart.pcc < BF16_PCC and apart.mean > 2 * BF16_MEAN and apart.p99 > 2 * BF16_P99, apart


def test_a_tied_head_in_a_block_float_is_refused_for_torch(run_cli, tmp_path):
    out = run_cli("compile", "specs/nano-trickster.arch", "--target", "torch", "--weights-dtype", "bfloat8_b",
                  "-o", tmp_path / "m.py")
    assert out.returncode == 2 and "Traceback" not in out.stderr and not (tmp_path / "m.py").exists()
    assert out.stderr.startswith("specs/nano-trickster.arch:28:17: error:")  # the spec's tied lm_head call
    assert "lm_head(h, vocab, tied = embedding)" in out.stderr
    assert "cannot hold `lm_head` in bfloat8_b: it is tied to embedding.weight" in out.stderr
    assert "--weights-dtype bfloat8_b,head=bf16" in out.stderr
    ok = run_cli("compile", "specs/nano-trickster.arch", "--target", "torch", "--weights-dtype",
                 "bfloat8_b,head=bf16", "-o", tmp_path / "m.py")
    assert ok.returncode == 0, ok.stderr
    assert '"layers.*.attn.wq.weight": "bfloat8_b"' in (tmp_path / "m.py").read_text()
