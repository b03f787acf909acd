"""Tenstorrent targets: chips, mesh shape and memory, from published board specs."""

from __future__ import annotations

from typing import Literal, NamedTuple

from .errors import UsageError, did_you_mean
from .records import FrozenRecord

TILE = 32  # Tenstorrent tiles are 32x32 values; TILE-layout tensors are padded to whole tiles

# Wormhole: 12 DRAM banks of 1,072,693,184 B as ttnn's allocator books them (12 GB GDDR6).
WORMHOLE_DRAM = 12 * 1_072_693_184
# Blackhole p150: 8 banks of 4,277,141,376 B (32 GB GDDR6); p100 has 28 GB on 7 banks.
P150_DRAM = 8 * 4_277_141_376
P100_DRAM = 7 * 4_277_141_376


class Source(FrozenRecord):
    """Where a hardware constant comes from (a public page or repository path)."""

    value: float
    unit: str
    source: str


class ChipSpec(FrozenRecord):
    """Per-chip facts the cost model (analysis/cost.py) reads. Every value carries its source;
    `ttspec report --json` prints them. Specifications and single-op micro-benchmarks only,
    never fitted to end-to-end model results."""

    arch: str
    cores: Source  # Tensix cores ttnn's matmuls use (the compute grid)
    clock_hz: Source
    matmul_flops_per_cycle: Source  # per core at LoFi; HiFi2 / 2, HiFi4 / 4
    dram_bandwidth: Source  # bytes/s a DRAM-bound op reaches (weight streaming)
    l1_bytes: Source  # per core
    op_overhead_traced_s: Source  # fixed cost per op when the program runs as a trace
    op_overhead_eager_s: Source  # per op when the host dispatches each op
    ccl_dispatch_s: Source  # dispatch of one CCL op (on top of its measured kernel time)
    pcie_bandwidth: Source  # host <-> chip, bytes/s: the logits a forward pass returns to the host

    def constants(self) -> dict:
        return {name: {"value": getattr(self, name).value, "unit": getattr(self, name).unit,
                       "source": getattr(self, name).source}
                for name in ("cores", "clock_hz", "matmul_flops_per_cycle", "dram_bandwidth", "l1_bytes",
                             "op_overhead_traced_s", "op_overhead_eager_s", "ccl_dispatch_s", "pcie_bandwidth")}


# Math fidelity per weight format, as tt_transformers' performance configuration pairs them
# (models/tt_transformers/PERF.md, "precision_cfg / fidelity_cfg": bfp4 -> LoFi, bfp8 -> HiFi2;
# bf16 weights use HiFi4): the matrix engine's throughput divides by the fidelity phases
# (tech_reports/matrix_engine/matrix_engine.md: LoFi 4, HiFi2 2, HiFi3 1.33, HiFi4 1 TFLOPS per core at 1 GHz).
FIDELITY_PHASES = {"bfloat4_b": 1, "bfloat8_b": 2, "bf16": 4}
ATTENTION_FIDELITY_PHASES = 2  # sdpa_decode: hifi2 (PERF.md fidelity_cfg)

_MATRIX_ENGINE = ("tt-metal tech_reports/matrix_engine/matrix_engine.md: 8x16 x 16x16 per cycle = 4096 FLOPs/cycle "
                  "(LoFi)")
_L1 = "tt-metal METALIUM_GUIDE.md: 1.5 MB SRAM per Tensix core"
_TRACED = ("tenstorrent/tt-metal#12074 (traced Llama decode on Wormhole: 'ops generally have 3k to 6k cycles of "
           "dispatch time, regardless of the device runtime', 'roughly 4k cycles constant'): 4,000 cycles at 1 GHz; "
           "tech_reports/LLMs/llms.md: the op-to-op gap's lower limit is single-digit microseconds")
_EAGER = ("no single-op host-dispatch measurement is published (tenstorrent/tt-metal#11386: Llama decode without trace "
          "was 1.04x to 1.34x slower end to end); modelled at the traced cost, an upper bound on speed")
