"""Where `ttspec plan` says each expert bank's experts live: for every `expert_glu` of the program (a bank of E
gated MLPs, ttspec/ops/experts.py), split by expert over the tensor-parallel axis (Placement.EXPERTS: each chip
ceil(E / chips) whole experts, zero experts in the last chips' spare slots) or whole on every chip (one chip, or a
2-D plan). Read from the sharded program's nodes, as the lowering reads them (backends/ttnn/lower_moe.py)."""

from __future__ import annotations

from ..ir.graph import Model, layer_variants
from ..ir.layout import Placement
from ..ops import EXPERT_GLU
from ..ops.experts import experts_per_device


def expert_banks(lowered: Model, plan) -> list[dict]:
    """One record per expert bank (by its component's name, `layers.*.` inside a repeat): its experts, the mesh
    axis and devices it is split over (None and 1 when whole), the experts per chip, the spare (zero) slots, and
    which experts each chip of that axis holds (chip i: experts [i * per_chip, (i + 1) * per_chip) below E)."""
    found: dict[str, dict] = {}

    def visit(graph, prefix: str) -> None:
        for node in graph.topo():
            if node.op == EXPERT_GLU.name and prefix + node.module not in found:
                found[prefix + node.module] = _bank(prefix + node.module, graph, node, plan)
        for node in graph.repeats():
            for body, _ in layer_variants(node):
                visit(body, f"{prefix}{node.module}.*.")

    visit(lowered.graph, "")
    return list(found.values())


def _bank(name: str, graph, node, plan) -> dict:
    experts = graph.node(node.inputs[1]).type.shape[-1]
    split = plan.strategy == "1d" and node.shard.on(plan.axis) == Placement.EXPERTS
    devices = plan.devices if split else 1
    local = experts_per_device(experts, devices)
    return {"bank": name, "experts": experts, "split": split, "axis": plan.axis if split else None,
            "devices": devices, "experts_per_chip": local, "spare_slots": local * devices - experts,
            "chips": [list(range(i * local, min((i + 1) * local, experts))) for i in range(devices)]}


def _span(experts: list[int]) -> str:
    if not experts:
        return "none"
    return str(experts[0]) if len(experts) == 1 else f"{experts[0]}-{experts[-1]}"


def render_expert_banks(banks: list[dict], strategy: str | None) -> list[str]:
    """The plan's text: one line per bank, "E experts over n chips of mesh axis a, k per chip (chip 0: 0-1, ...)"
    (`strategy`: the plan's, None on one chip)."""
    if not banks:
        return []
    lines = ["experts"]
    width = max(len(b["bank"]) for b in banks) + 2
    for b in banks:
        if not b["split"]:
            where = "on the one chip" if strategy is None else "on every chip (a 2-D plan keeps expert banks whole)"
            lines.append(f"  {b['bank']:<{width}}{b['experts']} experts, all {where}")
            continue
        chips = ", ".join(f"chip {i}: {_span(held)}" for i, held in enumerate(b["chips"]))
        spare = f"; {b['spare_slots']} zero-expert slot{'s' if b['spare_slots'] > 1 else ''}" \
            if b["spare_slots"] else ""
        lines.append(f"  {b['bank']:<{width}}{b['experts']} experts over {b['devices']} chips of mesh axis "
                     f"{b['axis']}, {b['experts_per_chip']} per chip ({chips}){spare}")
    return lines
