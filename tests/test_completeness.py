"""Completeness: every standard component and every primitive, in small specs, compiles for
torch, n150, p150 and n300 to ruff-clean Python; the n150 program in golden mode computes what
the torch reference computes, and the n300 (tensor-parallel) program what the n150 one does.
Specs with a checkpoint family run on HF-named weights as well as on ttspec-named ones.

The reference is the generated torch model, itself checked against HF transformers in
test_torch_backend.py; here the question is whether each backend lowers each feature
faithfully. A combination a backend cannot do is refused by `check --target` with a reason.
"""

import subprocess
import sys

import pytest

from ttspec.driver import compile_source, load_model
from ttspec.ir.graph import all_nodes
from ttspec.ops import REGISTRY
from ttspec.targets import get_target

from .conftest import ROOT

torch = pytest.importorskip("torch")
pytest.importorskip("ttnn")

from ttspec.runtime.runner import random_hf_state_dict, random_state_dict, run_golden, run_torch  # noqa: E402

TARGETS = ("torch", "n150", "p150", "n300")
HEADER = """model {name}
{family}input tokens: int32[batch, seq] where seq <= 64
"""

CASES = {
    # RMSNorm, RoPE (rotate-half), SwiGLU, an untied head: Llama's labels
    "llama_like": ("llama", """
block decoder(x: [batch, seq, 64]) -> [batch, seq, 64] kind decoder {
    x = x + attention(rmsnorm(x, eps = 1e-6) as attn_norm, heads = 2, rope = rope(theta = 10000.0)) as attn
    x = x + swiglu(rmsnorm(x, eps = 1e-6) as mlp_norm, hidden = 128) as mlp
    return x
}
h = token_embedding(tokens, 128, 64) as embedding
h = repeat(2) decoder(h) as layers
h = rmsnorm(h, eps = 1e-6) as norm
output logits = lm_head(h, 128)
"""),
    # GQA, interleaved partial rotary with Llama 3 scaling, biases on q/k/v only
    "gqa_interleaved_llama3": ("llama", """
let r = rope(theta = 500000.0, style = "interleaved", fraction = 0.5, scaling = "llama3", factor = 8.0,
             original_max_positions = 16)
block decoder(x: [batch, seq, 128]) -> [batch, seq, 128] kind decoder {
    x = x + attention(rmsnorm(x) as attn_norm, heads = 4, kv_heads = 2, qkv_bias = true, out_bias = false,
                      rope = r) as attn
    x = x + swiglu(rmsnorm(x) as mlp_norm, hidden = 256) as mlp
    return x
}
h = token_embedding(tokens, 128, 128) as embedding
h = repeat(2) decoder(h) as layers
h = rmsnorm(h) as norm
output logits = lm_head(h, 128)
"""),
    # MQA, linear RoPE scaling, GeGLU (tanh), LayerNorm without bias, a tied head
    "mqa_geglu_tied": (None, """
block decoder(x: [batch, seq, 128]) -> [batch, seq, 128] kind decoder {
    x = x + attention(layernorm(x, bias = false) as n1, heads = 4, kv_heads = 1,
                      rope = rope(scaling = "linear", factor = 2.0)) as attn
    x = x + geglu(layernorm(x, bias = false) as n2, hidden = 256, approximate = true) as ffn
    return x
}
h = token_embedding(tokens, 128, 128) as tok
h = repeat(2) decoder(h) as blocks
h = layernorm(h, bias = false) as final
output logits = lm_head(h, 128, tied = tok)
"""),
    # GPT-2: learned positions, LayerNorm, biased attention, GELU (tanh) MLP, tied head
    "gpt2_like": ("gpt2", """
block decoder(x: [batch, seq, 64]) -> [batch, seq, 64] kind decoder {
    x = x + attention(layernorm(x) as ln_1, heads = 2, qkv_bias = true) as attn
    x = x + mlp(layernorm(x) as ln_2, hidden = 256, act = "gelu_tanh") as mlp
    return x
}
h = token_embedding(tokens, 128, 64) as wte
h = learned_positions(h, 64) as wpe
h = repeat(2) decoder(h) as layers
h = layernorm(h) as ln_f
output logits = lm_head(h, 128, tied = wte)
"""),
    # Phi: parallel residual, partial rotary, GELU MLP with biases, a head with a bias
    "phi_like": ("phi", """
block decoder(x: [batch, seq, 64]) -> [batch, seq, 64] kind decoder {
    n = layernorm(x) as input_layernorm
    return x + attention(n, heads = 2, qkv_bias = true, rope = rope(fraction = 0.5)) as attn
             + mlp(n, hidden = 256, act = "gelu") as mlp
}
h = token_embedding(tokens, 128, 64) as embedding
h = repeat(2) decoder(h) as layers
h = layernorm(h) as final_layernorm
output logits = lm_head(h, 128, bias = true)
"""),
    # sinusoidal positions (no parameters), post-norm, ReLU MLP, explicit head_dim and scale
    "sinusoidal_postnorm": (None, """
block decoder(x: [batch, seq, 64]) -> [batch, seq, 64] kind decoder {
    x = layernorm(x + attention(x, heads = 2, head_dim = 64, scale = 0.1) as attn) as n1
    x = layernorm(x + mlp(x, hidden = 128, act = "relu", bias = false) as ffn) as n2
    return x
}
h = token_embedding(tokens, 128, 64) as tok
h = sinusoidal(h)
h = repeat(2) decoder(h) as blocks
output logits = lm_head(h, 128, bias = true)
"""),
    # issue 10's features: embedding scale, (1 + w) norms, per-head q/k norms, sliding-window and
    # softcapped attention, softcapped logits; scale and softcap called directly; MQA
    "gemma_like": (None, """
block decoder(x: [batch, seq, 64], window: int = none) -> [batch, seq, 64] kind decoder {
    a = attention(rmsnorm(x, eps = 1e-6, offset = 1.0) as attn_norm, heads = 2, kv_heads = 1, head_dim = 32,
                  rope = rope(theta = 10000.0), scale = 256 ** -0.5, softcap = 50.0, qk_norm = true,
                  window = window) as attn
    x = x + rmsnorm(a, eps = 1e-6, offset = 1.0) as post_attn_norm
    x = x + geglu(rmsnorm(x, eps = 1e-6, offset = 1.0) as mlp_norm, hidden = 128, approximate = true) as mlp / 2.0
    return x
}
h = token_embedding(tokens, 128, 64) as embedding * 64 ** 0.5
h = decoder(h, window = 16) as local
h = decoder(scale(h, 0.5) * 2.0) as full
h = repeat(2) decoder(h, window = 8) as layers
h = rms_norm(h, eps = 1e-6, offset = 1.0) as norm
output logits = softcap(lm_head(h, 128, tied = embedding), 5.0)
"""),
    # every primitive called directly, under labels no template knows; exact GeGLU, glu(relu)
    "primitives": (None, """
block mixer(x: [b, s, d], heads: int) -> [b, s, d] kind attention {
    q = split_heads(linear(x, d) as q_proj, heads)
    k = split_heads(linear(x, d) as k_proj, heads)
    v = split_heads(linear(x, d) as v_proj, heads)
    y = attend(apply_rope(q, rope(theta = 100.0)), apply_rope(k, rope(theta = 100.0)), v, scale = 0.2)
    return linear(merge_heads(y), d, bias = true) as o_proj
}
block decoder(x: [batch, seq, 64]) -> [batch, seq, 64] kind decoder {
    x = add(x, mixer(rms_norm(x, eps = 1e-5) as n1, 2) as mix)
    g = silu(linear(x, 128) as gate)
    u = gelu(linear(x, 128) as up) * relu(linear(x, 128) as up2)
    x = x + linear(mul(g, u), 64) as down
    x = x + geglu(layer_norm(x, eps = 1e-5) as n2, hidden = 128) as ffn1
    x = x + glu(x, hidden = 128, act = "relu") as ffn2
    return x + linear(gelu_tanh(linear(x, 128) as a), 64) as b
}
h = token_embedding(tokens, 128, 64) as tok
h = h + position_embedding(h, 64) as pos
h = h + sinusoidal_positions(h)
h = repeat(2) decoder(h) as blocks
output logits = tied_linear(layer_norm(h, eps = 1e-5) as final, tok, bias = true)
"""),
    # mixture of experts (issue 21): the moe block with a gated shared expert, q/k norms over the whole
    # projection, and its parts called directly (softmax after the top k, ReLU and GELU experts, sigmoid)
    "moe": (None, """
block decoder(x: [batch, seq, 64]) -> [batch, seq, 64] kind decoder {
    x = x + attention(rmsnorm(x) as attn_norm, heads = 2, qk_norm = true, qk_norm_scope = "projection",
                      rope = rope(theta = 10000.0)) as attn
    x = x + moe(rmsnorm(x) as mlp_norm, experts = 4, top_k = 2, hidden = 64, normalize = true, shared = 96,
                shared_gate = true) as moe
    return x
}
block direct(x: [batch, seq, 64]) -> [batch, seq, 64] kind decoder {
    r = topk_routing(moe_router(x, 4) as gate, 1, softmax = "after")
    y = moe_experts(x, r, 32, 1, act = "relu") as bank
    return x + sigmoid(y) * expert_glu(x, r, 32, 1, act = "gelu") as experts
}
h = token_embedding(tokens, 128, 64) as embedding
h = repeat(2) decoder(h) as layers
h = direct(h) as last
h = rmsnorm(h) as norm
output logits = lm_head(h, 128)
"""),
}

