"""The TT-NN runtime's mixture of experts (ttspec/backends/ttnn/rt/moe.py, configs from
backends/ttnn/configs/moe.py) against HF transformers 5's MoE blocks, built tiny here with random weights:
MixtralSparseMoeBlock (softmax before the top-k, renormalised), Qwen2MoeSparseMoeBlock (not renormalised, a shared
expert behind a sigmoid gate), OlmoeSparseMoeBlock (not renormalised), Qwen3MoeSparseMoeBlock (renormalised). The
runtime runs through ttnn's golden functions (ttspec/runtime/golden.py stands in for `ttnn`, as in golden mode)
on one chip and with the experts over 8 simulated chips (T3K, 1x8: each chip its experts, then the reduce_scatter
the decoder emits after an MLP), at decode (32 users) and prefill (96 positions: three 32-row chunks) shapes.

The program computes in bf16 where HF computes in fp32 (on the same bf16-rounded weights and inputs): a token
whose k-th and (k+1)-th routing probabilities are closer than bf16's resolution may pick another expert. Each
test counts those tokens (HF's top-k set against the experts the program gave a nonzero weight) and holds the
whole output to PCC >= 0.99; the counts measured are stated beside each case."""

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("ttnn")

from transformers.models.mixtral.configuration_mixtral import MixtralConfig  # noqa: E402
from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock  # noqa: E402
from transformers.models.olmoe.configuration_olmoe import OlmoeConfig  # noqa: E402
from transformers.models.olmoe.modeling_olmoe import OlmoeSparseMoeBlock  # noqa: E402
from transformers.models.qwen2_moe.configuration_qwen2_moe import Qwen2MoeConfig  # noqa: E402
from transformers.models.qwen2_moe.modeling_qwen2_moe import Qwen2MoeSparseMoeBlock  # noqa: E402
from transformers.models.qwen3_moe.configuration_qwen3_moe import Qwen3MoeConfig  # noqa: E402
from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeSparseMoeBlock  # noqa: E402

from ttspec.backends.common.printer import print_expr  # noqa: E402
from ttspec.backends.ttnn.configs.moe import moe_configs  # noqa: E402
from ttspec.backends.ttnn.rt import mesh, moe, weights  # noqa: E402
from ttspec.runtime.golden import GoldenTTNN  # noqa: E402
from ttspec.targets import TARGETS  # noqa: E402

from .moe_placement import place  # noqa: E402
from .numerics import pcc  # noqa: E402

DIM, HIDDEN = 128, 64

# family -> (HF block, its config, the contract's routing: softmax, normalize; shared expert width, gated)
FAMILIES = {
    "mixtral": (MixtralSparseMoeBlock, MixtralConfig(hidden_size=DIM, intermediate_size=HIDDEN, num_local_experts=8,
                                                     num_experts_per_tok=2), "before", True, None),
    "qwen2_moe": (Qwen2MoeSparseMoeBlock, Qwen2MoeConfig(hidden_size=DIM, moe_intermediate_size=HIDDEN,
                                                         num_experts=12, num_experts_per_tok=4, norm_topk_prob=False,
                                                         shared_expert_intermediate_size=256), "before", False, 256),
    "olmoe": (OlmoeSparseMoeBlock, OlmoeConfig(hidden_size=DIM, intermediate_size=HIDDEN, num_experts=16,
                                               num_experts_per_tok=4, norm_topk_prob=False), "before", False, None),
    "qwen3_moe": (Qwen3MoeSparseMoeBlock, Qwen3MoeConfig(hidden_size=DIM, moe_intermediate_size=HIDDEN, num_experts=16,
                                                         num_experts_per_tok=4, norm_topk_prob=True),
                  "before", True, None),
}


def hf_block(family: str, seed: int):
    """The HF block with random weights rounded to bf16 (the program's weights), and ttspec's names for them
    (the MoE contract: router [E, d], experts.w1 / w3 [E, I, d], experts.w2 [E, d, I], the shared expert's
    swiglu w1 / w3 / w2 and its gate [1, d])."""
    cls, config, *_ = FAMILIES[family]
    torch.manual_seed(seed)
    block = cls(config).float().eval()
    with torch.no_grad():
        for p in block.parameters():  # HF initialises some routers to zeros: draw every weight
            p.copy_((torch.randn_like(p) * p.shape[-1] ** -0.5).bfloat16().float())
    hidden = block.experts.down_proj.shape[-1]
    names = {"moe.router.weight": block.gate.weight,
             "moe.experts.w1": block.experts.gate_up_proj[:, :hidden],
             "moe.experts.w3": block.experts.gate_up_proj[:, hidden:],
             "moe.experts.w2": block.experts.down_proj}
    if getattr(block, "shared_expert", None) is not None:
        for ours, theirs in (("w1", "gate_proj"), ("w3", "up_proj"), ("w2", "down_proj")):
            names[f"moe.shared_expert.{ours}.weight"] = getattr(block.shared_expert, theirs).weight
        names["moe.shared_expert_gate.weight"] = block.shared_expert_gate.weight
    return block, {k: v.detach().clone().contiguous() for k, v in names.items()}


