"""The runtime the PyTorch programs carry (ttspec/backends/torch/rt) and the one every program carries
(ttspec/backends/common/rt), imported as modules and checked against outside truths: HF transformers'
rotary embedding (its rope init functions, Llama 3 scaling included, and apply_rotary_pos_emb), HF's
logits processors and the greedy choice, plain causal attention over the whole sequence for the
KV cache; and the model's API (Program, which a generated root class takes) on a small model: names,
tied and block-float weights on load, prefill and decode against the whole sequence without a cache."""

import math

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS  # noqa: E402
from transformers.models.gptj import modeling_gptj  # noqa: E402
from transformers.models.llama import modeling_llama  # noqa: E402

from ttspec.backends.common.rt import generate as gen  # noqa: E402
from ttspec.backends.common.rt import parameters as params  # noqa: E402
from ttspec.backends.torch.rt import block_floats  # noqa: E402
from ttspec.backends.torch.rt import program as api  # noqa: E402
from ttspec.backends.torch.rt.attention import KVCache, attend, merge_heads, split_heads  # noqa: E402
from ttspec.backends.torch.rt.positions import Positions, Rotary, sinusoidal_positions  # noqa: E402

LLAMA3 = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
          "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}


def hf_inv_freq(rope_parameters, head_dim=64):
    config = transformers.LlamaConfig(hidden_size=head_dim * 4, num_attention_heads=4, head_dim=head_dim,
                                      max_position_embeddings=131072, rope_parameters=rope_parameters)
    inv_freq, _ = ROPE_INIT_FUNCTIONS[rope_parameters["rope_type"]](config, "cpu")
    return inv_freq


def hf_rotate(x, inv_freq, positions):
    """HF Llama's rotation of x [batch, heads, seq, head_dim] at positions [batch, seq]."""
    freqs = positions.float()[..., None] * inv_freq
    emb = torch.cat([freqs, freqs], dim=-1)
    rotated, _ = modeling_llama.apply_rotary_pos_emb(x, x, emb.cos(), emb.sin())
    return rotated


@pytest.mark.parametrize("scaling", ["llama3", "linear", "none"])
def test_rotary_frequencies_are_hfs(scaling):
    if scaling == "llama3":
        rope, ours = LLAMA3, Rotary(64, 500000.0, scaling="llama3", factor=8.0, low_freq_factor=1.0,
                                    high_freq_factor=4.0, original_max_positions=8192)
        expected = hf_inv_freq(rope)
    elif scaling == "linear":
        rope, ours = {"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0}, Rotary(64, 10000.0,
                                                                                            scaling="linear",
                                                                                            factor=4.0)
        expected = hf_inv_freq(rope)
    else:
        ours = Rotary(64, 10000.0)
        expected = 1.0 / 10000.0 ** (torch.arange(0, 64, 2).float() / 64)  # RoFormer's closed form
    torch.testing.assert_close(ours.inv_freq, expected, rtol=1e-6, atol=0)


def test_rotary_half_equals_hf_apply_rotary_pos_emb_at_positions():
    rotary = Rotary(64, 500000.0, scaling="llama3", factor=8.0, original_max_positions=8192)
    x = torch.randn(2, 3, 5, 64, generator=torch.Generator().manual_seed(0))
    positions = torch.tensor([[0, 1, 2, 3, 4], [7, 900, 8191, 20000, 100000]])
    got = rotary(x, Positions(positions))
    torch.testing.assert_close(got, hf_rotate(x, hf_inv_freq(LLAMA3), positions), rtol=1e-5, atol=1e-5)
    # without positions: 0..seq-1
    torch.testing.assert_close(rotary(x), hf_rotate(x, hf_inv_freq(LLAMA3), torch.arange(5).expand(2, 5)),
                               rtol=1e-5, atol=1e-5)


def test_partial_interleaved_rotary_equals_gptj():
    """GPT-J rotates pairs (2i, 2i + 1) of the first rotary_dims features and leaves the rest alone."""
    rotary = Rotary(64, 10000.0, rotary_dims=16, style="interleaved")
    x = torch.randn(1, 2, 6, 64, generator=torch.Generator().manual_seed(1))
    table = modeling_gptj.create_sinusoidal_positions(32, 16)  # [positions, 16]: sin then cos
    sin, cos = torch.split(table[torch.arange(6)], 8, dim=-1)
    sin = torch.repeat_interleave(sin, 2, dim=-1)[None, None]
    cos = torch.repeat_interleave(cos, 2, dim=-1)[None, None]
    rot = x[..., :16] * cos + modeling_gptj.rotate_every_two(x[..., :16]) * sin
    torch.testing.assert_close(rotary(x), torch.cat([rot, x[..., 16:]], dim=-1), rtol=1e-5, atol=1e-5)


