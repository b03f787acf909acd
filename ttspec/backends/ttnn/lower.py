"""How the generated TT-NN program computes each op: one row per op, returning structured code
(ttspec/backends/common/pyast.py).

A row's `expr(node, args, refs, ctx)` is the op applied to its argument expressions (`refs`:
the op's WeightRefs, None without parameters) in prefill (the classes' `forward`); `decode`, where
given, the same in a decode step (the classes' `decode`: one token per user, tt_transformers'
forward_decode), else the decode step uses `expr` too; `load(node, refs, ctx)` the __init__ statements
placing its weights on the device; `check(node, graph)` raises Unsupported for a use ttnn 0.81.1
cannot run; `fused_activation` is the name ttnn.linear's `activation=` takes when it computes the
op inside the matmul (the activation fusion pass asks FUSED_ACTIVATIONS).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ...ir.layout import Placement
from ...ops import (
    ADD,
    ALL_GATHER,
    ALL_REDUCE,
    APPLY_ROPE,
    ATTEND,
    EMBEDDING,
    EXPERT_GLU,
    GELU,
    GELU_TANH,
    LAYER_NORM,
    LINEAR,
    MERGE_HEADS,
    MESH_PARTITION,
    MUL,
    POSITION_EMBEDDING,
    REDUCE_SCATTER,
    RELU,
    RMS_NORM,
    SCALE,
    SIGMOID,
    SILU,
    SINUSOIDAL_POSITIONS,
    SOFTCAP,
    SPLIT_HEADS,
    SPLIT_QKV_HEADS,
    TIED_LINEAR,
    TOPK_ROUTING,
    FusedQKV,
    Unsupported,
)
from ...ops.attention import attention_scale
from ...ops.norms import NORM_STATISTICS
from ...ops.queries import writes_ccl_payload
from ...targets import TILE
from ..common.pyast import (
    Assign,
    BinOp,
    Call,
    Comment,
    Const,
    Expr,
    List,
    Name,
    Slice,
    Stmt,
    Subscript,
    Tuple,
    call,
    name,
)
from . import lower_head, lower_moe
from . import lower_matmul as dram
from .configs.decode import decode_sdpa
from .decode_chain import CHAIN_COLLECTIVES, decode_chain, held_heads, local_heads, local_kv_heads, pairs_permuted
from .decode_configs import decode_linear
from .head import head_input
from .lower_encoder import attend_bidirectional
from .lower_sdpa import sdpa_prefill_configs


@dataclass(frozen=True)
class TTNNLowering:
    expr: Callable[..., Expr]
    decode: Callable[..., Expr] | None = None
    load: Callable[..., list[Stmt]] | None = None
    check: Callable[..., None] | None = None
    fused_activation: str | None = None

    def expr_for(self, mode: str) -> Callable[..., Expr]:
        """The expression of `mode` ("prefill" or "decode")."""
        return self.decode if mode == "decode" and self.decode is not None else self.expr


# How the generated program's weight loader (Weights) names each split (a vocabulary split is a column split
# of padded rows).
SPLIT_NAMES = {Placement.COLUMN: "column", Placement.VOCAB: "column", Placement.ROW: "row", Placement.HIDDEN: "hidden"}


def _split(ctx, node) -> dict[str, Expr]:
    """The `split=` a weight loader takes for this node's parameters on a mesh ({} when replicated, as
    everything is on one chip, whose plan has no axes):
    a 1-D program names its tensor-parallel axis's split, a 2-D one a (rows, columns) pair."""
    names = [SPLIT_NAMES.get(node.shard.on(ax.axis)) for ax in ctx.mesh.axes]
    if not any(names):
        return {}
    if ctx.mesh.strategy == "1d":
        return {"split": Const(names[0])}
    return {"split": Tuple(tuple(Const(n) for n in names))}


def _dtype(ctx, node) -> dict[str, Expr]:
    dtype = ctx.weight_dtype(node.module)  # --weights-dtype per kind
    return {} if dtype is None else {"dtype": name(f"ttnn.{'bfloat16' if dtype == 'bf16' else dtype}")}


