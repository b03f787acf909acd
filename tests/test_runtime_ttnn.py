"""The runtime the TT-NN programs carry (ttspec/backends/ttnn/rt), imported as modules and run through
ttnn's golden functions (ttspec/runtime/golden.py stands in for `ttnn`, as in golden mode): rotary
against HF transformers (Llama 3 scaling, GPT-J's interleaved pairs), the KV cache's prefill and decode
against plain causal attention, weights on one chip (a 1x1 mesh) and split over a mesh against slices
of the host tensors, and the run state's checks. One chip is a 1x1 mesh, as the programs open it."""

import math

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("ttnn")

from transformers.models.gptj import modeling_gptj  # noqa: E402

from ttspec.backends.ttnn.rt import attention, kv_cache, mesh, rotary, run_state, weights  # noqa: E402
from ttspec.runtime.golden import GoldenTTNN, MeshTensor  # noqa: E402

from .numerics import pcc  # noqa: E402
from .test_runtime_torch import LLAMA3, hf_inv_freq, hf_rotate, reference_attention  # noqa: E402

MODULES = (attention, kv_cache, mesh, rotary, run_state, weights)


@pytest.fixture
def golden(monkeypatch):
    """Every runtime module's `ttnn` is ttnn's goldens; one chip (a 1x1 mesh) unless a test says otherwise."""
    stand_in = GoldenTTNN()
    for module in MODULES:
        monkeypatch.setattr(module, "ttnn", stand_in)
    return stand_in


@pytest.fixture
def chip(golden):
    """One chip, opened as the programs open it."""
    device = mesh.open_device()
    assert device.shape == (1, 1)
    return device


def one(tensor):
    """The tensor a 1x1 mesh holds."""
    assert isinstance(tensor, MeshTensor) and len(tensor.shards) == 1
    return tensor.shards[0]


def on_mesh(monkeypatch, golden, shape, tp_axis=1, data_parallel=False, logits_split=False):
    for module in (mesh, weights):
        monkeypatch.setattr(module, "MESH_SHAPE", shape)
    monkeypatch.setattr(mesh, "TP_AXIS", tp_axis)
    monkeypatch.setattr(mesh, "DATA_PARALLEL", data_parallel)
    monkeypatch.setattr(mesh, "LOGITS_SPLIT", logits_split)
    return golden.open_mesh_device(golden.MeshShape(*shape))


def close(got, expected, at_least=0.9999):
    assert got.shape == expected.shape
    assert pcc(got.float(), expected.float()) >= at_least


def test_rotary_llama3_equals_hf_on_prefill_and_at_each_users_decode_position(chip):
    state = run_state.RunState(chip, trace=False)
    rope = rotary.Rotary(state, 64, 500000.0, scaling="llama3", factor=8.0, low_freq_factor=1.0,
                         high_freq_factor=4.0, original_max_positions=8192)
    torch.testing.assert_close(rope.inv_freq, hf_inv_freq(LLAMA3), rtol=1e-6, atol=0)
    x = torch.randn(1, 4, 32, 64, generator=torch.Generator().manual_seed(0))
    close(one(rope(x)), hf_rotate(x, hf_inv_freq(LLAMA3), torch.arange(32)[None]))
    at = torch.tensor([5, 4000, 70000] + [-1] * 29)  # three users; rows without a user read position 0
    state.begin("decode", at, tokens=torch.zeros(32, dtype=torch.int64))
    got = one(rope(x))
    state.end()
    close(got, hf_rotate(x, hf_inv_freq(LLAMA3), at.clamp(min=0)[None]))


def test_rotary_partial_interleaved_equals_gptj(chip):
    rope = rotary.Rotary(run_state.RunState(chip, trace=False), 64, 10000.0, rotary_dims=16, style="interleaved")
    x = torch.randn(1, 2, 32, 64, generator=torch.Generator().manual_seed(1))
    table = modeling_gptj.create_sinusoidal_positions(32, 16)
    sin, cos = (torch.repeat_interleave(t, 2, dim=-1)[None, None] for t in torch.split(table, 8, dim=-1))
    rot = x[..., :16] * cos + modeling_gptj.rotate_every_two(x[..., :16]) * sin
    close(one(rope(x)), torch.cat([rot, x[..., 16:]], dim=-1))