FAMILY_CASES = [(name, family) for name, (family, _) in CASES.items()] + [(name, None) for name, (family, _)
                                                                           in CASES.items() if family]


def spec_text(name: str, family: str | None) -> str:
    return HEADER.format(name=name, family=f"family {family}\n" if family else "") + CASES[name][1]


def test_cases_cover_every_component_and_primitive(tmp_path):
    prelude = (ROOT / "ttspec" / "stdlib" / "prelude.arch").read_text()
    blocks = {line.split()[1].split("(")[0] for line in prelude.splitlines() if line.startswith("block ")}
    texts = "\n".join(body for _, body in CASES.values())
    assert all(f"{block}(" in texts for block in blocks), blocks - {b for b in blocks if f"{b}(" in texts}
    used = set()
    for name in CASES:
        path = tmp_path / f"{name}.arch"
        path.write_text(spec_text(name, None))
        used |= {node.op for node in all_nodes(load_model(path).graph)}
    spec_ops = {name for name, opdef in REGISTRY.items() if opdef.in_spec}
    assert spec_ops <= used, spec_ops - used


def test_every_op_has_a_row_in_each_lowering_table():
    """A backend's lowering table (ttspec/backends/<backend>/lower.py) holds a row for each op it must
    compute: torch every op a spec can write; TT-NN every op, those the lowering passes and the sharding
    planner make included, except the parts of a tuple-valued op (the op making the tuple unpacks them)."""
    from ttspec.backends.torch.lower import LOWERINGS as TORCH
    from ttspec.backends.ttnn.lower import LOWERINGS as TTNN

    assert set(TORCH) <= set(REGISTRY) and set(TTNN) <= set(REGISTRY)
    assert {name for name, opdef in REGISTRY.items() if opdef.in_spec} <= set(TORCH)
    parts = {opdef.part_op for opdef in REGISTRY.values() if opdef.part_op}
    assert set(REGISTRY) - parts == set(TTNN)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """Every case compiled for every target once (with its family, where it has one)."""
    folder = tmp_path_factory.mktemp("completeness")
    out = {}
    for name, family in FAMILY_CASES:
        path = folder / f"{name}_{family or 'nofamily'}.arch"
        path.write_text(spec_text(name, family))
        model = load_model(path)
        for target in TARGETS:
            source = compile_source(model, path.name, target_of(target))
            program = folder / f"{name}_{family or 'nofamily'}_{target}.py"
            program.write_text(source)
            out[(name, family, target)] = (model, path, source)
    return folder, out