_CCL_DISPATCH = ("tenstorrent/tt-metal#12307 (CCL maintainer: 'we expected around 10us worker dispatch time as "
                 "measured' for all-gather)")

WORMHOLE = ChipSpec(
    "wormhole_b0",
    Source(64, "cores", "ttnn compute grid 8x8 on n150/n300 chips (tech_reports/Saturating_DRAM_bandwidth: "
                        "n150 has one of 10 rows harvested, n300 two; tt_transformers uses an 8x8 grid)"),
    Source(1.0e9, "Hz", "tech_reports/matrix_engine/matrix_engine.md (\"At 1GHz\")"),
    Source(4096, "FLOPs/cycle/core", _MATRIX_ENGINE),
    Source(267e9, "B/s", "tech_reports/Saturating_DRAM_bandwidth/Saturating_DRAM_bandwidth.md: DRAM u-benchmark "
                         "267 GB/s at 12 GBps (theoretical 288 GB/s; matmuls in Llama decode reach 239-260)"),
    Source(1.5 * 2**20, "B", _L1),
    Source(4e-6, "s", _TRACED),
    Source(4e-6, "s", _EAGER),
    Source(10e-6, "s", _CCL_DISPATCH),
    Source(32e9, "B/s", "docs.tenstorrent.com Wormhole n150/n300 specifications: PCIe 4.0 x16 (32 GB/s per direction)"),
)

BLACKHOLE = ChipSpec(
    "blackhole",
    Source(130, "cores", "docs.tenstorrent.com Blackhole: up to 140 Tensix cores; the 13x10 compute grid ttnn "
                        "uses is an unverified assumption"),
    Source(1.35e9, "Hz", "Blackhole AI clock 1.35 GHz (as tt-metal data-movement constants and tt-mlir's Blackhole "
                         "roofline tests use it; not read from a specification here)"),
    Source(4096, "FLOPs/cycle/core", _MATRIX_ENGINE + " (applies to Wormhole and Blackhole)"),
    Source(437.5e9, "B/s", "docs.tenstorrent.com tt-system-firmware Blackhole: 8 GDDR6 channels, 3.5 Tb/s (other "
                           "sources quote 512 GB/s for p150; no single-op DRAM benchmark read here)"),
    Source(1.5 * 2**20, "B", _L1),
    Source(4e-6, "s", _TRACED + " (Wormhole figure, no Blackhole measurement)"),
    Source(4e-6, "s", _EAGER),
    Source(10e-6, "s", _CCL_DISPATCH),
    Source(62.5e9, "B/s", "docs.tenstorrent.com tt-system-firmware Blackhole: 16 PCIe 5.0 lanes, 500 Gb/s"),
)

# p100: 7 of the 8 DRAM channels (28 GB) and 120 Tensix cores (docs.tenstorrent.com p100a specifications).
BLACKHOLE_P100 = BLACKHOLE.replace(
    cores=Source(110, "cores", "docs.tenstorrent.com p100a: 120 Tensix cores; the 11x10 compute grid ttnn "
                        "uses is an unverified assumption"),
    dram_bandwidth=Source(437.5e9 * 7 / 8, "B/s", "7 of Blackhole's 8 GDDR6 channels (p100a: 28 GB) at "
                                                   "3.5 Tb/s / 8 each (docs.tenstorrent.com tt-system-firmware)"),
)

CHIPS = {"wormhole_b0": WORMHOLE, "blackhole": BLACKHOLE}


