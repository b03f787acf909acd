"""Tenstorrent targets: chips, mesh shape and memory, from published board specs."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UsageError, did_you_mean

TILE = 32  # Tenstorrent tiles are 32x32 values; TILE-layout tensors are padded to whole tiles

# Wormhole: 12 DRAM banks of 1,072,693,184 B as ttnn's allocator books them (12 GB GDDR6).
WORMHOLE_DRAM = 12 * 1_072_693_184
# Blackhole p150: 8 banks of 4,277,141,376 B (32 GB GDDR6); p100 has 28 GB on 7 banks.
P150_DRAM = 8 * 4_277_141_376
P100_DRAM = 7 * 4_277_141_376


@dataclass(frozen=True)
class Target:
    name: str
    arch: str
    mesh: tuple[int, int]
    dram_per_chip: int
    description: str

    @property
    def chips(self) -> int:
        return self.mesh[0] * self.mesh[1]


TARGETS = {
    "n150": Target("n150", "wormhole_b0", (1, 1), WORMHOLE_DRAM, "Wormhole n150, 1 chip, 12 GB"),
    "n300": Target("n300", "wormhole_b0", (1, 2), WORMHOLE_DRAM, "Wormhole n300, 2 chips, 12 GB each"),
    # T3K's 8 chips are wired as 2x4; like tt-metal's tt_transformers, programs use them as a 1x8 mesh.
    "t3k": Target("t3k", "wormhole_b0", (1, 8), WORMHOLE_DRAM, "T3K, 8 Wormhole chips (a 1x8 mesh)"),
    "galaxy": Target("galaxy", "wormhole_b0", (8, 4), WORMHOLE_DRAM, "Galaxy, 32 Wormhole chips as 8x4"),
    "p100": Target("p100", "blackhole", (1, 1), P100_DRAM, "Blackhole p100, 1 chip, 28 GB"),
    "p150": Target("p150", "blackhole", (1, 1), P150_DRAM, "Blackhole p150, 1 chip, 32 GB"),
}


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


def get_target(name: str) -> Target:
    if name not in TARGETS:
        raise UsageError(f"unknown target `{name}`",
                        hint=" ".join(filter(None, (did_you_mean(name, TARGETS), "targets: " + ", ".join(TARGETS)))))
    return TARGETS[name]
