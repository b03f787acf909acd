"""Mixture of experts on the torch target: the generated program's MoE blocks against a hand-written torch
reference of the contract's semantics, against transformers 5's own blocks (Mixtral, Qwen2-MoE, OLMoE) with
the same weights copied in by name, and a whole OLMoE-shaped model (q/k norm over the whole projection)
against HF's OlmoeForCausalLM. Everything in float32: the bounds are float32 rounding of sums of ~100 terms."""

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from ttspec.analysis.params_report import params_report  # noqa: E402
from ttspec.driver import load_model  # noqa: E402
from ttspec.runtime.runner import build_torch, random_state_dict  # noqa: E402

from .conftest import ROOT  # noqa: E402
from .test_moe_counts import QWEN_LIKE  # noqa: E402

OLMOE_LIKE = """model olmoe_like
input tokens: int32[batch, seq] where seq <= 64
let eps = 1e-5
block decoder(x: [batch, seq, 64]) -> [batch, seq, 64] kind decoder {
    x = x + attention(rmsnorm(x, eps = eps) as attn_norm, heads = 4, qk_norm = true, qk_norm_eps = eps,
                      qk_norm_scope = "projection", rope = rope(theta = 10000.0)) as attn
    x = x + moe(rmsnorm(x, eps = eps) as mlp_norm, experts = 8, top_k = 2, hidden = 32) as moe
    return x
}
h = token_embedding(tokens, 128, 64) as embedding
h = repeat(2) decoder(h) as layers
h = rmsnorm(h, eps = eps) as norm
output logits = lm_head(h, 128)
"""
ATOL = 1e-5


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("moe_torch")
    out = {}
    for name, text in (("mixtral", None), ("qwen", QWEN_LIKE), ("olmoe", OLMOE_LIKE)):
        path = ROOT / "specs" / "moe-tiny.arch" if text is None else folder / f"{name}.arch"
        if text is not None:
            path.write_text(text)
        model = load_model(path)
        state = random_state_dict(model, seed=5)
        state = {k: v * 20 if ".router." in k else v for k, v in state.items()}  # routing margins well apart
        _, net = build_torch(model, str(path), state)
        out[name] = (model, net)
    return out


@pytest.mark.parametrize("name", ["mixtral", "qwen", "olmoe"])
def test_parameter_count_equals_params(nets, name):
    model, net = nets[name]
    assert sum(p.numel() for p in net.parameters()) == params_report(model)["total"]
    moe = net.layers[0].moe
    assert type(moe.experts).__name__ == "Experts" and moe.experts.w1.dim() == 3


def reference_moe(moe, x, top_k, normalize, shared_gate=False):
    """The contract, written densely: softmax over every expert, keep the top k (renormalised when asked),
    sum of the chosen experts' SwiGLU outputs weighted so; plus the shared expert behind its sigmoid gate."""
    logits = x @ moe.router.weight.T
    probs = torch.softmax(logits, dim=-1)
    top, index = probs.topk(top_k, dim=-1)
    if normalize:
        top = top / top.sum(-1, keepdim=True)
    dense = torch.zeros_like(probs).scatter(-1, index, top)
    e = moe.experts
    gate = torch.einsum("bsd,ehd->bseh", x, e.w1)
    up = torch.einsum("bsd,ehd->bseh", x, e.w3)
    y = torch.einsum("bseh,edh->bsed", torch.nn.functional.silu(gate) * up, e.w2)
    out = (dense[..., None] * y).sum(-2)
    if shared_gate:
        s = moe.shared_expert
        common = s.w2(torch.nn.functional.silu(s.w1(x)) * s.w3(x))
        out = out + torch.sigmoid(moe.shared_expert_gate(x)) * common
    return out


@pytest.mark.parametrize("name,top_k,normalize,shared", [("mixtral", 2, True, False), ("qwen", 3, False, True),
                                                         ("olmoe", 2, False, False)])