def test_kv_cache_decode_equals_attention_over_each_users_sequence(chip):
    """Two users prefill 32-row prompts (20 and 27 real tokens; the padding rows are overwritten later),
    then decode one token each at their own positions: each output is causal attention over that user's
    keys 0..position (GQA: 4 query heads over 2 KV heads)."""
    g = torch.Generator().manual_seed(2)
    heads, kv, dim, lengths = 4, 2, 32, (20, 27)
    state = run_state.RunState(chip, trace=False)
    cache = kv_cache.KVCache(state, kv, dim)
    state.allocate(2, 64)
    assert state.context == 64 and cache.k.shape == (2, kv, 64, dim)
    seqs = [[torch.randn(1, h, n + 1, dim, generator=g) for h in (heads, kv, kv)] for n in lengths]
    for user, (n, (_, k, v)) in enumerate(zip(lengths, seqs, strict=True)):
        pad = (0, 0, 0, 32 - n)
        state.begin("prefill", torch.arange(32), user)
        cache.prefill(torch.nn.functional.pad(k[:, :, :n], pad), torch.nn.functional.pad(v[:, :, :n], pad), None)
        state.end()
    at = torch.tensor(lengths)
    state.begin("decode", at, tokens=torch.zeros(2, dtype=torch.int64))
    q, k, v = (torch.cat([s[i][:, :, -1:] for s in seqs], dim=2) for i in range(3))  # [1, heads, users, dim]
    got = one(cache.decode(q, k, v, scale=1 / math.sqrt(dim)))
    state.end()
    for user, (qs, ks, vs) in enumerate(seqs):
        expected = reference_attention(qs, ks, vs)[:, :, -1]
        close(got[:, :, user], expected, at_least=0.999)


def test_run_state_pads_the_context_to_a_tile_and_checks_steps(chip):
    state = run_state.RunState(chip, trace=False)
    with pytest.raises(RuntimeError, match="allocate_cache"):
        state.check_prefill(32, 0)
    with pytest.raises(ValueError, match="1 to 32 users"):
        state.allocate(33, 64)
    state.allocate(3, 40)
    assert (state.batch, state.context) == (3, 64)
    with pytest.raises(ValueError, match="user 3 is outside"):
        state.check_prefill(32, 3)
    with pytest.raises(ValueError, match="exceeds the cache's 64"):
        state.check_prefill(96, 0)
    with pytest.raises(ValueError, match=r"positions must lie in \[0, 64\)"):
        state.check_decode(torch.tensor([1, 2]), torch.tensor([3, 64]))
    assert state.check_decode(torch.tensor([1, 2]), torch.tensor([3, 63])) == 2
    assert torch.equal(state.row_positions(4), torch.arange(4))


def test_weights_on_one_chip_are_whole_with_heads_padded_to_tiles(chip):
    w, b = torch.randn(80, 16), torch.randn(80)  # two heads of 40 features
    loader = weights.Weights({"l.weight": w, "l.bias": b, "n.weight": torch.ones(16)}, chip)
    assert torch.equal(one(loader.linear("l")), w.T.to(torch.bfloat16))
    padded = one(loader.linear("l", heads=2, head_dim=40)).float()
    assert padded.shape == (16, 128)
    for h in range(2):  # each head's 40 features, then 24 zeros
        assert torch.equal(padded[:, h * 64 : h * 64 + 40], w.T[:, h * 40 : (h + 1) * 40].bfloat16().float())
        assert not padded[:, h * 64 + 40 : (h + 1) * 64].any()
    assert torch.equal(one(loader.bias("l", heads=2, head_dim=40)).float()[0, 64:104], b[40:].bfloat16().float())
    assert torch.equal(one(loader.norm("n", offset=1.0)).float(), torch.full((1, 16), 2.0))


def test_weights_split_over_a_mesh_as_their_placements_say(golden, monkeypatch):
    device = on_mesh(monkeypatch, golden, (1, 2))
    w, b = torch.randn(64, 64), torch.randn(64)
    loader = weights.Weights({"l.weight": w, "l.bias": b}, device, dtype=None)
    column, row = loader.linear("l", split="column"), loader.linear("l", split="row")
    assert isinstance(column, MeshTensor)
    for i in range(2):
        assert torch.equal(column.shards[i], w.T[:, i * 32 : (i + 1) * 32].contiguous())
        assert torch.equal(row.shards[i], w.T[i * 32 : (i + 1) * 32].contiguous())
    # a row-parallel bias is added by every device to its partial sum: the sums add up to one bias
    shards = loader.bias("l", split="row").shards
    torch.testing.assert_close((shards[0] + shards[1]).float(), b[None], rtol=1e-2, atol=1e-2)
    whole = loader.linear("l")  # no split: replicated
    assert all(torch.equal(s, w.T) for s in whole.shards)