def test_sinusoidal_positions_are_vaswanis():
    x = torch.zeros(1, 7, 16)
    table = sinusoidal_positions(x)
    for pos in range(7):
        for i in range(8):
            angle = pos / 10000.0 ** (2 * i / 16)
            assert table[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


def reference_attention(q, k, v, window=None):
    """Causal attention over the whole sequence, GQA by repeating KV heads, written out."""
    groups = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    i, j = torch.arange(q.shape[-2])[:, None], torch.arange(k.shape[-2])[None, :]
    allowed = (j <= i) & ((j > i - window) if window is not None else True)
    return logits.masked_fill(~allowed, float("-inf")).softmax(-1) @ v


@pytest.mark.parametrize("window", [None, 3])
def test_kv_cache_prefill_then_decode_equals_attention_over_the_whole_sequence(window):
    """Two users: each prefills its prompt (different lengths) into its rows of the cache, then both decode
    at their own positions; every step's output is the causal attention over the user's whole sequence."""
    g = torch.Generator().manual_seed(2)
    lengths, steps, heads, kv, dim = (5, 3), 4, 4, 2, 8
    seqs = [(torch.randn(1, heads, n + steps, dim, generator=g), torch.randn(1, kv, n + steps, dim, generator=g),
             torch.randn(1, kv, n + steps, dim, generator=g)) for n in lengths]
    cache = KVCache(kv, dim)
    cache.allocate(2, 16, torch.float32, "cpu")
    for user, (n, (q, k, v)) in enumerate(zip(lengths, seqs, strict=True)):
        pos = Positions(torch.arange(n)[None], rows=slice(user, user + 1))
        got = attend(q[:, :, :n], k[:, :, :n], v[:, :, :n], pos, cache, window=window)
        torch.testing.assert_close(got, reference_attention(q[:, :, :n], k[:, :, :n], v[:, :, :n], window))
    for step in range(steps):
        at = torch.tensor([n + step for n in lengths])
        pos = Positions(at[:, None], rows=slice(0, 2), cached=True)
        q, k, v = (torch.cat([s[i][:, :, at[u]:at[u] + 1] for u, s in enumerate(seqs)]) for i in range(3))
        got = attend(q, k, v, pos, cache, window=window)
        for user, (qs, ks, vs) in enumerate(seqs):
            end = int(at[user]) + 1
            expected = reference_attention(qs[:, :, :end], ks[:, :, :end], vs[:, :, :end], window)[:, :, -1:]
            torch.testing.assert_close(got[user : user + 1], expected)


def test_kv_cache_refuses_use_before_allocation():
    with pytest.raises(RuntimeError, match="allocate_cache"):
        KVCache(1, 4).update(torch.zeros(1, 1, 1, 4), torch.zeros(1, 1, 1, 4), Positions(torch.zeros(1, 1).long(),
                                                                                          rows=slice(0, 1)))


def test_split_and_merge_heads_are_inverse_reshapes():
    x = torch.arange(2 * 3 * 12.0).reshape(2, 3, 12)
    heads = split_heads(x, 4)
    assert heads.shape == (2, 4, 3, 3) and torch.equal(heads[1, 2, 0], x[1, 0, 6:9])
    assert torch.equal(merge_heads(heads), x)


# ---------------------------------------------------------------- sampling, against HF and the argmax
def hf_probabilities(logits, temperature, top_k, top_p):
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    scores = TemperatureLogitsWarper(temperature)(None, logits.double())
    if top_k is not None:
        scores = TopKLogitsWarper(top_k)(None, scores)
    if top_p is not None:
        scores = TopPLogitsWarper(top_p)(None, scores)
    return scores.softmax(-1)


@pytest.mark.parametrize(("temperature", "top_k", "top_p"), [(0.7, None, None), (1.0, 5, None), (1.3, None, 0.8),
                                                             (0.5, 3, 0.6), (2.0, 40, 0.95)])
def test_sampling_probabilities_equal_hf_logits_processors(temperature, top_k, top_p):
    logits = torch.randn(16, 50, generator=torch.Generator().manual_seed(3)) * 3
    ours = gen.sampling_probabilities(logits, temperature, top_k, top_p)
    theirs = hf_probabilities(logits, temperature, top_k, top_p)
    assert torch.equal(ours > 0, theirs > 0)
    torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-12)