# ---------------------------------------------------------------- weights
def _load_table(node, refs, ctx) -> list[Stmt]:
    return [Assign(refs["weight"], call("weights.table", refs.module, **_split(ctx, node)))]


def _padded_input_heads(node, graph) -> tuple[int, int] | None:
    """(heads, head_dim) when this linear reads concatenated heads that are zero-padded to tiles."""
    source = graph.node(node.inputs[0])
    if source.op != MERGE_HEADS.name:
        return None
    _, heads, _, head_dim = graph.node(source.inputs[0]).type.shape
    return (heads, head_dim) if head_dim % TILE else None


def _load_linear(node, refs, ctx) -> list[Stmt]:
    """weights.linear(...) for the matrix ([out, in] as ttnn.linear's [in, out] operand) and
    weights.bias(...) for the bias, with what the device layout needs: the parts of a fused
    projection, heads zero-padded to tiles, and the split over a mesh."""
    fused: FusedQKV | None = node.attrs.fused
    common: dict[str, Expr] = {}  # options the weight and the bias share
    weight_only: dict[str, Expr] = {}
    if fused is not None:
        common["parts"] = Tuple(tuple(Const(p.label) for p in fused.parts))
        if fused.head_dim % TILE:
            common.update(heads=Const(fused.heads + 2 * fused.kv_heads), head_dim=Const(fused.head_dim))
    if fused is not None and _rope_pairs_at_load(node, ctx.graph):  # adjacent RoPE pairs for the decode chain
        common["rope_pairs"] = Tuple((Const(fused.heads), Const(fused.kv_heads)))
    padded = _padded_input_heads(node, ctx.graph)
    if padded is not None:
        weight_only.update(input_heads=Const(padded[0]), head_dim=Const(padded[1]))
    weight_only.update(_dtype(ctx, node))
    placed = dram.weight_memory(node, ctx)  # a layer matmul's weight DRAM width-sharded (lower_matmul.py)
    if placed is not None:
        weight_only["memory"] = placed[1]
    split = _split(ctx, node)
    if split:
        common.update(split)
        where = node.shard.placed
        if fused is not None and Placement.COLUMN in where:  # each device's slice: its heads
            common["qkv_heads"] = Tuple((Const(fused.heads), Const(fused.kv_heads)))
        if Placement.VOCAB in where:
            common["rows"] = Const(node.shard.padded_out)
    chunks = lower_head.load_chunks(node, refs, ctx, refs.module, {**common, **weight_only})
    if chunks is not None:  # the LM head in DRAM-sharded column chunks (lower_head.py); it has no bias
        return chunks
    lines: list[Stmt] = [Assign(refs["weight"], call("weights.linear", refs.module, **common, **weight_only))]
    if node.attrs.bias:
        lines.append(Assign(refs["bias"], call("weights.bias", refs.module, **common)))
    return lines if placed is None else [placed[0], *lines]


def _rope_pairs_at_load(node, graph) -> bool:
    """Whether this fused QKV projection feeds a decode chain whose rotate-half q and k rows are permuted."""
    readers = list(graph.users.get(node.id, ()))
    while len(readers) == 1 and graph.node(readers[0]).op in CHAIN_COLLECTIVES:
        readers = list(graph.users.get(readers[0], ()))
    splits = [graph.node(u) for u in readers if graph.node(u).op == SPLIT_QKV_HEADS.name]
    return any(decode_chain(s, graph) is not None and pairs_permuted(s, graph) for s in splits)


