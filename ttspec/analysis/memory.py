"""The one memory model: the device DRAM one chip needs for a TT-NN program.

`check --target`, `compile`, `plan` and `run` all ask this module (through ttspec/driver.py),
so they give one verdict. Per chip, by kind:

- weights, as the generated program stores them: matrices in the weights dtype and TILE
  layout (32x32 tiles; attention heads zero-padded to whole tiles), norms and biases in bf16
  TILE, lookup tables (embeddings) in bf16 ROW_MAJOR; a tied output head keeps its own TILE
  copy of the table. On a mesh: each chip's shard (column-parallel: a slice of the output
  features; row-parallel: of the input features; the vocabulary padded with zero rows to
  split evenly; replicated KV heads counted once per chip that holds a copy; row-parallel
  biases replicated). Grouped by the parameter kinds of `ttspec params` (attention, mlp,
  embedding, norm, head, ...).
- DRAM width-sharded matrices (the decode step's layer matmuls where the program DRAM-shards them; the
  driver hands their facts over as `ShardedMatrix` records, which the backend's layer plan makes): ttnn's
  allocator books every bank's shard whole, so a [K, N] matrix over B banks occupies B shards of
  ceil(N / (32 * B)) * 32 columns (`dram_sharded_bytes`); a fused QKV is one such matrix. What that adds to
  the matrix's own tiles is `dram_shard_padding`, counted under the matrix's kind.
- every other weight tensor is interleaved over the chip's DRAM banks, and ttnn's allocator books whole pages in
  every bank (dram_pages.py): `bank_rounding` adds what that books past the tensors' own tiles (a fused QKV's
  weights, and its biases, are one tensor), counted under their kinds.
- KV cache: keys and values of every attention layer in its format (`--kv-dtype`: bf16, or bfloat8_b at
  1,088 B per 32x32 tile), as the device would hold them:
  this chip's KV heads x head_dim (padded to a whole tile) x context (padded to a whole tile)
  x the chip's share of the batch.
- activations: a prefill peak, estimated per token (bf16): the full residual activation (as
  gathered before a norm), this chip's residual slice, two of the widest [batch, seq, features]
  values a layer holds on this chip (an MLP's gate and up; a row-parallel projection's partial
  sums are full width) and this chip's slice of the logits (all of them when the output head
  is replicated). Attention with logit softcapping is composed from matmul, tanh and softmax
  (ttnn's fused attention has no softcap), so it holds its [heads, seq, seq] logits: two live
  copies (an op's input and output) per query head on this chip plus the [seq, seq] mask, a
  term quadratic in the context.

Weights are constant; the KV cache and activations grow linearly with batch x context (plus the
quadratic logits term above), so the largest batch at a context is a closed form and the
largest context at a batch a search over whole tiles.

"Fits" means: weights + KV cache + activations at (batch, one tile of context) fit the chip's
DRAM. A model whose weights fit but not at its full context still compiles, with the largest
context that fits (at batch 1) baked into the program.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

from ..errors import UsageError
from ..ir.graph import Graph, Model, layer_variants, point_at_spec
from ..ir.layout import Layout
from ..ir.sharding import ONE_CHIP, ShardPlan, local_shape
from ..ops.linear import fused_qkv
from ..ops.queries import (
    attentions,
    head_merges,
    head_splits,
    kind_of,
    lookup_tables,
    materialises_scores,
    matrix_of,
    matrix_roles,
)
from ..targets import TILE, Target, core_grids
from ..weight_formats import BF16, Matrix, WeightFormats, tensor_bytes
from .dram_pages import DRAM_ALIGNMENT, booked_bytes

ACTIVATION_BYTES = 2  # bf16 activations (and a bf16 KV cache: kv_cache_bytes)


def kv_cache_bytes(values: int, dtype: str) -> int:
    """Device bytes of `values` KV-cache values (whole 32x32 tiles of them) in `dtype` (`--kv-dtype`): 2 B each in
    bf16; in bfloat8_b 1,088 B per tile of 1,024 (1,024 mantissa bytes and 64 of shared exponents)."""
    return tensor_bytes(values, dtype)


def tile_pad(n: int) -> int:
    return -(-n // TILE) * TILE


def tiles(shape: tuple[int, ...]) -> int:
    """Values a TILE-layout tensor occupies: its last two dims padded to whole 32x32 tiles."""
    rows, cols = (1, shape[0]) if len(shape) == 1 else shape[-2:]
    lead = 1
    for d in shape[:-2]:
        lead *= d
    return lead * tile_pad(rows) * tile_pad(cols)


def padded_shapes(graph: Graph) -> dict[str, tuple[int, ...]]:
    """Device shapes of attention projections whose heads are zero-padded to whole tiles."""
    shapes: dict[str, tuple[int, ...]] = {}
    for split in head_splits(graph):
        if split.head_dim % TILE:
            for name in split.projection.params.values():
                shape = graph.params[name].shape
                shapes[name] = (split.heads * tile_pad(split.head_dim),) + tuple(shape[1:])
    for merge in head_merges(graph):
        if merge.head_dim % TILE:
            for reader in merge.readers:
                weight = reader.params.get("weight")
                if weight:
                    shapes[weight] = (graph.params[weight].shape[0], merge.heads * tile_pad(merge.head_dim))
    return shapes


def param_chip_layout(graph: Graph, prefix: str, name: str, plan: ShardPlan = ONE_CHIP, tables: set[str] | None = None,
                      padded: dict | None = None, roles: dict | None = None) -> tuple[Matrix, tuple[int, ...], bool]:
    """(kind and matrix role (weight_formats.Matrix), shape on one chip, whether a lookup table) of parameter
    `name` of `graph` (inside the layers whose names start with `prefix`): what its bytes depend on besides the
    weight formats. `roles`: matrix_roles(graph), when already found."""
    tables = lookup_tables(graph) if tables is None else tables
    padded = padded_shapes(graph) if padded is None else padded
    p = graph.params[name]
    return matrix_of(graph, p.module, roles), local_shape(padded.get(name, p.shape), plan, prefix + name, param=True), \
        name in tables


def chip_bytes(kind: Matrix | str, shape: tuple[int, ...], table: bool, formats: WeightFormats) -> int:
    """Device DRAM bytes of a parameter of `kind` (its Matrix, or a kind) laid out on one chip as `shape`
    (param_chip_layout) in weight formats `formats`."""
    if table:
        size = 1
        for d in shape:
            size *= d
        return tensor_bytes(size, "bf16")
    # a matrix, or a bank of them ([experts, rows, cols]): the chosen format; a vector bf16
    return tensor_bytes(tiles(shape), formats.dtype(kind) if len(shape) >= 2 else "bf16")


def param_chip_bytes(graph: Graph, prefix: str, name: str, formats: WeightFormats, plan: ShardPlan = ONE_CHIP,
                     tables: set[str] | None = None, padded: dict | None = None) -> tuple[str, int]:
    """(kind, device DRAM bytes on one chip) of parameter `name` of `graph` (inside the layers
    whose names start with `prefix`): the one rule `weight_bytes_by_kind` sums and the cost model
    (analysis/cost.py) reads per op."""
    kind, shape, table = param_chip_layout(graph, prefix, name, plan, tables, padded)
    return kind, chip_bytes(kind, shape, table, formats)


class ShardedMatrix(NamedTuple):
    """A [k, n] weight matrix one chip holds width-sharded over its DRAM banks, `count` times (once per layer
    that has it): k and n as the program uploads it (heads padded to tiles, this chip's slice; a fused QKV's
    q, k and v as one matrix). `kind`: its parameters' kind (where its bytes are counted); `dtype`: its format
    (the one the program uploads it in)."""

    kind: str
    k: int
    n: int
    dtype: str
    count: int = 1


def dram_shard_width(n: int, banks: int) -> int:
    """Columns of one bank's shard of an n-column matrix width-sharded over `banks` DRAM banks: whole tiles,
    the same in every bank (tt_transformers create_dram_sharded_mem_config; configs.decode.dram_weight)."""
    return -(-n // (TILE * banks)) * TILE


def dram_sharded_bytes(k: int, n: int, dtype: str, banks: int) -> int:
    """Device DRAM bytes ttnn's allocator books for a [k, n] matrix in `dtype` (TILE layout) width-sharded over
    `banks` DRAM banks: `banks` shards of [k padded to a tile, dram_shard_width(n, banks)], each booked whole."""
    return banks * tensor_bytes(tile_pad(k) * dram_shard_width(n, banks), dtype)


def dram_shard_padding(k: int, n: int, dtype: str, banks: int) -> int:
    """What DRAM width-sharding a [k, n] matrix adds to its bytes as one interleaved TILE tensor (tiles(k, n)):
    the columns its banks' whole shards hold past n's last tile."""
    return dram_sharded_bytes(k, n, dtype, banks) - tensor_bytes(tiles((k, n)), dtype)


def with_dram_shards(weights: dict[str, int], sharded: tuple[ShardedMatrix, ...], banks: int) -> dict[str, int]:
    """`weights` (bytes by kind, each matrix counted as its own tiles) with the padding of the DRAM-sharded
    matrices added to their kinds."""
    out = dict(weights)
    for m in sharded:
        out[m.kind] = out.get(m.kind, 0) + m.count * dram_shard_padding(m.k, m.n, m.dtype, banks)
    return out


def weight_layouts(model: Model, plan: ShardPlan = ONE_CHIP) -> dict[tuple[Matrix, tuple[int, ...], bool], int]:
    """How many parameters (a repeat's layers counted) share each (Matrix, shape on one chip, lookup
    table): the weights' bytes in any formats follow from these (written-out layers share a few)."""
    out: dict[tuple[Matrix, tuple[int, ...], bool], int] = {}

    def visit(graph: Graph, prefix: str, count: int) -> None:
        tables = lookup_tables(graph)
        padded = padded_shapes(graph)
        roles = matrix_roles(graph)
        for name in graph.params:
            layout = param_chip_layout(graph, prefix, name, plan, tables, padded, roles)
            out[layout] = out.get(layout, 0) + count
        for node in graph.repeats():
            for body, n in layer_variants(node):
                visit(body, f"{prefix}{node.module}.*.", count * n)

    visit(model.graph, "", 1)
    return out


