"""What a generated program's decode step dispatches, as the cost model reads it: records, and the pricing
terms that depend on them.

The records are filled in by the backend that wrote the program (backends/ttnn/decode_facts.py reads them
from the emitted decode step: the lowering rows' `decode` expressions, the runtime helpers they call and the
configuration members they name); `ttspec report`, above both, hands them to the cost model (analysis never
imports a backend). Without them the cost model prices the idealised program it priced before (every weight
streamed at the chip's DRAM rate, one dispatch per graph op).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import NamedTuple

from ..ops import ALL_GATHER, ALL_REDUCE, LINEAR, REDUCE_SCATTER, TIED_LINEAR

WEIGHT_MATMULS = (LINEAR.name, TIED_LINEAR.name)

# program factory families of a weight matmul, as the program's config selects them
DRAM_SHARDED = "dram_sharded"  # MatmulMultiCoreReuseMultiCastDRAMShardedProgramConfig: weights width-sharded in DRAM
MCAST_1D = "mcast_1d"  # MatmulMultiCoreReuseMultiCast1DProgramConfig (DRAM-interleaved weights)
MCAST_2D = "mcast_2d"  # MatmulMultiCoreReuseMultiCastProgramConfig (DRAM-interleaved weights)
DEFAULT = "ttnn_default"  # no program config: ttnn resolves Mcast1D on DRAM-interleaved tensors (mock, 0.81.1)

# matrix-engine passes per math fidelity (tech_reports/matrix_engine/matrix_engine.md: LoFi 1, HiFi2 2, HiFi3 3,
# HiFi4 4); an unconfigured matmul resolves HiFi2 (measured on the mock, ttnn 0.81.1)
FIDELITY_PASSES = {"LoFi": 1, "HiFi2": 2, "HiFi3": 3, "HiFi4": 4}
UNCONFIGURED_FIDELITY = "HiFi2"


class DeviceOp(NamedTuple):
    """One device op of the decode step, as the program dispatches it."""

    op: str  # the ttnn call, e.g. "ttnn.linear", "ttnn.experimental.rotary_embedding_llama"
    factory: str = ""  # for a weight matmul: DRAM_SHARDED, MCAST_1D, MCAST_2D or DEFAULT
    fidelity: str = ""  # the compute kernel's math fidelity where the op states one
    weight: str = ""  # the program member of the weight a matmul reads (`wqkv`, `lm_head`), else ""
    output: str = ""  # where it writes its result: "L1", "DRAM", or "" (the op's default)
    dtype: str = ""  # the `dtype` it is asked to write, where stated (a collective's payload)
    chunks: tuple[tuple[int, int], ...] = ()  # a prefill matmul's program configs: (chunk rows, cores of its grid)
    # a weight matmul's member path from its layer (in a layer) or the root class: `a.proj` for the `proj` of the
    # layer's `self.a`, as the graph names the linear's module; "" where the walker could not tell the object
    path: str = ""


class DecodeProgram(NamedTuple):
    """The decode step of one generated program: its device ops per decoder layer and once per step, the
    fabric its collectives travel on, and what crosses PCIe each step."""

    layer_ops: tuple[DeviceOp, ...]  # one decoder layer, or one cycle of its `cycle` variants
    step_ops: tuple[DeviceOp, ...]  # before and after the layers, and once per step for all layers
    layers: int  # how many times layer_ops run (layers, or cycles of variants)
    fabric: str  # the fabric the program opens: "FABRIC_1D", "FABRIC_1D_RING", ... or "" (one chip)
    uploads_per_step: int  # host -> device inputs written each step ([users] int32 / uint32 each)
    reads_ids: bool  # the step returns sampled ids (on-device argmax), not the logits
    cycle: int = 1  # layer variants in one cycle of layer_ops (1: every layer alike)
    read_bytes_per_row: int = 4  # with reads_ids, the bytes the host reads per row (an id, and what else is read)
    head_rows: int = 0  # a prefill's: the rows its LM head computes (32: the last position's tile; 0: every row)
    # the program computes every local expert for every row (TT-NN's rt/moe.py, moe_experts_dense: batched matmuls
    # over the bank, unchosen experts weighted by zero): its expert matmuls read and compute the whole local bank
    dense_experts: bool = False

    @property
    def topology(self) -> str:
        """The CCL topology of the fabric opened: ttnn 0.81.1 runs every collective as a line on FABRIC_1D
        (the `topology` argument is ignored; measured on the mock), as a ring on FABRIC_1D_RING."""
        return "ring" if "RING" in self.fabric else "line"

    @property
    def ops_per_step(self) -> int:
        return self.layers * len(self.layer_ops) + len(self.step_ops)

    def matmuls(self, by_path: bool = False) -> dict[str, DeviceOp]:
        """The weight matmuls by the member they read (the first one, where a member is read twice), or `by_path`
        by its member path (DeviceOp.path: two blocks' `proj` apart)."""
        out: dict[str, DeviceOp] = {}
        for op in self.layer_ops + self.step_ops:
            key = op.path if by_path else op.weight
            if key:
                out.setdefault(key, op)
        return out

    def collective_dtypes(self) -> dict[str, int]:
        """The payloads of the step's collectives (per layer and once per step): dtype -> how many."""
        return dict(Counter(op.dtype or "bf16" for op in self.layer_ops + self.step_ops if _is_collective(op.op)))

    def payload_factor(self, kind: str | None = None) -> float:
        """The bytes a collective moves against bf16, averaged over the layer's collectives of `kind` (a collective
        op's name: all_gather, reduce_scatter, all_reduce; all of them where None or the layer has none of it): the
        graph's collectives of a kind are priced alike (--ccl-dtype bfloat8_b sends the reduce-scatters' partial sums
        in bfloat8_b, not the all-gathers' residual); bfloat8_b moves 1088 of bf16's 2048 bytes per tile."""
        ops = [op for op in self.layer_ops or self.step_ops if _is_collective(op.op)]
        ops = [op for op in ops if _kind(op.op) == kind] or ops
        if not ops:
            return 1.0
        return sum(BFLOAT8_B_PER_BF16 if op.dtype == "bfloat8_b" else 1.0 for op in ops) / len(ops)

    def summary(self) -> dict:
        """What `report --json` shows of it."""
        layer = Counter(op.op.removeprefix("ttnn.") for op in self.layer_ops)
        matmuls = self.matmuls()
        per_layer = len(self.layer_ops) / self.cycle
        return {"device_ops_per_layer": int(per_layer) if per_layer.is_integer() else per_layer,
                "device_ops_once_per_step": len(self.step_ops),
                "device_ops_per_step": self.ops_per_step, "layer_ops": dict(sorted(layer.items())),
                "weight_matmuls": {w: {"factory": m.factory, "fidelity": m.fidelity or UNCONFIGURED_FIDELITY,
                                       "output": m.output or "DRAM"} for w, m in matmuls.items()},
                "fabric": self.fabric or "none (one chip)", "collective_topology": self.topology,
                "collective_payloads": self.collective_dtypes(), "uploads_per_step": self.uploads_per_step,
                "reads": "sampled ids" if self.reads_ids else "logits",
                **({"experts": EXPERTS_DENSE} if self.dense_experts else {})}


# what an emitted program's experts cost (DecodeProgram.dense_experts), as report --json and its text say it
EXPERTS_DENSE = "dense: every local expert's weights read and computed for every row, each pass"
EXPERTS_ROUTED = "routed: the distinct experts a step's tokens use, E(1 - (1 - k/E)^T) of E, read once each"


# ttnn's collective calls carry the names of the ops they lower (ttnn.all_gather for all_gather, ...)
COLLECTIVE_CALLS = (ALL_GATHER.name, REDUCE_SCATTER.name, ALL_REDUCE.name, "all_broadcast")


def _is_collective(call: str) -> bool:
    return _kind(call) is not None


def _kind(call: str) -> str | None:
    """The collective a ttnn call runs (`ttnn.all_reduce (reduce_scatter)`, a part of one: all_reduce), or None."""
    return next((c for c in COLLECTIVE_CALLS if call.rsplit(".", 1)[-1].startswith(c)), None)


DEVICE_OP = "device_op"  # the cost class of the step's device ops' fixed costs
HOST_STEP = "host_step"
HOST_TRANSFER = "host_read"  # cost.HOST_READ: PCIe transfers (the step's inputs up, its result down)
INT32_BYTES = 4
BFLOAT8_B_PER_BF16 = 1088 / 2048  # bfloat8_b: 1088 bytes per 32x32 block, bf16 2048


class ProgramTerms:
    """What pricing a decode step reads from the program's facts, for one target's constants (DecodeCosts)."""

    def __init__(self, program: DecodeProgram, costs):
        self.program = program
        self.costs = costs
        self.by_weight = program.matmuls()
        self.by_path = program.matmuls(by_path=True)
        self.payload = {kind: program.payload_factor(kind) for kind in COLLECTIVE_CALLS}

    def _matmul(self, node) -> DeviceOp | None:
        """The device matmul reading this linear's weight: the one at the linear's module's member path (`a.proj`
        in a layer: the `proj` of the layer's `self.a`, not another block's `proj`), or the first of its column
        chunks (a head split into them: `lm_head_0` ...; a member merely starting with the name, `up` for `upper`,
        is another linear's); where the program names no matmul by that path (a label the program renames), the
        member named as the module's last part (`wqkv`)."""
        module = node.module or ""
        stem = module.rsplit(".", 1)[-1]
        if not stem or node.op not in WEIGHT_MATMULS:
            return None
        for key, table in ((module, self.by_path), (stem, self.by_weight)):
            found = table.get(key)
            chunk = re.compile(re.escape(key) + r"_\d+")
            found = found or next((op for w, op in table.items() if chunk.fullmatch(w)), None)
            if found is not None:
                return found
        return None

    def passes(self, node) -> int:
        """The matrix-engine passes of a weight matmul at the fidelity its compute kernel states."""
        op = self._matmul(node)
        return FIDELITY_PASSES[(op.fidelity if op is not None else "") or UNCONFIGURED_FIDELITY]

    def bandwidth(self, node, default: float) -> float:
        """The DRAM rate of an op: a weight matmul's by its program factory, other ops' the chip's."""
        op = self._matmul(node)
        if op is None:  # not a weight matmul, or one the program does not name: the chip's rate, or interleaved's
            return self.costs.dram_interleaved_bandwidth.value if node.op in WEIGHT_MATMULS else default
        if op.factory == DRAM_SHARDED:
            return self.costs.dram_sharded_bandwidth.value
        return self.costs.dram_interleaved_bandwidth.value

    def rows(self, node, rows: int) -> int:
        """The rows a weight matmul computes of `rows`: a prefill's LM head only its last position's tile."""
        op = self._matmul(node)
        if op is not None and self.program.head_rows and op in self.program.step_ops:
            return min(rows, self.program.head_rows)
        return rows

    def weight_reads(self, node, rows: int) -> int:
        """How often a prefill matmul over `rows` reads its weight: once per chunk of the largest size it has a
        program for that divides them (chunked_linear: the 2-D program loops over the batch of chunks, streaming
        the weight's blocks for each); once for the rest (and for a head on the last tile)."""
        op = self._matmul(node)
        if op is None or not op.chunks or self.rows(node, rows) < rows:
            return 1
        return rows // self._chunk(op, rows)[0]

    @staticmethod
    def _chunk(op: DeviceOp, rows: int) -> tuple[int, int]:
        return next(((c, cores) for c, cores in op.chunks if rows % c == 0), (rows, 0))

    def cores(self, node, rows: int) -> int:
        """The cores a prefill matmul over `rows` computes on: its chunk's program grid (a 2-D program over a
        64-row chunk uses 2 of the grid's rows: 16 cores of 64), 0 where the program does not say."""
        op = self._matmul(node)
        return self._chunk(op, rows)[1] if op is not None and op.chunks else 0

    def output_in_dram(self, node) -> bool:
        op = self._matmul(node)
        return op is not None and op.output != "L1"

    def payload_bytes(self, nbytes: int, kind: str) -> int:
        """The bytes a collective of `kind` (its op's name) moves where bf16 would move `nbytes`."""
        return int(nbytes * self.payload.get(kind, 1.0))


def device_op_costs(make, terms: ProgramTerms, batch: int, pcie_bandwidth: float, group: str = "layers.*") -> list:
    """The rows a program's decode step adds to the graph's ops (`make` is cost.OpCost): each device op's fixed
    cost (per layer, and once per step), the host's work per step and the step's inputs written over PCIe."""
    p, c = terms.program, terms.costs
    rows = [make(op.op, DEVICE_OP, group, p.layers, 0, 0, 0, 0.0, 0.0, c.op_dispatch_s.value, 0.0)
            for op in p.layer_ops]
    rows += [make(op.op, DEVICE_OP, "", 1, 0, 0, 0, 0.0, 0.0, c.op_dispatch_s.value, 0.0) for op in p.step_ops]
    up = p.uploads_per_step * batch * INT32_BYTES
    rows.append(make(f"write {p.uploads_per_step} step inputs to device", HOST_TRANSFER, "", 1, 0, 0, 0, 0.0, 0.0,
                     0.0, up / pcie_bandwidth, host_bytes=up))
    rows.append(make("host work per step", HOST_STEP, "", 1, 0, 0, 0, 0.0, 0.0, c.host_step_s.value, 0.0))
    return rows
