"""Per-layer variation inside one `repeat`: list literals, subscripts and `layer`.

`repeat(N) block(h, act = ["gelu", "relu"][layer % 2])` evaluates the arguments for every layer;
layers with equal values share one body variant, elaborated once. The expected values come from
outside the code under test: a hand-written PyTorch forward pass of the spec (closed form), the
same layers written out without `repeat` (params and FLOPs), ttnn's goldens for the TT-NN programs.
"""

import math
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ttspec.analysis.interpreters import count_params, forward_flops
from ttspec.driver import compile_source, load_model
from ttspec.errors import ArchError
from ttspec.frontend import ast
from ttspec.frontend.parser import parse_source
from ttspec.ir.graph import iter_params, layer_pattern, layer_variants

from .conftest import formats_of, target_of
from .numerics import HANG_GUARD_S, QUICK_GUARD_S

D, HIDDEN, VOCAB, LAYERS = 64, 128, 128, 6
ACTS = ["gelu", "relu"]
EPS = [1e-5, 1e-1]  # by layer // 3
SCALES = [0.125, 0.3, 0.125]  # by layer % 3

SPEC = f"""model variants
input tokens: int32[batch, seq] where seq <= 64
let acts = ["gelu", "relu"]
block decoder(x: [batch, seq, {D}], act: str, eps: float, scale: float) -> [batch, seq, {D}] kind decoder {{
    x = x + attention(rmsnorm(x, eps = eps) as attn_norm, heads = 2, scale = scale) as attn
    x = x + mlp(rmsnorm(x, eps = eps) as mlp_norm, hidden = {HIDDEN}, act = act) as mlp
    return x
}}
h = token_embedding(tokens, {VOCAB}, {D}) as embedding
h = repeat({LAYERS}) decoder(h, acts[layer % 2], eps = [1e-5, 1e-1][layer // 3],
                      scale = [0.125, 0.3, 0.125][layer % 3]) as layers
h = rmsnorm(h) as norm
output logits = lm_head(h, {VOCAB})
"""