def _load_tied(node, refs, ctx) -> list[Stmt]:
    options = _split(ctx, node)
    if options and Placement.VOCAB in node.shard.placed:
        options["rows"] = Const(node.shard.padded_out)
    options.update(_dtype(ctx, node))
    source = node.attrs.weight.name.rsplit(".", 1)[0]
    tied_module = Const(source)
    if ctx.graph is not getattr(ctx.backend, "root_graph", ctx.graph):  # a tie inside a repeated layer: the
        # source is named from the layer's prefix (this class's prefix less its path in the layer)
        path = ctx.plan.path
        base = Subscript(Name("prefix"), Slice(upper=Const(-(len(path) + 1)))) if path else Name("prefix")
        tied_module = BinOp(base, "+", Const(source))
    chunks = lower_head.load_chunks(node, refs, ctx, tied_module, options)
    if chunks is not None:  # tied: the chunks are the head's own copy of the table (the embedding keeps its own)
        return chunks
    lines: list[Stmt] = [Comment("tied: a TILE copy of the embedding table"),
                         Assign(refs["weight"], call("weights.linear", tied_module, **options))]
    if node.attrs.bias:
        lines.append(Assign(refs["bias"], call("weights.bias", refs.module, **options)))
    return lines


def _load_norm(node, refs, ctx) -> list[Stmt]:
    split = _split(ctx, node)
    offset = node.attrs.offset
    if offset:  # folded into the weight as it is placed: ttnn.rms_norm multiplies by it
        ctx.helper("norm_offset")
        return [Assign(refs["weight"], call("weights.norm", refs.module, offset=Const(offset), **split))]
    lines: list[Stmt] = [Assign(refs["weight"], call("weights.norm", refs.module, **split))]
    if node.attrs.bias:
        lines.append(Assign(refs["bias"], call("weights.norm", refs.module, Const("bias"), **split)))
    return lines


# ---------------------------------------------------------------- ops
def _linear(node, args, refs, ctx) -> Expr:
    planned = dram.linear_prefill(node, args, refs, ctx)
    if planned is None:
        planned = lower_head.prefill(node, head_input(node, args[0], ctx), refs, ctx)
    if planned is not None:
        return planned
    options: dict[str, Expr] = {}
    if node.attrs.bias:
        options["bias"] = refs["bias"]
    if node.attrs.activation:
        options["activation"] = Const(node.attrs.activation)
    return call("ttnn.linear", head_input(node, args[0], ctx), refs["weight"], **options)


def _silu_into_mul(node, graph) -> bool:
    """Whether decode moves this linear's fused SiLU into the multiply that alone reads it (SwiGLU's gate):
    `ttnn.mul(..., input_tensor_a_activations=[SILU])` is one device op, tt_transformers' MLP decode."""
    users = graph.users.get(node.id, ())
    return (node.op in (LINEAR.name, TIED_LINEAR.name) and node.attrs.activation == "silu" and len(users) == 1
            and graph.node(users[0]).op == MUL.name)


def _linear_decode(node, args, refs, ctx) -> Expr:
    """A weight matmul of the decode step, writing its partial sums in the collectives' payload format where
    `--ccl-dtype` asks (_ccl_payload)."""
    return _ccl_payload(node, _linear_decode_matmul(node, args, refs, ctx), ctx)


def _ccl_payload(node, expr: Expr, ctx) -> Expr:
    """`dtype=CCL_DTYPE` on a matmul whose partial sums a reduce-scatter or all-reduce carries into the residual
    (ops/queries.py writes_ccl_payload) when --ccl-dtype is bfloat8_b: ttnn's matmul packs its output so (on the
    mock T3K the reduce-scatter then sends bfloat8_b [1, 32, 8192] for 70B, still one op), tt_transformers' TG
    path does the same (attention.py wo, mlp.py w2: `ccl_dtype`)."""
    formats = getattr(ctx.backend, "weight_formats", None)
    if formats is None or formats.ccl == "bf16" or not writes_ccl_payload(ctx.graph, node):
        return expr
    if not (isinstance(expr, Call) and expr.func == name("ttnn.linear")):
        return expr
    return Call(expr.func, expr.args, expr.kwargs + (("dtype", Name("CCL_DTYPE")),))


