"""`ttspec plan`: a program's plan as a person reads it (or as JSON) for any TT-NN target: on a
mesh, where each parameter lives, which collectives run and why, and the bytes moved; on every
target, the memory per chip (analysis/memory.py) against its DRAM, whether the model fits,
the largest context at a batch and the largest batch at a context."""

from __future__ import annotations

from ..driver import fitting_options, prepare, resolve_options
from ..ir.graph import Model, layer_variants
from ..ir.layout import Layout, Placement

SCHEMA = "ttspec-plan/2"


def _role(plan, name: str, placement: Placement) -> str:
    """A KV projection whose one head is copied to every device is simply replicated."""
    copies = plan.kv_copies.get(name)
    if copies is not None and copies == plan.devices:
        return Placement.REPLICATE.value
    return placement.value


def plan_report(model: Model, target: str, mesh: str | None, weights_dtype: str, batch: int, seq: int | None,
                dp: bool = False) -> dict:
    options = resolve_options(target, weights_dtype, mesh, dp)
    build = prepare(model, options)
    plan, memory = build.shard_plan, build.memory
    seq = seq or memory.seq_bound or 2048
    use = memory.usage(batch, seq)
    report = {
        "schema": SCHEMA,
        "model": model.name,
        "target": options.target.name,
        "mesh": list(options.mesh),
        "tensor_parallel_axis": plan.axis if plan else None,
        "data_parallel": plan.dp if plan else False,
        "devices": plan.devices if plan else 1,
        "residual_stream": (("split on hidden" if plan.residual == Layout.SPLIT else "replicated") if plan
                            else "one chip"),
        "placements": dict(sorted((k, _role(plan, k, v)) for k, v in plan.placements.items())) if plan else {},
        "kv_copies": dict(sorted(plan.kv_copies.items())) if plan else {},
        "collectives_per_layer": [], "collectives_outside_layers": [],
        "notes": list(plan.notes) if plan else [],
        "fits": memory.fits(batch),
        "memory_per_chip": {
            "dram": memory.dram, "weights_dtype": weights_dtype, "batch": batch, "seq": seq,
            "seq_bound": memory.seq_bound,
            "weights": use.weights, "weights_total": use.weights_total, "kv_cache": use.kv_cache,
            "activations": use.activations, "total": use.total, "fits_at_seq": use.fits,
            "max_context": memory.max_context(batch), "max_batch": memory.max_batch(seq),
            "compile_context": build.context if build.fits else None,
        },
        "bytes_moved_per_token_per_layer_per_device": 0,
    }
    from .cost import estimate

    prompt = min(128, seq)
    est = estimate(build, batch, seq, prompt)
    report["modelled_time"] = {  # analysis/cost.py; `ttspec report` breaks it down
        "prompt": prompt, "context": seq, "batch": batch, "ttft_ms": est.ttft_s * 1e3,
        "decode_ms_per_step": est.decode_s * 1e3, "tokens_per_s_per_user": est.tokens_per_s_per_user,
        "tokens_per_s": est.tokens_per_s,
        "decode_bottleneck": max(est.decode.by_class().items(), key=lambda kv: kv[1]["time_s"])[1]["bottleneck"],
    }
    if not build.fits:
        report["hint"] = fitting_options(model, options)
    if plan:
        groups, outside = _layers(build.lowered, plan.collectives)
        layers = sum(count for count, _ in groups.values())
        first = next(iter(groups.values()), (0, []))[1]
        report["layers"] = layers
        report["collectives_per_layer"] = [_collective(c) for c in first]
        report["collectives_outside_layers"] = [_collective(c) for c in outside]
        patterns = {tuple((c.op, c.dim, c.axis, c.reason) for c in cs) for _, cs in groups.values()}
        if len(patterns) > 1:
            report["notes"].append("the layers differ in their collectives; those of the first layer are listed, "
                                   "and the bytes moved are the average over all layers")
        # Ring collectives: each device receives (n - 1) / n of the full bf16 activation per token.
        width = _hidden(build.lowered)
        n = plan.devices
        total = sum(count * len(cs) * (2 * width * (n - 1) // n) for count, cs in groups.values())
        report["bytes_moved_per_token_per_layer_per_device"] = total // layers if layers else 0
    return report


def _layers(lowered: Model, collectives) -> tuple[dict[tuple[str, int], tuple[int, list]], list]:
    """The collectives of each layer group, {(prefix, variant): (layers, collectives of one layer)},
    and those outside the layers. A layer group is a top-level `repeat` (its collectives carry its
    `NAME.*.` prefix), one group per layer variant, or an unrolled top-level block of kind decoder
    (its collectives, and the ones whose readers are inside it, such as the gather before its
    first norm)."""
    graph = lowered.graph
    repeats = {n.module: n for n in graph.repeats()}
    groups: dict[tuple[str, int], tuple[int, list]] = {}
    for path, info in graph.modules.items():
        if "." in path:
            continue
        if info.repeat and path in repeats:
            for variant, (_, n) in enumerate(layer_variants(repeats[path])):
                groups[(f"{path}.*.", variant)] = (n, [])
        elif info.repeat:
            groups[(f"{path}.*.", 0)] = (info.repeat, [])
        elif info.kind == "decoder":
            groups[(f"{path}.", 0)] = (1, [])
    outside = []
    for c in collectives:
        group = next((g for g in groups if c.node.startswith(g[0]) and c.variant == g[1]), None)
        if group is None and c.node in graph:
            readers = [graph.node(u).module for u in graph.users.get(c.node, [])]
            group = next((g for g in groups if any(f"{r}.".startswith(g[0]) for r in readers)), None)
        if group is None:
            outside.append(c)
        else:
            groups[group][1].append(c)
    return groups, outside


def _hidden(lowered: Model) -> int:
    """The residual stream's width: what the output head reads."""
    graph = lowered.graph
    head = graph.node(next(iter(graph.outputs.values())))
    return graph.node(head.inputs[0]).type.shape[-1]


def _collective(c) -> dict:
    return {"op": c.op, "dim": c.dim, "cluster_axis": c.axis, "of": c.source, "why": c.reason}


def _kv_text(r: dict, name: str) -> str:
    copies, n = r["kv_copies"][name], r["devices"]
    if copies == n:
        return f"replicated (one KV head: every one of the {n} devices holds a copy)"
    return f"split by KV head, each head copied on {copies} devices ({n // copies} heads, 1 per device)"


def render_plan(r: dict) -> str:
    m = r["memory_per_chip"]
    if r["devices"] > 1 or r["mesh"] != [1, 1]:
        lines = [f"{r['model']} on {r['target']}: {r['mesh'][0]}x{r['mesh'][1]} mesh, tensor parallel over mesh "
                 f"axis {r['tensor_parallel_axis']} ({r['devices']} devices); residual stream {r['residual_stream']}",
                 "", "parameters"]
        width = max(len(k) for k in r["placements"]) + 2
        for name, role in r["placements"].items():
            text = _kv_text(r, name) if name in r["kv_copies"] else Placement(role).description
            lines.append(f"  {name:<{width}}{text}")
        lines += ["", "collectives in each layer, in order"]
        for c in r["collectives_per_layer"]:
            lines.append(f"  {c['op']}(dim={c['dim']}, cluster_axis={c['cluster_axis']}) of {c['of']}: {c['why']}")
        if r["collectives_outside_layers"]:
            lines += ["collectives outside the layers"]
            for c in r["collectives_outside_layers"]:
                lines.append(f"  {c['op']}(dim={c['dim']}, cluster_axis={c['cluster_axis']}) of {c['of']}: "
                             f"{c['why']}")
        for note in r["notes"]:
            lines.append(f"note: {note}")
        lines.append("")
    else:
        lines = [f"{r['model']} on {r['target']}: one chip, no tensor parallelism and no collectives", ""]
    lines += render_memory(m, r["fits"])
    if r.get("hint"):
        lines.append(f"  hint: {r['hint']}")
    if r["devices"] > 1:
        lines.append(f"communication: {r['bytes_moved_per_token_per_layer_per_device']:,} B per token per layer per "
                     "device (ring collectives, bf16 activations)")
    t = r.get("modelled_time")
    if t:
        lines.append(f"modelled time: first token {t['ttft_ms']:.1f} ms (prompt {t['prompt']:,}); decode "
                     f"{t['decode_ms_per_step']:.2f} ms/step at batch {t['batch']}, context {t['context']:,} = "
                     f"{t['tokens_per_s_per_user']:.1f} tokens/s/user, {t['tokens_per_s']:.1f} tokens/s "
                     f"(mostly {t['decode_bottleneck']}; `ttspec report` for the breakdown)")
    return "\n".join(lines)


def render_memory(m: dict, fits: bool) -> list[str]:
    rows = [("weights", m["weights_total"], f"{m['weights_dtype']} matrices; tables, norms and biases bf16")]
    rows += [(f"  {kind}", value, "") for kind, value in m["weights"].items()]
    rows += [("KV cache", m["kv_cache"], f"bf16, batch {m['batch']}, seq {m['seq']:,}"),
             ("activations", m["activations"], "prefill peak, estimated"),
             ("total", m["total"], f"of {m['dram']:,} B of DRAM: "
              + ("fits" if m["fits_at_seq"] else f"does not fit at seq {m['seq']:,}"))]
    width = max(len(f"{v:,}") for _, v, _ in rows)
    lines = [f"memory per chip at batch {m['batch']}, seq {m['seq']:,}"]
    lines += [f"  {name:<13}{value:>{width},} B  {what}".rstrip() for name, value, what in rows]
    if fits:
        bound = m["seq_bound"]
        ctx = m["max_context"]
        if bound and ctx >= bound:
            ctx_text = f"{ctx:,} tokens (the spec's bound)"
        elif bound:
            ctx_text = f"{ctx:,} tokens (the spec allows {bound:,})" if ctx else "none: not even one tile (32 tokens)"
        else:
            ctx_text = f"{ctx:,} tokens"
        lines.append(f"fits: yes (weights, KV cache and activations for one tile of context at batch {m['batch']})")
    else:
        lines.append(f"fits: NO: weights, KV cache and activations for one tile (32 tokens) of context at batch "
                     f"{m['batch']} exceed the DRAM")
        ctx = m["max_context"]
        ctx_text = f"{ctx:,} tokens" if ctx else "none"
    batch = f"{m['max_batch']:,}" if m["max_batch"] else "none (not even batch 1)"
    lines.append(f"largest context at batch {m['batch']}: {ctx_text}")
    lines.append(f"largest batch at seq {m['seq']:,}: {batch}")
    if m["compile_context"]:
        lines.append(f"compile: accepts it; the program takes sequences of up to {m['compile_context']:,} tokens")
    else:
        lines.append("compile: refuses it (it does not fit at batch 1)")
    return lines
