"""Layers of one `repeat` that differ in structure: `repeat(N) decoder(h, gated = layer % 2 == 0)` whose
block chooses its MLP with `if gated { ... } else { ... }`, so the layers differ in parameters and ops
(as Qwen3-MoE's `mlp_only_layers` and DeepSeek's `first_k_dense_replace` mix dense and MoE layers).

Expected values from outside the code under test: closed forms for the counts, a hand-written PyTorch
forward pass, HF transformers' parameter names written out by hand, ttnn's goldens, the mock device's
allocator."""

import subprocess
import sys
import time

import pytest

from ttspec.analysis.interpreters import count_params
from ttspec.analysis.params_report import params_report
from ttspec.driver import compile_source, load_model
from ttspec.errors import ArchError
from ttspec.ir.graph import iter_params, layer_pattern, layer_structures
from ttspec.reports.params_table import render_table

from .conftest import formats_of, target_of
from .numerics import QUICK_GUARD_S

D, VOCAB, HEADS, LAYERS = 256, 256, 8, 4  # head_dim 32: whole tiles on each of T3K's 8 chips
GATED, PLAIN = 256, 512  # the swiglu layers' hidden size, the gelu MLP's

SPEC = f"""model mixed
input tokens: int32[batch, seq] where seq <= 64
block decoder(x: [batch, seq, {D}], gated: bool) -> [batch, seq, {D}] kind decoder {{
    x = x + attention(rmsnorm(x) as attn_norm, heads = {HEADS}) as attn
    h = rmsnorm(x) as mlp_norm
    if gated {{
        return x + swiglu(h, hidden = {GATED}) as mlp
    }}
    return x + mlp(h, hidden = {PLAIN}) as mlp
}}
h = token_embedding(tokens, {VOCAB}, {D}) as embedding
h = repeat({LAYERS}) decoder(h, gated = layer % 2 == 0) as layers
output logits = lm_head(rmsnorm(h) as norm, {VOCAB})
"""

ATTENTION = 4 * D * D
NORMS = 2 * D
SWIGLU = 3 * D * GATED
GELU_MLP = D * PLAIN + PLAIN + PLAIN * D + D  # up and down, with biases
TOTAL = 2 * VOCAB * D + D + 2 * (ATTENTION + NORMS + SWIGLU) + 2 * (ATTENTION + NORMS + GELU_MLP)

# DeepSeek-like: the first 2 layers a wide dense MLP, the rest a narrow one of the same names
FIRST_K = """model firstk
family llama
input tokens: int32[batch, seq] where seq <= 64
block decoder(x: [batch, seq, 128], dense: bool) -> [batch, seq, 128] kind decoder {
    x = x + attention(rmsnorm(x) as attn_norm, heads = 4, rope = rope(theta = 10000.0)) as attn
    if dense {
        return x + swiglu(rmsnorm(x) as mlp_norm, hidden = 384) as mlp
    }
    return x + swiglu(rmsnorm(x) as mlp_norm, hidden = 128) as mlp
}
h = token_embedding(tokens, 256, 128) as embedding
h = repeat(5) decoder(h, dense = layer < 2) as layers
output logits = lm_head(rmsnorm(h) as norm, 256)
"""
FIRST_K_TOTAL = 2 * 256 * 128 + 128 + 5 * (4 * 128 * 128 + 2 * 128) + 2 * 3 * 128 * 384 + 3 * 3 * 128 * 128


@pytest.fixture
def mixed(write_spec):
    return load_model(write_spec(SPEC, "mixed.arch"))


# ---------------------------------------------------------------- elaboration and counting
def test_layers_get_the_structure_of_their_variant(mixed):
    (node,) = mixed.graph.repeats()
    assert layer_pattern(node) == (0, 1, 0, 1)
    structures = layer_structures(node)
    assert [layers for _, layers in structures] == [[0, 2], [1, 3]]
    names = {name for name, _ in iter_params(mixed.graph)}
    assert {"layers.0.mlp.w1.weight", "layers.2.mlp.w2.weight", "layers.1.mlp.up.bias",
            "layers.3.mlp.down.weight"} <= names
    assert not {"layers.1.mlp.w1.weight", "layers.0.mlp.up.weight"} & names


