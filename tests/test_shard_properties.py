"""Hypothesis: for random valid (spec, mesh) pairs the chips' shards add up to the unsharded
parameter count (values held by several chips counted once, padding left out), and invalid
pairs give the specific error. Expected counts are closed forms written here."""

import math

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ttspec.driver import load_model, lower
from ttspec.errors import ArchError
from ttspec.ir.graph import layer_variants
from ttspec.ir.layout import Placement
from ttspec.ir.sharding import local_shape
from ttspec.passes.shard import plan_sharding

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
MESHES = [(1, 2), (1, 4), (1, 8), (2, 4), (8, 4), (4, 8), (2, 1)]


def shard_sizes(model, plan):
    """(parameter, values one chip holds (ttspec.ir.sharding.local_shape), chips holding a copy of each value,
    layers) for every stored parameter. The copies follow from the placements: a replicated parameter is on
    every device of its axis, a copied KV head on kv_copies of them, a split one on one; the axis a 1-D plan
    leaves out repeats the whole tensor-parallel group."""
    rows = []

    def visit(graph, prefix, count):
        for name, p in graph.params.items():
            key, copies = prefix + name, plan.chips // plan.group
            for ax in plan.axes:
                placement = ax.placements.get(key, Placement.REPLICATE)
                copies *= ax.devices if placement == Placement.REPLICATE else ax.kv_copies.get(key, 1)
            rows.append((key, math.prod(local_shape(p.shape, plan, key, param=True)), copies, count))
        for node in graph.repeats():
            body, _ = layer_variants(node)[0]  # variants place their (shared) parameters alike
            visit(body, f"{prefix}{node.module}.*.", count * node.attrs.count)

    visit(model.graph, "", 1)
    return rows


def spec_text(vocab, d, layers, heads, kv, mlp, tied):
    head = "lm_head(h, vocab, tied = embedding)" if tied else "lm_head(h, vocab)"
    return (f"model m\nfamily llama\nlet vocab = {vocab}, d = {d}, heads = {heads}, kv = {kv}, mlp = {mlp}\n"
            "input tokens: int32[batch, seq] where seq <= 128\n"
            "block decoder(x: [batch, seq, d]) -> [batch, seq, d] {\n"
            "    x = x + attention(rmsnorm(x) as attn_norm, heads = heads, kv_heads = kv, rope = rope()) as attn\n"
            "    x = x + swiglu(rmsnorm(x) as mlp_norm, hidden = mlp) as mlp\n    return x\n}\n"
            f"h = token_embedding(tokens, vocab, d) as embedding\nh = repeat({layers}) decoder(h) as layers\n"
            f"h = rmsnorm(h) as norm\noutput logits = {head}\n")


def closed_form(vocab, d, layers, heads, kv, mlp, tied, head_dim=32):
    attn = 2 * d * heads * head_dim + 2 * d * kv * head_dim
    return vocab * d * (1 if tied else 2) + layers * (attn + 3 * d * mlp + 2 * d) + d


@st.composite
def valid_pairs(draw):
    mesh = draw(st.sampled_from(MESHES))
    n = max(mesh)  # devices along the tensor-parallel (longer) axis
    heads = n * draw(st.integers(1, 3))
    kv = draw(st.sampled_from(sorted({k for k in range(1, heads + 1) if heads % k == 0
                                      and (k % n == 0 or n % k == 0)})))
    d = heads * 32
    mlp = n * 32 * draw(st.integers(1, 4))
    vocab = draw(st.integers(2, 700))
    return mesh, dict(vocab=vocab, d=d, layers=draw(st.integers(1, 3)), heads=heads, kv=kv, mlp=mlp,
                      tied=draw(st.booleans()))


@SETTINGS
@given(valid_pairs())
def test_shards_add_up(write_spec, pair):
    mesh, arch = pair
    model = load_model(write_spec(spec_text(**arch)))
    _, plan = plan_sharding(lower(model), mesh)
    chips = mesh[0] * mesh[1]
    unique = 0
    for name, per_chip, copies, count in shard_sizes(model, plan):
        if name in plan.padded_rows:  # zero rows appended to split the vocabulary: not parameters
            rows = plan.padded_rows[name]
            per_chip = per_chip * arch["vocab"] // rows
            assert rows % plan.devices == 0 and rows >= arch["vocab"]
        if name == "lm_head.weight" and arch["tied"]:
            continue  # the tied head is a second, device-side copy of the embedding
        assert (per_chip * chips) % copies == 0
        unique += count * per_chip * chips // copies
    assert unique == closed_form(**arch)


