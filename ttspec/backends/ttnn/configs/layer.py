"""One decoder layer's decode configurations, chosen together so that they chain: each norm writes
the layout the matmul after it reads (tt_transformers: the attention norm on the QKV input grid, the
MLP norm on the MLP grid, the final norm on the LM-head grid). Shapes are one chip's under 1-D tensor
parallelism over `devices` chips (column-parallel QKV, w1/w3 and head; row-parallel wo and w2)."""

from __future__ import annotations

from ....targets import TILE, Target
from ...common.pyast import Node
from .decode import (
    DecodeMatmul,
    DecodeNorm,
    DecodeSDPA,
    LMHead,
    attention_matmul,
    decode_matmul,
    decode_norm,
    decode_sdpa,
    lm_head_chunks,
)
from .rules import ConfigError, Precision, Role, performance_preset


class DecodeLayer(Node):
    """The decode configurations of one chip: w3 takes w1's (same shapes, same format)."""

    attn_norm: DecodeNorm
    wqkv: DecodeMatmul
    sdpa: DecodeSDPA
    wo: DecodeMatmul
    mlp_norm: DecodeNorm
    w1: DecodeMatmul
    w2: DecodeMatmul
    final_norm: DecodeNorm
    head: LMHead


def decode_layer(dim: int, heads: int, kv_heads: int, head_dim: int, hidden: int, vocab: int, target: Target, *,
                 devices: int = 1, users: int = TILE, precision: dict[Role, Precision] | None = None) -> DecodeLayer:
    """The configurations of a Llama-style decoder layer and LM head on one of `devices` chips."""
    if heads % devices or kv_heads % devices or hidden % devices:
        raise ConfigError(f"{heads} heads, {kv_heads} KV heads and MLP width {hidden} must divide over "
                          f"{devices} chips")
    chosen = precision or performance_preset()

    def options(role: Role) -> dict:
        return {"role": role, "compute": chosen[role].compute}

    qkv = attention_matmul(dim, (heads + 2 * kv_heads) * head_dim // devices, chosen["wqkv"].dtype, target,
                           **options("wqkv"))
    wo = attention_matmul(heads * head_dim // devices, dim, chosen["wo"].dtype, target, **options("wo"))
    w1 = decode_matmul(dim, hidden // devices, chosen["ff1_ff3"].dtype, target, **options("ff1_ff3"))
    w2 = decode_matmul(hidden // devices, dim, chosen["ff2"].dtype, target, **options("ff2"))
    head = lm_head_chunks(dim, vocab, chosen["lm_head"].dtype, target, devices=devices,
                          compute=chosen["lm_head"].compute)
    return DecodeLayer(
        attn_norm=decode_norm(dim, target, m=users, cores=qkv.cores), wqkv=qkv,
        sdpa=decode_sdpa(heads // devices, head_dim, users, target), wo=wo,
        mlp_norm=decode_norm(dim, target, m=users, cores=w1.cores), w1=w1, w2=w2,
        final_norm=decode_norm(dim, target, m=users, cores=head.matmuls[0].cores), head=head)
