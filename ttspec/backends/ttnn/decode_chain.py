"""tt_transformers' decode attention chain: where it serves (`decode_chain`), read by the attention lowerings
(lower.py) and by the DRAM-sharded layer plan (lower_matmul.py), whose wo reads the chain's sharded heads."""

from __future__ import annotations

from ...ops import (
    ALL_GATHER,
    ALL_REDUCE,
    APPLY_ROPE,
    ATTEND,
    LINEAR,
    MERGE_HEADS,
    QKV_PART,
    REDUCE_SCATTER,
    SPLIT_QKV_HEADS,
)
from ...ops.attention import rotary_dims
from ...targets import TILE


# ---------------------------------------------------------------- per-op facts the sharding pass records
def held_heads(count: int | None, whole: int) -> int:
    """Heads one device holds as the sharding pass annotated the node (Node.shard), or all of them."""
    return whole if count is None else count


def local_heads(node) -> int:
    return held_heads(node.shard.local_heads, node.attrs.heads)


def local_kv_heads(node) -> int:
    return held_heads(node.shard.local_kv_heads, node.attrs.kv_heads)


CHAIN_COLLECTIVES = {ALL_GATHER.name, ALL_REDUCE.name, REDUCE_SCATTER.name}


def _projection_of(split, graph):
    """The fused QKV linear a split reads, through the collectives between them (a 2-D mesh all-reduces it)."""
    source = graph.node(split.inputs[0])
    while source.op in CHAIN_COLLECTIVES:
        source = graph.node(source.inputs[0])
    return source if source.op == LINEAR.name and source.attrs.fused is not None else None


def decode_chain(node, graph):
    """The fused-QKV split that starts tt_transformers' decode attention chain through `node` (the split, a
    rotary, the attend or the merge of heads after it), or None where the chain does not serve: the heads
    must be whole tiles, q and k go straight to full-width RoPE, both into one causal attention without
    softcap whose output only merge_heads reads. Then decode runs nlp_create_qkv_heads_decode ->
    rotary_embedding_llama(is_decode_mode=True) -> paged_update_cache -> scaled_dot_product_attention_decode ->
    nlp_concat_heads_decode, every head tensor one user per core."""
    for step in (MERGE_HEADS, ATTEND, APPLY_ROPE, QKV_PART):  # back along the chain to the split
        if node.op == step.name:
            node = graph.node(node.inputs[0])
    return node if node.op == SPLIT_QKV_HEADS.name and _chain_serves(node, graph) else None


def _chain_serves(split, graph) -> bool:
    head_dim = split.type.shape[-1]
    if head_dim % TILE or _projection_of(split, graph) is None:
        return False
    parts = {graph.node(u).attrs.index: graph.node(u) for u in graph.users[split.id]
             if graph.node(u).op == QKV_PART.name}
    k, v = parts.get(1), parts.get(2)
    if k is None or v is None:
        return False
    q_users = [u for u in graph.users[split.id] if graph.node(u).op != QKV_PART.name]
    k_users, v_users = graph.users[k.id], graph.users[v.id]
    if len(q_users) != 1 or len(k_users) != 1 or len(v_users) != 1:
        return False
    q_rope, k_rope = graph.node(q_users[0]), graph.node(k_users[0])
    if q_rope.op != APPLY_ROPE.name or k_rope.op != APPLY_ROPE.name or q_rope.attrs.rope != k_rope.attrs.rope:
        return False
    if rotary_dims(head_dim, q_rope.attrs.rope) != head_dim or local_heads(split) > TILE:
        return False
    # the chain's RoPE rotates adjacent pairs; a rotate-half spec gets its q and k rows permuted at load and
    # its prefill Rotary turned to adjacent pairs too, so no other rotary of that config may share the class
    same = [n for n in graph.nodes.values() if n.op == APPLY_ROPE.name and n.attrs.rope == q_rope.attrs.rope]
    if len(same) != 2:
        return False
    attends = {u for r in (q_rope, k_rope) for u in graph.users[r.id]} | set(v_users)
    if len(attends) != 1:
        return False
    attend = graph.node(attends.pop())
    if attend.op != ATTEND.name or attend.attrs.softcap is not None or not attend.attrs.causal:
        return False
    if list(attend.inputs) != [q_rope.id, k_rope.id, v.id]:
        return False
    readers = graph.users[attend.id]
    return len(readers) == 1 and graph.node(readers[0]).op == MERGE_HEADS.name


def pairs_permuted(split, graph) -> bool:
    """Whether the chain's q and k rows are permuted at load (a rotate-half RoPE run on adjacent pairs)."""
    return dict(_rope_of(split, graph).fields)["style"] == "half"


def _rope_of(split, graph):
    return next(graph.node(u) for u in graph.users[split.id] if graph.node(u).op == APPLY_ROPE.name).attrs.rope
