"""The torch target's block-float weights on a model with more than ten layers: a layer index of two
digits must be matched like one of one digit, so every matrix of every layer holds ttnn's own host
conversion of it (golden.quantise, as tests/test_block_floats.py compares), and nothing else is rounded."""

import pytest

from ttspec.driver import load_model

torch = pytest.importorskip("torch")
pytest.importorskip("ttnn")

from ttspec.runtime.golden import GoldenTTNN, quantise  # noqa: E402
from ttspec.runtime.runner import build_torch  # noqa: E402
from ttspec.runtime.weights import random_state_dict  # noqa: E402

from .conftest import formats_of  # noqa: E402

LAYERS = 12
DEEP = f"""\
model deep_tiny
let layers = {LAYERS}
input tokens: int32[batch, seq] where seq <= 64
block decoder(x: [batch, seq, 64]) -> [batch, seq, 64] kind decoder {{
    x = x + attention(rmsnorm(x, eps = 1e-5) as attn_norm, heads = 2, kv_heads = 1,
                      rope = rope(theta = 10000.0)) as attn
    x = x + swiglu(rmsnorm(x, eps = 1e-5) as mlp_norm, hidden = 96) as mlp
    return x
}}
h = token_embedding(tokens, 80, 64) as embedding
h = repeat(layers) decoder(h) as layers
h = rmsnorm(h, eps = 1e-5) as norm
output logits = lm_head(h, 80)
"""
# the weight matrices of one layer of DEEP and the format `bfloat8_b,mlp=bfloat4_b` gives each
LAYER_MATRICES = {"attn.wq": "bfloat8_b", "attn.wk": "bfloat8_b", "attn.wv": "bfloat8_b", "attn.wo": "bfloat8_b",
                  "mlp.w1": "bfloat4_b", "mlp.w2": "bfloat4_b", "mlp.w3": "bfloat4_b"}


def test_every_layers_matrices_are_rounded_as_ttnn_rounds_them(write_spec):
    spec = write_spec(DEEP)
    model = load_model(spec)
    state = random_state_dict(model, seed=1)
    _, net = build_torch(model, str(spec), state, weights_dtype=formats_of("bfloat8_b,mlp=bfloat4_b"))
    held = net.state_dict()
    ttnn = GoldenTTNN()._ttnn
    expected_formats = {f"layers.{i}.{m}.weight": dtype for i in range(LAYERS) for m, dtype in LAYER_MATRICES.items()}
    expected_formats["lm_head.weight"] = "bfloat8_b"
    assert set(expected_formats) < set(state) and set(held) == set(state)
    for name, weight in state.items():
        dtype = expected_formats.get(name)
        if dtype is None:  # the embedding table and the norms stay as loaded
            assert torch.equal(held[name], weight), name
            continue
        # the [in, out] operand the TT-NN program uploads, through ttnn's own conversion, and back
        device = quantise(ttnn, weight.T.contiguous(), getattr(ttnn, dtype)).float().T
        assert torch.equal(held[name].float(), device), (name, dtype)
        assert not torch.equal(held[name], weight), name  # rounding changed it (random weights, 3 or 7 bits)


def test_a_value_past_a_tie_only_below_the_shared_exponents_bits_rounds_as_a_tie(write_spec):
    """ttnn aligns each value's 24-bit significand to its group's shared exponent with a right shift,
    dropping the bits below 2**(shared - 23) before rounding to nearest even. Half a step (or 1.5
    steps) from zero plus less than those bits is a tie there, rounded to the even neighbour; plus
    more, it rounds up (2.5 steps too). (Random fp32 weights of DEEP above meet such a value in layer 1.)"""
    spec = write_spec(DEEP)
    model = load_model(spec)
    module, _ = build_torch(model, str(spec), random_state_dict(model, seed=1),
                            weights_dtype=formats_of("bfloat8_b,mlp=bfloat4_b"))
    ttnn = GoldenTTNN()._ttnn
    for dtype, bits in (("bfloat8_b", 7), ("bfloat4_b", 3)):
        step = 2.0 ** -(bits - 1)  # beside 1.0 (exponent 0)
        row = torch.zeros(32, 32)  # [in, out]: a group is 16 consecutive outputs of one input row
        row[0:2, 0] = 1.0
        # 0.5 and 1.5 steps lie 3 or more exponents below 1.0 (bfloat4_b; 6 or more for bfloat8_b): an
        # excess of 2**-22 of the value is under 2**(shared - 23) there, one of 2**-14 is not
        near = [0.5 * (1 + 2**-22), 0.5 * (1 + 2**-14), 2.5, 3.5, 1.5 * (1 + 2**-22), 2.5 * (1 + 2**-14)]
        for i, steps in enumerate(near):
            row[0, 1 + i] = steps * step
            row[1, 1 + i] = -steps * step
        device = quantise(ttnn, row, getattr(ttnn, dtype)).float()
        assert torch.equal(module.block_float(row.T.contiguous(), dtype).float().T, device), dtype
        # what ttnn did, in steps: ties to even unless an excess survives the 24-bit alignment
        assert (device[0, 1:7] / step).tolist() == [0.0, 1.0, 2.0, 4.0, 2.0, 3.0], dtype
        assert (device[1, 1:7] / step).tolist() == [0.0, -1.0, -2.0, -4.0, -2.0, -3.0], dtype