def chip_weights(model: Model, lowered: Model, target: Target, formats: WeightFormats, plan: ShardPlan = ONE_CHIP,
                 layouts: dict | None = None, sharded: tuple[ShardedMatrix, ...] = ()) -> dict[str, int]:
    """Bytes by kind ttnn's allocator books on one chip for the weights of the program (`lowered`): each
    parameter's tiles, the DRAM-sharded matrices' whole shards and the interleaved tensors' whole pages per bank
    (dram_pages.bank_rounding)."""
    weights = with_dram_shards(weight_bytes_by_kind(model, formats, plan, layouts), sharded,
                               core_grids(target).dram_banks)
    for kind, extra in bank_rounding(model, lowered, formats, target, plan, sharded).items():
        weights[kind] = weights.get(kind, 0) + extra
    return dict(sorted(weights.items()))


def _fused_groups(graph: Graph, prefix: str, out: dict[str, dict[str, str]]) -> None:
    """out[prefix][param name] = the name of the tensor it is uploaded in (fused QKV parts: one per weight/bias)."""
    groups = out.setdefault(prefix, {})
    for node in graph.topo():
        fused = fused_qkv(node)
        for part in fused.parts if fused else ():
            for which, name in part.params:
                groups[name] = f"{node.module}.{which}"
    for node in graph.repeats():
        for body, _ in layer_variants(node):
            _fused_groups(body, f"{prefix}{node.module}.*.", out)