@SETTINGS
@given(st.sampled_from(MESHES), st.integers(1, 40))
def test_heads_not_dividing_devices(write_spec, mesh, heads):
    n = max(mesh)
    assume(heads % n)
    model = load_model(write_spec(spec_text(64, heads * 32, 1, heads, heads, 64, False)))
    with pytest.raises(ArchError) as info:
        plan_sharding(lower(model), mesh)
    assert info.value.diagnostic.message == f"heads={heads} cannot be split over {n} devices"


@SETTINGS
@given(st.sampled_from([(1, 8), (2, 4), (8, 4)]), st.integers(1, 4))
def test_kv_heads_incompatible(write_spec, mesh, mult):
    n = max(mesh)
    heads, kv = 24 * mult, 3 * mult
    assume(heads % n == 0 and kv % n and n % kv)
    model = load_model(write_spec(spec_text(64, heads * 32, 1, heads, kv, 64, False)))
    with pytest.raises(ArchError) as info:
        plan_sharding(lower(model), mesh)
    assert info.value.diagnostic.message == f"kv_heads={kv} over {n} devices: neither divides the other"


# ---------------------------------------------------------------- 2-D tensor parallelism
# the dim of a [out, in] weight (or [rows, features] table) each placement splits
SPLIT_DIM = {Placement.COLUMN: 0, Placement.VOCAB: 0, Placement.KV_COPIES: 0, Placement.ROW: -1, Placement.HIDDEN: -1}


@st.composite
def valid_2d_pairs(draw):
    rows, cols = draw(st.sampled_from([(2, 2), (2, 4), (4, 2), (8, 4), (4, 8)]))
    heads = math.lcm(rows, cols) * draw(st.integers(1, 2))  # whole heads over the rows; hidden over the columns
    kv = draw(st.sampled_from(sorted({k for k in range(1, heads + 1) if heads % k == 0
                                      and (k % rows == 0 or rows % k == 0)})))
    mlp = rows * 32 * draw(st.integers(1, 4))
    return (rows, cols), dict(vocab=draw(st.integers(2, 700)), d=heads * 32, layers=draw(st.integers(1, 3)),
                              heads=heads, kv=kv, mlp=mlp, tied=draw(st.booleans()))


@SETTINGS
@given(valid_2d_pairs())
def test_2d_shards_add_up_and_split_every_layer_matrix_over_all_chips(write_spec, pair):
    """Each chip's values add up to the closed-form count; every layer matrix but the copied K/V
    projections is split over all rows x cols chips, one dim per mesh axis (no dim split twice)."""
    mesh, arch = pair
    model = load_model(write_spec(spec_text(**arch)))
    _, plan = plan_sharding(lower(model), mesh, strategy="2d")
    chips = mesh[0] * mesh[1]
    unique = 0
    for name, per_chip, copies, count in shard_sizes(model, plan):
        split_dims = [SPLIT_DIM[p] for p in plan.placement(name) if p != Placement.REPLICATE]
        assert len(split_dims) == len(set(split_dims)), (name, plan.placement(name))  # no dim split twice
        if name in plan.padded_rows:  # zero vocabulary rows: not parameters
            rows = plan.padded_rows[name]
            per_chip = per_chip * arch["vocab"] // rows
            assert rows % mesh[0] == 0 and rows >= arch["vocab"]
        if name == "lm_head.weight" and arch["tied"]:
            continue
        if name.startswith("layers.") and name.endswith(("wq.weight", "wo.weight", "w1.weight", "w2.weight",
                                                         "w3.weight")):
            assert copies == 1, (name, plan.placement(name))
        assert (per_chip * chips) % copies == 0
        unique += count * per_chip * chips // copies
    assert unique == closed_form(**arch)
