"""`ttspec plan`: a sharding plan as a person reads it (or as JSON): where each parameter
lives, which collectives run and why, memory per chip against its DRAM, and bytes moved."""

from __future__ import annotations

from ..codegen.ttnn_backend import weight_plan_bytes
from ..driver import lower
from ..ir.graph import Model, all_nodes
from ..ir.layout import Layout
from ..passes.shard import ShardPlan, plan_sharding
from ..targets import Target

ROLE_TEXT = {"column": "column-parallel (output features split)", "row": "row-parallel (input features split)",
             "hidden": "split on hidden", "vocab": "column-parallel over the vocabulary",
             "replicate": "replicated"}


def build_plan(model: Model, target: Target, mesh: tuple[int, int] | None, dp: bool = False
               ) -> tuple[Model, ShardPlan]:
    return plan_sharding(lower(model), mesh or target.mesh, dp=dp)


def plan_report(model: Model, target: Target, mesh, weights_dtype: str, batch: int, seq: int | None,
                dp: bool = False) -> dict:
    sharded, plan = build_plan(model, target, mesh, dp)
    if plan.dp:
        batch = -(-batch // plan.mesh[1 - plan.axis])  # each replica's share of the batch
    seq = seq or model.bounds.get("seq", 2048)
    n = plan.devices
    hidden = next(node.attrs["dim"] for node in model.graph.topo() if node.op == "embedding")
    repeat = next(iter(model.graph.repeats()), None)
    layers = repeat.attrs["count"] if repeat else 0
    per_layer = [c for c in plan.collectives if ".*." in c.node]
    outside = [c for c in plan.collectives if ".*." not in c.node]
    # Ring collectives: each device receives (n - 1) / n of the full bf16 activation per token.
    moved = sum(2 * hidden * (n - 1) // n for c in per_layer)
    kv_bytes = 0
    for node in all_nodes(sharded.graph):
        if node.op == "split_qkv_heads":
            local_kv = node.attrs.get("local_kv_heads", node.attrs["kv_heads"])
            kv_bytes = 2 * local_kv * node.type.shape[-1] * 2 * layers * batch * seq  # k and v, bf16
    weights = weight_plan_bytes(model, weights_dtype, plan)
    body = repeat.attrs["body"] if repeat else sharded.graph
    widest = max((node.type.shape[-1] for node in body.topo() if node.op == "linear"), default=hidden)
    vocab = sharded.graph.node(next(iter(sharded.graph.outputs.values()))).type.shape[-1]
    # Prefill peak, estimated: the gathered activation, the local residual slice, two of the widest
    # local projections (gate and up of an MLP), and this chip's slice of the logits; bf16.
    activations = 2 * batch * seq * (hidden + hidden // n + 2 * widest // n + vocab // n)
    dram = target.dram_per_chip
    total = weights + kv_bytes + activations
    return {
        "schema": "ttspec-plan/1",
        "model": model.name,
        "target": target.name,
        "mesh": list(plan.mesh),
        "tensor_parallel_axis": plan.axis,
        "data_parallel": plan.dp,
        "devices": n,
        "residual_stream": "split on hidden" if plan.residual == Layout.SPLIT else "replicated",
        "placements": dict(sorted(plan.placements.items())),
        "collectives_per_layer": [{"op": c.op, "dim": c.dim, "cluster_axis": c.axis, "of": c.source,
                                   "why": c.reason} for c in per_layer],
        "collectives_outside_layers": [{"op": c.op, "dim": c.dim, "cluster_axis": c.axis, "of": c.source,
                                        "why": c.reason} for c in outside],
        "notes": plan.notes,
        "memory_per_chip": {"weights": weights, "weights_dtype": weights_dtype, "kv_cache": kv_bytes,
                            "activations_estimate": activations, "batch": batch, "seq": seq, "total": total,
                            "dram": dram, "fits": total <= dram},
        "bytes_moved_per_token_per_layer_per_device": moved,
    }


def render_plan(r: dict) -> str:
    m = r["memory_per_chip"]
    lines = [f"{r['model']} on {r['target']}: {r['mesh'][0]}x{r['mesh'][1]} mesh, tensor parallel over mesh axis "
             f"{r['tensor_parallel_axis']} ({r['devices']} devices); residual stream {r['residual_stream']}", "",
             "parameters"]
    width = max(len(k) for k in r["placements"]) + 2
    for name, role in r["placements"].items():
        lines.append(f"  {name:<{width}}{ROLE_TEXT.get(role, role)}")
    lines += ["", "collectives in each layer, in order"]
    for c in r["collectives_per_layer"]:
        lines.append(f"  {c['op']}(dim={c['dim']}, cluster_axis={c['cluster_axis']}) of {c['of']}: {c['why']}")
    if r["collectives_outside_layers"]:
        lines += ["collectives outside the layers"]
        for c in r["collectives_outside_layers"]:
            lines.append(f"  {c['op']}(dim={c['dim']}, cluster_axis={c['cluster_axis']}) of {c['of']}: {c['why']}")
    for note in r["notes"]:
        lines.append(f"note: {note}")
    verdict = "fits" if m["fits"] else "DOES NOT FIT"
    lines += ["", f"memory per chip: weights ({m['weights_dtype']}) {m['weights']:,} B + KV cache (batch {m['batch']}, "
              f"seq {m['seq']}) {m['kv_cache']:,} B + activations (estimate) {m['activations_estimate']:,} B = "
              f"{m['total']:,} B of {m['dram']:,} B: {verdict}",
              f"communication: {r['bytes_moved_per_token_per_layer_per_device']:,} B per token per layer per device "
              "(ring collectives, bf16 activations)"]
    return "\n".join(lines)