def hf_choice(block, x: torch.Tensor) -> torch.Tensor:
    """HF's top-k experts per token as a [T, E] bool mask (its router, in fp32)."""
    _, _, indices = block.gate(x)
    return torch.zeros(x.shape[0], block.gate.weight.shape[0], dtype=torch.bool).scatter(1, indices, True)


@pytest.fixture
def golden(monkeypatch):
    stand_in = GoldenTTNN()
    for module in (mesh, weights, moe):
        monkeypatch.setattr(module, "ttnn", stand_in)
    return stand_in


def open_mesh(monkeypatch, golden, shape):
    for module in (mesh, weights, moe):
        monkeypatch.setattr(module, "MESH_SHAPE", shape)
    return mesh.open_device()


def ops_for(golden, mode, seq, *, experts, devices, shared):
    """The configs the lowering would state for this block (configs/moe.py), rendered and evaluated as the
    generated program evaluates them: chunk rows -> MoEOps."""
    shape = dict(dim=DIM, hidden=HIDDEN, experts=experts, devices=devices, weight_format="bf16",
                 target=TARGETS["n150"], shared=shared)
    scope = {"ttnn": golden, "MoEOps": moe.MoEOps, "dict": dict}
    return {rows: eval(print_expr(config.code()), scope) for rows, config in moe_configs(mode, seq, **shape).items()}


def run(golden, monkeypatch, family, rows, devices, seed=0):
    """(program output [T, d] float, HF output [T, d], tokens whose chosen experts differ from HF's, T)."""
    block, tensors = hf_block(family, seed)
    _, config, softmax, normalize, shared = FAMILIES[family]
    experts, top_k = tensors["moe.router.weight"].shape[0], config.num_experts_per_tok
    device = open_mesh(monkeypatch, golden, (1, devices))
    layer = place(weights, moe, tensors, device, experts, devices, shared)
    ops = ops_for(golden, "decode" if rows == 32 else "prefill", rows, experts=experts, devices=devices,
                  shared=shared)
    x = torch.randn(rows, DIM, generator=torch.Generator().manual_seed(seed + 1)).bfloat16().float()
    placed = golden.from_torch(x[None, None], dtype=golden.bfloat16, device=device, mesh_mapper=mesh.shard(device))
    y = moe.moe_block(placed, layer, top_k=top_k, softmax=softmax, normalize=normalize, ops=ops)
    if devices > 1:  # each chip's partial sum, added up as the decoder adds an MLP's (1-D TP: reduce_scatter)
        y = golden.reduce_scatter(y, dim=-1, cluster_axis=1)
        got = torch.cat(y.shards, dim=-1)
    else:
        got = y.shards[0]
    ours = moe.moe_route(placed, layer.router, top_k=top_k, softmax=softmax, normalize=normalize, mask=layer.mask,
                     router_op=ops[min(ops)].router, softmax_op=ops[min(ops)].softmax, memory_config=None).shards[0]
    chosen = ours[0, 0, :, :experts] != 0
    with torch.no_grad():
        expected = block(x[None])[0]
    flips = int((chosen != hf_choice(block, x)).any(dim=-1).sum())
    return got[0, 0].float(), expected, flips, rows


# Measured (torch 2.14.1, this machine), tokens whose top-k set differs from HF's fp32 router: Qwen1.5-MoE-shaped
# (12 experts, top 4, not renormalised) 2 of 32 decode rows and 3 of 96 prefill rows, PCC 0.9989 / 0.9996; the
# Mixtral-, OLMoE- and Qwen3-MoE-shaped blocks none, PCC >= 0.99998. One chip and 8 chips route identically (every
# chip runs the same replicated router and top-k), so their counts and PCCs agree.