def bank_rounding(model: Model, lowered: Model, formats: WeightFormats, target: Target, plan: ShardPlan = ONE_CHIP,
                  sharded: tuple = ()) -> dict[str, int]:
    """Bytes by parameter kind the allocator books for the program's interleaved weights beyond their tiles
    (dram_pages.py); `sharded`: the program's DRAM width-sharded matrices (memory.ShardedMatrix)."""
    banks = core_grids(target).dram_banks
    alignment = DRAM_ALIGNMENT.get(target.arch, 32)
    fused: dict[str, dict[str, str]] = {}
    _fused_groups(lowered.graph, "", fused)
    # tensor -> [Matrix, chip shape, table, own bytes, count]
    tensors: dict[tuple[str, str], list] = {}

    def visit(graph: Graph, prefix: str, count: int) -> None:
        tables, padded, roles = lookup_tables(graph), padded_shapes(graph), matrix_roles(graph)
        groups = fused.get(prefix, {})
        for name in graph.params:
            matrix, shape, table = param_chip_layout(graph, prefix, name, plan, tables, padded, roles)
            key = (prefix + str(id(graph)), groups.get(name, name))
            own = chip_bytes(matrix, shape, table, formats)
            if key in tensors:  # another part of a fused tensor: its rows follow the first part's
                t = tensors[key]
                t[1] = (t[1][0] + shape[0],) + shape[1:]
                t[3] += own
            else:
                tensors[key] = [matrix, shape, table, own, count]
        for node in graph.repeats():
            for body, n in layer_variants(node):
                visit(body, f"{prefix}{node.module}.*.", count * n)

    visit(model.graph, "", 1)
    left = {(m.kind, m.n, m.k, m.dtype): m.count for m in sharded}  # [out, in] chip shapes DRAM-sharded
    out: dict[str, int] = {}
    for matrix, shape, table, own, count in tensors.values():
        dtype = formats.dtype(matrix) if len(shape) >= 2 and not table else "bf16"
        key = (matrix.kind, *shape, dtype) if len(shape) == 2 and not table else None
        if key in left and left[key] > 0:
            taken = min(count, left[key])
            left[key] -= taken
            count -= taken
        if count:
            extra = booked_bytes(shape, table, dtype, banks, alignment) - own
            out[matrix.kind] = out.get(matrix.kind, 0) + count * extra
    return out