class DecodeCosts(FrozenRecord):
    """The terms of a decode step priced from the program's own facts (analysis/program.py): the DRAM rate
    of a weight matmul by the program factory its config selects, a fixed cost per device op the step
    dispatches (traced), and the host's work per step. `fitted` names the terms fitted to tt_transformers'
    PERF.md (tests/test_cost_model.py states which rows); the others are published single-op figures."""

    dram_sharded_bandwidth: Source  # B/s a DRAM-sharded weight matmul streams its weight at
    dram_interleaved_bandwidth: Source  # B/s of a matmul on a DRAM-interleaved weight (1-D/2-D multicast)
    op_dispatch_s: Source  # fixed cost of each device op of a traced decode step (dispatch, kernel launch, floor)
    host_step_s: Source  # host work per decode step: trace launch, the read's round trip, the host's loop
    fitted: tuple[str, ...] = ()

    def constants(self) -> dict:
        return {name: {"value": getattr(self, name).value, "unit": getattr(self, name).unit,
                       "source": getattr(self, name).source,
                       "basis": "fitted to PERF.md" if name in self.fitted else "published"}
                for name in ("dram_sharded_bandwidth", "dram_interleaved_bandwidth", "op_dispatch_s", "host_step_s")}


_FIT = ("fitted (least squares in log tokens/s/user, bench/calibrate_decode.py --fit) to tt_transformers PERF.md "
        "decode speeds of Llama-3.2-1B N150, Llama-3.1-8B N150 and Llama-3.1-8B T3K (tenstorrent/tt-metal@040a27c1 "
        "models/tt_transformers/PERF.md), every other row held out: tests/test_cost_model.py")
# DRAM-interleaved against DRAM-sharded decode matmuls, as published: ~190 GB/s (tech_reports/LLMs/llms.md 4.6.1)
# against 240-260 (tech_reports/Saturating_DRAM_bandwidth); the fit scales both by one efficiency
INTERLEAVED_PER_SHARDED = 190 / 250
WORMHOLE_DECODE = DecodeCosts(
    Source(225e9, "B/s", "end to end in a decode step (below the 240-260 GB/s tech_reports/Saturating_DRAM_bandwidth "
                         "publishes for single DRAM-sharded matmuls): " + _FIT),
    Source(225e9 * INTERLEAVED_PER_SHARDED, "B/s", "the DRAM-sharded rate x 190/250, the published ratio "
                                                   "(tech_reports/LLMs/llms.md 4.6.1: interleaved ~190 GB/s)"),
    Source(4e-6, "s", "tenstorrent/tt-metal#12074: 3k-6k cycles of dispatch per traced op, ~4k at 1 GHz (not fitted)"),
    Source(4.75e-3, "s", "host work per decode step (trace launch, the read's round trip, the demo's loop): " + _FIT),
    fitted=("dram_sharded_bandwidth", "dram_interleaved_bandwidth", "host_step_s"),
)
# no Blackhole decode measurement is fitted here: Wormhole's per-op and per-step terms, Blackhole's DRAM rate
BLACKHOLE_DECODE = WORMHOLE_DECODE.replace(
    dram_sharded_bandwidth=Source(437.5e9 * 225 / 288, "B/s", "Blackhole's 3.5 Tb/s at Wormhole's DRAM-sharded "
                                                         "efficiency (an assumption: no Blackhole figure read)"),
    dram_interleaved_bandwidth=Source(437.5e9 * 190 / 288, "B/s", "Blackhole's 3.5 Tb/s at Wormhole's interleaved "
                                                                 "efficiency (190 of 288; an assumption)"))
DECODE_COSTS = {"wormhole_b0": WORMHOLE_DECODE, "blackhole": BLACKHOLE_DECODE}


class CollectiveModel(FrozenRecord):
    """One CCL op's measured time on `n` devices: startup + per hop + bytes through the busiest
    link at the rate measured (tt-metal tech_reports/CCLs/results/SUMMARY_wormhole_b0_bfloat16_6144.md,
    single-op micro-benchmarks; `kernel_time` lines). `traffic(n)`: the factor on the input bytes."""

    startup_s: float
    per_hop_s: float
    hops: str  # "n-1" (line) or "n/2" (ring)
    rate: float  # B/s
    traffic: str  # "n-1", "(n-1)/n" or "2(n-1)/n"

    def time(self, n: int, input_bytes: int) -> float:
        if n <= 1:
            return 0.0
        hops = n - 1 if self.hops == "n-1" else n / 2
        factor = {"n-1": n - 1, "(n-1)/n": (n - 1) / n, "2(n-1)/n": 2 * (n - 1) / n}[self.traffic]
        return self.startup_s + self.per_hop_s * hops + factor * input_bytes / self.rate


