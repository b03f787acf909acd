"""Mixture of experts counted: total and active parameters per token, FLOPs per token from the experts a
token uses, and expert bytes in the memory model. Expected values are closed forms written out here from
the architectures' definitions (Mixtral: a router and E SwiGLU experts per layer, top-k of E; Qwen-MoE:
plus a shared expert behind a sigmoid gate, q/k/v biases, OLMoE's q/k norm over the whole projection)."""

import json

import pytest

from ttspec.analysis.interpreters import forward_flops
from ttspec.analysis.params_report import params_report
from ttspec.driver import load_model

from .conftest import ROOT

MIXTRAL_LIKE = ROOT / "specs" / "moe-tiny.arch"

QWEN_LIKE = """model qwen_moe_like
input tokens: int32[batch, seq] where seq <= 128
block decoder(x: [batch, seq, 64]) -> [batch, seq, 64] kind decoder {
    x = x + attention(rmsnorm(x) as attn_norm, heads = 4, kv_heads = 2, qkv_bias = true, out_bias = false,
                      qk_norm = true, qk_norm_scope = "projection", rope = rope(theta = 10000.0)) as attn
    x = x + moe(rmsnorm(x) as mlp_norm, experts = 6, top_k = 3, hidden = 32, shared = 96,
                shared_gate = true) as moe
    return x
}
h = token_embedding(tokens, 300, 64) as embedding
h = repeat(3) decoder(h) as layers
h = rmsnorm(h) as norm
output logits = lm_head(h, 300)
"""


def mixtral_like_counts():
    """specs/moe-tiny.arch by hand: vocab 512, d 128, 2 layers, 4 heads of 32, 2 KV heads, 8 experts of
    hidden 256, top 2, untied head."""
    vocab, d, layers, heads, kv, hd, experts, k, hidden = 512, 128, 2, 4, 2, 32, 8, 2, 256
    attn = d * heads * hd + 2 * d * kv * hd + heads * hd * d
    bank = 3 * experts * hidden * d  # w1, w3 [E, hidden, d] and w2 [E, d, hidden]
    layer = attn + 2 * d + experts * d + bank
    total = vocab * d + layers * layer + d + vocab * d
    active = total - layers * bank + layers * 3 * k * hidden * d
    # per token: every linear 2 * in * out, the k experts used, attention 4 * seq * head_dim per head
    linear = layers * (attn + experts * d + 3 * k * hidden * d) + vocab * d
    return total, active, linear, layers * 4 * heads * hd


def qwen_like_counts():
    vocab, d, layers, heads, kv, hd, experts, k, hidden, shared = 300, 64, 3, 4, 2, 16, 6, 3, 32, 96
    attn = (d * heads * hd + heads * hd) + 2 * (d * kv * hd + kv * hd) + heads * hd * d  # q/k/v biases, no wo bias
    qk_norm = heads * hd + kv * hd  # over the whole projection: [heads * head_dim], [kv_heads * head_dim]
    bank = 3 * experts * hidden * d
    moe = experts * d + bank + 3 * shared * d + d  # router, experts, shared expert, its gate [1, d]
    layer = attn + qk_norm + 2 * d + moe
    total = 2 * vocab * d + layers * layer + d
    active = total - layers * bank * (experts - k) // experts
    linear = layers * (attn - heads * hd - 2 * kv * hd + experts * d + 3 * k * hidden * d + 3 * shared * d + d) \
        + vocab * d
    return total, active, linear, layers * 4 * heads * hd


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    path = tmp_path_factory.mktemp("moe") / "qwen_like.arch"
    path.write_text(QWEN_LIKE)
    return {"mixtral": (load_model(MIXTRAL_LIKE), mixtral_like_counts()),
            "qwen": (load_model(path), qwen_like_counts())}


@pytest.mark.parametrize("name", ["mixtral", "qwen"])
def test_total_and_active_parameters(models, name):
    model, (total, active, _, _) = models[name]
    report = params_report(model)
    assert (report["total"], report["active"]) == (total, active)
    assert active < total


@pytest.mark.parametrize("name", ["mixtral", "qwen"])
def test_flops_per_token_count_the_experts_used(models, name):
    model, (_, _, linear, attention) = models[name]
    seq = 16
    flops = forward_flops(model, seq=seq)
    assert flops.total // seq == 2 * linear + attention * seq


def test_kinds_and_parameter_names(models):
    model, _ = models["qwen"]
    report = params_report(model)
    names = {p["name"]: p["shape"] for p in report["parameters"]}
    d, e, hidden = 64, 6, 32
    assert names["layers.*.moe.router.weight"] == [e, d]
    assert names["layers.*.moe.experts.w1"] == names["layers.*.moe.experts.w3"] == [e, hidden, d]
    assert names["layers.*.moe.experts.w2"] == [e, d, hidden]
    assert names["layers.*.moe.shared_expert.w2.weight"] == [d, 96]
    assert names["layers.*.moe.shared_expert_gate.weight"] == [1, d]
    assert names["layers.*.attn.q_norm.weight"] == [64] and names["layers.*.attn.k_norm.weight"] == [32]
    kinds = report["by_kind"]
    assert kinds["experts"] == 3 * 3 * e * hidden * d and kinds["router"] == 3 * e * d


