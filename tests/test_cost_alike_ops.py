"""The cost model prices each distinct op of a program once per phase (analysis/cost.py's OpTable): the ops
of written-out layers that are alike share one price, which is what made `plan --search` on 600
written-out layers take seconds instead of an hour (issue 18). Two things must hold:

- ops that differ are never priced as one: written-out layers with another window or MLP width cost what
  the closed forms below (arithmetic on the spec's sizes and 32x32 tiles) say, layer by layer;
- the compact phase the search reads gives the numbers of the phase it expands to, op by op, to the last
  bit: the search's ranking and its JSON are what pricing every op would give."""

from __future__ import annotations

import pytest

from ttspec.analysis.cost import model_phase, op_table
from ttspec.driver import load_model, prepare, resolve_options

from .conftest import target_of

D, HEADS, KV_HEADS, HEAD_DIM, VOCAB = 256, 8, 2, 32, 512
TILE, BF16 = 32, 2
CONTEXT = 256
# written out: (window, MLP width) of each layer; the first and last alike, the middle one not
LAYERS = [(64, 512), (None, 768), (64, 512)]


def spec_text() -> str:
    lines = ["model alike", f"let vocab = {VOCAB}", f"let d = {D}",
             "input tokens: int32[batch, seq] where seq <= 1024",
             "block decoder(x: [batch, seq, d], window = none, width = 512) -> [batch, seq, d] kind decoder {",
             f"    x = x + attention(rmsnorm(x) as attn_norm, heads = {HEADS}, kv_heads = {KV_HEADS},",
             "                      rope = rope(theta = 10000.0), window = window) as attn",
             "    x = x + swiglu(rmsnorm(x) as mlp_norm, hidden = width) as mlp",
             "    return x", "}",
             "h = token_embedding(tokens, vocab, d) as embedding"]
    for i, (window, width) in enumerate(LAYERS):
        lines.append(f"h = decoder(h, window = {'none' if window is None else window}, width = {width}) as layer{i}")
    lines += ["h = rmsnorm(h) as norm", "output logits = lm_head(h, vocab, tied = embedding)"]
    return "\n".join(lines) + "\n"


@pytest.fixture
def alike(write_spec):
    return load_model(write_spec(spec_text()))


def _class(phase, name: str) -> dict:
    return phase.by_class()[name]


def test_layers_with_another_window_are_priced_apart(alike):
    """A decode step's attention: q k^T and the weighted sum of v, 2 FLOPs a multiply-add, one query per
    head against min(window, context) keys (analysis/cost.py's module doc; ops/attention.py)."""
    phase = model_phase(prepare(alike, resolve_options(target_of("n150"))), "decode", 1, 1, CONTEXT)
    keys = [CONTEXT if window is None else min(window, CONTEXT) for window, _ in LAYERS]
    assert _class(phase, "attend")["flops"] == sum(2 * 2 * HEADS * k * HEAD_DIM for k in keys) == 393_216


def test_layers_with_another_mlp_width_are_priced_apart(alike):
    """Every matmul of a decode step over a whole 32-row tile, and the bf16 bytes of its weights (TILE
    layout; every dim here is whole tiles): q, k and v (fused), wo, the MLP's gate, up and down per layer,
    then the tied head."""
    phase = model_phase(prepare(alike, resolve_options(target_of("n150"))), "decode", 1, 1, CONTEXT)
    qkv = (HEADS + 2 * KV_HEADS) * HEAD_DIM
    shapes = [(qkv, D), (D, HEADS * HEAD_DIM)]
    layer_shapes = [shapes + [(width, D), (width, D), (D, width)] for _, width in LAYERS]
    linear = [shape for layer in layer_shapes for shape in layer]
    assert _class(phase, "linear")["flops"] == sum(2 * TILE * rows * cols for rows, cols in linear)
    assert _class(phase, "linear")["dram_bytes"] == sum(rows * cols * BF16 for rows, cols in linear)
    assert _class(phase, "tied_linear")["flops"] == 2 * TILE * D * VOCAB


@pytest.mark.parametrize("target, strategy", [("n150", None), ("t3k", None), ("galaxy", "2d")])
@pytest.mark.parametrize("name, batch, tokens, context", [("prefill", 1, 128, 128), ("decode", 5, 1, 300)])
def test_the_compact_phase_is_the_phase_it_expands_to(alike, target, strategy, name, batch, tokens, context):
    """What the search reads (time, and by class the bottleneck) equals, to the last bit, the phase with
    an OpCost per op, whose sums run over every op in order."""
    build = prepare(alike, resolve_options(target_of(target), strategy=strategy))
    priced = op_table(build).price(build, name, batch, tokens, context)
    expanded = model_phase(build, name, batch, tokens, context)
    assert len(expanded.ops) > len(priced.costs)  # alike ops share an entry
    assert priced.time_s == expanded.time_s == sum(o.count * o.time_s for o in expanded.ops)
    assert priced.by_class() == expanded.by_class()
