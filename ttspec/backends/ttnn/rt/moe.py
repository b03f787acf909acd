"""Mixture of experts on TT-NN, computed densely from ops that have ttnn goldens: the router's linear, topk,
softmax (before or after the top-k, renormalised or not), a scatter into dense routing weights [1, 1, T, E]
(zero for the experts a token does not use), every local expert's gated MLP as batched matmuls
[1, E, T, d] x [1, E, d, I], and the routing-weighted sum over the experts; plus the shared expert
(Qwen-MoE), optionally behind a sigmoid gate. T is a tile's 32 users in decode, a prompt's padded positions
(in chunks of rows) in prefill.

On a mesh the experts are split over the tensor-parallel axis as tt-metal runs Mixtral on T3K: every chip
routes every token (the router is replicated), keeps the routing weights of its own experts (a one-hot
`selector` [E, E_local] per chip, so all chips agree on the top-k and a token's weight for another chip's
expert is simply absent), runs its experts and returns a partial sum [1, 1, T, d] that the MLP output's
reduce_scatter (or all_reduce) adds up, as for a row-parallel w2. E not divisible by the chips: each holds
ceil(E / chips) experts, the last ones zero experts that no selector column reaches (Weights.experts pads).

Each function takes the ops' configurations (an `OpConfig`-like record per heavy op: memory_config,
program_config, compute_kernel_config), which the generated class states as members with comments
(backends/ttnn/configs/moe.py chooses them); nothing is chosen here.
"""

import torch
import ttnn

from .header import MESH_SHAPE, TP_AXIS
from .mesh import shard

# ttspec's activation names -> the unary op ttnn.mul applies to its first operand
MOE_ACTIVATIONS = {"silu": ttnn.UnaryOpType.SILU, "gelu": ttnn.UnaryOpType.GELU, "relu": ttnn.UnaryOpType.RELU}


def moe_route(x, router, *, top_k, softmax="before", normalize=False, router_op, softmax_op, memory_config, mask=None):
    """Dense routing weights [1, 1, T, E] of x [1, 1, T, d] (bf16, zero for unchosen experts): router logits
    (x @ router, router [d, E] bias-free), then with softmax="before" the probabilities over all experts, the
    top_k kept (renormalised to sum 1 with `normalize`: Mixtral, Qwen3-MoE); with "after", softmax over the
    top_k logits. Ties: lowest index first (topk's stable network). `router_op` / `softmax_op`: the router
    matmul's and the softmax's configs. `mask` [1, E_padded] (router_mask): on a mesh the router's columns are
    zero-padded to whole tiles (the selector's K) and the padding's logits pushed to MOE_MASKED, so that softmax
    gives them zero and topk never picks them."""
    logits = ttnn.linear(x, router, bias=mask, **router_op)
    return moe_routing_weights(logits, top_k=top_k, softmax=softmax, normalize=normalize, softmax_op=softmax_op,
                               memory_config=memory_config)


def moe_routing_weights(logits, *, top_k, softmax="before", normalize=False, softmax_op, memory_config,
                        experts=None):
    """Router logits [..., E] -> dense routing weights [..., E] (the registry's topk_routing; see moe_route).
    `experts`: E as the program states it (checked: the device ops topk and scatter dispatch depend on it, and the
    cost model's walk of the program reads it there, program_calls.routing_parts)."""
    if experts is not None and logits.shape[-1] != experts:
        raise ValueError(f"the router's logits are {logits.shape[-1]} wide, the program states {experts} experts")
    if softmax == "before":
        values, indices = ttnn.topk(ttnn.softmax(logits, dim=-1, **softmax_op), top_k, dim=-1, largest=True,
                                    sorted=True, stable=True, memory_config=memory_config)
        if normalize:
            values = ttnn.div(values, ttnn.sum(values, dim=-1, keepdim=True, memory_config=memory_config),
                              memory_config=memory_config)
    elif softmax == "after":
        values, indices = ttnn.topk(logits, top_k, dim=-1, largest=True, sorted=True, stable=True,
                                    memory_config=memory_config)
        values = ttnn.softmax(values, dim=-1, **softmax_op)
    else:
        raise ValueError(f"softmax is 'before' or 'after', got {softmax!r}")
    zeros = ttnn.zeros_like(logits, memory_config=memory_config)
    return ttnn.scatter(zeros, -1, indices, values, memory_config=memory_config)