CCL_SOURCE = "tt-metal tech_reports/CCLs/results/SUMMARY_wormhole_b0_bfloat16_6144.md (line rate 12.5 GB/s per link)"
# collective (as ttspec/ops/collectives.py's CCL_PATTERN names them) -> topology -> model
WORMHOLE_CCL = {
    "all-gather": {"line": CollectiveModel(4.47e-6, 1.91e-6, "n-1", 11.8e9, "n-1"),
                   "ring": CollectiveModel(4.47e-6, 2.50e-6, "n/2", 20.8e9, "n-1")},
    "reduce-scatter": {"line": CollectiveModel(3.23e-6, 3.97e-6, "n-1", 11.1e9, "(n-1)/n"),
                       "ring": CollectiveModel(3.23e-6, 3.06e-6, "n/2", 16.7e9, "(n-1)/n")},
    "all-reduce": {"line": CollectiveModel(9.07e-6, 5.82e-6, "n-1", 10.9e9, "2(n-1)/n"),
                   "ring": CollectiveModel(9.07e-6, 5.25e-6, "n/2", 18.4e9, "2(n-1)/n")},
}
ETHERNET_LINE_RATE = Source(12.5e9, "B/s per link per direction", CCL_SOURCE)
# No Blackhole CCL micro-benchmark is published in tt-metal's tech_reports/CCLs (only Wormhole summaries were
# found), so collectives on p150 meshes use the Wormhole measurements above: an unverified stand-in. Blackhole's
# ethernet ports are faster (docs.tenstorrent.com / tt-zephyr-platforms Blackhole overview: "4 QSFP-DD ports at
# 800 Gb/s"), so this likely overestimates their collective time.
BLACKHOLE_CCL_SOURCE = ("unknown for Blackhole: no Blackhole CCL benchmark found in tt-metal tech_reports/CCLs; "
                        "modelled with " + CCL_SOURCE + "; Blackhole has 4 QSFP-DD ports at 800 Gb/s "
                        "(tt-zephyr-platforms boards/tenstorrent/tt_blackhole/doc/index.rst)")
ETHERNET_LINE_RATES = {"wormhole_b0": ETHERNET_LINE_RATE,
                       "blackhole": Source(12.5e9, "B/s per link per direction", BLACKHOLE_CCL_SOURCE)}


class Target(FrozenRecord):
    """A compile target: its chip, mesh, DRAM and the models of its costs."""

    name: str
    arch: str
    mesh: tuple[int, int]
    dram_per_chip: int
    description: str
    ring_axes: tuple[int, ...] = ()  # mesh axes whose ends are wired together (a ring collective closes)
    wiring: str = ""
    chip_spec: ChipSpec | None = None  # when the board differs from its arch's ChipSpec
    grid: tuple[int, int] | None = None  # how the chips are wired when that differs from the mesh programs open

    @property
    def single_chip(self) -> bool:
        return self.chips == 1

    @property
    def chip(self) -> ChipSpec:
        return self.chip_spec or CHIPS[self.arch]

    def topology(self, axis: int, devices: int) -> str:
        """The CCL topology a collective over `devices` chips of mesh axis `axis` runs: a ring
        only when the axis is wired round and the collective spans all of it."""
        return "ring" if axis in self.ring_axes and devices == self.mesh[axis] else "line"

    @property
    def chips(self) -> int:
        return self.mesh[0] * self.mesh[1]