def _linear_decode_matmul(node, args, refs, ctx) -> Expr:
    """A weight matmul of the decode step with its stated configuration (decode_configs.py): program and
    compute kernel as members of its class, the output interleaved (_decode_memory)."""
    planned = dram.linear_decode(node, args, refs, ctx)
    if planned is not None:
        return planned
    chunked = lower_head.decode(node, args, refs, ctx, _decode_memory(node, ctx))
    if chunked is not None:
        return chunked
    chosen = decode_linear(node, ctx, dram.fallback_reason(node, ctx) or lower_head.head_reason(node, ctx))
    options: dict[str, Expr] = {}
    if node.attrs.bias:
        options["bias"] = refs["bias"]
    if node.attrs.activation and not _silu_into_mul(node, ctx.graph):
        options["activation"] = Const(node.attrs.activation)
    if chosen.program is not None:
        options["program_config"] = chosen.program
    options.update(compute_kernel_config=chosen.compute, memory_config=_decode_memory(node, ctx))
    return call("ttnn.linear", args[0], refs["weight"], **options)


# Ops that take a decode activation interleaved in L1 (measured on the mock n150); others want DRAM:
# scaled_dot_product_attention_decode refuses an interleaved Q outside DRAM, and the logits go to the host.
_READ_FROM_L1 = {LINEAR.name, TIED_LINEAR.name, MUL.name, ADD.name, RMS_NORM.name, LAYER_NORM.name, SILU.name,
                 RELU.name, GELU.name, GELU_TANH.name, SCALE.name}


def _decode_memory(node, ctx) -> Expr:
    """Where a decode op writes its output: sharded where lower_matmul.py's plan keeps it so, L1 when every reader
    takes it from there (the decode attention chain's nlp_create_qkv_heads_decode does), else DRAM."""
    graph = ctx.graph
    sharded = dram.sharded_output(node, ctx)
    if sharded is not None:
        return sharded
    readers = [graph.node(u) for u in graph.users.get(node.id, ())]
    in_l1 = readers and all(r.op in _READ_FROM_L1 or (r.op == SPLIT_QKV_HEADS.name and decode_chain(r, graph))
                            for r in readers)
    return name("ttnn.L1_MEMORY_CONFIG" if in_l1 else "ttnn.DRAM_MEMORY_CONFIG")


def _mul_decode(node, args, refs, ctx) -> Expr:
    """The multiply, with SiLU applied to the input whose linear left it out (_silu_into_mul)."""
    options: dict[str, Expr] = {}
    for side, source in zip("ab", node.inputs):
        if _silu_into_mul(ctx.graph.node(source), ctx.graph):
            options[f"input_tensor_{side}_activations"] = List((name("ttnn.UnaryOpType.SILU"),))
    return call("ttnn.mul", args[0], args[1], **options, memory_config=_decode_memory(node, ctx))


def _check_norm(node, graph) -> None:
    width = node.type.shape[-1]
    if node.type.rank == 4 and width % TILE:
        raise Unsupported(f"a per-head {node.op} over head_dim {width} is not lowered to TT-NN: heads are zero-padded "
                          f"to {-(-width // TILE) * TILE} features there, which would change the mean",
                          hint="use a head_dim that is a multiple of 32, or --target torch")


def _norm(kind: str):
    def expr(node, args, refs, ctx) -> Expr:
        options = {"epsilon": Const(node.attrs.eps), "weight": refs["weight"]}
        if node.attrs.bias:
            options["bias"] = refs["bias"]
        if node.attrs.distributed:  # args[1]: the gathered statistics (_shard_distributed_norm)
            post = call(f"ttnn.{kind}_norm_post_all_gather", call("ttnn.unsqueeze", args[0], Const(0)), args[1],
                        **options, dtype=name("ttnn.bfloat16"), compute_kernel_config=Name("STATISTICS_KERNEL"))
            return call("ttnn.squeeze", post, Const(0))
        return call(f"ttnn.{kind}_norm", args[0], **options)

    return expr


def _norm_decode(kind: str):
    """The decode step's norm: as prefill's, its output in L1 where its readers take it from there."""
    prefill = _norm(kind)

    def expr(node, args, refs, ctx) -> Expr:
        planned = dram.norm_decode(node, args, refs, ctx, kind)
        if planned is not None:
            return planned
        out = prefill(node, args, refs, ctx)
        if node.attrs.distributed:
            return out
        return call(f"ttnn.{kind}_norm", *out.args, **dict(out.kwargs), memory_config=_decode_memory(node, ctx))

    return expr