def test_block_matches_hand_written_reference(nets, name, top_k, normalize, shared):
    _, net = nets[name]
    moe = net.layers[1].moe
    x = torch.randn(2, 9, moe.router.weight.shape[1], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got, want = moe(x), reference_moe(moe, x, top_k, normalize, shared)
    assert want.abs().max() > 0.01
    torch.testing.assert_close(got, want, atol=ATOL, rtol=1e-5)


def _hf_block(name, moe):
    """transformers' own MoE block of the family, configured and filled from the generated block's weights
    (transformers 5's fused layout: gate_up_proj [E, 2I, d] = [w1; w3], down_proj [E, d, I] = w2)."""
    e = moe.experts
    experts, hidden, d = e.w1.shape
    if name == "mixtral":
        from transformers.models.mixtral.modeling_mixtral import MixtralConfig, MixtralSparseMoeBlock

        block = MixtralSparseMoeBlock(MixtralConfig(hidden_size=d, intermediate_size=hidden, num_local_experts=experts,
                                                    num_experts_per_tok=2))
    elif name == "qwen":
        from transformers.models.qwen2_moe.modeling_qwen2_moe import Qwen2MoeConfig, Qwen2MoeSparseMoeBlock

        block = Qwen2MoeSparseMoeBlock(Qwen2MoeConfig(hidden_size=d, moe_intermediate_size=hidden, num_experts=experts,
                                                      num_experts_per_tok=3, norm_topk_prob=False,
                                                      shared_expert_intermediate_size=96))
        s = moe.shared_expert
        for hf, ours in (("gate_proj", s.w1), ("up_proj", s.w3), ("down_proj", s.w2)):
            getattr(block.shared_expert, hf).weight.data.copy_(ours.weight)
        block.shared_expert_gate.weight.data.copy_(moe.shared_expert_gate.weight)
    else:
        from transformers.models.olmoe.modeling_olmoe import OlmoeConfig, OlmoeSparseMoeBlock

        block = OlmoeSparseMoeBlock(OlmoeConfig(hidden_size=d, intermediate_size=hidden, num_experts=experts,
                                                num_experts_per_tok=2, norm_topk_prob=False))
    block.gate.weight.data.copy_(moe.router.weight)
    block.experts.gate_up_proj.data.copy_(torch.cat([e.w1, e.w3], dim=1))
    block.experts.down_proj.data.copy_(e.w2)
    return block.eval()


@pytest.mark.parametrize("name", ["mixtral", "qwen", "olmoe"])
def test_block_matches_transformers(nets, name):
    _, net = nets[name]
    moe = net.layers[0].moe
    block = _hf_block(name, moe)
    x = torch.randn(3, 11, moe.router.weight.shape[1], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got, want = moe(x), block(x)
    assert want.abs().max() > 0.01
    torch.testing.assert_close(got, want, atol=ATOL, rtol=1e-5)


def test_routing_semantics(nets):
    """softmax "after" = "before" with normalize; ties go to the lowest expert index; zero elsewhere."""
    from importlib import import_module

    module = import_module(type(nets["mixtral"][1]).__module__)
    logits = torch.randn(4, 5, 8, generator=torch.Generator().manual_seed(2))
    after = module.topk_routing(logits, 3, softmax="after")
    before = module.topk_routing(logits, 3, normalize=True)
    torch.testing.assert_close(after, before)
    assert ((after > 0).sum(-1) == 3).all() and torch.allclose(after.sum(-1), torch.ones(4, 5))
    plain = module.topk_routing(logits, 3)
    torch.testing.assert_close(plain.sum(-1), torch.softmax(logits, -1).topk(3, dim=-1).values.sum(-1))
    tied = module.topk_routing(torch.zeros(1, 6), 2)
    assert (tied > 0).tolist() == [[True, True, False, False, False, False]]
    torch.testing.assert_close(tied[0, :2], torch.full((2,), 1 / 6))


@pytest.fixture(scope="module")
def olmoe_pair(nets):
    """The OLMoE-shaped program and HF's OlmoeForCausalLM holding the same weights, mapped by name."""
    from transformers import OlmoeConfig, OlmoeForCausalLM

    _, net = nets["olmoe"]
    config = OlmoeConfig(vocab_size=128, hidden_size=64, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, num_experts=8, num_experts_per_tok=2,
                         norm_topk_prob=False, rms_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=64,
                         tie_word_embeddings=False)
    hf = OlmoeForCausalLM(config).eval()
    ours = dict(net.named_parameters())
    mapping = {"model.embed_tokens.weight": "embedding.weight", "model.norm.weight": "norm.weight",
               "lm_head.weight": "lm_head.weight"}
    for i in range(2):
        a, m = f"model.layers.{i}.self_attn.", f"model.layers.{i}.mlp."
        mapping.update({f"model.layers.{i}.input_layernorm.weight": f"layers.{i}.attn_norm.weight",
                        f"model.layers.{i}.post_attention_layernorm.weight": f"layers.{i}.mlp_norm.weight",
                        m + "gate.weight": f"layers.{i}.moe.router.weight",
                        m + "experts.down_proj": f"layers.{i}.moe.experts.w2"})
        for hf_name, our in (("q_proj", "wq"), ("k_proj", "wk"), ("v_proj", "wv"), ("o_proj", "wo"),
                             ("q_norm", "q_norm"), ("k_norm", "k_norm")):
            mapping[a + hf_name + ".weight"] = f"layers.{i}.attn.{our}.weight"
    state = {hf_name: ours[our].detach() for hf_name, our in mapping.items()}
    for i in range(2):
        e = f"layers.{i}.moe.experts."
        state[f"model.layers.{i}.mlp.experts.gate_up_proj"] = torch.cat([ours[e + "w1"], ours[e + "w3"]], dim=1)
    missing, unexpected = hf.load_state_dict(state, strict=False)
    assert not unexpected and not [k for k in missing if "rotary" not in k], (missing, unexpected)
    return net, hf


def test_olmoe_model_matches_transformers(olmoe_pair):
    """The whole OLMoE-shaped model (q/k RMSNorm over the whole projection, top 2 of 8 unnormalised)."""
    net, hf = olmoe_pair
    tokens = torch.randint(0, 128, (2, 24), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        got, want = net(tokens), hf(tokens).logits
    assert want.abs().max() > 0.1
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_olmoe_greedy_generate_equals_transformers(olmoe_pair):
    """Prefill into the KV cache, then one token per step for two users at different positions: the same
    tokens as HF's greedy generate."""
    from importlib import import_module

    net, hf = olmoe_pair
    module = import_module(type(net).__module__)
    prompts = [torch.randint(0, 128, (n,), generator=torch.Generator().manual_seed(n)).tolist() for n in (9, 4)]
    net.allocate_cache(2, 32)
    got = module.generate(net, prompts, 10)
    for prompt, ids in zip(prompts, got, strict=True):
        with torch.no_grad():
            want = hf.generate(torch.tensor([prompt]), max_new_tokens=10, min_new_tokens=10, do_sample=False,
                               pad_token_id=0)[0, len(prompt):].tolist()
        assert ids == want


def test_expert_banks_take_the_block_float_format():
    """--weights-dtype bfloat8_b rounds each expert's matrices as a linear's (the device stores them so);
    the bank differs from its float32 values, each expert equal to its own matrix rounded."""
    from ttspec.weight_formats import parse

    model = load_model(ROOT / "specs" / "moe-tiny.arch")
    state = random_state_dict(model, seed=7)
    module, net = build_torch(model, "specs/moe-tiny.arch", state, weights_dtype=parse("bfloat8_b"))
    bank = state["layers.1.moe.experts.w2"]
    got = net.layers[1].moe.experts.w2.detach()
    assert not torch.equal(got, bank)
    for e in (0, 5):
        assert torch.equal(got[e], module.block_float(bank[e], "bfloat8_b"))
    assert (got - bank).abs().max() <= bank.abs().max() * 2 ** -6  # 7 bits of magnitude per shared exponent
