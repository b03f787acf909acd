"""DRAM-sharded layer matmuls, as tt_transformers runs a decoder layer (tech_reports/LLMs/llms.md 4.6): every
weight matmul of a layer (fused QKV, wo, w1, w3, w2) reads its weight width-sharded over the DRAM banks
(`MatmulMultiCoreReuseMultiCastDRAMShardedProgramConfig`), its input L1 width-sharded, and the norms before
the matmuls are sharded (a sharded rms_norm program) so that each writes the layout its matmuls read. A
reshard is emitted only where a layout must change (`adapt_args` / `adapt_output`, called by the backend for
every decode op):
- one chip: the residual stream stays L1 width-sharded on the grid of R cores every layer matmul uses; the
  fused QKV's output goes interleaved for nlp_create_qkv_heads_decode; once per step, the embedding goes onto
  the residual's grid and the residual back to interleaved before the final norm;
- a 1-D mesh (T3K, n300): the residual is each chip's interleaved slice; the all-gather before a norm writes
  the norm's sharded grid, and the reduce-scatter after wo / w2 reads their sharded output and writes L1.

Prefill shares the weights: ttnn's unconfigured prefill matmul refuses a DRAM width-sharded weight ("Input B
memory layout must be INTERLEAVED"), a 2-D multicast program config accepts it. The prompt's rows are folded
into chunks (tt_transformers reshapes sequences over its 1024-row cutoff so): `chunked_linear` (rt/weights.py)
takes the largest chunk of its table that divides the rows and runs them as a batch of chunks with that
chunk's 2-D program, stated per linear as one member mapping chunk rows -> program (PREFILL_CHUNKS, each keyed
by the rows its program was made for: a chunk too big for L1 is smaller, configs/prefill.py prefill_programs).

One plan per program (`layer_plan`), all or nothing: every attention/MLP linear of every layer variant must
take it, else the program keeps the 1-D multicast decode matmuls on DRAM-interleaved weights
(decode_configs.py) and their comment says why (`fallback_reason`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...analysis.memory import ShardedMatrix
from ...ir.graph import Graph, Node, all_nodes, layer_variants
from ...ir.sharding import ShardPlan
from ...ops import ADD, ALL_GATHER, EMBEDDING, LAYER_NORM, LINEAR, MERGE_HEADS, MUL, REDUCE_SCATTER, RMS_NORM, SILU
from ...ops.linear import fused_qkv
from ...ops.queries import kind_of
from ...targets import TILE
from ..common.pyast import Call, Comment, Const, Dict, Expr, call, name
from .configs.decode import DecodeNorm, decode_matmul, decode_norm, dram_weight
from .configs.prefill import prefill_matmul, prefill_programs
from .configs.rules import ConfigError, cores_for_k, cores_for_k_and_n
from .decode_chain import decode_chain
from .decode_configs import kernel_member, local_matmul_shape, role_of, weight_format
from .plan_view import PlanFacts, PlanView

# Rows of one prefill chunk, largest first: a prompt of T rows (a multiple of 32) runs as T / c chunks of the
# largest c dividing T (tt_transformers' 1024-row prefill cutoff on Wormhole; smaller chunks for shorter prompts).
PREFILL_CHUNKS = (1024, 256, 64, 32)
_NORMS = (RMS_NORM.name, LAYER_NORM.name)
_LAYER_KINDS = ("attention", "mlp")


@dataclass
class LayerPlan:
    """Which nodes run sharded: `linears` and `norms` by (id(graph), node id); `width` the residual's, on `cores`
    cores; `reason` says why the program keeps the 1-D path (then nothing is sharded)."""

    reason: str | None = None
    cores: int = 0
    width: int = 0
    residual_sharded: bool = True  # one chip; on a 1-D mesh the residual is each chip's slice, interleaved
    linears: dict = field(default_factory=dict)
    norms: dict = field(default_factory=dict)
    bodies: set = field(default_factory=set)  # id() of the layer bodies
    regrid: set = field(default_factory=set)  # (id(body), merge id): concatenated heads resharded onto wo's grid
    memo: dict = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.reason is None


def layer_plan(ctx) -> LayerPlan:
    """The program's plan, made once per backend (compile_ttnn gives the backend the lowered root graph)."""
    backend = ctx.backend
    cached = getattr(backend, "dram_plan", None)
    if cached is None:
        root = getattr(backend, "root_graph", None)
        facts = PlanFacts(backend.target, getattr(backend, "weight_formats", None))
        cached = backend.dram_plan = LayerPlan("no lowered model graph") if root is None else \
            _plan(root, facts, ctx.mesh)
    return cached