def weight_bytes_by_kind(model: Model, formats: WeightFormats, plan: ShardPlan = ONE_CHIP, layouts: dict | None = None
                         ) -> dict[str, int]:
    """Device DRAM bytes of the weights on one chip, by parameter kind (see the module doc).
    `formats`: one dtype for every weight matrix, or formats per kind (ttspec/weight_formats.py).
    `layouts`: weight_layouts(model, plan), when already found."""
    out: dict[str, int] = {}
    for (matrix, shape, table), count in (weight_layouts(model, plan) if layouts is None else layouts).items():
        out[matrix.kind] = out.get(matrix.kind, 0) + count * chip_bytes(matrix, shape, table, formats)
    return dict(sorted(out.items()))


def check_weight_formats(model: Model, formats: WeightFormats) -> None:
    """A clear error (UsageError) for --weights-dtype kinds the model has no parameters of, or no weight
    matrices of: only matrices take a format (see the module doc), so naming such a kind would change nothing;
    and for a matrix role (wqkv, wo, ff1_ff3, ff2) none of its matrices has."""
    if formats.plain:
        return
    layouts = weight_layouts(model)
    wide = weight_bytes_by_kind(model, BF16, layouts=layouts)
    narrow = weight_bytes_by_kind(model, WeightFormats("bfloat4_b"), layouts=layouts)
    roles = {m.role for (m, shape, table) in layouts if m.role and not table and len(shape) >= 2}
    matrix_kinds = [kind for kind in wide if wide[kind] != narrow[kind]]
    try:
        formats.check_kinds(wide, matrix_kinds, roles)
    except UsageError as e:  # about this spec: where (a parameter of the kind named, else the model)
        named = next((k for k in formats.by_kind if k in wide and k not in matrix_kinds), None)
        site = _kind_site(model.graph, named, []) if named else None
        d = e.diagnostic
        error = UsageError(d.message, site[0] if site else model.loc, d.hint)
        raise (point_at_spec(error, site[1]) if site else error) from None


def _kind_site(graph: Graph, kind: str, outer: list) -> tuple | None:
    """(loc, point_at_spec's scopes) of the first op with parameters of `kind`, repeat bodies included."""
    for node in graph.topo():
        if node.params and kind_of(graph, node.module) == kind:
            return node.loc, [(graph, node.module), *outer]
        for body, _ in layer_variants(node) if node.is_repeat else ():
            found = _kind_site(body, kind, [(graph, node.module), *outer])
            if found:
                return found
    return None


@dataclass(frozen=True)
class Usage:
    """Bytes one chip holds at one (batch, context)."""

    batch: int
    context: int
    weights: dict[str, int]  # by parameter kind
    kv_cache: int
    activations: int
    dram: int

    @property
    def weights_total(self) -> int:
        return sum(self.weights.values())

    @property
    def total(self) -> int:
        return self.weights_total + self.kv_cache + self.activations

    @property
    def fits(self) -> bool:
        return self.total <= self.dram


