"""The cost model: how long a TT-NN program takes on a target, from the same graph the FLOP
count and the memory model read.

An interpreter (analysis/interpreters.py) walks the lowered, sharded graph (driver.prepare)
once and tables its ops (OpTable); a phase prices every op on one chip, each distinct op once (the
ops of written-out layers that are alike share a price, summed op by op as if priced apart):

- compute: the op's FLOPs from the op registry's rule, divided over the chips that split it,
  at the chip's matrix-engine rate (Tensix cores x clock x 4096 FLOPs per cycle) divided by the
  math fidelity its weight format runs at (bfloat4_b LoFi, bfloat8_b HiFi2, bf16 HiFi4; attention
  HiFi2). Matmuls compute whole 32-row tiles: a decode step of batch B does the work of
  tile_pad(B) rows.
- DRAM: the bytes one chip reads: its share of the op's weights as analysis/memory.py stores them
  (memory.param_chip_bytes: dtype, tile padding, shard); of a lookup table only the rows looked up;
  the KV cache of the layer (memory.Memory.kv_cache: decode reads all of it, prefill writes it); in
  prefill the op's bf16 activations in and out. Decode activations ([batch, features] rows) are
  taken to stay in L1, as tt_transformers keeps them.
- a fixed cost per op: dispatch with trace (targets.ChipSpec.op_overhead_traced_s).
- collectives: tt-metal's measured single-op model of the CCL op (startup + per hop + bytes
  through the busiest link), ring or line by how the target wires the cluster axis.

Time of an op = max(compute, DRAM) + fixed + collective; its bottleneck is the largest term.
Ops run one after another (no overlap between ops). Prefill is one user's prompt (time to first
token); decode is one step of `batch` users at `context` tokens of KV cache.

Given the decode step the backend emitted (analysis/program.py's DecodeProgram, which `report` joins in), decode
is priced from the program instead: a weight matmul's DRAM rate by the program factory its config selects and its
compute at the fidelity its kernel states (ProgramTerms), no fixed cost per graph op but one per device op the step
dispatches, the collectives on the fabric it opens at the payload it writes, the matmul outputs it writes to DRAM,
the step's inputs and its result (logits or sampled ids) over PCIe and a fixed host cost per step
(device_op_costs). Every constant is in ttspec/targets.py with its source; the ChipSpec ones are specifications
and single-op measurements, DecodeCosts says which of its terms were fitted to tt_transformers' PERF.md.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from functools import reduce
from operator import add, itemgetter
from typing import NamedTuple

from ..ir.graph import Node, layer_pattern, layer_variants, layers_text
from ..ir.sharding import split_dim, value_splits, work_split
from ..ir.types import concrete
from ..ops import ALL_GATHER, ATTEND, COLLECTIVES, EXPERT_GLU, LINEAR, MESH_PARTITION, REGISTRY, TIED_LINEAR
from ..ops.collectives import CCL_PATTERN
from ..ops.experts import experts_read
from ..ops.linear import fused_qkv
from ..ops.norms import NORM_STATISTICS, STATISTICS_BYTES
from ..ops.queries import attentions, lookup_tables, reduces_into_residual
from ..ops.registry import no_flops  # the rule of ops that compute nothing counted
from ..targets import ATTENTION_FIDELITY_PHASES, DECODE_COSTS, ETHERNET_LINE_RATES, FIDELITY_PHASES, TILE, WORMHOLE_CCL
from ..weight_formats import WeightFormats, tensor_bytes
from .interpreters import Interpreter
from .memory import ACTIVATION_BYTES, chip_bytes, padded_shapes, param_chip_layout, tile_pad, tiles
from .program import DecodeProgram, ProgramTerms, device_op_costs

SCHEMA = "ttspec-report/1"
COLLECTIVE_NAMES = {c.name for c in COLLECTIVES}
MATMULS = {LINEAR.name, TIED_LINEAR.name}
CLASS_COLLECTIVE = "collective"
HOST_READ = "host_read"  # not an op: the logits' trip to the host over PCIe


def _param_names(node: Node) -> list[str]:
    """The parameters an op reads: its own, or those of the projections a fused QKV linear joined."""
    fused = fused_qkv(node)
    return list(node.params.values()) + (list(fused.param_names) if fused is not None else [])


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


@dataclass
class OpCost:
    """One op of one layer (of one chip), and how many layers run it."""

    node: str
    op: str
    group: str  # the layer group (`layers.*`) or "" outside the layers
    count: int
    flops: int
    dram_bytes: int
    collective_bytes: int
    compute_s: float
    dram_s: float
    fixed_s: float
    collective_s: float  # the CCL op's time, or for the host read its PCIe time
    host_bytes: int = 0  # bytes returned to the host (the logits)

    @property
    def op_class(self) -> str:
        return CLASS_COLLECTIVE if self.op in COLLECTIVE_NAMES else self.op

    @property
    def time_s(self) -> float:
        return max(self.compute_s, self.dram_s) + self.fixed_s + self.collective_s

    @property
    def bottleneck(self) -> str:
        terms = {"compute": self.compute_s, "DRAM": self.dram_s, "dispatch": self.fixed_s,
                 ("PCIe" if self.op == HOST_READ else "ethernet"): self.collective_s}
        return max(terms, key=terms.get)


@dataclass
class Phase:
    """The modelled time of one forward pass (prefill or one decode step) on one chip."""

    name: str
    batch: int
    tokens: int  # per user: the prompt (prefill) or 1 (decode)
    context: int
    ops: list[OpCost] = field(default_factory=list)

    @property
    def time_s(self) -> float:
        return sum(o.count * o.time_s for o in self.ops)

    def by_class(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for o in self.ops:
            c = out.setdefault(o.op_class, {"ops": 0, "flops": 0, "dram_bytes": 0, "collective_bytes": 0,
                                            "host_bytes": 0, "time_s": 0.0, "_terms": {}})
            c["ops"] += o.count if o.op != HOST_READ else 0
            c["host_bytes"] += o.host_bytes
            c["flops"] += o.count * o.flops
            c["dram_bytes"] += o.count * o.dram_bytes
            c["collective_bytes"] += o.count * o.collective_bytes
            c["time_s"] += o.count * o.time_s
            for term, value in (("compute", o.compute_s), ("DRAM", o.dram_s), ("dispatch", o.fixed_s),
                                ("PCIe" if o.op == HOST_READ else "ethernet", o.collective_s)):
                c["_terms"][term] = c["_terms"].get(term, 0.0) + o.count * value
        for c in out.values():
            terms = c.pop("_terms")
            c["bottleneck"] = max(terms, key=terms.get)
        return dict(sorted(out.items(), key=lambda kv: -kv[1]["time_s"]))

    def by_layer(self) -> list[dict]:
        groups: dict[str, dict] = {}
        for o in self.ops:
            g = groups.setdefault(o.group, {"layers": o.group or "outside the layers", "count": o.count, "flops": 0,
                                            "dram_bytes": 0, "collective_bytes": 0, "time_s": 0.0})
            g["flops"] += o.flops
            g["dram_bytes"] += o.dram_bytes
            g["collective_bytes"] += o.collective_bytes
            g["time_s"] += o.time_s
        for g in groups.values():  # per layer; the group's total is count x this
            g["total_time_s"] = g["time_s"] * g["count"]
        return list(groups.values())


class OpFacts(NamedTuple):
    """What pricing one op reads besides the phase: fixed by the lowered graph, its sharding plan and the
    target, so found once per op, not once per phase. Names are left out (the parameters enter as their
    layout on one chip, the attributes as text without the parameters' names): the ops of written-out
    layers that are alike have equal facts, and a phase prices each distinct one once."""

    op: str
    count: int  # how many layers run it
    attrs: str
    inputs: tuple  # the symbolic shapes of its inputs
    out: tuple  # and of its result
    flop_split: int  # over how many chips its FLOPs are divided
    weights: tuple  # per parameter it reads: (kind, shape on one chip, lookup table, its rows when one, matrix)
    value_splits: tuple  # per input (None where the input is not a tensor), then the result: devices splitting it
    collective: tuple | None  # a CCL op's (devices, devices of the other axes splitting it, moves statistics,
    #                           topology, carries partial sums into the residual: --ccl-dtype's); None for an op
    #                           that moves nothing between chips


def _attrs_text(node: Node, params: list[str]) -> str:
    """The attributes as text, each parameter named by its position among the op's parameters: two ops
    alike but for their layer's parameter names (a fused QKV linear's parts) read alike."""
    text = repr(node.attrs)
    for i, name in enumerate(params):
        text = text.replace(repr(name), f"<param {i}>")
    return text


class CostInterpreter(Interpreter):
    """Walks the lowered, sharded graph once, in the order a phase runs its ops, and records each op
    with its facts (OpFacts); OpTable prices them per phase. Values are symbolic shapes: a phase binds
    them."""

    def __init__(self, lowered, plan, target):
        self.plan = plan
        self.target = target
        self.prefix = ""
        self.group = ""
        self.count = 1
        self.axes = plan.axes
        self.graph = lowered.graph
        self._graph_facts: dict[int, tuple] = {}
        self._value_splits: dict[str, tuple[int, ...]] = {}
        self.records: list[tuple[str, str, OpFacts, Node]] = []  # (name, layer group, facts, node)

    def _facts(self):
        """The current graph's lookup tables and padded shapes, found once per graph: each is a scan
        of the whole graph, so finding them per op would make a phase quadratic in the graph's size."""
        facts = self._graph_facts.get(id(self.graph))
        if facts is None:  # the graph is kept in the entry, so its id is not reused while cached
            facts = self._graph_facts[id(self.graph)] = (self.graph, lookup_tables(self.graph),
                                                         padded_shapes(self.graph))
        return facts[1], facts[2]

    # -- walking ---------------------------------------------------------------------------
    def record(self) -> list[tuple[str, str, OpFacts, Node]]:
        g = self.graph
        self.run(g, {i: g.node(i).type.shape for i in g.inputs})
        return self.records

    def run(self, graph, inputs):
        saved = self.graph
        self.graph = graph
        try:
            return super().run(graph, inputs)
        finally:
            self.graph = saved

    def run_repeat(self, node: Node, x):
        saved = (self.prefix, self.group, self.count)
        variants = list(layer_variants(node))
        pattern = list(layer_pattern(node))
        layers_of: dict[int, list[int]] = {}
        for layer, v in enumerate(pattern):
            layers_of.setdefault(v, []).append(layer)
        out = x
        for v, (body, n) in enumerate(variants):
            if v not in layers_of:
                continue
            self.prefix = f"{saved[0]}{node.module}.*."
            self.group = f"{saved[0]}{node.module}.*" + (f" ({layers_text(layers_of[v])})" if len(variants) > 1
                                                         else "")
            self.count = saved[2] * n
            (out,) = self.run(body, {"x": x}).values()
        self.prefix, self.group, self.count = saved
        return out

    # -- one op's facts --------------------------------------------------------------------
    def _splits(self, node_id: str) -> tuple[int, ...]:
        """The devices of each plan axis that splits value `node_id` (ir/sharding.py: value_splits), found once
        per value (an op's result is read by the ops it feeds)."""
        key = self.prefix + node_id
        splits = self._value_splits.get(key)
        if splits is None:
            splits = self._value_splits[key] = value_splits(self.plan, key)
        return splits

    def run_op(self, node: Node, args: list):
        params = _param_names(node)
        weights = []
        if params:
            tables, padded = self._facts()
            for name in params:
                if name not in self.graph.params:
                    continue
                kind, shape, table = param_chip_layout(self.graph, self.prefix, name, self.plan, tables, padded)
                full = self.graph.params[name].shape
                weights.append((kind, shape, table, full[0] if table else None, not table and len(full) >= 2))
        splits = tuple(self._splits(i) if isinstance(s, tuple) else None
                       for i, s in zip(node.inputs, args, strict=False)) + (self._splits(node.id),)
        collective = None
        if node.op in COLLECTIVE_NAMES and node.op != MESH_PARTITION.name:
            axis = node.attrs.axis
            devices = self.plan.mesh[axis]
            if devices > 1:
                others = tuple(ax.devices for ax in self.plan.split_on(self.prefix + node.id) if ax.axis != axis)
                statistics = self.graph.node(node.inputs[0]).op == NORM_STATISTICS.name
                collective = (devices, others, statistics, self.target.topology(axis, devices),
                              reduces_into_residual(self.graph, node))
        # the attributes matter to the op's FLOP rule only (a collective's axis is in `collective`)
        attrs = _attrs_text(node, params) if REGISTRY[node.op].flops is not no_flops else ""
        split = work_split(self.plan, self.prefix + node.id, [self.prefix + name for name in params])
        facts = OpFacts(node.op, self.count, attrs, tuple(args), node.type.shape, split, tuple(weights), splits,
                        collective)
        self.records.append((self.prefix + node.id, self.group, facts, node))
        return node.type.shape