def test_greedy_is_the_argmax_and_non_finite_logits_raise():
    logits = torch.randn(4, 30, generator=torch.Generator().manual_seed(4))
    assert torch.equal(gen.sample(logits), logits.argmax(-1))
    logits[2, 7] = float("nan")
    with pytest.raises(gen.NonFiniteLogits, match="user 2"):
        gen.sample(logits)


class Counter:
    """A model whose next token is always (token + 1) mod 10, with the KV-cache API generate drives."""

    def __init__(self):
        self.calls = []

    def prefill(self, tokens, user):
        self.calls.append(("prefill", user, tokens.tolist()))
        return torch.nn.functional.one_hot((tokens + 1) % 10, 10).float()

    def decode(self, tokens, positions):
        self.calls.append(("decode", tokens.tolist(), positions.tolist()))
        return torch.nn.functional.one_hot((tokens + 1) % 10, 10).float()


def test_generate_prefills_each_user_then_decodes_at_each_users_position():
    model = Counter()
    out = gen.generate(model, [[3], [7, 8]], 3, stop_tokens=(0,))
    assert out == [[4, 5, 6], [9, 0]]  # user 1 stops at its stop token, which it keeps
    assert model.calls[:2] == [("prefill", 0, [3]), ("prefill", 1, [7, 8])]
    assert model.calls[2] == ("decode", [4, 9], [1, 2])  # each token at the position after its user's last
    assert model.calls[3] == ("decode", [5, 0], [2, 3])


# ---------------------------------------------------------------- parameter tables
def test_parameters_expand_repeats(monkeypatch):
    monkeypatch.setattr(params, "PARAMETERS", ["embed.weight", "layers.*3.attn.wq.weight", "norm.weight"])
    assert list(params.parameters()) == ["embed.weight", "layers.0.attn.wq.weight", "layers.1.attn.wq.weight",
                                         "layers.2.attn.wq.weight", "norm.weight"]
    # a parameter only some layers hold (layers that differ in structure): runs and single layers
    monkeypatch.setattr(params, "PARAMETERS", ["layers.[0:3,5].mlp.w1.weight", "layers.[3,4].mlp.up.weight",
                                               "layers.[1:8:3].x"])
    assert list(params.parameters()) == [f"layers.{i}.mlp.w1.weight" for i in (0, 1, 2, 5)] + [
        "layers.3.mlp.up.weight", "layers.4.mlp.up.weight", "layers.1.x", "layers.4.x", "layers.7.x"]


def test_from_hf_transforms(monkeypatch):
    fused = torch.arange(24.0).reshape(6, 4)
    monkeypatch.setattr(params, "HF_NAMES", [
        (r"layers\.(\d+)\.q\.weight", "h.{0}.qkv", "rows:0:2"),
        (r"layers\.(\d+)\.v\.weight", "h.{0}.c_attn", "cols:2:4"),
        (r"layers\.(\d+)\.w\.weight", "h.{0}.conv", "transpose"),
        (r"norm\.weight", "ln_f.weight", "copy"),
    ])
    state = {"h.1.qkv": fused, "h.1.c_attn": fused, "h.1.conv": fused, "ln_f.weight": fused[0]}
    assert torch.equal(params.from_hf("layers.1.q.weight", state), fused[0:2])
    assert torch.equal(params.from_hf("layers.1.v.weight", state), fused[:, 2:4].T)
    assert torch.equal(params.from_hf("layers.1.w.weight", state), fused.T)
    assert torch.equal(params.from_hf("norm.weight", state), fused[0])
    with pytest.raises(KeyError, match="no HF name"):
        params.from_hf("lm_head.weight", state)


# ---------------------------------------------------------------- the model's API (Program)


class Attention(torch.nn.Module):
    def __init__(self, dim=8, heads=2):
        super().__init__()
        self.heads = heads
        self.qkv = torch.nn.Linear(dim, 3 * dim, bias=False)
        self.cache = KVCache(heads, dim // heads)

    def forward(self, x, pos=None):
        q, k, v = (split_heads(t, self.heads) for t in self.qkv(x).chunk(3, dim=-1))
        return merge_heads(attend(q, k, v, pos, self.cache))


class Tiny(api.Program, torch.nn.Module):
    """What a generated root class is: an nn.Module with its own forward and Program's methods. Its
    attribute `def_` holds the spec's label `def` (LABELS), and `head` is tied to `embed`."""

    LABELS = {"def_": "def"}

    def __init__(self, vocab=11, dim=8):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, dim)
        self.def_ = Attention(dim)
        self.head = torch.nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, tokens, pos=None):
        h = self.embed(tokens)
        return self.head(h + self.def_(h, pos))