def layer_settings(i: int) -> tuple[str, float, float]:
    return ACTS[i % 2], EPS[i // 3], SCALES[i % 3]


@pytest.fixture
def spec(write_spec):
    return write_spec(SPEC, "variants.arch")


def test_layers_with_equal_arguments_share_a_variant(spec):
    model = load_model(spec)
    (node,) = model.graph.repeats()
    # layers: 0 (gelu, 1e-5, .125), 1 (relu, 1e-5, .3), 2 = 0, 3 (relu, .1, .125), 4 (gelu, .1, .3), 5 = 3
    assert layer_pattern(node) == (0, 1, 0, 2, 3, 2)
    variants = layer_variants(node)
    assert [n for _, n in variants] == [2, 1, 2, 1]
    assert node.attrs.body is variants[0][0]  # layer 0's body, for parameter-only consumers
    assert node.attrs.variant_args[1] == (("act", "relu"), ("eps", 1e-5), ("scale", 0.3))


def test_params_equal_count_times_body(spec):
    model = load_model(spec)
    per_layer = 2 * D + 4 * D * D + (D * HIDDEN + HIDDEN) + (HIDDEN * D + D)  # norms, attention, mlp
    assert count_params(model.graph) == VOCAB * D + LAYERS * per_layer + D + D * VOCAB
    names = [name for name, _ in iter_params(model.graph)]
    assert len(names) == len(set(names)) and f"layers.{LAYERS - 1}.mlp.down.bias" in names


# ---------------------------------------------------------------- numerics
torch = None


def _torch():
    global torch
    torch = pytest.importorskip("torch")
    return torch


def reference_logits(state: dict, tokens, settings=layer_settings):
    """The spec's forward pass written by hand: pre-norm decoder layers, causal softmax attention
    with an explicit scale, a two-layer MLP; the layer's activation, eps and scale per layer."""
    F = torch.nn.functional

    def rms(x, w, eps):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w

    def heads(x):
        b, s, _ = x.shape
        return x.view(b, s, 2, D // 2).transpose(1, 2)

    x = state["embedding.weight"][tokens]
    seq = tokens.shape[1]
    mask = torch.ones(seq, seq, dtype=torch.bool).tril()
    for i in range(LAYERS):
        act, eps, scale = settings(i)
        p = {k[len(f"layers.{i}."):]: v for k, v in state.items() if k.startswith(f"layers.{i}.")}
        n = rms(x, p["attn_norm.weight"], eps)
        q, k, v = (heads(n @ p[f"attn.{w}.weight"].T) for w in ("wq", "wk", "wv"))
        scores = (q @ k.transpose(-1, -2)) * scale
        y = scores.masked_fill(~mask, float("-inf")).softmax(-1) @ v
        x = x + y.transpose(1, 2).flatten(2) @ p["attn.wo.weight"].T
        n = rms(x, p["mlp_norm.weight"], eps)
        u = n @ p["mlp.up.weight"].T + p["mlp.up.bias"]
        u = F.gelu(u) if act == "gelu" else torch.relu(u)
        x = x + u @ p["mlp.down.weight"].T + p["mlp.down.bias"]
    x = rms(x, state["norm.weight"], 1e-5)
    return x @ state["lm_head.weight"].T


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    _torch()
    pytest.importorskip("ttnn")
    from ttspec.runtime.runner import random_state_dict, run_golden, run_torch
    from ttspec.targets import get_target

    path = tmp_path_factory.mktemp("variants") / "variants.arch"
    path.write_text(SPEC)
    model = load_model(path)
    state = random_state_dict(model, seed=3)
    tokens = torch.randint(0, VOCAB, (2, 40), generator=torch.Generator().manual_seed(1))
    out = {"model": model, "state": state, "tokens": tokens,
           "torch": run_torch(model, path.name, state, tokens).float()}
    for target in ("n150", "n300"):
        out[target], _ = run_golden(model, path.name, get_target(target), state, tokens,
                                    source=compile_source(model, path.name, target_of(target)))
    return out


def test_torch_backend_equals_hand_written_reference(runs):
    state = {k: v.float() for k, v in runs["state"].items()}
    expected = reference_logits(state, runs["tokens"])
    torch.testing.assert_close(runs["torch"], expected, atol=1e-4, rtol=1e-4)
    # the variation is observable: the same layers with one activation and one eps compute otherwise
    uniform = reference_logits(state, runs["tokens"], lambda i: ("gelu", 1e-5, SCALES[i % 3]))
    assert (uniform - expected).abs().max() > 1e-2


def test_golden_n150_equals_torch(runs):
    from .numerics import assert_bf16_accurate

    single, reference = runs["n150"], runs["torch"]
    assert single.shape == reference.shape == (2, 40, VOCAB)
    assert_bf16_accurate(single, reference, "n150 vs torch")  # bounds from bf16's precision: tests/numerics.py


def test_golden_n300_equals_n150(runs):
    from .numerics import assert_same_up_to_rounding

    assert_same_up_to_rounding(runs["n300"], runs["n150"], runs["torch"], "n300")


STRUCTURAL = """model structural
input tokens: int32[batch, seq] where seq <= 64
block decoder(x: [batch, seq, 64], parallel: bool) -> [batch, seq, 64] kind decoder {
    if parallel {
        return x + attention(rmsnorm(x) as n1, heads = 2) as attn + mlp(rmsnorm(x) as n2, hidden = 128) as mlp
    }
    x = x + attention(rmsnorm(x) as n1, heads = 2) as attn
    return x + mlp(rmsnorm(x) as n2, hidden = 128) as mlp
}
h = token_embedding(tokens, 128, 64) as embedding
h = repeat(3) decoder(h, parallel = [true, false, false][layer]) as layers
output logits = lm_head(rmsnorm(h) as norm, 128)
"""


def test_variants_may_differ_in_structure(write_spec):
    """Layer 0 a parallel residual (as Phi), layers 1 and 2 sequential: same weights, other graphs;
    on a mesh the variants need different collectives, each planned and emitted."""
    _torch()
    pytest.importorskip("ttnn")
    from ttspec.reports.plan_report import plan_report
    from ttspec.runtime.runner import random_state_dict, run_golden, run_torch
    from ttspec.targets import get_target

    path = write_spec(STRUCTURAL, "structural.arch")
    model = load_model(path)
    state = random_state_dict(model, seed=5)
    tokens = torch.randint(0, 128, (1, 33), generator=torch.Generator().manual_seed(2))
    reference = run_torch(model, path.name, state, tokens).float()
    single, _ = run_golden(model, path.name, get_target("n150"), state, tokens)
    mesh, _ = run_golden(model, path.name, get_target("n300"), state, tokens)
    from .numerics import assert_same_up_to_rounding

    assert_same_up_to_rounding(mesh, single, reference, "n300")  # bf16 rounding only: tests/numerics.py
    report = plan_report(model, target_of("n300"), None, formats_of("bf16"), 1, 64)
    # per layer: the parallel one gathers once and reduce-scatters twice, a sequential one gathers and
    # reduce-scatters twice; each collective moves (2 - 1) / 2 of 64 bf16 values per token
    assert report["bytes_moved_per_token_per_layer_per_device"] == (3 + 2 * 4) * 64 // 3
    assert any("the layers differ in their collectives" in note for note in report["notes"])


# ---------------------------------------------------------------- generated code
def test_generated_programs_have_one_class_per_variant(spec, tmp_path):
    import subprocess
    import sys

    model = load_model(spec)
    source = compile_source(model, spec.name, target_of("torch"))
    assert ("        self.layers = nn.ModuleList(cls() for cls in (Decoder, Decoder_1, Decoder, Decoder_2, Decoder_3, "
            "Decoder_2))\n") in source
    assert "#   Decoder: layers 0, 2 (act = \"gelu\", eps = 1e-05, scale = 0.125)" in source
    assert "for layer in self.layers:\n            h = layer(h, pos)" in source
    # one MLP class per activation and one Attention class per scale, shared by the variants
    assert source.count("F.gelu(") == 1 and source.count("F.relu(") == 1
    assert "class Attention_1(nn.Module):" in source and "class Attention_2" not in source
    ttnn_source = compile_source(model, spec.name, target_of("n150"))
    assert 'cls(weights, f"{prefix}layers.{i}.")' in ttnn_source
    assert "for i, cls in enumerate((Decoder, Decoder_1, Decoder, Decoder_2, Decoder_3, Decoder_2))" in ttnn_source
    for name, text in (("t.py", source), ("n.py", ttnn_source), ("m.py", compile_source(model, spec.name,
                                                                                        target_of("n300")))):
        (tmp_path / name).write_text(text)
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "E,F,W,I,B,UP",
                           "--line-length", "120", str(tmp_path)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout


def test_a_periodic_pattern_is_written_as_a_period(write_spec):
    text = SPEC.replace("repeat(6)", "repeat(26)").replace("[1e-5, 1e-1][layer // 3]", "1e-5") \
        .replace("[0.125, 0.3, 0.125][layer % 3]", "0.125")
    source = compile_source(load_model(write_spec(text)), "v.arch", target_of("torch"))
    assert "nn.ModuleList(cls() for cls in (Decoder, Decoder_1) * 13)" in source
    assert "#   Decoder: layers 0 to 24 (13 layers, every 2nd) (act = \"gelu\")" in source
    runs = text.replace("acts[layer % 2]", "acts[layer // 20]")
    source = compile_source(load_model(write_spec(runs)), "v.arch", target_of("torch"))
    assert "(Decoder,) * 20 + (Decoder_1,) * 6" in source


def test_one_variant_compiles_exactly_as_without_layer(write_spec):
    plain = SPEC.replace("acts[layer % 2]", '"gelu"').replace("[1e-5, 1e-1][layer // 3]", "1e-5") \
        .replace("[0.125, 0.3, 0.125][layer % 3]", "0.125")
    same = SPEC.replace("acts[layer % 2]", '["gelu", "gelu"][layer % 2]').replace("[1e-5, 1e-1][layer // 3]", "1e-5") \
        .replace("[0.125, 0.3, 0.125][layer % 3]", "[0.125][layer - layer]")
    a, b = load_model(write_spec(plain, "a.arch")), load_model(write_spec(same, "b.arch"))
    assert b.graph.repeats()[0].attrs.bodies is None
    for target in ("torch", "n150", "n300"):
        assert compile_source(a, "x.arch", target_of(target)) == compile_source(b, "x.arch", target_of(target))


def test_variants_whose_code_is_alike_are_one_class(write_spec):
    """Two variants (an argument the block never uses differs) whose classes come out alike: the
    program is the one-class program."""
    plain = SPEC.replace("acts[layer % 2]", '"gelu"').replace("[1e-5, 1e-1][layer // 3]", "1e-5") \
        .replace("[0.125, 0.3, 0.125][layer % 3]", "0.125")
    unused = plain.replace("scale: float)", "scale: float, unused: int = 0)").replace(
        "scale = 0.125)", "scale = 0.125, unused = [1, 2][layer % 2])")
    a, b = load_model(write_spec(plain, "a.arch")), load_model(write_spec(unused, "b.arch"))
    assert len(layer_variants(b.graph.repeats()[0])) == 2
    for target in ("torch", "n150"):
        assert compile_source(a, "x.arch", target_of(target)) == compile_source(b, "x.arch", target_of(target))


# ---------------------------------------------------------------- the language
def test_lists_and_subscripts(write_spec):
    text = SPEC.replace('let acts = ["gelu", "relu"]',
                        'let acts = ["gelu", "relu"]\nlet last = [[1, 2], [3, 4, 64]][-1][-1]\n'
                        'let n = [1, 2, 3][1] * 3')
    text = text.replace(f"token_embedding(tokens, {VOCAB}, {D})", f"token_embedding(tokens, {VOCAB}, last)")
    text = text.replace(f"repeat({LAYERS})", "repeat(n)")
    model = load_model(write_spec(text))
    assert model.graph.repeats()[0].attrs.count == 6


def _error(write_spec, text: str) -> ArchError:
    with pytest.raises(ArchError) as info:
        load_model(write_spec(text))
    return info.value


def _where(err: ArchError) -> tuple[int, int]:
    loc = err.diagnostic.loc
    return loc.line, loc.col


def test_variants_with_different_parameter_shapes_count_each_layer(write_spec):
    """Layers that differ in an MLP width (a structure of their own each): each layer counts its own."""
    text = SPEC.replace(f"hidden = {HIDDEN}, act = act", "hidden = width, act = act") \
        .replace("scale: float)", "scale: float, width: int)") \
        .replace("scale = [0.125, 0.3, 0.125][layer % 3])", "scale = 0.1, width = [128, 256][layer % 2])")
    model = load_model(write_spec(text))
    attention_and_norms = 2 * D + 4 * D * D
    widths = [128, 256] * (LAYERS // 2)
    assert count_params(model.graph) == VOCAB * D + D + D * VOCAB + sum(
        attention_and_norms + 2 * D * w + w + D for w in widths)
    shapes = {name: tuple(p.shape) for name, p in iter_params(model.graph)}
    assert shapes["layers.0.mlp.up.weight"] == (128, D) and shapes["layers.1.mlp.up.weight"] == (256, D)


TIED = """model tie
input tokens: int32[batch, seq] where seq <= 64
block dec(x: [batch, seq, 64], tie: bool) -> [batch, seq, 64] kind decoder {
    y = linear(x, 64, bias = false) as a
    if tie {
        return x + tied_linear(y, a) as b
    }
    return x + linear(y, 64, bias = false) as b
}
h = token_embedding(tokens, 128, 64) as embedding
h = repeat(4) dec(h, [false, false, true][layer % 3]) as layers
output logits = lm_head(h, 128)
"""


def test_variants_with_other_tying_or_other_parameters(write_spec):
    """Layer 2 ties `b` to its own `a`, the others hold a `b` of their own; in `extra`, layer 2 has `c` where
    the others have `b`. The torch program holds exactly the counted parameters."""
    pytest.importorskip("torch")
    from ttspec.runtime.runner import build_torch, random_state_dict

    extra = TIED.replace("tied_linear(y, a) as b", "linear(x + y, 64) as c").replace(
        "[false, false, true][layer % 3]", "layer == 2")
    embed_and_head = 2 * 128 * 64
    for text, total in ((TIED, embed_and_head + 4 * 64 * 64 + 3 * 64 * 64),
                        (extra, embed_and_head + 4 * 2 * 64 * 64)):  # `linear` has no bias by default
        path = write_spec(text, "tie.arch")
        model = load_model(path)
        assert count_params(model.graph) == total
        _, net = build_torch(model, path.name, random_state_dict(model))
        assert sum(p.numel() for p in net.parameters()) == total


def test_layer_outside_a_repeat_is_refused(write_spec):
    where_valid = "`layer` is only defined in the arguments of a repeated block after the first"
    for old, new, at in [
        ('let acts = ["gelu", "relu"]', 'let acts = ["gelu", "relu"][layer]', (3, 29)),
        ("kind decoder {\n", "kind decoder {\n    let k = layer\n", (5, 13)),
        (f"repeat({LAYERS})", "repeat(layer)", (10, 12)),
        ("decoder(h, acts", "decoder(h + h * layer, acts", (10, 31)),
    ]:
        assert old in SPEC
        err = _error(write_spec, SPEC.replace(old, new, 1))
        assert err.diagnostic.message.startswith(where_valid), (new, err.diagnostic.message)
        assert _where(err) == at, new
        assert "0-based layer index" in err.diagnostic.hint


def test_a_spec_binding_named_layer_never_changes_meaning(write_spec):
    plain = SPEC.replace("acts[layer % 2]", '"gelu"').replace("[1e-5, 1e-1][layer // 3]", "1e-5") \
        .replace("[0.125, 0.3, 0.125][layer % 3]", "0.125")
    # a spec may name something `layer` where it cannot be confused with the layer index ...
    ok = plain.replace("let acts", "let layer = 3\nlet acts")
    assert count_params(load_model(write_spec(ok, "ok.arch")).graph) == count_params(
        load_model(write_spec(plain, "plain.arch")).graph)
    # ... but in a repeat's arguments `layer` would mean two things: an error, never a silent choice
    err = _error(write_spec, SPEC.replace("let acts", "let layer = 3\nlet acts"))
    assert err.diagnostic.message.startswith("`layer` is ambiguous here")
    assert _where(err) == (11, 31)  # the first `layer` in the repeat's arguments
    assert err.diagnostic.notes[0].loc.line == 3  # `let layer = 3`
    # so is a component labelled `layer`
    err = _error(write_spec, SPEC.replace("as embedding", "as layer"))
    assert err.diagnostic.message.startswith("`layer` is ambiguous here")
    # a block parameter named `layer` is fine: the block's scope is not the repeat's arguments
    param = SPEC.replace("scale: float)", "scale: float, layer: int = 0)")
    assert load_model(write_spec(param, "param.arch")).graph.repeats()


def test_subscript_out_of_range(write_spec):
    err = _error(write_spec, SPEC.replace("[0.125, 0.3, 0.125][layer % 3]", "[0.125, 0.3, 0.125][layer]"))
    d = err.diagnostic
    assert d.message == "index 3 is out of range for a list of 3 (valid: -3 to 2)"
    assert _where(err) == (11, 51)
    assert [n.message for n in d.notes] == ["the list", "with layer = 3"]
    err = _error(write_spec, SPEC.replace('let acts = ["gelu", "relu"]', 'let acts = ["gelu", "relu"][-3]'))
    assert err.diagnostic.message == "index -3 is out of range for a list of 2 (valid: -2 to 1)"
    assert _where(err) == (3, 29)
    err = _error(write_spec, SPEC.replace('let acts = ["gelu", "relu"]', "let acts = [][0]"))
    assert err.diagnostic.message == "index 0 is out of range for a list of 0 (the list is empty)"


@pytest.mark.parametrize("index,kind", [("1.0", "float"), ('"a"', "string"), ("true", "bool"), ("none", "none"),
                                        ("[0]", "list of 1")])
def test_non_int_index(write_spec, index, kind):
    err = _error(write_spec, SPEC.replace('let acts = ["gelu", "relu"]', f'let acts = ["gelu", "relu"][{index}]'))
    assert err.diagnostic.message.startswith(f"a list index must be an int, got {kind}")
    assert _where(err) == (3, 29)


def test_what_lists_hold_and_what_can_be_subscripted(write_spec):
    err = _error(write_spec, SPEC.replace('let acts = ["gelu", "relu"]', 'let acts = 3[0]'))
    assert err.diagnostic.message == "cannot subscript int"
    err = _error(write_spec, SPEC.replace("h = rmsnorm(h) as norm", "h = [h][0]\nh = rmsnorm(h) as norm"))
    assert err.diagnostic.message.startswith("a list holds values such as numbers and strings, not tensors")


def test_an_error_inside_one_variant_names_its_layer(write_spec):
    err = _error(write_spec, SPEC.replace("heads = 2, scale", "heads = heads, scale")
                 .replace("scale: float)", "scale: float, heads: int)")
                 .replace("[layer % 3]) as layers", "[layer % 3], heads = [2, 3][layer % 2]) as layers"))
    d = err.diagnostic
    assert "heads=3 does not divide" in d.message, d.message
    assert any(n.message.startswith("in layer 1 (act = \"relu\"") for n in d.notes), d.notes


def test_too_many_variants(write_spec):
    err = _error(write_spec, SPEC.replace(f"repeat({LAYERS})", "repeat(100)")
                 .replace("[1e-5, 1e-1][layer // 3]", "1e-5 * (layer + 1)"))
    assert "more than 64 distinct sets of argument values" in err.diagnostic.message


def test_cache_carries_lists_and_subscripts(tmp_path, monkeypatch):
    monkeypatch.setenv("TTSPEC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TTSPEC_NO_CACHE", raising=False)
    first = parse_source(SPEC, "cached.arch")
    assert list((tmp_path / "cache" / "ast").glob("*.json"))
    again = parse_source(SPEC, "cached.arch")  # read back from the cache
    assert again == first
    let = again.items[1]
    assert isinstance(let.bindings[0].value, ast.ListExpr)
    args = [i for i in again.items if isinstance(i, ast.Assign)][1].value.call.args
    assert isinstance(args[1].value, ast.Subscript) and isinstance(args[1].value.value, ast.Name)


# ---------------------------------------------------------------- scale
def test_a_thousand_layer_repeat_elaborates_quickly(write_spec):
    text = SPEC.replace(f"repeat({LAYERS})", "repeat(1000)").replace("[1e-5, 1e-1][layer // 3]",
                                                                   "[1e-5, 1e-1][layer // 500]")
    start = time.perf_counter()
    model = load_model(write_spec(text))
    count_params(model.graph)
    forward_flops(model, seq=64)
    elapsed = time.perf_counter() - start
    variants = layer_variants(model.graph.repeats()[0])
    assert len(variants) == 8 and sum(n for _, n in variants) == 1000  # 4 per eps
    assert elapsed < QUICK_GUARD_S, elapsed  # a hang guard (tests/numerics.py); measured about 0.1 s idle


def test_ten_thousand_layers_stay_fast(write_spec):
    text = SPEC.replace(f"repeat({LAYERS})", "repeat(10000)").replace("[1e-5, 1e-1][layer // 3]", "1e-5") \
        .replace("[0.125, 0.3, 0.125][layer % 3]", "0.125")
    start = time.perf_counter()
    model = load_model(write_spec(text))
    source = compile_source(model, "v.arch", target_of("torch"))
    elapsed = time.perf_counter() - start
    assert "(Decoder, Decoder_1) * 5000" in source
    assert elapsed < HANG_GUARD_S, elapsed  # a hang guard (tests/numerics.py); measured 0.6 s


# ---------------------------------------------------------------- property: variants == unrolled layers
UNROLLED_HEAD = f"""model unrolled
input tokens: int32[batch, seq] where seq <= 64
block decoder(x: [batch, seq, {D}], act: str, eps: float, scale: float) -> [batch, seq, {D}] kind decoder {{
    x = x + attention(rmsnorm(x, eps = eps) as attn_norm, heads = 2, scale = scale) as attn
    x = x + mlp(rmsnorm(x, eps = eps) as mlp_norm, hidden = {HIDDEN}, act = act) as mlp
    return x
}}
h = token_embedding(tokens, {VOCAB}, {D}) as embedding
"""
TAIL = f"""h = rmsnorm(h) as norm
output logits = lm_head(h, {VOCAB})
"""
ALL_ACTS = ["gelu", "relu", "silu", "gelu_tanh"]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(ALL_ACTS), st.sampled_from([1e-5, 1e-6])), min_size=1, max_size=12))
def test_params_and_flops_equal_the_sum_over_layers(write_spec, layers):
    acts = "[" + ", ".join(f'"{a}"' for a, _ in layers) + "]"
    eps = "[" + ", ".join(repr(e) for _, e in layers) + "]"
    repeated = UNROLLED_HEAD + (f"h = repeat({len(layers)}) decoder(h, {acts}[layer], eps = {eps}[layer], "
                                "scale = 0.125) as layers\n") + TAIL
    unrolled = UNROLLED_HEAD + "".join(f'h = decoder(h, "{a}", eps = {e!r}, scale = 0.125) as l{i}\n'
                                       for i, (a, e) in enumerate(layers)) + TAIL
    a = load_model(write_spec(repeated, "repeated.arch"))
    b = load_model(write_spec(unrolled, "unrolled.arch"))
    assert count_params(a.graph) == count_params(b.graph)
    fa, fb = forward_flops(a, seq=32), forward_flops(b, seq=32)
    assert fa.total == fb.total and fa.by_op == fb.by_op
    (node,) = a.graph.repeats()
    assert len(layer_variants(node)) == len(set(layers))
    assert [layers[layer_pattern(node).index(v)] for v in layer_pattern(node)] == layers
    assert math.isclose(sum(n for _, n in layer_variants(node)), len(layers))