def _add_decode(node, args, refs, ctx) -> Expr:
    """The residual add of a decode step: the stream stays in L1 where its readers take it from there."""
    return call("ttnn.add", args[0], args[1], memory_config=_decode_memory(node, ctx))


def _statistics(node, args, refs, ctx) -> Expr:
    kind = "layer" if node.attrs.mean else "rms"
    ctx.helper("norm_statistics")
    # float32 statistics: a sum of squares over thousands of features, rounded to bf16's 8 bits on each chip,
    # moved the logits 25% further from fp32 than the single chip's (golden, nano-trickster); float32 ones
    # need the fp32-accumulating kernel config. The distributed norm ops take [1, batch, seq, width].
    return call(f"ttnn.{kind}_norm_pre_all_gather", call("ttnn.unsqueeze", args[0], Const(0)),
                dtype=name("ttnn.float32"), compute_kernel_config=Name("STATISTICS_KERNEL"))


def _position_ids(node, args, refs, ctx) -> Expr:
    """Rows of the table at the positions of x's rows: 0..seq-1 in prefill, each user's own
    position in a decode step (the run state knows which)."""
    w = refs["weight"]
    ids = ctx.helper("position_ids")(args[0], w, ctx.state())
    return call("ttnn.embedding", ids, w, layout=name("ttnn.TILE_LAYOUT"))


def _sinusoidal(node, args, refs, ctx) -> Expr:
    # The width is the logical one: on a mesh x may be a device's slice of the features.
    return ctx.helper("sinusoidal_positions")(args[0], Const(node.type.shape[-1]), ctx.state(),
                                              base=Const(node.attrs.base))


def _softcap(node, args, refs, ctx) -> Expr:
    cap = node.attrs.cap
    return call("ttnn.multiply", call("ttnn.tanh", call("ttnn.multiply", args[0], Const(1 / cap))), Const(cap))