def moe_local_routing(routing, selector, *, selector_op):
    """The routing weights of this chip's experts, [1, 1, T, E_local]: dense [1, 1, T, E_padded] times its
    one-hot selector [E_padded, E_local] (exact: each output is one weight times 1, at HiFi4). Without a
    selector (one chip, or every chip holding every expert) the dense weights themselves."""
    if selector is None:
        return routing
    return ttnn.matmul(routing, selector, **selector_op)


def moe_experts_dense(x, routing, w1, w3, w2, *, act="silu", gate_op, up_op, down_op, memory_config, sum_op):
    """sum_e routing[.., e] * w2_e(act(w1_e x) * w3_e x) over this chip's experts: x [1, 1, T, d], routing
    [1, 1, T, E_local], w1 / w3 [1, E_local, d, I], w2 [1, E_local, I, d] (Weights.experts) -> [1, 1, T, d].
    Every expert computes every row (dense compute); the rows of a token that did not choose it are weighted
    by zero. `gate_op` / `up_op` / `down_op`: the batched matmuls' configs; `sum_op`: the reduction's."""
    local = w1.shape[1]
    rows = ttnn.repeat(x, ttnn.Shape([1, local, 1, 1]), memory_config=memory_config)  # [1, E_local, T, d]
    gate = ttnn.matmul(rows, w1, **gate_op)
    up = ttnn.matmul(rows, w3, **up_op)
    hidden = ttnn.mul(gate, up, input_tensor_a_activations=[MOE_ACTIVATIONS[act]], memory_config=memory_config)
    y = ttnn.matmul(hidden, w2, **down_op)  # [1, E_local, T, d]
    weights = ttnn.permute(routing, (0, 3, 2, 1), memory_config=memory_config)  # [1, E_local, T, 1]
    y = ttnn.mul(y, weights, memory_config=memory_config)
    return ttnn.sum(y, dim=1, keepdim=True, **sum_op)


def moe_experts(x, routing, bank, *, act="silu", ops, selector=None):
    """The registry's expert_glu as a generated program calls it: x [..., T, d] and dense routing weights
    [..., T, E] (moe_routing_weights) -> [..., T, d]; `bank`: the placed (w1, w3, w2) (Weights.experts). The
    rows fold to [1, 1, rows, d] and run in one pass with the smallest config of `ops` (chunk rows -> MoEOps,
    largest first) that holds them all (decode: up to 32 users), else in chunks of the largest size that divides
    them (prefill); `selector`: this chip's (moe_selector) where the experts are split over a mesh (its output
    then a partial sum)."""
    shape = tuple(x.shape)
    rows = 1
    for size in shape[:-1]:
        rows *= size
    x = ttnn.reshape(x, (1, 1, rows, shape[-1]))
    routing = ttnn.reshape(routing, (1, 1, rows, routing.shape[-1]))
    width = routing.shape[-1]
    if selector is not None and width != moe_padded_experts(width):  # the selector's K: whole tiles, zero padding
        routing = ttnn.pad(routing, [(0, 0), (0, 0), (0, 0), (0, moe_padded_experts(width) - width)], value=0.0,
                           memory_config=next(iter(ops.values())).memory)
    fits = [c for c in ops if c >= rows]  # one pass (decode: the users, up to a tile's 32 rows)
    chunk = min(fits) if fits else next(c for c in ops if rows % c == 0)
    parts = []
    for start in range(0, rows, chunk):
        # (one pass, the main path, first: the cost model's program walk takes a conditional's first branch)
        xs = x if chunk >= rows else ttnn.slice(x, (0, 0, start, 0), (1, 1, start + chunk, x.shape[-1]))
        rs = routing if chunk >= rows else ttnn.slice(routing, (0, 0, start, 0),
                                                      (1, 1, start + chunk, routing.shape[-1]))
        op = ops[chunk]
        parts.append(moe_experts_dense(xs, moe_local_routing(rs, selector, selector_op=op.selector), *bank,
                                       act=act, gate_op=op.gate, up_op=op.up, down_op=op.down,
                                       memory_config=op.memory, sum_op=op.combine))
    y = parts[0] if len(parts) == 1 else ttnn.concat(parts, dim=2, memory_config=ops[chunk].memory)
    return ttnn.reshape(y, shape)