def test_params_cli_shows_active(run_cli):
    total, active, _, _ = mixtral_like_counts()
    out = run_cli("params", MIXTRAL_LIKE, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert (report["total"], report["active"]) == (total, active)
    table = run_cli("params", MIXTRAL_LIKE).stdout
    assert "active  " in table and f"{active:,}" in table


def test_dense_models_are_all_active(run_cli):
    report = json.loads(run_cli("params", ROOT / "specs" / "llama-gqa-tiny.arch", "--json").stdout)
    assert report["active"] == report["total"]


def test_memory_model_stores_expert_banks_in_the_weight_format(models):
    """Each expert's [hidden, d] matrix in whole 32x32 tiles of the chosen format: bfloat8_b is 1088 bytes
    per 1024 values, bfloat4_b 576 (the router's [8, 128] weight pads to [32, 128])."""
    from ttspec.analysis.memory import check_weight_formats, weight_bytes_by_kind
    from ttspec.weight_formats import parse

    model, _ = models["mixtral"]
    layers, experts, hidden, d = 2, 8, 256, 128
    bank = layers * 3 * experts * hidden * d
    formats = parse("bfloat8_b,experts=bfloat4_b")
    check_weight_formats(model, formats)  # `experts` names matrices: a kind --weights-dtype takes
    got = weight_bytes_by_kind(model, formats)
    assert got["experts"] == bank * 576 // 1024
    assert got["router"] == layers * 32 * d * 1088 // 1024
    assert weight_bytes_by_kind(model, parse("bf16"))["experts"] == 2 * bank


def test_expected_experts_a_step_reads():
    """One token reads exactly its top_k experts; two read 2k less the k*k/E they share on average; many
    read nearly all E."""
    from ttspec.ops.experts import experts_read

    assert experts_read(2, 8, 1) == pytest.approx(2)
    assert experts_read(2, 8, 2) == pytest.approx(2 * 2 - 2 * 2 / 8)
    assert experts_read(8, 64, 32) < experts_read(8, 64, 512) == pytest.approx(64, rel=1e-6)


@pytest.mark.parametrize("change,message", [
    ("top_k = top_k, hidden", "top_k 9 exceeds the 8 experts"),
    ("normalize = true", 'softmax must be "before" or "after", got "later"'),
])
def test_bad_moe_arguments_are_one_clear_error(run_cli, write_spec, change, message):
    text = MIXTRAL_LIKE.read_text()
    bad = {"top_k = top_k, hidden": "top_k = 9, hidden", "normalize = true": 'softmax = "later"'}[change]
    result = run_cli("check", write_spec(text.replace(change, bad)))
    assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr
    assert ":21:13: error:" in result.stderr  # the spec's moe(...) call, the standard library's line as a note


PUBLISHED = """model {name}
input tokens: int32[batch, seq] where seq <= 4096
block decoder(x: [batch, seq, {d}]) -> [batch, seq, {d}] kind decoder {{
    x = x + attention(rmsnorm(x) as attn_norm, heads = {heads}, kv_heads = {kv}, head_dim = {hd}, {attn}
                      rope = rope(theta = 10000.0)) as attn
    x = x + moe(rmsnorm(x) as mlp_norm, experts = {e}, top_k = {k}, hidden = {hidden}, {moe}) as moe
    return x
}}
h = token_embedding(tokens, {vocab}, {d}) as embedding
h = repeat({layers}) decoder(h) as layers
h = rmsnorm(h) as norm
output logits = lm_head(h, {vocab})
"""

# The four families' published configs written as specs by hand (config.json: hidden_size, layers, heads,
# experts, top-k, widths), and transformers' counts of their parameters (total; active per token with the
# input embedding): issue 21's acceptance figures.
PUBLISHED_MODELS = {
    "mixtral_8x7b": (dict(d=4096, heads=32, kv=8, hd=128, attn="", e=8, k=2, hidden=14336, moe="normalize = true",
                          vocab=32000, layers=32), 46_702_792_704, 12_879_925_248),
    "qwen1_5_moe_a2_7b": (dict(d=2048, heads=16, kv=16, hd=128, attn="qkv_bias = true, out_bias = false,", e=60,
                               k=4, hidden=1408, moe="shared = 5632, shared_gate = true", vocab=151936, layers=24),
                          14_315_784_192, 2_689_173_504),
    "qwen3_30b_a3b": (dict(d=2048, heads=32, kv=4, hd=128, attn="qk_norm = true,", e=128, k=8, hidden=768,
                           moe="normalize = true", vocab=151936, layers=48), 30_532_122_624, 3_353_032_704),
    "olmoe_1b_7b": (dict(d=2048, heads=16, kv=16, hd=128, attn='qk_norm = true, qk_norm_scope = "projection",', e=64,
                         k=8, hidden=1024, moe="normalize = false", vocab=50304, layers=16),
                    6_919_161_856, 1_282_017_280),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_MODELS))
def test_published_totals_and_active_counts(write_spec, name):
    fields, total, active = PUBLISHED_MODELS[name]
    model = load_model(write_spec(PUBLISHED.format(name=name, **fields)))
    report = params_report(model)
    assert (report["total"], report["active"]) == (total, active)
