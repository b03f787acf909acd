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