def moe_shared_expert(x, w1, w3, w2, gate=None, *, act="silu", gate_op, up_op, down_op, memory_config, router_op=None):
    """The shared expert (Qwen-MoE): w2(act(w1 x) * w3 x) with ttnn.linear's [in, out] weights (a mesh splits
    w1 / w3 by columns and w2 by rows: a partial sum, as the experts'), times sigmoid(x @ gate) ([d, 1],
    replicated: the same factor on every chip's partial sum) where the spec gates it."""
    hidden = ttnn.mul(ttnn.linear(x, w1, **gate_op), ttnn.linear(x, w3, **up_op),
                      input_tensor_a_activations=[MOE_ACTIVATIONS[act]], memory_config=memory_config)
    y = ttnn.linear(hidden, w2, **down_op)
    if gate is None:
        return y
    return ttnn.mul(y, ttnn.sigmoid(ttnn.linear(x, gate, **router_op), memory_config=memory_config),
                    memory_config=memory_config)


def moe_block(x, layer, *, top_k, softmax="before", normalize=False, act="silu", ops):
    """One MoE block on x [1, 1, T, d] -> [1, 1, T, d] (on a mesh: this chip's partial sum, which the caller
    reduces as it reduces an MLP's output). `layer`: the placed weights (MoEWeights); `ops`: chunk rows ->
    the configs of one mode (MoEOps), largest first: decode has one tile of users; prefill runs the rows in
    chunks of the largest size that divides them (dense compute holds E_local copies of a chunk's rows)."""
    rows = x.shape[-2]
    fits = [c for c in ops if c >= rows]
    chunk = min(fits) if fits else next(c for c in ops if rows % c == 0)
    if rows <= chunk:
        return _moe_rows(x, layer, top_k, softmax, normalize, act, ops[chunk])
    outputs = []
    for start in range(0, rows, chunk):
        part = ttnn.slice(x, (0, 0, start, 0), (1, 1, start + chunk, x.shape[-1]))
        outputs.append(_moe_rows(part, layer, top_k, softmax, normalize, act, ops[chunk]))
    y = ttnn.concat(outputs, dim=2, memory_config=ops[chunk].memory)
    for part in outputs:
        ttnn.deallocate(part)
    return y


def _moe_rows(x, layer, top_k, softmax, normalize, act, ops):
    routing = moe_route(x, layer.router, top_k=top_k, softmax=softmax, normalize=normalize, router_op=ops.router,
                    softmax_op=ops.softmax, memory_config=ops.memory, mask=layer.mask)
    routing = moe_local_routing(routing, layer.selector, selector_op=ops.selector)
    y = moe_experts_dense(x, routing, layer.w1, layer.w3, layer.w2, act=act, gate_op=ops.gate, up_op=ops.up,
                down_op=ops.down, memory_config=ops.memory, sum_op=ops.combine)
    if layer.shared is None:
        return y
    w1, w3, w2 = layer.shared
    shared = moe_shared_expert(x, w1, w3, w2, layer.shared_gate, act=act, gate_op=ops.shared_w1,
                           up_op=ops.shared_w3, down_op=ops.shared_w2, memory_config=ops.memory,
                           router_op=ops.router)
    return ttnn.add(y, shared, memory_config=ops.memory)