def test_fused_qkv_rows_go_to_the_device_that_holds_their_heads():
    """q heads 0-3, kv heads 0-1 over 2 devices: device 0 holds q 0-1, k 0, v 0; device 1 q 2-3, k 1, v 1.
    With one KV head over 2 devices each device gets a copy of it."""
    head = 2
    rows = torch.arange(8 * head, dtype=torch.float32)[:, None]  # q0..q3, k0, k1, v0, v1
    got = mesh.by_device(rows, (4, 2, 2), head, 2)[:, 0].tolist()
    label = [f"q{i}" for i in range(4)] + ["k0", "k1", "v0", "v1"]
    names = [label[int(r) // head] for r in got[::head]]
    assert names == ["q0", "q1", "k0", "v0", "q2", "q3", "k1", "v1"]
    one_kv = mesh.by_device(torch.arange(6.0)[:, None], (4, 1, 1), 1, 2)[:, 0].tolist()
    assert one_kv == [0, 1, 4, 5, 2, 3, 4, 5]


def test_tokens_split_between_replicas_and_logits_gathered(golden, monkeypatch):
    device = on_mesh(monkeypatch, golden, (2, 2), tp_axis=1, data_parallel=True, logits_split=True)
    tokens = torch.arange(4 * 3).reshape(4, 3)
    placed = mesh.tokens_to_device(tokens, device)
    assert [s.tolist() for s in placed.shards] == [tokens[:2].tolist()] * 2 + [tokens[2:].tolist()] * 2
    with pytest.raises(ValueError, match="does not split over 2 data-parallel replicas"):
        mesh.tokens_to_device(tokens[:3], device)
    logits = torch.randn(4, 3, 64)
    shards = [logits[:2, :, :32], logits[:2, :, 32:], logits[2:, :, :32], logits[2:, :, 32:]]
    torch.testing.assert_close(mesh.logits_to_host(MeshTensor(shards, device), device), logits)
    assert mesh.per_axis("column") == [None, "column"] and mesh.per_axis(("row", None)) == ["row", None]


def test_one_chip_holds_every_tensor_whole(chip):
    tokens = mesh.tokens_to_device(torch.arange(6).reshape(2, 3), chip)
    assert torch.equal(one(tokens), torch.arange(6).reshape(2, 3))
    assert torch.equal(mesh.logits_to_host(MeshTensor([torch.ones(2, 3)], chip), chip), torch.ones(2, 3))


@pytest.mark.parametrize("padded", [False, True])
def test_greedy_on_a_split_vocabulary_is_the_argmax_of_the_real_columns(golden, monkeypatch, padded):
    """Each device picks the best of its slice and the host takes the largest: the argmax over the whole
    vocabulary. A vocabulary padded to whole tiles per device (VOCAB 100 in 2 x 64 columns) has zero logits past
    VOCAB, and every real logit below zero here: the padding must never win (vocab_mask adds -inf to it)."""
    device = on_mesh(monkeypatch, golden, (1, 2), logits_split=True)
    vocab = 100 if padded else 128
    monkeypatch.setattr(mesh, "VOCAB", vocab)
    logits = -1 - torch.rand(32, 128)  # every real logit negative
    logits[:, vocab:] = 0  # what a zero-padded head row computes
    logits[3, 70] = -0.5  # user 3's best sits on the second device
    state = run_state.RunState(device, trace=False)
    split = MeshTensor([logits[None, None, :, :64].bfloat16(), logits[None, None, :, 64:].bfloat16()], device)
    ids, peaks = mesh.best_to_host(mesh.best_on_device(split, state), device)
    real = logits[:, :vocab].bfloat16().float()
    assert torch.equal(ids, real.argmax(-1)) and ids[3] == 70
    torch.testing.assert_close(peaks, real.max(-1).values)
    assert ("vocab_mask" in state.kept) is padded  # made once, kept for the trace's replays