@pytest.mark.parametrize("devices", [1, 8])
@pytest.mark.parametrize("rows", [32, 96])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_moe_equals_hf_block(golden, monkeypatch, family, rows, devices):
    got, expected, flips, tokens = run(golden, monkeypatch, family, rows, devices)
    print(f"{family} rows={rows} devices={devices}: pcc {pcc(got, expected):.5f}, {flips}/{tokens} tokens route "
          "differently from HF")
    assert got.shape == expected.shape
    assert pcc(got, expected) >= 0.99
    assert flips <= tokens // 10  # bf16 routing: a few near-ties at most


@pytest.mark.parametrize("family", ["mixtral", "qwen2_moe"])
def test_the_lowerings_entry_splits_experts_over_a_mesh(golden, monkeypatch, family):
    """moe_experts, as a generated program calls it (the router a linear of its own, rank-3 rows, routing weights
    E wide): with the experts split over 8 chips and each chip's selector (the routing zero-padded to whole tiles
    first), the chips' partial sums add up to the one-chip result within bf16 (PCC >= 0.9999)."""
    block, tensors = hf_block(family, seed=2)
    _, config, softmax, normalize, _ = FAMILIES[family]
    experts = tensors["moe.router.weight"].shape[0]
    x = torch.randn(1, 32, DIM, generator=torch.Generator().manual_seed(5)).bfloat16().float()
    results = []
    for devices in (1, 8):
        device = open_mesh(monkeypatch, golden, (1, devices))
        w = weights.Weights(tensors, device)
        split = "experts" if devices > 1 else None
        bank = tuple(w.experts("moe.experts", m, split=split) for m in ("w1", "w3", "w2"))
        ops = ops_for(golden, "decode", 32, experts=experts, devices=devices, shared=None)
        placed = golden.from_torch(x, dtype=golden.bfloat16, device=device, mesh_mapper=mesh.shard(device))
        logits = golden.linear(placed, w.linear("moe.router"))
        routing = moe.moe_routing_weights(logits, top_k=config.num_experts_per_tok, softmax=softmax,
                                          normalize=normalize, softmax_op=ops[32].softmax, memory_config=None)
        y = moe.moe_experts(placed, routing, bank, ops=ops,
                            selector=moe.moe_selector(device, experts) if devices > 1 else None)
        results.append(torch.stack(y.shards).float().sum(0))  # the all-reduce of the partial sums
    assert results[0].shape == results[1].shape == (1, 32, DIM)
    assert pcc(results[1], results[0]) >= 0.9999
    with torch.no_grad():  # HF's routed experts alone (Qwen2-MoE's shared expert is a block of its own here)
        _, top_weights, top_indices = block.gate(x[0])
        assert pcc(results[0][0], block.experts(x[0], top_indices, top_weights)) >= 0.99


@pytest.mark.parametrize("softmax,normalize", [("before", False), ("before", True), ("after", False)])
def test_routing_ties_go_to_the_lowest_index_and_weights_follow_the_contract(golden, softmax, normalize):
    """The MoE contract's closed forms: with every logit equal, the top 2 of 8 are experts 0 and 1 (ties: lowest
    index first); their weights are 1/8 each (softmax over all 8, kept as they are), 1/2 (renormalised), or 1/2
    (softmax over the 2 kept); every other expert weighs 0."""
    logits = torch.zeros(1, 1, 32, 8)
    logits[0, 0, 5] = torch.tensor([0.0, 1.0, 1.0, 3.0, 0.0, 0.0, 0.0, 0.0])  # one row of distinct values
    ops = ops_for(golden, "decode", 32, experts=8, devices=1, shared=None)
    got = moe.moe_routing_weights(logits.bfloat16(), top_k=2, softmax=softmax, normalize=normalize,
                                  softmax_op=ops[32].softmax, memory_config=None).float()
    tied = 1 / 8 if softmax == "before" and not normalize else 1 / 2
    expected = torch.zeros(1, 1, 32, 8)
    expected[..., :2] = tied
    # row 5: expert 3 (logit 3) and the first of the tied experts 1 and 2
    row = torch.softmax(logits[0, 0, 5], -1)
    expected[0, 0, 5] = 0
    if softmax == "before" and not normalize:
        expected[0, 0, 5, 3], expected[0, 0, 5, 1] = row[3], row[1]
    else:
        pair = torch.softmax(torch.tensor([3.0, 1.0]), -1)
        expected[0, 0, 5, 3], expected[0, 0, 5, 1] = pair[0], pair[1]
    torch.testing.assert_close(got, expected, rtol=2 ** -7, atol=2 ** -9)