class MoEWeights:
    """One MoE block's device weights: router [d, E] (replicated; on a mesh [d, E_padded] with its mask and each
    chip's selector [E_padded, E_local], else None), the experts' w1 / w3 [1, E_local, d, I] and w2
    [1, E_local, I, d] (split over TP_AXIS by expert), the shared expert's (w1, w3, w2) linear operands or None,
    and its gate [d, 1] or None."""

    def __init__(self, router, w1, w3, w2, *, mask=None, selector=None, shared=None, shared_gate=None):
        self.router, self.mask, self.selector = router, mask, selector
        self.w1, self.w3, self.w2 = w1, w3, w2
        self.shared, self.shared_gate = shared, shared_gate


class MoEOps:
    """The configs of one mode's MoE ops, each a dict of the keywords its op call takes (memory_config,
    program_config, compute_kernel_config): router (also the shared expert's sigmoid gate, a [d, 1] linear),
    softmax, selector, the experts' gate / up / down batched matmuls, combine (their sum over experts), the shared
    expert's w1 / w3 / w2 linears;
    `memory`: where the small tensors between them live; `rows`: the most rows one pass computes."""

    def __init__(self, *, rows, memory, gate, up, down, combine, router=None, softmax=None, selector=None,
                 shared_w1=None, shared_w3=None, shared_w2=None):
        self.rows, self.memory = rows, memory
        self.router, self.softmax, self.selector, self.combine = router, softmax, selector, combine
        self.gate, self.up, self.down = gate, up, down
        self.shared_w1, self.shared_w3, self.shared_w2 = shared_w1, shared_w3, shared_w2


MOE_MASKED = -1e9  # the router logit of a padding column: exp underflows to exactly 0, topk ranks it last


def moe_padded_experts(experts_count):
    """E rounded up to whole tiles: the router's width on a mesh, the selector's K."""
    return -(-experts_count // 32) * 32


def moe_experts_per_device(experts_count, devices=None):
    """Experts each chip of the tensor-parallel axis holds: ceil(E / chips) (the last chips' extra slots are
    zero experts)."""
    devices = MESH_SHAPE[TP_AXIS] if devices is None else devices
    return -(-experts_count // devices)


def moe_selector_matrix(experts_count, devices):
    """[devices * E_padded, E_local]: chip i's rows map global expert e to its local slot e - i * E_local where
    chip i holds e (e // E_local == i), else nothing (a zero row; padding rows are zero): sharded on dim 0,
    each chip gets its own one-hot [E_padded, E_local]."""
    local, padded = moe_experts_per_device(experts_count, devices), moe_padded_experts(experts_count)
    selector = torch.zeros(devices, padded, local)
    for e in range(experts_count):
        selector[e // local, e, e % local] = 1.0
    return selector.reshape(devices * padded, local)


def moe_selector(device, experts_count):
    """Each chip's one-hot selector [E_padded, E_local] on the device (moe_selector_matrix split over TP_AXIS)."""
    dims = [None, None]
    dims[TP_AXIS] = 0
    return ttnn.from_torch(moe_selector_matrix(experts_count, MESH_SHAPE[TP_AXIS]), dtype=ttnn.bfloat16,
                           layout=ttnn.TILE_LAYOUT, device=device, memory_config=ttnn.DRAM_MEMORY_CONFIG,
                           mesh_mapper=shard(device, dims))


def moe_router_mask(device, experts_count):
    """[1, E_padded]: 0 on the experts, MOE_MASKED on the padding columns; added to the router's logits (its bias)."""
    mask = torch.zeros(1, moe_padded_experts(experts_count))
    mask[:, experts_count:] = MOE_MASKED
    return ttnn.from_torch(mask, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device,
                           memory_config=ttnn.DRAM_MEMORY_CONFIG, mesh_mapper=shard(device))