def test_every_program_is_ruff_clean(compiled):
    folder, programs = compiled
    assert len(programs) == len(FAMILY_CASES) * len(TARGETS)
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "E,F,W,I,B,UP",
                           "--line-length", "120", str(folder)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout


from .conftest import target_of  # noqa: E402
from .numerics import BF16_PCC, BF16_REL, assert_same_up_to_rounding, pcc, rel_err  # noqa: E402


@pytest.mark.parametrize("name,family", FAMILY_CASES, ids=[f"{n}-{f or 'nofamily'}" for n, f in FAMILY_CASES])
def test_backends_agree(compiled, name, family):
    _, programs = compiled
    model, path, _ = programs[(name, family, "torch")]
    state = random_hf_state_dict(model, seed=3) if family else random_state_dict(model, seed=3)
    tokens = torch.randint(0, 128, (2, 40), generator=torch.Generator().manual_seed(1))  # seq padded to 64
    reference = run_torch(model, path.name, state, tokens).float()
    single, _ = run_golden(model, path.name, get_target("n150"), state, tokens,
                           source=programs[(name, family, "n150")][2])
    mesh, _ = run_golden(model, path.name, get_target("n300"), state, tokens,
                         source=programs[(name, family, "n300")][2])
    assert single.shape == mesh.shape == reference.shape == (2, 40, 128)
    assert pcc(single, reference) >= BF16_PCC and rel_err(single, reference) <= BF16_REL, (
        pcc(single, reference), rel_err(single, reference))
    # the same weights on two chips: only the order of bf16 sums differs, so elementwise
    diff, own = (mesh - single).abs(), (single - reference).abs()
    print(f"{name}-{family}: mesh vs single max {diff.max().item():.4f} mean {diff.mean().item():.5f}; "
          f"single vs torch max {own.max().item():.4f} mean {own.mean().item():.5f}; max |logit| "
          f"{reference.abs().max().item():.2f}")
    # bf16 rounding in another order, nothing else: both programs within the bf16 budget of the fp32
    # reference, the mesh as accurate as the single chip and within the budget of it (robust
    # statistics, bounds from bf16's precision: tests/numerics.py; they replace maxima measured on
    # one CPU)
    assert_same_up_to_rounding(mesh, single, reference, f"{name}-{family} mesh")


@pytest.mark.parametrize("target", ["n150", "p150", "n300"])
def test_what_a_backend_cannot_do_is_refused_by_check(run_cli, write_spec, target):
    path = write_spec(spec_text("llama_like", None).replace("heads = 2,", "heads = 2, causal = false,"))
    result = run_cli("check", path, "--target", target)
    assert result.returncode == 1
    assert f"{path}:5:" in result.stderr  # the user's attention call, not the standard library
    assert f"cannot be compiled for {target}: non-causal attention is not lowered to TT-NN yet" in result.stderr
    assert run_cli("compile", path, "--target", "torch", "-o", path.with_suffix(".py")).returncode == 0