def ttspec_state(model):
    """The model's tensors by ttspec name (`def.qkv.weight`), the tied head left to TIED."""
    g = torch.Generator().manual_seed(5)
    return {"embed.weight": torch.randn(11, 8, generator=g), "def.qkv.weight": torch.randn(24, 8, generator=g)}


def test_load_ttspec_weights_maps_labels_and_takes_tied_tensors(monkeypatch):
    monkeypatch.setattr(api, "TIED", {"head.weight": "embed.weight"})
    model, state = Tiny(), ttspec_state(Tiny())
    model.load_ttspec_weights(state)
    assert torch.equal(model.def_.qkv.weight, state["def.qkv.weight"])
    assert torch.equal(model.head.weight, state["embed.weight"])
    with pytest.raises(KeyError, match="unexpected weights: extra.weight"):
        model.load_ttspec_weights({**state, "extra.weight": torch.zeros(1)})


def test_load_hf_state_dict_renames_by_hf_names(monkeypatch):
    monkeypatch.setattr(api, "TIED", {"head.weight": "embed.weight"})
    monkeypatch.setattr(params, "HF_NAMES", [(r"embed\.weight", "wte", "copy"),
                                             (r"def\.qkv\.weight", "h.attn.c_attn", "transpose")])
    state = ttspec_state(Tiny())
    model = Tiny()
    model.load_hf_state_dict({"wte": state["embed.weight"], "h.attn.c_attn": state["def.qkv.weight"].T})
    assert torch.equal(model.def_.qkv.weight, state["def.qkv.weight"])
    assert torch.equal(model.head.weight, state["embed.weight"])


def test_block_float_weights_are_rounded_on_load(monkeypatch):
    """bfloat4_b keeps 3 bits of magnitude under a 16-value block's shared exponent: in a block whose
    largest value is 1.0 the step is 2**-2, so 0.3 loads as 0.25 and 0.4 as 0.5; embed stays exact."""
    monkeypatch.setattr(api, "TIED", {"head.weight": "embed.weight"})
    monkeypatch.setattr(block_floats, "BLOCK_FLOAT_WEIGHTS", {"def.qkv.weight": "bfloat4_b"})
    state = ttspec_state(Tiny())
    qkv = torch.full((24, 8), 0.3)
    qkv[:, 1] = 0.4
    qkv[0, :] = 1.0  # each [in, 16 out] block holds a 1.0
    qkv[16, :] = 1.0
    model = Tiny()
    model.load_ttspec_weights({**state, "def.qkv.weight": qkv})
    expected = torch.full((24, 8), 0.25)
    expected[:, 1] = 0.5
    expected[0, :], expected[16, :] = 1.0, 1.0
    assert torch.equal(model.def_.qkv.weight, expected)
    assert torch.equal(model.embed.weight, state["embed.weight"])


def test_prefill_then_decode_equals_the_whole_sequence_without_a_cache(monkeypatch):
    monkeypatch.setattr(api, "TIED", {"head.weight": "embed.weight"})
    model = Tiny()
    model.load_ttspec_weights(ttspec_state(model))
    prompts, steps = [torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6, 7, 8])], [[9, 10], [0, 1]]
    model.allocate_cache(2, 16)
    prefilled = [model.prefill(prompt, user, every_position=True) for user, prompt in enumerate(prompts)]
    decoded = [model.decode(torch.tensor([steps[0][i], steps[1][i]]),
                            torch.tensor([len(prompts[0]) + i, len(prompts[1]) + i])) for i in range(2)]
    with torch.no_grad():
        for user, prompt in enumerate(prompts):
            whole = model(torch.cat([prompt, torch.tensor(steps[user])])[None])[0]
            torch.testing.assert_close(prefilled[user], whole[: len(prompt)])
            torch.testing.assert_close(model.prefill(prompt, user), whole[len(prompt) - 1:len(prompt)])
            for i in range(2):
                torch.testing.assert_close(decoded[i][user], whole[len(prompt) + i])


def test_a_model_that_cannot_decode_refuses_saying_why(monkeypatch):
    monkeypatch.setattr(api, "CANNOT_DECODE", "spec.arch:3:5: non-causal attention cannot decode")
    model = Tiny()
    for call in (lambda: model.allocate_cache(1, 8), lambda: model.prefill(torch.tensor([1]), 0),
                 lambda: model.decode(torch.tensor([1]), torch.tensor([0]))):
        with pytest.raises(NotImplementedError, match="non-causal attention cannot decode"):
            call()
