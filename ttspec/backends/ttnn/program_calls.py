"""The calls the program walkers (decode_facts.py, prefill_facts.py) know, and their refusal of any other: a call
they cannot price is an error naming it, never a guess (a program priced wrongly is worse than one not priced).

DEVICE_CALLS are the ttnn calls the TT-NN programs this backend writes dispatch as one device op each (checked
against the mock device's capture in tests/test_decode_capture.py); decode_facts.NOT_DEVICE those that dispatch
none, decode_facts.COMPOSITES those that dispatch several. A lowering that emits a new ttnn call adds it to one of
them (tests/test_facts_walk.py refuses a program with a call in none)."""

from __future__ import annotations

import ast

DEVICE_CALLS = frozenset({
    "add", "mul", "silu", "gelu", "typecast", "permute", "untilize", "slice", "concat", "embedding", "argmax", "max",
    "linear", "matmul", "rms_norm", "layer_norm", "rms_norm_pre_all_gather", "rms_norm_post_all_gather",
    "to_memory_config", "sharded_to_interleaved", "reshape", "fill_cache",
    "all_gather", "reduce_scatter", "mesh_partition",
    "experimental.nlp_concat_heads_decode", "experimental.nlp_create_qkv_heads_decode",
    "experimental.paged_update_cache", "experimental.rotary_embedding_llama",
    "transformer.concatenate_heads", "transformer.scaled_dot_product_attention",
    "transformer.scaled_dot_product_attention_decode", "transformer.split_query_key_value_and_split_heads",
    # the MoE runtime's (rt/moe.py), one device op each on the mock: SoftmaxDeviceOperation, BinaryNg (div),
    # Unary (zeros_like, sigmoid), RepeatCodegen, Pad; sum over a dim not the last (reduction_parts)
    "softmax", "div", "zeros_like", "sigmoid", "repeat", "pad", "sum",
    # softcapping (Gemma 2): x * (1 / cap), tanh, * cap: BinaryNg and Unary, one each
    "multiply", "tanh",
    # GQA heads repeated for a composed (softcapped) attention: one RepeatDeviceOperation each
    "repeat_interleave",
})

# ttnn calls of the MoE routing that dispatch several device ops, which depend on the router's width E (the
# `experts` the program passes moe_routing_weights): routing_parts.
ROUTING_CALLS = ("topk", "scatter")
TOPK_NETWORK = 64  # the narrowest row topk sorts: a narrower one is padded to it


def routing_parts(call: str, experts: int) -> tuple[str, ...]:
    """The device ops of the MoE routing's ttnn `call` (topk or scatter) over E = `experts` columns, as the mock
    n150's capture of moe-tiny's decode step and prefill shows them at E = 8, 32, 48, 60, 64, 96, 128 (ttnn 0.81.1;
    tests/test_walk_programs.py): topk fills the padding columns of a last tile E leaves part empty (FillPad), pads
    rows narrower than 64 columns to 64 (Pad), sorts (TopK) and slices the values and the indices back (two Slices):
    5 ops at 8 experts, 4 at 32, 48 and 60, 3 at 64 and above. scatter untilizes its three operands, scatters and
    tilizes the result: 5 ops at every E (with E whole tiles, one untilize and the tilize need no unpadding)."""
    whole = experts % 32 == 0
    if call == "topk":
        return ("fill_pad",) * (not whole) + ("pad",) * (-(-experts // 32) * 32 < TOPK_NETWORK) \
            + ("topk", "slice", "slice")
    if whole:
        return ("untilize_with_unpadding",) * 2 + ("untilize", "scatter", "tilize")
    return ("untilize_with_unpadding",) * 3 + ("scatter", "tilize_with_val_padding")


def reduction_parts(call: ast.Call) -> tuple[str, ...] | None:
    """ttnn.sum's device ops: over the last dim (the routing weights' renormalisation, `dim=-1`) a FillPad of the
    padded columns then a Reduce(W); over another dim (the experts', `dim=1`) one FastReduceNC (the capture's)."""
    dim = next((k.value for k in call.keywords if k.arg == "dim"), call.args[1] if len(call.args) > 1 else None)
    last = isinstance(dim, ast.UnaryOp) and isinstance(dim.operand, ast.Constant) and dim.operand.value == 1 \
        or isinstance(dim, ast.Constant) and dim.value == 3
    return ("fill_pad", "reduce") if last else None


class UnknownProgramCall(AssertionError):
    """The program holds a call the walker cannot price: a bug of the backend or of the walker, not of a spec."""


def refuse(call: ast.AST, what: str, hint: str) -> UnknownProgramCall:
    """The error for `call` (its line in the program and its text), `what` it is and `hint` where to teach it."""
    text = f"{ast.unparse(call.func)}(...)" if isinstance(call, ast.Call) else ast.unparse(call)
    return UnknownProgramCall(f"line {getattr(call, 'lineno', '?')}: `{text}`: {what}, so the cost model cannot "
                              f"price the program; {hint}")