def test_params_closed_form_and_report(mixed):
    assert count_params(mixed.graph) == TOTAL
    report = params_report(mixed)
    assert report["total"] == TOTAL
    (layers,) = [c for c in report["components"] if c["name"] == "layers"]
    assert layers["params"] == TOTAL - 2 * VOCAB * D - D and layers["variants"] == 2
    assert [(s["layers"], s["per_layer"]) for s in layers["structures"]] == [
        ([0, 2], ATTENTION + NORMS + SWIGLU), ([1, 3], ATTENTION + NORMS + GELU_MLP)]
    assert [s["per_layer_by_kind"]["mlp"] for s in layers["structures"]] == [SWIGLU, GELU_MLP]
    assert report["by_kind"]["mlp"] == 2 * SWIGLU + 2 * GELU_MLP
    rows = {r["name"]: r for r in report["parameters"]}
    assert rows["layers.*.attn.wq.weight"]["repeat"] == LAYERS and "layers" not in rows["layers.*.attn.wq.weight"]
    assert rows["layers.*.mlp.w1.weight"]["layers"] == [0, 2] and rows["layers.*.mlp.w1.weight"]["repeat"] == 2
    assert rows["layers.*.mlp.up.bias"]["layers"] == [1, 3]
    assert sum(r["numel"] * (r["repeat"] or 1) for r in report["parameters"] if not r["tied_to"]) == TOTAL
    table = [line.split() for line in render_table(report).splitlines()]
    assert ["(layers", "0,", "2,", "per", "layer)", f"{ATTENTION + NORMS + SWIGLU:,}"] in table
    assert ["(layers", "1,", "3,", "per", "layer)", f"{ATTENTION + NORMS + GELU_MLP:,}"] in table
    assert ["mlp", "swiglu", f"{SWIGLU:,}"] in table and ["mlp", "mlp", f"{GELU_MLP:,}"] in table
    table = render_table(report)
    assert f"mlp {SWIGLU:,} · norm {NORMS:,}   (layers 0, 2 of decoder)" in table


def test_one_name_with_two_shapes(write_spec):
    model = load_model(write_spec(FIRST_K, "firstk.arch"))
    assert count_params(model.graph) == FIRST_K_TOTAL
    rows = [r for r in params_report(model)["parameters"] if r["name"] == "layers.*.mlp.w1.weight"]
    assert [(r["shape"], r["layers"]) for r in rows] == [([384, 128], [0, 1]), ([128, 128], [2, 3, 4])]


# ---------------------------------------------------------------- torch
torch = None


def _torch():
    global torch
    torch = pytest.importorskip("torch")
    return torch


