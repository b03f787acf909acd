"""The LM head as DRAM-sharded column chunks that fit L1 (issue 20; tt_transformers' LMHead): the head's
[K, N] weight (N: one chip's vocabulary slice) is placed as chunks of at most `configs.decode.lm_head_columns`
columns, each width-sharded over the DRAM banks (`Weights.linear_chunks`; on a 1-D mesh whose vocabulary is
split, chunk i of every device's slice). Decode (`head_chunks`, rt/head.py): the final norm's output resharded
once onto the head's L1 width-sharded grid, one DRAM-sharded matmul per chunk, each output back to interleaved,
one concat, then the greedy tail. Prefill (`head_chunks_prefill`): each chunk through 2-D multicast programs per
chunk of rows (`chunked_linear`, as the layer matmuls' prefill), then one concat.

Concat + one argmax is the cheaper greedy tail (measured on the mock n150 at 8B shapes, 3 chunks): concat, then
untilize, argmax, max, untilize: 8 ops after the matmuls; an argmax and max per chunk, combined, needs the 4-op
tail per chunk plus the combination (16).

The memory model counts each chunk's banks' whole shards (`head_matrices`, beside the layer plan's
`sharded_matrices`: 8B bfloat8_b, 42,752 columns occupy 43,008). Where the head cannot be chunked (Blackhole, a
2-D mesh, a bias, widths not whole tiles) it keeps the 1-D multicast program on a DRAM-interleaved weight, its
comment saying why (`head_reason`)."""

from __future__ import annotations

from ...analysis.memory import ShardedMatrix
from ...ir.layout import Placement
from ...ops.queries import kind_of
from ...targets import TILE
from ..common.pyast import Assign, Attr, Comment, Const, Dict, Expr, List, Tuple, call, name
from . import lower_matmul
from .configs.decode import LMHead, lm_head_chunks
from .configs.prefill import prefill_matmul
from .configs.rules import ConfigError
from .decode_configs import local_matmul_shape, weight_format
from .head import is_output_head
from .plan_view import PlanFacts, PlanView


def head_plan(node, ctx) -> tuple[LMHead | None, str | None]:
    """(the chunks, None) for an LM head that runs chunked; (None, why not) for one that does not; (None, None)
    for any other linear. Made once per node."""
    memo = ctx.backend.__dict__.setdefault("head_plans", {})
    key = (id(ctx.graph), node.id)
    if key not in memo:
        memo[key] = _plan(node, ctx) if is_output_head(node, ctx.graph) else (None, None)
    return memo[key]


def head_matrices(root, mesh, target, formats) -> tuple[ShardedMatrix, ...]:
    """The head's chunks as the memory model's DRAM width-sharded matrices (one per distinct chunk width)."""
    view = PlanView(PlanFacts(target, formats), mesh, root)
    counts: dict[tuple[str, int, int, str], int] = {}
    for node in root.nodes.values():
        if not is_output_head(node, root):
            continue
        head, _ = _plan(node, view)
        for matmul in head.matmuls if head is not None else ():
            key = (kind_of(root, node.module), matmul.k, matmul.n, weight_format(node, view))
            counts[key] = counts.get(key, 0) + 1
    return tuple(ShardedMatrix(kind, k, n, dtype, count) for (kind, k, n, dtype), count in sorted(counts.items()))


def head_reason(node, ctx) -> str | None:
    return head_plan(node, ctx)[1]


def _plan(node, ctx) -> tuple[LMHead | None, str | None]:
    target = ctx.backend.target
    mesh = ctx.mesh
    if target.arch != "wormhole_b0":
        return None, (f"{target.arch}: a DRAM-sharded matmul writes the first N cores of its 11-wide grid (not "
                      "measured for the head's chunks)")
    if mesh.axes and mesh.strategy != "1d":
        return None, "a 2-D mesh (Galaxy): the head's all-reduce reads an interleaved output"
    if mesh.axes and any(node.shard.on(ax.axis) not in (Placement.VOCAB, Placement.COLUMN) for ax in mesh.axes):
        return None, "on a mesh whose vocabulary is not split the head's chunks are not measured"
    if node.attrs.bias:
        return None, "a bias (not measured with a DRAM-sharded program)"
    k, n = local_matmul_shape(node, ctx)
    if k % TILE or n % TILE:
        return None, f"its [{k}, {n}] weight is not whole tiles"
    fmt = weight_format(node, ctx)
    try:
        head = lm_head_chunks(k, n, fmt, target)
        if any(width % TILE for width in head.widths):
            return None, f"its chunks {head.widths} are not whole tiles"
        for width in set(head.widths):
            if not _prefill_programs(k, width, fmt, target):
                return None, f"no 2-D multicast program for a {TILE}-row prefill chunk of {width} columns fits L1"
    except ConfigError as e:
        return None, str(e)
    return head, None


def load_chunks(node, refs, ctx, module: Expr, options: dict[str, Expr]):
    """`weights.linear_chunks(...)` with its comment, or None where the head is not chunked."""
    head, _ = head_plan(node, ctx)
    if head is None:
        return None
    memory = head.matmuls[0].weight
    widths = Tuple(tuple(Const(w) for w in head.widths))
    memories = List(tuple(m.weight.code() for m in head.matmuls))
    count = f"{len(head.widths)} column chunks" if len(head.widths) > 1 else "one column chunk"
    comment = Comment(f"the LM head in {count} of {head.widths[0]} (DRAM width-sharded over {memory.grid[0]} banks, "
                      f"a [{memory.shard[0]}, {memory.shard[1]}] shard each): each fits L1")
    targets = Tuple(tuple(chunk_refs(node, refs, head, ctx)))
    return [comment, Assign(targets, call("weights.linear_chunks", module, widths, memories, **options))]


