"""How the TT-NN lowering places one MoE block's weights (ttspec/backends/ttnn/rt/moe.py, docs/design-moe.md),
shared by tests/test_moe_runtime.py (golden) and tests/mock_moe_script.py (mock device): on a mesh the router
zero-padded to whole tiles with its mask and each chip's selector, the experts split over the chips, the
shared expert as an MLP (w1 / w3 by columns, w2 by rows), its gate replicated. Names: the MoE contract's."""


def place(weights, moe, tensors, device, experts, devices, shared, dtype=None):
    w = weights.Weights(tensors, device)
    split = "experts" if devices > 1 else None
    layer = moe.MoEWeights(
        w.linear("moe.router", rows=moe.moe_padded_experts(experts) if devices > 1 else None),
        *(w.experts("moe.experts", m, split=split, dtype=dtype) for m in ("w1", "w3", "w2")),
        mask=moe.moe_router_mask(device, experts) if devices > 1 else None,
        selector=moe.moe_selector(device, experts) if devices > 1 else None)
    if shared:
        column, row = ("column", "row") if devices > 1 else (None, None)
        layer.shared = tuple(w.linear(f"moe.shared_expert.{m}", split=s, dtype=dtype)
                             for m, s in (("w1", column), ("w3", column), ("w2", row)))
        layer.shared_gate = w.linear("moe.shared_expert_gate")
    return layer


def shapes(dim, hidden, experts, shared=None):
    """ttspec's names and shapes of one MoE block's weights."""
    out = {"moe.router.weight": (experts, dim), "moe.experts.w1": (experts, hidden, dim),
           "moe.experts.w3": (experts, hidden, dim), "moe.experts.w2": (experts, dim, hidden)}
    if shared:
        out.update({"moe.shared_expert.w1.weight": (shared, dim), "moe.shared_expert.w3.weight": (shared, dim),
                    "moe.shared_expert.w2.weight": (dim, shared), "moe.shared_expert_gate.weight": (1, dim)})
    return out