def reference_logits(state: dict, tokens):
    """The spec's forward pass by hand: pre-norm layers, causal attention over 8 heads, a SwiGLU MLP in the
    even layers and a biased two-layer GELU MLP in the odd ones."""
    F = torch.nn.functional

    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w

    def heads(x):
        b, s, _ = x.shape
        return x.view(b, s, HEADS, D // HEADS).transpose(1, 2)

    x = state["embedding.weight"][tokens]
    for i in range(LAYERS):
        p = {k[len(f"layers.{i}."):]: v for k, v in state.items() if k.startswith(f"layers.{i}.")}
        n = rms(x, p["attn_norm.weight"])
        q, k, v = (heads(n @ p[f"attn.{w}.weight"].T) for w in ("wq", "wk", "wv"))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + y.transpose(1, 2).flatten(2) @ p["attn.wo.weight"].T
        n = rms(x, p["mlp_norm.weight"])
        if i % 2 == 0:
            x = x + (F.silu(n @ p["mlp.w1.weight"].T) * (n @ p["mlp.w3.weight"].T)) @ p["mlp.w2.weight"].T
        else:
            u = F.gelu(n @ p["mlp.up.weight"].T + p["mlp.up.bias"])
            x = x + u @ p["mlp.down.weight"].T + p["mlp.down.bias"]
    return rms(x, state["norm.weight"]) @ state["lm_head.weight"].T


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    _torch()
    pytest.importorskip("ttnn")
    from ttspec.runtime.runner import build_torch, random_state_dict, run_golden
    from ttspec.targets import get_target

    path = tmp_path_factory.mktemp("structural") / "mixed.arch"
    path.write_text(SPEC)
    model = load_model(path)
    state = random_state_dict(model, seed=7)
    tokens = torch.randint(0, VOCAB, (2, 40), generator=torch.Generator().manual_seed(3))
    module, net = build_torch(model, path.name, state)
    with torch.no_grad():
        logits = net(tokens).float()
    out = {"model": model, "state": state, "tokens": tokens, "net": net, "torch": logits}
    for target in ("n150", "t3k"):
        source = compile_source(model, path.name, target_of(target), formats_of("bf16"))
        out[target], _ = run_golden(model, path.name, get_target(target), state, tokens, source=source)
    return out


def test_torch_program_has_the_counted_parameters_under_their_names(runs):
    net, model = runs["net"], runs["model"]
    assert sum(p.numel() for p in net.parameters()) == TOTAL
    assert {name for name, _ in net.named_parameters()} == {name for name, _ in iter_params(model.graph)}


def test_torch_program_equals_hand_written_reference(runs):
    state = {k: v.float() for k, v in runs["state"].items()}
    torch.testing.assert_close(runs["torch"], reference_logits(state, runs["tokens"]), atol=1e-4, rtol=1e-4)


def test_golden_n150_and_t3k_equal_torch(runs):
    from .numerics import assert_bf16_accurate, assert_same_up_to_rounding

    assert runs["n150"].shape == (2, 40, VOCAB)
    assert_bf16_accurate(runs["n150"], runs["torch"], "n150 vs torch")  # bounds from bf16: tests/numerics.py
    assert_same_up_to_rounding(runs["t3k"], runs["n150"], runs["torch"], "t3k")  # experts of 8 chips' sums


def test_decode_through_the_kv_cache_on_golden_n150(runs):
    """Prefill 30 tokens per user, then decode 10 one step at a time through the TT-NN program's KV cache
    (each layer its own class): the logits of every position equal the torch program's full pass."""
    from ttspec.runtime.runner import golden_program
    from ttspec.targets import get_target

    from .numerics import assert_bf16_accurate

    program, _ = golden_program(runs["model"], "mixed.arch", get_target("n150"), runs["state"])
    tokens, prefill = runs["tokens"], 30
    program.allocate_cache(2, 64)
    got = torch.zeros(2, 40, VOCAB)
    for b in range(2):
        got[b, :prefill] = program.prefill(tokens[b, :prefill], b, every_position=True).float()
    for at in range(prefill, 40):
        got[:, at] = program.decode(tokens[:, at], torch.tensor([at, at])).float()
    assert_bf16_accurate(got, runs["torch"], "n150 prefill and decode vs torch")


# ---------------------------------------------------------------- generated code
def test_generated_programs_one_class_per_structure_deterministic_and_clean(mixed, tmp_path):
    sources = {}
    for target in ("torch", "n150", "t3k"):
        first = compile_source(mixed, "mixed.arch", target_of(target), formats_of("bf16"))
        again = compile_source(load_model_text(tmp_path, SPEC), "mixed.arch", target_of(target), formats_of("bf16"))
        assert first == again, target  # deterministic, also across elaborations
        sources[target] = first
        (tmp_path / f"{target}.py").write_text(first)
    text = sources["torch"]
    assert "class SwiGLU(nn.Module):" in text and "class MLP(nn.Module):" in text
    assert "#   Decoder: layers 0, 2 (gated = true)\n" in text
    assert "#   Decoder_1: layers 1, 3 (gated = false)\n" in text
    assert "self.layers = nn.ModuleList(cls() for cls in (Decoder, Decoder_1) * 2)" in text
    assert f"{TOTAL:,} parameters" in text
    ttnn_text = sources["n150"]
    assert "for i, cls in enumerate((Decoder, Decoder_1) * 2)" in ttnn_text
    # a parameter every layer has is stated once; one only some layers have, per layer
    assert '"layers.*4.attn.wq.weight",' in ttnn_text and '"layers.[0,2].mlp.w1.weight",' in ttnn_text
    assert '"layers.[1,3].mlp.up.bias",' in ttnn_text and '"layers.*4.mlp.w1.weight"' not in ttnn_text
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "E,F,W,I,B,UP",
                           "--line-length", "120", str(tmp_path)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout


def load_model_text(tmp_path, text):
    path = tmp_path / "again" / "mixed.arch"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return load_model(path)


def test_t3k_plan_places_each_structures_weights(mixed):
    from ttspec.reports.plan_report import plan_report

    report = plan_report(mixed, target_of("t3k"), None, formats_of("bf16"), 1, 64)
    placements = report["placements"]
    assert {name: placements[f"layers.*.mlp.{name}.weight"] for name in ("w1", "w3", "w2", "up", "down")} == {
        "w1": "column", "w3": "column", "w2": "row", "up": "column", "down": "row"}
    assert placements["layers.*.attn.wq.weight"] == "column"


def _mock_available() -> bool:
    try:
        import ttnn  # noqa: F401

        from ttspec.mock.toolchain import riscv_gcc
    except ImportError:
        return False
    return riscv_gcc() is not None


@pytest.mark.skipif(not _mock_available(), reason="needs torch, ttnn and the mock device's toolchain")
def test_memory_model_of_a_mixed_stack_follows_the_mock_allocator(write_spec):
    """On the mock n150, the weights ttnn allocates for the mixed stack are half of the all-swiglu stack's plus
    half of the all-gelu stack's (2 layers of each), and so are the memory model's."""
    _torch()
    from ttspec.reports.plan_report import plan_report
    from ttspec.runtime.device import run_worker

    allocated, predicted = {}, {}
    for name, flag in (("mixed", "layer % 2 == 0"), ("gated", "true"), ("plain", "false")):
        model = load_model(write_spec(SPEC.replace("gated = layer % 2 == 0", f"gated = {flag}"), f"{name}.arch"))
        source = compile_source(model, f"{name}.arch", target_of("n150"), formats_of("bf16"))
        result = run_worker(model, source, "mock", "n150", state=None, tokens=torch.zeros(1, 64, dtype=torch.int64))
        allocated[name] = result["dram_bytes_allocated"]
        predicted[name] = plan_report(model, target_of("n150"), None, formats_of("bf16"), 1,
                                      None)["memory_per_chip"]["weights_total"]
    assert 2 * allocated["mixed"] == allocated["gated"] + allocated["plain"] != 2 * allocated["gated"]
    assert 2 * predicted["mixed"] == predicted["gated"] + predicted["plain"]
    assert predicted["mixed"] <= allocated["mixed"]


def test_hf_names_load_a_mixed_stack(write_spec):
    """`family llama` with 2 wide and 3 narrow MLP layers: HF's names, written here by hand, load the
    torch program as ttspec's names do."""
    _torch()
    from ttspec.runtime.runner import random_state_dict, run_torch

    path = write_spec(FIRST_K, "firstk.arch")
    model = load_model(path)
    ours = random_state_dict(model, seed=2)
    hf = {"model.embed_tokens.weight": ours["embedding.weight"], "model.norm.weight": ours["norm.weight"],
          "lm_head.weight": ours["lm_head.weight"]}
    for i in range(5):
        for mine, theirs in (("attn.wq", "self_attn.q_proj"), ("attn.wk", "self_attn.k_proj"),
                             ("attn.wv", "self_attn.v_proj"), ("attn.wo", "self_attn.o_proj"),
                             ("mlp.w1", "mlp.gate_proj"), ("mlp.w3", "mlp.up_proj"), ("mlp.w2", "mlp.down_proj"),
                             ("attn_norm", "input_layernorm"), ("mlp_norm", "post_attention_layernorm")):
            hf[f"model.layers.{i}.{theirs}.weight"] = ours[f"layers.{i}.{mine}.weight"]
    assert hf["model.layers.0.mlp.gate_proj.weight"].shape == (384, 128)
    assert hf["model.layers.4.mlp.gate_proj.weight"].shape == (128, 128)
    tokens = torch.randint(0, 256, (1, 20), generator=torch.Generator().manual_seed(0))
    assert torch.equal(run_torch(model, path.name, hf, tokens), run_torch(model, path.name, ours, tokens))
    pytest.importorskip("ttnn")
    from ttspec.runtime.runner import run_golden
    from ttspec.targets import get_target

    by_hf, _ = run_golden(model, path.name, get_target("n150"), hf, tokens)  # its PARAMETERS name layers 0-1, 2-4
    assert torch.equal(by_hf, run_golden(model, path.name, get_target("n150"), ours, tokens)[0])


# ---------------------------------------------------------------- refusals and scale
def test_a_fused_checkpoint_tensor_of_other_sizes_per_layer_is_refused(write_spec):
    """Phi-3 stores gate and up as one gate_up_proj: split at row 384 in the wide layers and at 128 in the
    narrow ones, which one name pattern cannot say. Refused at the component, never a wrong split."""
    path = write_spec(FIRST_K.replace("family llama", "family phi3"), "phi.arch")
    with pytest.raises(ArchError) as info:
        compile_source(load_model(path), path.name, target_of("torch"))
    d = info.value.diagnostic
    assert d.message == ("`model.layers.N.mlp.gate_up_proj.weight` would be split as rows:0:384 in some layers and "
                         "rows:0:128 in others: the layers differ in the sizes of a fused checkpoint tensor")
    assert (d.loc.line, d.loc.col) == (9, 16)  # the narrow layers' swiglu
    assert "same sizes in every layer" in d.hint


def test_a_flag_with_a_value_per_layer_is_bounded(write_spec):
    """10,000 layers, each its own MLP width: refused at the 65th distinct layer, quickly, naming the limit."""
    text = SPEC.replace("gated: bool)", "gated: bool, width: int)").replace(f"hidden = {PLAIN}", "hidden = width") \
        .replace(f"repeat({LAYERS})", "repeat(10000)").replace("layer % 2 == 0)", "layer % 2 == 0, width = 32 + layer)")
    start = time.perf_counter()
    with pytest.raises(ArchError) as info:
        load_model(write_spec(text))
    assert "more than 64 distinct sets of argument values" in info.value.diagnostic.message
    assert time.perf_counter() - start < QUICK_GUARD_S  # a hang guard (tests/numerics.py)


def test_ten_thousand_layers_of_two_structures(write_spec):
    text = SPEC.replace(f"repeat({LAYERS})", "repeat(10000)")
    start = time.perf_counter()
    model = load_model(write_spec(text))
    assert count_params(model.graph) == 2 * VOCAB * D + D + 5000 * (2 * (ATTENTION + NORMS) + SWIGLU + GELU_MLP)
    source = compile_source(model, "m.arch", target_of("torch"))
    assert "(Decoder, Decoder_1) * 5000" in source
    from ttspec.backends.ttnn.backend import _parameter_patterns

    patterns = _parameter_patterns(model)  # the TT-NN program's PARAMETERS: one line per parameter
    assert "layers.[0:9999:2].mlp.w1.weight" in patterns and "layers.[1:10000:2].mlp.up.bias" in patterns
    assert len(patterns) == 3 + 6 + 3 + 4
    assert time.perf_counter() - start < QUICK_GUARD_S * 4, "hang guard"


TIE_IN_LAYER = """model tie
input tokens: int32[batch, seq] where seq <= 64
block dec(x: [batch, seq, 64], tie: bool) -> [batch, seq, 64] kind decoder {
    y = linear(x, 64, bias = false) as a
    if tie {
        return x + tied_linear(y, a) as b
    }
    return x + linear(y, 64, bias = false) as b
}
h = token_embedding(tokens, 128, 64) as embedding
h = repeat(3) dec(h, layer == 1) as layers
output logits = lm_head(h, 128)
"""


def test_a_tie_inside_some_layers_runs_on_torch_and_ttnn(write_spec):
    """Layer 1's `b` reuses its own `a.weight`: the torch program ties them in that layer only, the TT-NN
    program loads `layers.1.a` for it (before, both programs failed to load a tie inside a layer)."""
    _torch()
    pytest.importorskip("ttnn")
    from ttspec.runtime.runner import build_torch, random_state_dict, run_golden
    from ttspec.targets import get_target

    from .numerics import assert_bf16_accurate

    path = write_spec(TIE_IN_LAYER, "tie.arch")
    model = load_model(path)
    state = random_state_dict(model, seed=1)
    assert "layers.1.b.weight" not in state and "layers.0.b.weight" in state
    _, net = build_torch(model, path.name, state)
    assert net.layers[1].b.weight is net.layers[1].a.weight and net.layers[0].b.weight is not net.layers[0].a.weight
    tokens = torch.randint(0, 128, (1, 24), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        reference = net(tokens).float()
    x = state["embedding.weight"][tokens]
    for i in range(3):
        y = x @ state[f"layers.{i}.a.weight"].T
        x = x + y @ state[f"layers.{i}.{'a' if i == 1 else 'b'}.weight"].T
    torch.testing.assert_close(reference, x @ state["lm_head.weight"].T, atol=1e-4, rtol=1e-4)
    golden, _ = run_golden(model, path.name, get_target("n150"), state, tokens)
    assert_bf16_accurate(golden, reference, "n150 vs torch")
    # on two chips `b` would be column-parallel in layers 0 and 2 but take the tied rule in layer 1: one name
    # placed two ways is refused, naming it, and the statement the hint gives fixes it
    with pytest.raises(ArchError) as info:
        compile_source(model, path.name, target_of("n300"))
    d = info.value.diagnostic
    assert d.message.startswith("the layers of `layers` shard `layers.*.b.weight` differently (column and ")
    assert (d.loc.line, d.loc.col) == (11, 5) and d.hint.endswith('`shard "layers.*.b" replicate`')
    fixed = load_model(write_spec(TIE_IN_LAYER + 'shard "layers.*.b" replicate\n', "fixed.arch"))
    mesh, _ = run_golden(fixed, "fixed.arch", get_target("n300"), state, tokens)
    assert_bf16_accurate(mesh, reference, "n300 vs torch")