TARGETS = {
    "n150": Target("n150", "wormhole_b0", (1, 1), WORMHOLE_DRAM, "Wormhole n150, 1 chip, 12 GB"),
    "n300": Target("n300", "wormhole_b0", (1, 2), WORMHOLE_DRAM, "Wormhole n300, 2 chips, 12 GB each",
                   wiring="the two chips of the card joined by ethernet (a line of 2)"),
    # T3K's 8 chips are wired as 2x4; like tt-metal's tt_transformers, programs use them as a 1x8 mesh.
    "t3k": Target("t3k", "wormhole_b0", (1, 8), WORMHOLE_DRAM, "T3K, 8 Wormhole chips (a 1x8 mesh)",
                  ring_axes=(1,), wiring="four n300 cards as a 2x4 grid with ethernet between neighbours; the 8 "
                  "chips close a ring (the CCL benchmark's 8-device ring)", grid=(2, 4)),
    "galaxy": Target("galaxy", "wormhole_b0", (8, 4), WORMHOLE_DRAM, "Galaxy, 32 Wormhole chips as 8x4",
                     wiring="an 8x4 grid with ethernet between neighbours; modelled as lines on both axes"),
    "p100": Target("p100", "blackhole", (1, 1), P100_DRAM, "Blackhole p100, 1 chip, 28 GB",
                   chip_spec=BLACKHOLE_P100),
    "p150": Target("p150", "blackhole", (1, 1), P150_DRAM, "Blackhole p150, 1 chip, 32 GB"),
    # Blackhole meshes of p150 cards. tt-metal's fabric describes p150 x4 as a 2x2 device mesh with 4
    # ethernet channels between neighbours and p150 x8 as a 2x4 mesh with 2 channels
    # (tt_metal/fabric/mesh_graph_descriptors/p150_x4_mesh_graph_descriptor.textproto and
    # p150_x8_mesh_graph_descriptor.textproto, as shipped in ttnn 0.81.1); tt-metal's models open them
    # as 1x4 and 1x8 meshes (MESH_DEVICE "P150x4": (1, 4), "P150x8": (1, 8) in tt-metal's model tests), as
    # ttspec does. Wiring: tt-umd tests/cluster_descriptor_examples/blackhole_4xP150.yaml and
    # blackhole_8xP150.yaml (copied to ttspec/mock/clusters/p150x4.yaml, p150x8.yaml).
    "p150x4": Target("p150x4", "blackhole", (1, 4), P150_DRAM, "4 Blackhole p150 cards (a 1x4 mesh), 32 GB each",
                     ring_axes=(1,), wiring="four p150 cards as a 2x2 grid, 4 ethernet links between neighbours "
                     "(tt-umd blackhole_4xP150.yaml: chips 0-2-1-3-0), so the 4 chips close a ring", grid=(2, 2)),
    "p150x8": Target("p150x8", "blackhole", (1, 8), P150_DRAM, "8 Blackhole p150 cards (a 1x8 mesh), 32 GB each",
                     ring_axes=(1,), wiring="eight p150 cards as a 2x4 grid, 2 ethernet links between neighbours "
                     "(tt-umd blackhole_8xP150.yaml); like T3K's 2x4 grid the 8 chips close a ring", grid=(2, 4)),
}

# The core grids sharded TT-NN ops are laid out on, per chip (backends/ttnn/configs/ reads them):
# `compute` is ttnn's device.compute_with_storage_grid_size() as (x, y); `dram_banks` is
# device.dram_grid_size().x (its y is 1), the banks a DRAM width-sharded weight is split over.
class CoreGrids(NamedTuple):  # a NamedTuple, not a dataclass: cheaper to define at start-up
    compute: tuple[int, int]
    dram_banks: int
    source: str