@dataclass(frozen=True)
class Memory:
    """The memory model of one program: constant weights plus bytes per token of context."""

    target: Target
    weights_dtype: WeightFormats
    weights: dict[str, int]  # per chip, by parameter kind
    kv_bytes_per_token: int  # per chip, per sequence of the chip's batch, per token of context
    activation_bytes_per_token: int  # likewise, the prefill peak estimate (the logits apart)
    score_bytes_per_token_pair: int = 0  # per sequence, per (query, key) pair: materialised attention logits
    # per chip, per position whose logits are computed: a prefill computes its last tile's (TILE positions, counted
    # in per_sequence); a call returning every position's logits (scoring, model(tokens)) all of them (`logits`)
    logits_bytes_per_token: int = 0
    replicas: int = 1  # data-parallel replicas the batch is split over
    seq_bound: int | None = None  # the spec's bound on the context (`where seq <= N`)
    batch_bound: int | None = None
    sharded: tuple[ShardedMatrix, ...] = ()  # the DRAM width-sharded matrices (their padding is in `weights`)

    @property
    def dram(self) -> int:
        return self.target.dram_per_chip

    @property
    def weights_total(self) -> int:
        return sum(self.weights.values())

    @property
    def per_token(self) -> int:
        return self.kv_bytes_per_token + self.activation_bytes_per_token

    def local_batch(self, batch: int) -> int:
        return -(-batch // self.replicas)

    def kv_cache(self, batch: int, context: int) -> int:
        return self.kv_bytes_per_token * self.local_batch(batch) * tile_pad(context)

    @property
    def last_logits(self) -> int:
        """A prefill's logits: the tile of positions holding its last one (what the head computes)."""
        return TILE * self.logits_bytes_per_token

    def per_sequence(self, context: int) -> int:
        """KV cache and activation bytes of one sequence at `context` (padded to whole tiles)."""
        ctx = tile_pad(context)
        return self.per_token * ctx + self.score_bytes_per_token_pair * ctx * ctx + self.last_logits

    def activations(self, batch: int, context: int) -> int:
        ctx = tile_pad(context)
        per_sequence = self.activation_bytes_per_token * ctx + self.score_bytes_per_token_pair * ctx * ctx
        return (per_sequence + self.last_logits) * self.local_batch(batch)

    def logits(self, context: int) -> int:
        """Every position's logits of one sequence of `context` (scoring), beyond the last tile's."""
        return self.logits_bytes_per_token * (tile_pad(context) - TILE)

    def usage(self, batch: int, context: int) -> Usage:
        return Usage(batch, context, dict(self.weights), self.kv_cache(batch, context),
                     self.activations(batch, context), self.dram)

    def fits(self, batch: int = 1) -> bool:
        """Weights, KV cache and activations at `batch` and one tile of context fit the chip."""
        return self.usage(batch, TILE).fits

    def max_context(self, batch: int = 1) -> int:
        """The largest context (a whole number of tiles, or the spec's bound) that fits at `batch`;
        0 when not even one tile does."""
        if not self.fits(batch):
            return 0
        free = self.dram - self.weights_total
        sequences = self.local_batch(batch)
        # exact without the quadratic term
        tiles_fit = (free - sequences * self.last_logits) // (self.per_token * sequences * TILE)
        if self.score_bytes_per_token_pair:
            low, high = 1, tiles_fit  # one tile fits; per_sequence grows with the context
            while low < high:
                mid = (low + high + 1) // 2
                if self.per_sequence(mid * TILE) * sequences <= free:
                    low = mid
                else:
                    high = mid - 1
            tiles_fit = low
        context = tiles_fit * TILE
        return min(context, self.seq_bound) if self.seq_bound else context

    def max_batch(self, context: int) -> int:
        """The largest batch that fits at `context`; 0 when not even one sequence does."""
        free = self.dram - self.weights_total
        if free < 0:
            return 0
        batch = free // self.per_sequence(context) * self.replicas
        return min(batch, self.batch_bound) if self.batch_bound else batch


def in_formats(memory: Memory, model: Model, weights_dtype: WeightFormats, plan: ShardPlan = ONE_CHIP,
               layouts: dict | None = None, sharded: tuple[ShardedMatrix, ...] | None = None,
               lowered: Model | None = None) -> Memory:
    """The memory model of the same program (`model` sharded by `plan`) with its weights in other formats:
    only the weights (and the KV cache's bytes, in its format) change (the plan search weighs one sharding in
    every format). `sharded`: the program's DRAM-sharded matrices in those formats (default: `memory`'s);
    `lowered`: the program's lowered model (its fused QKV tensors; default `model`)."""
    kv = memory.kv_bytes_per_token
    if weights_dtype.kv_cache != memory.weights_dtype.kv_cache:  # back to values per position, then to bytes
        values = kv * TILE * 1024 // kv_cache_bytes(1024, memory.weights_dtype.kv_cache) // TILE
        kv = kv_cache_bytes(values * TILE, weights_dtype.kv_cache) // TILE
    sharded = memory.sharded if sharded is None else sharded
    weights = chip_weights(model, lowered or model, memory.target, weights_dtype, plan, layouts, sharded)
    return replace(memory, weights_dtype=weights_dtype, kv_bytes_per_token=kv, weights=weights, sharded=sharded)


def _bound(model: Model, axis: int) -> int | None:
    """The spec's bound on the input's `axis` dim (batch 0, seq -1), when symbolic and bounded."""
    graph = model.graph
    if not graph.inputs:
        return None
    dim = graph.node(graph.inputs[0]).type.shape[axis]
    return dim if isinstance(dim, int) else model.bounds.get(dim)


def memory_model(model: Model, lowered: Model, target: Target, weights_dtype: WeightFormats, plan: ShardPlan = ONE_CHIP,
                 layouts: dict | None = None, sharded: tuple[ShardedMatrix, ...] = ()) -> Memory:
    """The memory model for `model` compiled for `target` (lowered and, on a mesh, sharded by
    `plan` into `lowered`). `layouts`: weight_layouts(model, plan), when already found. `sharded`: the
    matrices the program DRAM-shards (the backend's layer plan, which the driver asks)."""
    def local(graph: Graph, prefix: str, node_id: str, width: int) -> int:
        """Features (or heads) of a value one chip holds: a slice for each axis over which the plan splits it."""
        return local_shape((width,), plan, prefix + node_id)[0]

    kv = 0
    widest = 0
    scores = 0  # per (query, key) pair, the largest of any one attention: they run one at a time

    graph = lowered.graph
    head = graph.node(next(iter(graph.outputs.values())))
    while not head.params and head.inputs:  # back through collectives and a final softcap to the output head
        head = graph.node(head.inputs[0])

    def visit(graph: Graph, prefix: str, count: int) -> None:
        nonlocal kv, widest, scores
        for att in attentions(graph):
            if att.node.attrs.causal:  # non-causal attention keeps no KV cache (its model cannot decode)
                kv_local = local(graph, prefix, att.keys.id, att.kv_heads)
                kv += count * 2 * kv_local * tile_pad(att.head_dim)  # keys and values: values per position
            if materialises_scores(att.node):
                query_heads = local(graph, prefix, att.node.inputs[0], graph.node(att.node.inputs[0]).type.shape[1])
                scores = max(scores, (2 * query_heads + 1) * ACTIVATION_BYTES)
        for node in graph.topo():  # [batch, seq, features] values: projections, products, sums
            if node is not head and node.type.rank == 3 and not node.type.is_int:
                widest = max(widest, local(graph, prefix, node.id, node.type.shape[-1]))
        for node in graph.repeats():
            for body, n in layer_variants(node):
                visit(body, f"{prefix}{node.module}.*.", count * n)

    visit(graph, "", 1)
    hidden = graph.node(head.inputs[0]).type.shape[-1]
    vocab = head.type.shape[-1] if head.shard.padded_out is None else head.shard.padded_out
    residual = hidden
    for ax in plan.axes:
        if ax.residual == Layout.SPLIT:
            residual = -(-residual // ax.devices)
    activations = ACTIVATION_BYTES * (hidden + residual + 2 * widest)
    weights = chip_weights(model, lowered, target, weights_dtype, plan, layouts, sharded)
    # whole tiles of 32 positions: bytes per position of a bfloat8_b cache are its tile's 1,088 B over 32 positions
    kv = kv_cache_bytes(kv * TILE, weights_dtype.kv_cache) // TILE
    return Memory(target, weights_dtype, weights, kv, activations, scores,
                  logits_bytes_per_token=ACTIVATION_BYTES * local(graph, "", head.id, vocab), replicas=plan.replicas,
                  seq_bound=_bound(model, -1), batch_bound=_bound(model, 0), sharded=sharded)