def _value_bytes(shape, splits: tuple[int, ...]) -> int:
    """bf16 bytes of the TILE-layout piece of a value one chip holds (ir/sharding.py: local_shape): cut on its
    split dim into whole pieces by each axis splitting it (a chip holding a copied KV head holds all of it),
    rows padded to whole 32x32 tiles on the chip."""
    if not splits:
        return tiles(shape) * ACTIVATION_BYTES
    local = list(shape)
    dim = split_dim(len(local))
    for devices in splits:
        local[dim] = -(-local[dim] // devices)
    return tiles(tuple(local)) * ACTIVATION_BYTES


def _gather(values: list, indices: list[int]) -> list:
    """values[i] for each of `indices`, in order (at C speed: a phase expands thousands of ops)."""
    if len(indices) > 1:
        return list(itemgetter(*indices)(values))
    return [values[i] for i in indices]


class OpTable:
    """The ops of one lowered, sharded program in the order a phase runs them (CostInterpreter), each
    with its facts, ops with equal facts sharing one entry. Built once per (graph, plan, target): the
    search prices thousands of phases of one sharding in every weight format, batch and context, and a
    phase prices each distinct op once and expands the per-op numbers in C (written-out layers: one
    entry per op of a layer, not per op of the model)."""

    def __init__(self, lowered, plan, target):
        records = CostInterpreter(lowered, plan, target).record()
        index: dict[OpFacts, int] = {}
        self.facts: list[OpFacts] = []
        self.nodes: list[Node] = []  # one node per entry: its attributes, for the op's FLOP rule
        self.order: list[int] = []  # the entry of each op, in order
        self.names = [(name, group) for name, group, _, _ in records]
        self.by_class: dict[str, list[int]] = {}  # the entries of each op class's ops, in order
        for _, _, facts, node in records:
            i = index.get(facts)
            if i is None:
                i = index[facts] = len(self.facts)
                self.facts.append(facts)
                self.nodes.append(node)
            self.order.append(i)
            op_class = CLASS_COLLECTIVE if facts.op in COLLECTIVE_NAMES else facts.op
            self.by_class.setdefault(op_class, []).append(i)
        self.symbols = lowered.symbols
        graph = lowered.graph
        self.outputs = [(name, graph.node(nid).type.shape) for name, nid in graph.outputs.items()]
        self.layers_with_attention = max(1, _attention_layers(graph))
        self.target = target

    def price(self, build, name: str, batch: int, tokens: int, context: int,
              program: DecodeProgram | None = None) -> PricedPhase:
        """One phase of `build` (this table's program in its weight formats): each entry priced once. With
        `program` (the decode step the backend emitted) decode is priced from its facts (analysis/program.py)."""
        phase = Phase(name, batch, tokens, context)
        memory = build.memory
        local_batch = memory.local_batch(batch)
        bindings = {s: 1 for s in self.symbols}
        bindings.update({"batch": local_batch, "seq": tokens})
        formats = memory.weights_dtype
        kv = memory.kv_cache(batch, context if name == "decode" else tokens) // self.layers_with_attention
        terms = None
        if program is not None:  # the phase's device ops as the program dispatches them (decode step or prefill)
            terms = ProgramTerms(program, DECODE_COSTS[self.target.chip.arch])
        costs = [self._cost(f, node, phase, bindings, formats, kv, terms)
                 for f, node in zip(self.facts, self.nodes, strict=True)]
        # the program returns the logits to the host (bf16, whole tiles): a PCIe read per pass
        chip = self.target.chip
        host = []
        for out_name, shape in self.outputs:
            nbytes = tiles(concrete(shape, bindings)) * ACTIVATION_BYTES * (batch // local_batch or 1)
            if terms is not None:  # the emitted step holds its users on the rows of one [rows, vocab] tensor
                out = concrete(shape, bindings)
                rows = program.head_rows or tile_pad(_numel(out[:-1]))  # a prefill's head: the last position's tile
                nbytes = rows * tile_pad(out[-1]) * ACTIVATION_BYTES * (batch // local_batch or 1)
                if program.reads_ids:  # on-device sampling: an id (and what else the step returns) per row
                    nbytes, out_name = rows * program.read_bytes_per_row, "sampled ids"
            host.append(OpCost(f"read {out_name} to host", HOST_READ, "", 1, 0, 0, 0, 0.0, 0.0, 0.0,
                               nbytes / chip.pcie_bandwidth.value, host_bytes=nbytes))
        if terms is not None:
            host += device_op_costs(OpCost, terms, batch, chip.pcie_bandwidth.value)
        return PricedPhase(phase, self, costs, host)

    def _cost(self, facts: OpFacts, node: Node, phase: Phase, bindings: dict, formats: WeightFormats,
              kv: int, terms: ProgramTerms | None = None) -> OpCost:
        """One op on one chip in `phase` (see the module doc); `kv`: one attention layer's KV cache bytes."""
        out = concrete(facts.out, bindings)
        args = [concrete(s, bindings) if isinstance(s, tuple) else s for s in facts.inputs]
        opdef = REGISTRY[facts.op]
        decode = phase.name == "decode"
        ins = list(args)
        if facts.op == ATTEND.name and decode:  # one query per user against `context` cached keys and values
            ins = [ins[0]] + [tuple(s[:2]) + (phase.context,) + tuple(s[3:]) for s in ins[1:3]] + ins[3:]
        flops = opdef.flops(ins, out, node.attrs) // facts.flop_split
        dense = terms is not None and terms.program.dense_experts  # (program.py: an emitted program's experts)
        if facts.op == EXPERT_GLU.name and dense:  # every expert computes every row, not each token's top_k
            flops = flops * ins[1][-1] // node.attrs.top_k
        chip = self.target.chip
        rate = chip.cores.value * chip.clock_hz.value * chip.matmul_flops_per_cycle.value

        # DRAM: weights (as the memory model stores them), lookups, KV cache, prefill activations
        dram = 0
        phases = 1
        for kind, shape, table, rows, matrix in facts.weights:
            nbytes = chip_bytes(kind, shape, table, formats)
            if table:
                nbytes = nbytes * min(rows, _numel(ins[0])) // rows
            elif matrix:
                phases = max(phases, FIDELITY_PHASES[formats.dtype(kind)] if terms is None else terms.passes(node))
                if facts.op == EXPERT_GLU.name and not dense:  # the experts the step's tokens use, not the bank
                    experts = ins[1][-1]  # (of the routing weights: every expert's)
                    nbytes = round(nbytes * experts_read(node.attrs.top_k, experts, _numel(ins[0]) // ins[0][-1])
                                   / experts)
                if terms is not None and ins and ins[0]:  # a prefill's chunks of rows each read the weight
                    nbytes *= terms.weight_reads(node, tile_pad(max(1, _numel(ins[0]) // ins[0][-1])))
            dram += nbytes
        if facts.op in MATMULS and ins and ins[0]:
            rows = max(1, _numel(ins[0]) // ins[0][-1])
            computed = tile_pad(rows) if terms is None else terms.rows(node, tile_pad(rows))
            flops = flops * computed // rows  # whole 32-row tiles (a prefill's head: the last position's)
        if facts.op == ATTEND.name:
            phases = ATTENTION_FIDELITY_PHASES
            dram += kv
        if terms is not None and decode and facts.op in MATMULS and terms.output_in_dram(node):
            dram += _value_bytes(out, facts.value_splits[-1])  # the program writes this matmul's result to DRAM
        if not decode and facts.op not in COLLECTIVE_NAMES:
            dram += sum(_value_bytes(s, splits) for s, splits in zip(args, facts.value_splits, strict=False)
                        if splits is not None)
            dram += _value_bytes(out, facts.value_splits[-1])
        if terms is not None and not decode and facts.op in MATMULS and ins and ins[0]:  # its program's grid
            used = terms.cores(node, tile_pad(max(1, _numel(ins[0]) // ins[0][-1])))
            rate = rate * used / chip.cores.value if used else rate
        compute_s = flops * phases / rate if flops else 0.0

        # collectives: tt-metal's measured model of the CCL op on this axis
        collective_bytes, collective_s = 0, 0.0
        if facts.collective is not None:
            devices, others, statistics, topology, carried = facts.collective
            # CCL ops move whole tiles of the value's rows (every leading dim folded: a decode step's users sit on
            # the rows of one tile, [1, 1, 32, d], so 1 to 32 users move 32 rows)
            values = tile_pad(max(1, _numel(out) // out[-1])) * tile_pad(out[-1]) if out else 0
            full = values * ACTIVATION_BYTES
            for other in others:  # the other axis's slice of it (2-D plans)
                full //= other
            per_device = full // devices if facts.op == ALL_GATHER.name else full  # all_gather's input is a slice
            if statistics:  # one float32 tile wide per chip
                per_device = values * STATISTICS_BYTES
            if terms is not None:  # the fabric the program opens, the payload its collectives write
                topology = terms.program.topology
                per_device = per_device if statistics else terms.payload_bytes(per_device, facts.op)
            elif carried and formats.ccl == "bfloat8_b":  # partial sums sent as --ccl-dtype asks (ops/queries.py)
                per_device = tensor_bytes(per_device // ACTIVATION_BYTES, "bfloat8_b")
            model = WORMHOLE_CCL[CCL_PATTERN[facts.op]][topology]
            collective_s = model.time(devices, per_device) + chip.ccl_dispatch_s.value
            collective_bytes = per_device
        if terms is not None:  # the dispatch is priced per device op the program dispatches (device_op_costs)
            return OpCost("", facts.op, "", facts.count, flops, dram, collective_bytes, compute_s,
                          dram / terms.bandwidth(node, chip.dram_bandwidth.value), 0.0, collective_s)
        return OpCost("", facts.op, "", facts.count, flops, dram, collective_bytes, compute_s,
                      dram / chip.dram_bandwidth.value, chip.op_overhead_traced_s.value, collective_s)


def _class_totals(costs: list[OpCost], entries: list[int], host: bool) -> dict:
    """Phase.by_class's entry for one class whose ops are `costs[i]` for i in `entries`, in order: the
    integers summed per distinct op, the times added op by op in order as Phase.by_class adds them (so
    to the same last bit)."""
    times = Counter(entries)  # how many of the class's ops each entry is

    def total(value) -> int:
        return sum(value(costs[i]) * n for i, n in times.items())

    def added(attr: str) -> float:
        return reduce(add, _gather([o.count * getattr(o, attr) for o in costs], entries), 0.0)

    c = {"ops": 0 if host else total(lambda o: o.count), "flops": total(lambda o: o.count * o.flops),
         "dram_bytes": total(lambda o: o.count * o.dram_bytes),
         "collective_bytes": total(lambda o: o.count * o.collective_bytes),
         "host_bytes": total(lambda o: o.host_bytes), "time_s": added("time_s")}
    terms = {term: added(attr) for term, attr in (("compute", "compute_s"), ("DRAM", "dram_s"), ("dispatch", "fixed_s"),
                                                  ("PCIe" if host else "ethernet", "collective_s"))}
    c["bottleneck"] = max(terms, key=terms.get)
    return c


class PricedPhase:
    """A phase as its table's entries priced once: the same numbers as the Phase it expands to (`phase()`),
    summed over the ops in the same order (so to the same last bit), without an OpCost per op."""

    def __init__(self, phase: Phase, table: OpTable, costs: list[OpCost], host: list[OpCost]):
        self.name, self.batch, self.tokens, self.context = phase.name, phase.batch, phase.tokens, phase.context
        self._phase = phase
        self.table = table
        self.costs = costs  # per entry of the table
        self.host = host

    @property
    def time_s(self) -> float:
        per_entry = [c.count * c.time_s for c in self.costs]
        return sum(_gather(per_entry, self.table.order) + [o.count * o.time_s for o in self.host])

    def by_class(self) -> dict[str, dict]:
        """Phase.by_class: each class's ints summed per entry, its times added op by op in order as there."""
        out: dict[str, dict] = {}
        classes = [(name, self.costs, entries) for name, entries in self.table.by_class.items()]
        extra: dict[str, list[int]] = {}
        for i, o in enumerate(self.host):
            extra.setdefault(o.op_class, []).append(i)
        classes += [(name, self.host, entries) for name, entries in extra.items()]
        for name, costs, entries in classes:
            out[name] = _class_totals(costs, entries, host=name == HOST_READ)
        return dict(sorted(out.items(), key=lambda kv: -kv[1]["time_s"]))

    def phase(self) -> Phase:
        """The Phase with an OpCost per op (its name and layer group): what `report` shows."""
        self._phase.ops = [replace(self.costs[i], node=name, group=group)
                           for i, (name, group) in zip(self.table.order, self.table.names, strict=True)]
        self._phase.ops += self.host
        return self._phase


def _attention_layers(graph) -> int:
    n = len(attentions(graph))
    for node in graph.repeats():
        for body, count in layer_variants(node):
            n += count * _attention_layers(body)
    return n


def op_table(build) -> OpTable:
    """The table of `build`'s program (the same for every weight format of one sharding)."""
    return OpTable(build.lowered, build.shard_plan, build.options.target)


def model_phase(build, name: str, batch: int, tokens: int, context: int, table: OpTable | None = None,
                program: DecodeProgram | None = None) -> Phase:
    return (table or op_table(build)).price(build, name, batch, tokens, context, program).phase()


@dataclass
class Estimate:
    prefill: Phase
    decode: Phase

    @property
    def ttft_s(self) -> float:
        return self.prefill.time_s

    @property
    def decode_s(self) -> float:
        return self.decode.time_s

    @property
    def tokens_per_s_per_user(self) -> float:
        return 1.0 / self.decode_s

    @property
    def tokens_per_s(self) -> float:
        return self.decode.batch / self.decode_s


def estimate(build, batch: int = 1, context: int = 2048, prompt: int = 128,
             program: DecodeProgram | None = None, prefill: DecodeProgram | None = None) -> Estimate:
    """Prefill of one `prompt`-token user (time to first token) and one decode step of `batch`
    users at `context` tokens; each priced from the facts of the program the backend emitted where given
    (`program`: its decode step, `prefill`: its prefill; analysis/program.py), else as the idealised program."""
    table = op_table(build)
    return Estimate(model_phase(build, "prefill", 1, prompt, prompt, table, prefill),
                    model_phase(build, "decode", batch, 1, context, table, program))


def hardware(target) -> dict:
    chip = target.chip
    axes = {str(axis): target.topology(axis, target.mesh[axis]) for axis in (0, 1) if target.mesh[axis] > 1}
    line_rate = ETHERNET_LINE_RATES[chip.arch]
    return {"chip": chip.arch, "constants": chip.constants(),
            "ethernet": {"line_rate": {"value": line_rate.value, "unit": line_rate.unit, "source": line_rate.source},
                         "collective_topology_by_axis": axes, "wiring": target.wiring or "one chip"},
            "tile": TILE}