CORE_GRIDS = {
    "wormhole_b0": CoreGrids((8, 8), 12, "ttnn 0.81.1 mock n150 (tt-umd n150 descriptor): compute_with_storage_grid_"
                                         "size() 8x8, dram_grid_size() 12x1"),
    "blackhole": CoreGrids((11, 10), 8, "ttnn 0.81.1 mock p150 (tt-umd blackhole_P150.yaml): compute_with_storage_"
                                        "grid_size() 11x10, dram_grid_size() 8x1"),
}
# p100: 7 DRAM banks (tt_transformers model_config.py: dram_grid_size.x 'WH has 12 dram cores, P150 has 8, P100
# has 7'); its compute grid is assumed to equal p150's (no p100 mock descriptor to measure it).
TARGET_CORE_GRIDS = {"p100": CoreGrids((11, 10), 7, "tt_transformers model_config.py (7 DRAM banks on P100); "
                                                    "compute grid assumed equal to p150's, unmeasured")}


def core_grids(target: Target) -> CoreGrids:
    """The core grids of one chip of `target`."""
    return TARGET_CORE_GRIDS.get(target.name) or CORE_GRIDS[target.arch]


# The PyTorch reference as a compile target: no device (it runs on the host), never in TARGETS.
TORCH = Target("torch", "host", (1, 1), 0, "the PyTorch reference, run on the host")
DEFAULT_TARGET = "n150"  # when neither --target nor the spec's `target` statement names one
SINGLE_CHIP = tuple(name for name, t in TARGETS.items() if t.single_chip)
MESHES = tuple(name for name, t in TARGETS.items() if not t.single_chip)
DEVICE_TARGETS = SINGLE_CHIP + MESHES  # single chips first, as the CLI lists them
COMPILE_TARGETS = (TORCH.name,) + DEVICE_TARGETS
# meshes with a second axis for --dp: galaxy's own, and 2-D sub-meshes of the wired grids
# a hint's single chips: of each arch, the one with most DRAM
SINGLE_CHIP_HINT = ", ".join(max((t for t in TARGETS.values() if t.single_chip and t.arch == arch),
                                 key=lambda t: t.dram_per_chip).name for arch in CHIPS)
DP_MESHES = "--target galaxy (8x4), --target t3k --mesh 2x4 or --target p150x4 --mesh 2x2"
TWO_D_MESHES = "galaxy (8x4) and its 2-D sub-meshes"
TWO_AXES = tuple(name for name, t in TARGETS.items() if min(t.mesh) >= 2)  # a target's own mesh with two axes


def listing(names, last: str = "or") -> str:
    """`a, b or c`: target names in a message."""
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} {last} {names[-1]}"

Strategy = Literal["1d", "2d"]  # tensor parallelism over one mesh axis, or over both (passes/shard.py)
STRATEGIES: tuple[Strategy, ...] = ("1d", "2d")


MAX_MESH_SIDE = 1024  # far beyond any board; keeps every later loop over devices small


def parse_mesh(text: str) -> tuple[int, int]:
    """`RxC`, e.g. `1x8`."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isascii() and p.strip().isdigit() for p in parts):
        raise UsageError(f"--mesh expects ROWSxCOLS such as 1x8, got {text[:40]!r}")
    rows, cols = (int(p) if len(p.strip()) <= 8 else MAX_MESH_SIDE + 1 for p in parts)
    if rows < 1 or cols < 1:
        raise UsageError(f"--mesh needs positive sizes, got {text!r}")
    if rows > MAX_MESH_SIDE or cols > MAX_MESH_SIDE:
        raise UsageError(f"--mesh {text[:40]} is larger than any Tenstorrent system",
                         hint="targets: " + ", ".join(f"{t.name} {t.mesh[0]}x{t.mesh[1]}" for t in TARGETS.values()))
    return rows, cols


def compile_target(name: str) -> Target:
    """A target `compile`, `run` and `generate` take: a device target, or TORCH."""
    return TORCH if name == TORCH.name else get_target(name)


def mesh_text(mesh: tuple[int, int]) -> str:
    return f"{mesh[0]}x{mesh[1]}"


def get_target(name: str) -> Target:
    if name not in TARGETS:
        raise UsageError(f"unknown target `{name}`",
                        hint=" ".join(filter(None, (did_you_mean(name, TARGETS), "targets: " + ", ".join(TARGETS)))))
    return TARGETS[name]