def sharded_matrices(root: Graph, mesh: ShardPlan, target, formats) -> tuple[ShardedMatrix, ...]:
    """The [K, N] matrices the program DRAM-shards (the same plan compile_ttnn emits), for the memory model
    (analysis/memory.py counts each bank's whole shard): one per planned linear, times its layers."""
    plan = _plan(root, PlanFacts(target, formats), mesh)
    if not plan.active:
        return ()
    counts: dict[tuple[str, int, int, str], int] = {}
    for body, layers in layer_variants(root.repeats()[0]):
        view = PlanView(PlanFacts(target, formats), mesh, body)
        for (graph_id, node_id), matmul in plan.linears.items():
            if graph_id == id(body):
                node = body.node(node_id)
                key = (kind_of(body, node.module), matmul.k, matmul.n, weight_format(node, view))
                counts[key] = counts.get(key, 0) + layers
    return tuple(ShardedMatrix(kind, k, n, dtype, count) for (kind, k, n, dtype), count in sorted(counts.items()))


def fallback_reason(node, ctx) -> str | None:
    """Why a layer's linear keeps the 1-D multicast path (None for the LM head and other linears outside layers,
    and for planned ones)."""
    plan = layer_plan(ctx)
    if plan.active or node.op != LINEAR.name or kind_of(ctx.graph, node.module) not in _LAYER_KINDS:
        return None
    return plan.reason


def _plan(root: Graph, facts: PlanFacts, mesh: ShardPlan) -> LayerPlan:
    target = facts.target
    if mesh.axes and mesh.strategy != "1d":
        return LayerPlan("a 2-D mesh (Galaxy): tt_transformers keeps interleaved 1-D matmul configs there, its "
                         "matmuls between all-reduces on both axes")
    if target.arch != "wormhole_b0":
        return LayerPlan(f"{target.arch}: a DRAM-sharded matmul writes the first N cores of the 11-wide grid, "
                         "not its input's rectangle, so the residual would need a reshard after every matmul")
    repeats = root.repeats()
    if len(repeats) != 1 or len(repeats[0].inputs) != 1:
        return LayerPlan("the layers are not one repeated block on one residual stream")
    plan = LayerPlan(residual_sharded=not mesh.axes)
    bodies = [body for body, _ in layer_variants(repeats[0])]
    plan.bodies = {id(b) for b in bodies}
    for body in bodies:
        why = _plan_body(body, plan, PlanView(facts, mesh, body))
        if why is not None:
            return LayerPlan(why)
    if not plan.linears:
        return LayerPlan("no attention or MLP linear in the layers")
    for body in bodies if plan.residual_sharded else ():
        if not all(gives_sharded(body, body.node(out), plan) for out in body.outputs.values()):
            return LayerPlan("a layer's output is not its residual stream")
    return plan


