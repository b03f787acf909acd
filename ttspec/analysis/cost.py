"""The cost model: how long a TT-NN program takes on a target, from the same graph the FLOP
count and the memory model read.

An interpreter (analysis/interpreters.py) walks the lowered, sharded graph (driver.prepare)
once per phase and prices every op on one chip:

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
token); decode is one step of `batch` users at `context` tokens of KV cache. Every constant is in
ttspec/targets.py with its source: specifications and single-op measurements, never fitted to
end-to-end results.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..ir.graph import Node, layer_pattern, layer_variants
from ..ir.layout import Layout, Placement
from ..ir.types import concrete
from ..ops import ALL_GATHER, ATTEND, COLLECTIVES, LINEAR, MESH_PARTITION, REGISTRY, TIED_LINEAR
from ..ops.collectives import CCL_PATTERN
from ..ops.norms import NORM_STATISTICS, STATISTICS_BYTES
from ..ops.queries import attentions, lookup_tables
from ..targets import ATTENTION_FIDELITY_PHASES, ETHERNET_LINE_RATES, FIDELITY_PHASES, TILE, WORMHOLE_CCL
from ..weight_formats import parse as parse_formats
from .interpreters import Interpreter
from .memory import ACTIVATION_BYTES, padded_shapes, param_chip_bytes, tile_pad, tiles

SCHEMA = "ttspec-report/1"
COLLECTIVE_NAMES = {c.name for c in COLLECTIVES}
MATMULS = {LINEAR.name, TIED_LINEAR.name}
CLASS_COLLECTIVE = "collective"
HOST_READ = "host_read"  # not an op: the logits' trip to the host over PCIe


def _param_names(node: Node) -> list[str]:
    """The parameters an op reads: its own, or those of the projections a fused QKV linear joined."""
    fused = node.attrs.get("fused")
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


class CostInterpreter(Interpreter):
    """Prices every op of the lowered graph on one chip (see the module doc)."""

    def __init__(self, build, phase: Phase):
        self.build = build
        self.phase = phase
        self.plan = build.shard_plan
        self.memory = build.memory
        self.chip = build.options.target.chip
        self.target = build.options.target
        model = build.lowered
        self.local_batch = self.memory.local_batch(phase.batch)
        self.bindings = {s: 1 for s in model.symbols}
        self.bindings.update({"batch": self.local_batch, "seq": phase.tokens})
        self.prefix = ""
        self.group = ""
        self.count = 1
        self.layers_with_attention = max(1, _attention_layers(model.graph))
        self.graph = model.graph
        self._graph_facts: dict[int, tuple] = {}
        self.formats = parse_formats(self.memory.weights_dtype)  # parsed once, not per op

    def _facts(self):
        """The current graph's lookup tables and padded shapes, found once per graph: each is a scan
        of the whole graph, so finding them per op would make a phase quadratic in the graph's size."""
        facts = self._graph_facts.get(id(self.graph))
        if facts is None:  # the graph is kept in the entry, so its id is not reused while cached
            facts = self._graph_facts[id(self.graph)] = (self.graph, lookup_tables(self.graph),
                                                         padded_shapes(self.graph))
        return facts[1], facts[2]

    # -- walking ---------------------------------------------------------------------------
    def _run(self) -> Phase:
        g = self.graph
        self.run(g, {i: concrete(g.node(i).type.shape, self.bindings) for i in g.inputs})
        return self.phase

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
        out = x
        for v, (body, n) in enumerate(variants):
            if v not in pattern:
                continue
            self.prefix = f"{saved[0]}{node.module}.*."
            self.group = f"{saved[0]}{node.module}.*" + (f" (variant {v})" if len(variants) > 1 else "")
            self.count = saved[2] * n
            (out,) = self.run(body, {"x": x}).values()
        self.prefix, self.group, self.count = saved
        return out

    # -- one op ----------------------------------------------------------------------------
    def _split_factor(self, node: Node) -> int:
        """Over how many chips this op is divided: the devices of every plan axis that splits its
        weights or its result (both axes of a 2-D plan for its matmuls)."""
        if self.plan is None:
            return 1
        factor = 1
        for ax in self.plan.axes:
            placed = any(ax.placements.get(self.prefix + name, Placement.REPLICATE) != Placement.REPLICATE
                         for name in _param_names(node))
            if placed or ax.layouts.get(self.prefix + node.id) in (Layout.SPLIT, Layout.PARTIAL):
                factor *= ax.devices
        return factor

    def _value_bytes(self, node_id: str, shape) -> int:
        """bf16 bytes of a TILE-layout value on one chip (rows padded to whole 32x32 tiles)."""
        n = tiles(shape) * ACTIVATION_BYTES
        for ax in self.plan.split_on(self.prefix + node_id) if self.plan is not None else ():
            n //= ax.devices
        return n

    def run_op(self, node: Node, args: list):
        out = concrete(node.type.shape, self.bindings)
        opdef = REGISTRY[node.op]
        decode = self.phase.name == "decode"
        ins = list(args)
        if node.op == ATTEND.name and decode:  # one query per user against `context` cached keys and values
            ins = [ins[0]] + [tuple(s[:2]) + (self.phase.context,) + tuple(s[3:]) for s in ins[1:3]] + ins[3:]
        flops = opdef.flops(ins, out, node.attrs) // self._split_factor(node)
        chip = self.chip
        rate = chip.cores.value * chip.clock_hz.value * chip.matmul_flops_per_cycle.value

        # DRAM: weights (as the memory model stores them), lookups, KV cache, prefill activations
        dram = 0
        phases = 1
        tables, padded = self._facts()
        for name in _param_names(node):
            if name not in self.graph.params:
                continue
            kind, nbytes = param_chip_bytes(self.graph, self.prefix, name, self.formats, self.plan, tables, padded)
            if name in tables:
                rows = self.graph.params[name].shape[0]
                nbytes = nbytes * min(rows, _numel(ins[0])) // rows
            elif len(self.graph.params[name].shape) == 2:
                phases = max(phases, FIDELITY_PHASES[self.formats.dtype(kind)])
            dram += nbytes
        if node.op in MATMULS and ins and ins[0]:
            rows = max(1, _numel(ins[0]) // ins[0][-1])
            flops = flops * tile_pad(rows) // rows  # whole 32-row tiles
        if node.op == ATTEND.name:
            phases = ATTENTION_FIDELITY_PHASES
            kv = self.memory.kv_cache(self.phase.batch, self.phase.context if decode else self.phase.tokens)
            dram += kv // self.layers_with_attention
        if not decode and node.op not in COLLECTIVE_NAMES:
            dram += sum(self._value_bytes(i, s) for i, s in zip(node.inputs, args, strict=False)
                        if isinstance(s, tuple))
            dram += self._value_bytes(node.id, out)
        compute_s = flops * phases / rate if flops else 0.0

        # collectives: tt-metal's measured model of the CCL op on this axis
        collective_bytes, collective_s = 0, 0.0
        axis = node.attrs.get("axis", 0)
        devices = self.plan.mesh[axis] if self.plan is not None else 1
        if node.op in COLLECTIVE_NAMES and node.op != MESH_PARTITION.name and devices > 1:
            full = tiles(out) * ACTIVATION_BYTES  # CCL ops move whole tiles: a decode row is 32 rows
            for ax in self.plan.split_on(self.prefix + node.id):  # the other axis's slice of it (2-D plans)
                if ax.axis != axis:
                    full //= ax.devices
            per_device = full // devices if node.op == ALL_GATHER.name else full  # all_gather's input is a slice
            if self.graph.node(node.inputs[0]).op == NORM_STATISTICS.name:  # one float32 tile wide per chip
                per_device = tiles(out) * STATISTICS_BYTES  # tiles(): values, padded to whole tiles
            topology = self.target.topology(axis, devices)
            model = WORMHOLE_CCL[CCL_PATTERN[node.op]][topology]
            collective_s = model.time(devices, per_device) + chip.ccl_dispatch_s.value
            collective_bytes = per_device
        self.phase.ops.append(OpCost(self.prefix + node.id, node.op, self.group, self.count, flops, dram,
                                     collective_bytes, compute_s, dram / chip.dram_bandwidth.value,
                                     chip.op_overhead_traced_s.value, collective_s))
        return out

    def run_model(self) -> Phase:
        super_phase = self._run()
        # the program returns the logits to the host (bf16, whole tiles): a PCIe read per pass
        g = self.graph
        for name, nid in g.outputs.items():
            shape = concrete(g.node(nid).type.shape, self.bindings)
            nbytes = tiles(shape) * ACTIVATION_BYTES * (self.phase.batch // self.local_batch or 1)
            self.phase.ops.append(OpCost(f"read {name} to host", HOST_READ, "", 1, 0, 0, 0, 0.0, 0.0, 0.0,
                                         nbytes / self.chip.pcie_bandwidth.value, host_bytes=nbytes))
        return super_phase


def _attention_layers(graph) -> int:
    n = len(attentions(graph))
    for node in graph.repeats():
        for body, count in layer_variants(node):
            n += count * _attention_layers(body)
    return n


def model_phase(build, name: str, batch: int, tokens: int, context: int) -> Phase:
    return CostInterpreter(build, Phase(name, batch, tokens, context)).run_model()


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


def estimate(build, batch: int = 1, context: int = 2048, prompt: int = 128) -> Estimate:
    """Prefill of one `prompt`-token user (time to first token) and one decode step of `batch`
    users at `context` tokens."""
    return Estimate(model_phase(build, "prefill", 1, prompt, prompt),
                    model_phase(build, "decode", batch, 1, context))


def hardware(target) -> dict:
    chip = target.chip
    axes = {str(axis): target.topology(axis, target.mesh[axis]) for axis in (0, 1) if target.mesh[axis] > 1}
    line_rate = ETHERNET_LINE_RATES[chip.arch]
    return {"chip": chip.arch, "constants": chip.constants(),
            "ethernet": {"line_rate": {"value": line_rate.value, "unit": line_rate.unit, "source": line_rate.source},
                         "collective_topology_by_axis": axes, "wiring": target.wiring or "one chip"},
            "tile": TILE}