def chunk_refs(node, refs, head: LMHead, ctx) -> list[Expr]:
    """The class members holding the chunks: `self.lm_head_0`, `self.lm_head_1`, ... (the cost model reads each
    chunk's matmul by the member it names, analysis/program.py), claimed from the class's namer (a spec label
    `lm_head_0` beside the head keeps its member; the chunk takes `lm_head_0_1`)."""
    weight = refs["weight"]
    return [Attr(weight.value, ctx.member_name(node, f"{weight.name}_{i}")) for i in range(len(head.widths))]


def adapt_output(node, expr: Expr, ctx) -> Expr:
    """Decode: the value a chunked head reads (the final norm's) resharded once onto the head's L1 width-sharded
    input layout as it is made."""
    readers = [ctx.graph.node(u) for u in ctx.graph.users.get(node.id, ())]
    if len(readers) != 1 or head_plan(readers[0], ctx)[0] is None:
        return expr
    # the member belongs to the class emitting `node` (the head may sit in another block's class)
    return call("ttnn.to_memory_config", expr, _input_member(node, head_plan(readers[0], ctx)[0], ctx))


def _input_member(node, head: LMHead, ctx) -> Expr:
    first = head.matmuls[0]
    x, y = first.input.grid
    return ctx.config_member(node, "lm_head_input_memory", first.input.code(),
                             f"decode: the head's input, L1 width-sharded over {x}x{y} cores")


def decode(node, args, refs, ctx, output_memory: Expr) -> Expr | None:
    """The chunked head's decode, each chunk's op stated: its input already on the head's grid (adapt_output),
    one DRAM-sharded matmul per chunk, each output interleaved in L1, one concat (none for one chunk)."""
    head, _ = head_plan(node, ctx)
    if head is None:
        return None
    kernel = _kernel(node, head, ctx)
    stem = node.module.rsplit(".", 1)[-1]
    outputs = []
    for i, (weight, matmul) in enumerate(zip(chunk_refs(node, refs, head, ctx), head.matmuls, strict=True)):
        program = matmul.op.program
        member = ctx.config_member(node, f"{stem}_{i}_decode", program.code(),
                                   f"decode: chunk {i} of the head, {matmul.k} -> {matmul.n}, DRAM-sharded over "
                                   f"{matmul.cores} cores, {program.per_core_N} output tiles per core")
        y = call("ttnn.linear", args[0], weight, program_config=member, compute_kernel_config=kernel,
                 memory_config=name("ttnn.L1_WIDTH_SHARDED_MEMORY_CONFIG"))
        last = len(head.matmuls) == 1
        outputs.append(call("ttnn.sharded_to_interleaved", y, output_memory if last else name("ttnn.L1_MEMORY_CONFIG")))
    if len(outputs) == 1:
        return outputs[0]
    return call("ttnn.concat", List(tuple(outputs)), dim=Const(-1), memory_config=output_memory)


def prefill(node, x: Expr, refs, ctx) -> Expr | None:
    """The chunked head in prefill: each chunk through chunked_linear's 2-D programs, then one concat."""
    head, _ = head_plan(node, ctx)
    if head is None:
        return None
    k = head.matmuls[0].k
    fmt = weight_format(node, ctx)
    tables = []
    for width in head.widths:
        programs = _prefill_programs(k, width, fmt, ctx.backend.target)
        tables.append(Dict(tuple((Const(rows), p.op.program.code()) for rows, p in programs.items())))
    member = ctx.config_member(node, "lm_head_prefill", List(tuple(tables)),
                               "prefill: the head's chunks on their DRAM-sharded weights, 2-D multicast per chunk of "
                               f"as many rows as fit L1 (a table per chunk of {', '.join(map(str, head.widths))})")
    chunks = List(tuple(chunk_refs(node, refs, head, ctx)))
    return ctx.helper("head_chunks_prefill")(x, chunks, member, _kernel(node, head, ctx))


def _prefill_programs(k: int, width: int, fmt: str, target) -> dict:
    """Chunk rows -> the 2-D program of one chunk of the head, for each of PREFILL_CHUNKS whose rows fit L1 in
    one chunk (chunked_linear takes the largest dividing a prompt's rows; 32 rows must fit, or none)."""
    programs = {}
    for rows in lower_matmul.PREFILL_CHUNKS:
        try:
            program = prefill_matmul(rows, k, width, fmt, target, role="lm_head")
        except ConfigError:
            continue
        if program.chunk_rows == rows:
            programs[rows] = program
    return programs if TILE in programs else {}


def _kernel(node, head: LMHead, ctx) -> Expr:
    compute = head.matmuls[0].op.compute
    accumulate = "fp32" if compute.fp32_dest_acc else "16-bit"
    return ctx.config_member(node, "lm_head_kernel", compute.code(),
                             f"the LM head's {weight_format(node, ctx)} chunks at {compute.fidelity}, "
                             f"{accumulate} accumulation")