def _plan_body(body: Graph, plan: LayerPlan, ctx) -> str | None:
    linears = [n for n in all_nodes(body) if n.op == LINEAR.name and kind_of(body, n.module) in _LAYER_KINDS]
    inputs = {n.inputs[0] for n in linears if body.node(n.inputs[0]).op in _NORMS}
    widths = {body.node(i).type.shape[-1] for i in inputs}
    if len(widths) != 1:
        return "the layer's norms before its matmuls differ in width (or there are none)"
    width = widths.pop()
    if width % TILE:
        return f"the residual width {width} is not whole tiles"
    cores = cores_for_k(width // TILE, ctx.backend.target)
    if plan.cores and (plan.cores, plan.width) != (cores, width):
        return "layer variants differ in the residual's grid"
    plan.cores, plan.width = cores, width
    ids = {n.id for n in linears}
    for node in sorted(linears, key=lambda n: body.node(n.inputs[0]).op == MUL.name):  # w2 after w1
        why = _linear(body, node, ids, plan, ctx)
        if why is not None:
            return f"{node.module}: {why}"
    for norm_id in inputs:
        norm = body.node(norm_id)
        grids = {plan.linears.get((id(body), u), None) and plan.linears[(id(body), u)].cores
                 for u in body.users[norm_id]}
        if norm.attrs.distributed or any(u not in ids for u in body.users[norm_id]) or len(grids) != 1:
            return f"{norm.module}: the norm feeds more than the layer's matmuls on one grid"
        plan.norms[(id(body), norm_id)] = decode_norm(width, ctx.backend.target, cores=grids.pop())
    return None


def _cores(body: Graph, node: Node, k_tiles: int, n_tiles: int, plan: LayerPlan, target) -> int:
    """The workers of a layer matmul. One chip: the residual's grid for all (each output feeds the next
    matmul's input or the residual unchanged). A 1-D mesh, where collectives sit between them: QKV on the
    attention grid (cores_for_k), wo on one core per head (nlp_concat_heads_decode's output), w1/w3 on the most
    cores dividing K's and N's tiles (tt_transformers find_grid_k_n) and w2 on w1's."""
    source = body.node(node.inputs[0])
    if plan.residual_sharded:
        return plan.cores
    if source.op == MERGE_HEADS.name:  # this chip's heads
        return k_tiles * TILE // (-(-body.node(source.inputs[0]).type.shape[-1] // TILE) * TILE)
    if source.op == MUL.name:
        first = plan.linears.get((id(body), source.inputs[0]))
        return first.cores if first is not None else 0
    users = body.users.get(node.id, ())
    if len(users) == 1 and body.node(users[0]).op == MUL.name:
        return cores_for_k_and_n(k_tiles, n_tiles, target)
    return cores_for_k(k_tiles, target)


def _linear(body: Graph, node: Node, ids: set, plan: LayerPlan, ctx) -> str | None:
    """Why `node` cannot run DRAM-sharded on the residual's grid, or None (then it is recorded in the plan)."""
    target = ctx.backend.target
    if node.attrs.bias:
        return "a bias (not measured with a DRAM-sharded program)"
    users = body.users.get(node.id, ())
    if node.attrs.activation and not (node.attrs.activation == SILU.name and len(users) == 1
                                      and body.node(users[0]).op == MUL.name):
        return f"a fused {node.attrs.activation} (the decode step fuses only SwiGLU's SiLU, into the multiply)"
    k, n = local_matmul_shape(node, ctx)
    if k % TILE:
        return f"K {k} is not whole tiles"
    cores = _cores(body, node, k // TILE, -(-n // TILE), plan, target)
    if not cores or (k // TILE) % cores:
        return f"K {k} does not split into whole tiles over {cores} cores"
    if fused_qkv(node) is None and n % (TILE * cores):
        return f"N {n} does not split into whole tiles over {cores} cores"
    source = body.node(node.inputs[0])
    if source.op == MERGE_HEADS.name:
        if decode_chain(source, body) is None:
            return "its heads are concatenated outside the decode attention chain (interleaved)"
        padded = -(-body.node(source.inputs[0]).type.shape[-1] // TILE) * TILE
        if k != cores * padded:  # nlp_concat_heads_decode writes one head per core: one reshard onto wo's grid
            plan.regrid.add((id(body), source.id))  # (Llama-3.2-3B: 24 heads of 128 onto 32 cores of 96)
    elif source.op == MUL.name:
        if any(i not in ids for i in source.inputs):
            return "its input multiplies more than two layer matmuls"
    elif source.op not in _NORMS:
        return f"its input comes from {source.op}"
    fmt = weight_format(node, ctx)
    role = role_of(node, body)
    try:
        matmul = decode_matmul(k, n, fmt, target, cores=cores, role=role)
        for rows in PREFILL_CHUNKS:
            prefill_matmul(rows, k, n, fmt, target, role=role, fused_activation=_prefill_activation(node))
    except ConfigError as e:
        return str(e)
    plan.linears[(id(body), node.id)] = matmul
    return None


def _prefill_activation(node: Node):
    return "SILU" if node.attrs.activation == SILU.name else None


# ---------------------------------------------------------------- which values are sharded in decode
def _key(graph: Graph, node: Node) -> tuple[int, str]:
    return (id(graph), node.id)


def gives_sharded(graph: Graph, node: Node, plan: LayerPlan) -> bool:
    """Whether `node`'s decode value is L1 width-sharded (on the residual's grid, or a matmul's output)."""
    key = _key(graph, node)
    if key not in plan.memo:
        plan.memo[key] = _gives(graph, node, plan)
    return plan.memo[key]


def _gives(graph: Graph, node: Node, plan: LayerPlan) -> bool:
    key = _key(graph, node)
    if key in plan.linears or key in plan.norms:
        return True
    if node.is_input:
        return plan.residual_sharded and id(graph) in plan.bodies  # a layer's residual input
    if node.is_repeat:
        return plan.residual_sharded
    if node.op == MERGE_HEADS.name:
        readers = graph.users.get(node.id, ())
        return bool(readers) and all((id(graph), r) in plan.linears for r in readers)
    if node.op == MUL.name:
        return all(gives_sharded(graph, graph.node(i), plan) for i in node.inputs)
    if node.op == ADD.name:
        return node.type.shape[-1] == plan.width and any(gives_sharded(graph, graph.node(i), plan)
                                                           for i in node.inputs)
    return converted(graph, node, plan)


def converted(graph: Graph, node: Node, plan: LayerPlan) -> bool:
    """Whether `node`'s value is resharded onto the residual's grid as it is made (the embedding before the
    layers: both the first layer's norm and its residual add read it)."""
    if not plan.active or node.op not in (EMBEDDING.name, ALL_GATHER.name):
        return False
    return any(_direct_need(graph, graph.node(u), node.id, plan) for u in graph.users.get(node.id, ()))


def _direct_need(graph: Graph, reader: Node, source: str, plan: LayerPlan) -> bool:
    key = _key(graph, reader)
    if key in plan.linears or key in plan.norms:
        return reader.inputs[0] == source
    return reader.is_repeat and plan.residual_sharded


def needs_sharded(graph: Graph, reader: Node, source: str, plan: LayerPlan) -> bool:
    if _direct_need(graph, reader, source, plan):
        return True
    return reader.op in (ADD.name, MUL.name) and gives_sharded(graph, reader, plan)


# ---------------------------------------------------------------- emission
def residual_memory(node, ctx) -> Expr:
    plan = layer_plan(ctx)
    norm = decode_norm(plan.width, ctx.backend.target, cores=plan.cores)
    x, y = norm.memory.grid
    return ctx.config_member(node, "residual_memory", norm.memory.code(),
                             f"decode: the residual stream, L1 width-sharded over {x}x{y} cores "
                             f"({norm.memory.shard[1]} columns each), the grid every layer matmul reads")


def adapt_args(node, args: list[Expr], ctx) -> list[Expr]:
    """Decode: each argument resharded where its layout is not the one this op reads."""
    plan = layer_plan(ctx)
    if not plan.active:
        return args
    graph = ctx.graph
    out = list(args)
    for i, (source, arg) in enumerate(zip(node.inputs, args)):
        gives = gives_sharded(graph, graph.node(source), plan)
        needs = needs_sharded(graph, node, source, plan)
        if gives and not needs and node.op != REDUCE_SCATTER.name:  # it reads sharded and writes L1 (below)
            out[i] = call("ttnn.to_memory_config", arg, name("ttnn.L1_MEMORY_CONFIG"))
        elif needs and (not gives or (id(graph), source) in plan.regrid):
            out[i] = call("ttnn.to_memory_config", arg, _input_memory(node, plan, ctx))
    return out


def _input_memory(node, plan: LayerPlan, ctx) -> Expr:
    """The sharded layout `node` reads: a planned norm's or matmul's own, else (an add) the residual's."""
    key = _key(ctx.graph, node)
    if key in plan.norms:
        return _norm_memory(node, plan.norms[key], plan, ctx)
    if key in plan.linears:
        memory = plan.linears[key].input
        x, y = memory.grid
        return ctx.config_member(node, "matmul_input_memory", memory.code(),
                                 f"decode: a matmul's input, L1 width-sharded over {x}x{y} cores")
    return residual_memory(node, ctx)


def adapt_output(node, expr: Expr, ctx) -> Expr:
    """Decode: the embedding resharded onto the residual's grid; an all-gather writing the sharded layout of the
    norm after it; a reduce-scatter of a sharded matmul output writing L1 interleaved (measured on the mock T3K)."""
    plan = layer_plan(ctx)
    if not plan.active:
        return expr
    graph = ctx.graph
    if node.op == REDUCE_SCATTER.name and gives_sharded(graph, graph.node(node.inputs[0]), plan):
        return Call(expr.func, expr.args, expr.kwargs + (("memory_config", name("ttnn.L1_MEMORY_CONFIG")),))
    if not converted(graph, node, plan):
        return expr
    if node.op == ALL_GATHER.name:
        norm = plan.norms[_key(graph, next(graph.node(u) for u in graph.users[node.id]
                                           if _key(graph, graph.node(u)) in plan.norms))]
        return Call(expr.func, expr.args, expr.kwargs + (("memory_config", _norm_memory(node, norm, plan, ctx)),))
    return call("ttnn.to_memory_config", expr, residual_memory(node, ctx))


def sharded_output(node, ctx) -> Expr | None:
    """The memory config of an add or multiply whose inputs are sharded alike: the same sharding (ttnn derives
    it from the inputs), or None where the op writes an interleaved tensor."""
    plan = layer_plan(ctx)
    if plan.active and gives_sharded(ctx.graph, node, plan):
        return name("ttnn.L1_WIDTH_SHARDED_MEMORY_CONFIG")
    return None


def _planned(plan: LayerPlan, node, ctx):
    return plan.linears.get((id(ctx.graph), node.id)) if plan.active else None


def weight_memory(node, ctx) -> tuple[Comment, Expr] | None:
    """A DRAM-sharded linear's weight placement (`weights.linear(..., memory=...)`) with its comment."""
    matmul = _planned(layer_plan(ctx), node, ctx)
    if matmul is None:
        return None
    memory = dram_weight(matmul.k, matmul.n, ctx.backend.target)
    banks, shard = memory.grid[0], memory.shard
    return (Comment(f"DRAM width-sharded over {banks} banks, a [{shard[0]}, {shard[1]}] shard each: the decode "
                    "matmul streams it; prefill reads it with 2-D multicast programs"), memory.code())


def linear_decode(node, args, refs, ctx) -> Expr | None:
    """The DRAM-sharded decode matmul of a planned linear, or None (then decode_configs' 1-D one)."""
    matmul = _planned(layer_plan(ctx), node, ctx)
    if matmul is None:
        return None
    program = matmul.op.program
    stem = node.module.rsplit(".", 1)[-1]
    x, y = matmul.input.grid
    comment = (f"decode: {matmul.k} -> {matmul.n}, DRAM-sharded over {matmul.cores} cores ({x}x{y}), "
               f"{program.per_core_N} output tiles per core, K in blocks of {program.in0_block_w} tiles")
    options = {"program_config": ctx.config_member(node, f"{stem}_decode", program.code(), comment),
               "compute_kernel_config": kernel_member(node, ctx),
               "memory_config": name("ttnn.L1_WIDTH_SHARDED_MEMORY_CONFIG")}
    return call("ttnn.linear", args[0], refs["weight"], **options)


def linear_prefill(node, args, refs, ctx) -> Expr | None:
    """A planned linear in prefill: `chunked_linear` with a 2-D multicast program per chunk size."""
    matmul = _planned(layer_plan(ctx), node, ctx)
    if matmul is None:
        return None
    fmt = weight_format(node, ctx)
    role = role_of(node, ctx.graph)
    programs = prefill_programs(matmul.k, matmul.n, fmt, ctx.backend.target, PREFILL_CHUNKS, role=role,
                                fused_activation=_prefill_activation(node))
    largest, first = next(iter(programs.items()))
    first = first.op.program
    stem = node.module.rsplit(".", 1)[-1]
    table = Dict(tuple((Const(rows), p.op.program.code()) for rows, p in programs.items()))
    silu = "; SiLU fused" if first.fused_activation else ""
    comment = (f"prefill: {matmul.k} -> {matmul.n} {fmt} on the DRAM-sharded weight, 2-D multicast per chunk of "
               f"rows ({first.grid[0]}x{first.grid[1]} cores at {largest} rows){silu}")
    member = ctx.config_member(node, f"{stem}_prefill", table, comment)
    kernel = kernel_member(node, ctx)
    return ctx.helper("chunked_linear")(args[0], refs["weight"], member, kernel)


def norm_decode(node, args, refs, ctx, kind: str) -> Expr | None:
    """A planned norm: sharded over the residual's grid, writing the layout its matmuls read."""
    plan = layer_plan(ctx)
    norm: DecodeNorm | None = plan.norms.get((id(ctx.graph), node.id)) if plan.active else None
    if norm is None:
        return None
    program = norm.op.program
    x, y = program.grid
    options = {"epsilon": Const(node.attrs.eps), "weight": refs["weight"]}
    if node.attrs.bias:
        options["bias"] = refs["bias"]
    options["program_config"] = ctx.config_member(
        node, "norm_decode", program.code(),
        f"decode: the norm sharded over {x}x{y} cores, {program.block_w} tiles each (the grid of its matmuls)")
    options["compute_kernel_config"] = ctx.config_member(
        node, "norm_kernel", norm.op.compute.code(), "decode: norms at HiFi2 with fp32 accumulation")
    options["memory_config"] = _norm_memory(node, norm, plan, ctx)
    return call(f"ttnn.{kind}_norm", args[0], **options)


def _norm_memory(node, norm: DecodeNorm, plan: LayerPlan, ctx) -> Expr:
    """A norm's sharded layout (in and out): the residual's on one chip; on a mesh the grid of the matmuls after
    it, which the all-gather before it writes."""
    if plan.residual_sharded:
        return residual_memory(node, ctx)
    x, y = norm.memory.grid
    return ctx.config_member(node, "norm_memory", norm.memory.code(),
                             f"decode: the gathered row and its norm, L1 width-sharded over {x}x{y} cores "
                             f"({norm.memory.shard[1]} columns each), the grid of the matmuls after it")


def merge_heads_sharded(node, ctx) -> bool:
    plan = layer_plan(ctx)
    return plan.active and gives_sharded(ctx.graph, node, plan)