def _kv_cache_shape(node, ctx) -> tuple[int, int]:
    """KV heads one device holds (the sharding pass annotates attend with them) and the head width
    padded to whole tiles."""
    k = ctx.graph.node(node.inputs[1])
    return held_heads(node.shard.local_kv_heads, k.type.shape[1]), -(-k.type.shape[3] // TILE) * TILE


def _kv_cache(node, ctx) -> Expr:
    """This attention's KV cache member (one per attention node, shared by forward and decode)."""
    kv_heads, head_dim = _kv_cache_shape(node, ctx)
    return ctx.member(node, "kv_cache", ctx.helper("KVCache")(name("weights.state"), Const(kv_heads), Const(head_dim)))


def _attend(node, args, refs, ctx) -> Expr:
    """Prefill (and model(tokens)): ttnn's causal SDPA over the whole sequence, or the softcapped
    composition; a prefill then writes its K and V into the user's rows of this attention's KV
    cache. Non-causal attention (no cache, no decode): lower_encoder.py."""
    if not node.attrs.causal:
        return attend_bidirectional(node, args, ctx)
    window, softcap = node.attrs.window, node.attrs.softcap
    scale = Const(attention_scale(node, ctx.graph))
    cache = _kv_cache(node, ctx)
    q, k, v = args
    if softcap is not None:
        # ttnn's SDPA has no logit softcapping: composed from golden-backed ops
        extra = {} if window is None else {"window": Const(window)}
        full = ctx.helper("softcapped_attention")(q, k, v, ctx.device(), scale=scale, softcap=Const(softcap), **extra)
    else:
        # ttnn's sliding_window_size with is_causal: query i reads keys j with i - W < j <= i, the
        # same boundary as HF's sliding_window (tests/test_language_features.py checks both)
        extra = {} if window is None else {"sliding_window_size": Const(window)}
        # the program and kernel for the prompt's length: lower_sdpa.py (tt_transformers' SDPA_PROGCFG)
        configs = sdpa_prefill_configs(node, ctx)
        full = ctx.helper("chunked_sdpa")(q, k, v, *configs, is_causal=Const(True), scale=scale, **extra)
    return cache.attr("prefill")(k, v, full)


def _attend_decode(node, args, refs, ctx) -> Expr:
    """A decode step (users on the rows, one token each): the new K and V are written at each
    user's position and each user's query attends its own cache up to that position
    (scaled_dot_product_attention_decode; the softcapped composition where softcap is set)."""
    window, softcap = node.attrs.window, node.attrs.softcap
    scale = Const(attention_scale(node, ctx.graph))
    cache = _kv_cache(node, ctx)
    if decode_chain(node, ctx.graph) is not None:
        return _attend_heads_decode(node, args, cache, scale, ctx)
    if softcap is not None:  # ttnn's SDPA decode has no logit softcapping either
        extra = {} if window is None else {"window": Const(window)}
        return cache.attr("decode_softcapped")(*args, scale=scale, softcap=Const(softcap), **extra)
    extra = {} if window is None else {"sliding_window_size": Const(window)}
    return cache.attr("decode")(*args, scale=scale, **extra)


def _split_qkv_decode(node, args, refs, ctx) -> Expr:
    """Decode: [1, 1, users, fused] -> Q, K, V [1, users, heads, head_dim] height-sharded one user per core."""
    if decode_chain(node, ctx.graph) is None:
        return _split_qkv(node, args, refs, ctx)
    return call("ttnn.experimental.nlp_create_qkv_heads_decode", call("ttnn.unsqueeze", args[0], Const(0)),
                num_heads=Const(local_heads(node)), num_kv_heads=Const(local_kv_heads(node)),
                memory_config=name("ttnn.L1_HEIGHT_SHARDED_MEMORY_CONFIG"))


def _rope_decode(node, args, refs, ctx) -> Expr:
    """Decode: rotary_embedding_llama on one user per core, cos and sin gathered on the device (Rotary.decode)."""
    rotary = ctx.rotary(node.attrs.rope, node.type.shape[-1])
    split = decode_chain(node, ctx.graph)
    if split is None:
        return rotary(args[0])
    if pairs_permuted(split, ctx.graph):
        ctx.plan.rope_styles[rotary.name] = "interleaved"  # `self.rotary`: its attribute name
    return rotary.attr("decode")(args[0])


def _merge_heads_decode(node, args, refs, ctx) -> Expr:
    split = decode_chain(node, ctx.graph)
    if split is None:
        return call("ttnn.transformer.concatenate_heads", args[0])
    sharded = {"sharded": Const(True)} if dram.merge_heads_sharded(node, ctx) else {}  # wo reads it as it is
    return ctx.helper("concat_heads_decode")(args[0], Const(local_heads(split)), **sharded)


def _attend_heads_decode(node, args, cache, scale, ctx) -> Expr:
    """The chain's attention: K and V written into the cache, SDPA decode with its stated program and kernel."""
    _, head_dim = _kv_cache_shape(node, ctx)
    sdpa = decode_sdpa(local_heads(decode_chain(node, ctx.graph)), head_dim, TILE, ctx.backend.target)
    grid = "x".join(map(str, sdpa.op.program.grid))
    program = ctx.config_member(node, "sdpa_decode", sdpa.op.program.code(),
                                f"decode: SDPA over the cache on {grid} cores, chunk sizes chosen by the op")
    kernel = ctx.config_member(node, "sdpa_kernel", sdpa.op.compute.code(),
                               "decode: SDPA at HiFi2, 16-bit accumulation (tt_transformers' decode SDPA kernel)")
    extra = {} if node.attrs.window is None else {"sliding_window_size": Const(node.attrs.window)}
    return cache.attr("decode_heads")(*args, scale=scale, program_config=program, compute_kernel_config=kernel,
                                      **extra)


def _split_qkv(node, args, refs, ctx) -> Expr:
    return call("ttnn.transformer.split_query_key_value_and_split_heads", args[0],
                num_heads=Const(local_heads(node)), num_kv_heads=Const(local_kv_heads(node)),
                transpose_key=Const(False))


def _collective(op: str, reduces_only: bool = False) -> TTNNLowering:
    def expr(node, args, refs, ctx) -> Expr:
        dim = {} if reduces_only else {"dim": Const(node.attrs.dim)}
        return call(f"ttnn.{op}", args[0], **dim, cluster_axis=Const(node.attrs.axis))

    return TTNNLowering(expr)


def _unary(function: str, **options) -> Callable[..., Expr]:
    return lambda node, args, refs, ctx: call(function, args[0], **options)


def _binary(function: str) -> Callable[..., Expr]:
    return lambda node, args, refs, ctx: call(function, args[0], args[1])


LOWERINGS: dict[str, TTNNLowering] = {
    EMBEDDING.name: TTNNLowering(
        lambda node, args, refs, ctx: call("ttnn.embedding", args[0], refs["weight"], layout=name("ttnn.TILE_LAYOUT")),
        load=_load_table),
    POSITION_EMBEDDING.name: TTNNLowering(_position_ids, load=_load_table),
    SINUSOIDAL_POSITIONS.name: TTNNLowering(_sinusoidal),
    LINEAR.name: TTNNLowering(_linear, decode=_linear_decode, load=_load_linear),
    TIED_LINEAR.name: TTNNLowering(_linear, decode=_linear_decode, load=_load_tied),
    RMS_NORM.name: TTNNLowering(_norm("rms"), decode=_norm_decode("rms"), load=_load_norm, check=_check_norm),
    LAYER_NORM.name: TTNNLowering(_norm("layer"), decode=_norm_decode("layer"), load=_load_norm, check=_check_norm),
    NORM_STATISTICS.name: TTNNLowering(_statistics),
    ADD.name: TTNNLowering(_binary("ttnn.add"), decode=_add_decode),
    MUL.name: TTNNLowering(_binary("ttnn.mul"), decode=_mul_decode),
    SCALE.name: TTNNLowering(lambda node, args, refs, ctx: call("ttnn.multiply", args[0], Const(node.attrs.factor))),
    SOFTCAP.name: TTNNLowering(_softcap),
    RELU.name: TTNNLowering(_unary("ttnn.relu"), fused_activation="relu"),
    GELU.name: TTNNLowering(_unary("ttnn.gelu")),
    GELU_TANH.name: TTNNLowering(_unary("ttnn.gelu", variant=name("ttnn.GeluVariant.Tanh"))),
    SILU.name: TTNNLowering(_unary("ttnn.silu"), fused_activation="silu"),
    SPLIT_HEADS.name: TTNNLowering(
        lambda node, args, refs, ctx: ctx.helper("split_heads")(args[0], Const(local_heads(node)))),
    MERGE_HEADS.name: TTNNLowering(_unary("ttnn.transformer.concatenate_heads"), decode=_merge_heads_decode),
    APPLY_ROPE.name: TTNNLowering(
        lambda node, args, refs, ctx: ctx.rotary(node.attrs.rope, node.type.shape[-1])(args[0]), decode=_rope_decode),
    ATTEND.name: TTNNLowering(_attend, decode=_attend_decode),
    SPLIT_QKV_HEADS.name: TTNNLowering(_split_qkv, decode=_split_qkv_decode),
    SIGMOID.name: TTNNLowering(_unary("ttnn.sigmoid")),
    TOPK_ROUTING.name: TTNNLowering(lower_moe.routing),  # lower_moe.py: the runtime's dense-compute MoE
    EXPERT_GLU.name: TTNNLowering(lower_moe.experts_prefill, decode=lower_moe.experts_decode,
                                  load=lower_moe.load_experts, check=lower_moe.check_experts),
    ALL_GATHER.name: _collective("all_gather"),
    REDUCE_SCATTER.name: _collective("reduce_scatter"),
    ALL_REDUCE.name: _collective("all_reduce", reduces_only=True),
    MESH_PARTITION.name: _collective("mesh_partition"),
}

# What the activation fusion pass folds into a linear: op name -> ttnn.linear's `activation=`.
FUSED_ACTIVATIONS = {op: row.fused_activation for op, row in LOWERINGS.items() if row.fused_activation}
