"""`ttspec plan`: a program's plan as a person reads it (or as JSON) for any TT-NN target: on a
mesh, the tensor-parallel strategy (1-D over one mesh axis, or 2-D over both), where each
parameter lives on each mesh axis, which collectives run on which cluster axis and why, and the
bytes they move; on every target, the memory per chip (analysis/memory.py) against its DRAM,
whether the model fits, the largest context at a batch and the largest batch at a context. On a
mesh where both strategies apply (two axes of 2 or more chips, no --dp) it compares them side
by side, and says which one the planner chose and why (driver.choose_strategy)."""

from __future__ import annotations

from ..driver import (
    STRATEGY_LABELS,
    Build,
    fitting_options,
    prepare,
    resolve_options,
    strategies_allowed,
    strategy_builds,
)
from ..errors import ArchError
from ..ir.graph import Model, layer_variants
from ..ir.layout import Layout, Placement
from ..ops import ALL_REDUCE, MESH_PARTITION
from ..ops.norms import NORM_STATISTICS, STATISTICS_BYTES
from ..ops.queries import reduces_into_residual
from ..targets import Strategy, Target
from ..weight_formats import WeightFormats, tensor_bytes
from .expert_placement import expert_banks, render_expert_banks

SCHEMA = "ttspec-plan/3"
AXIS_NAMES = {0: "rows", 1: "columns"}  # a 2-D plan's mesh axes, as tt-metal's Galaxy code names them
ACTIVATION_BYTES = 2  # collectives move bf16 activations
# How a 2-D plan's placement reads on one axis: "column over rows (8)".
AXIS_WORDS = {Placement.REPLICATE: "replicated", Placement.COLUMN: "column", Placement.ROW: "row",
              Placement.HIDDEN: "split on hidden", Placement.VOCAB: "vocabulary (column)",
              Placement.KV_COPIES: "KV heads copied", Placement.EXPERTS: "split by expert"}


def _role(ax, name: str, placement: Placement) -> str:
    """A KV projection whose one head is copied to every device is simply replicated."""
    copies = ax.kv_copies.get(name)
    if copies is not None and copies == ax.devices:
        return Placement.REPLICATE.value
    return placement.value


def strategy_text(plan) -> str | None:
    """One line saying what the plan's strategy does on its mesh (one chip: none, there is no strategy)."""
    rows, cols = plan.mesh
    if plan.strategy is None:
        return None
    if plan.strategy == "2d":
        return (f"2-D tensor parallelism: weights split over both mesh axes, heads, MLP hidden and vocabulary over "
                f"the {rows} rows (axis 0), hidden over the {cols} columns (axis 1)")
    other = plan.mesh[1 - plan.axis]
    rest = ("" if other == 1 else
            f"; mesh axis {1 - plan.axis} ({other} devices) holds "
            + ("data-parallel replicas (the batch split over them)" if plan.dp else "replicas of the model"))
    return f"1-D tensor parallelism over mesh axis {plan.axis} ({plan.devices} devices){rest}"


def _residual(plan) -> str:
    def one(ax) -> str:
        return "split on hidden" if ax.residual == Layout.SPLIT else "replicated"

    if plan.strategy is None:
        return "one chip"
    if plan.strategy == "1d":
        return one(plan.primary)
    return ", ".join(f"{one(ax)} over the {AXIS_NAMES[ax.axis]}" for ax in plan.axes)


def plan_report(model: Model, target: Target, mesh: tuple[int, int] | None, weights_dtype: WeightFormats, batch: int,
                seq: int | None, dp: bool = False, strategy: Strategy | None = None) -> dict:
    options = resolve_options(target, weights_dtype, mesh, dp, batch, strategy)
    build = prepare(model, options)
    plan, memory = build.shard_plan, build.memory
    seq = seq or memory.seq_bound or 2048
    use = memory.usage(batch, seq)
    report = {
        "schema": SCHEMA,
        "model": model.name,
        "target": options.target.name,
        "mesh": list(options.mesh),
        "strategy": plan.strategy,
        "strategy_text": strategy_text(plan),
        "strategy_reason": _reason(build, options),
        "tensor_parallel_axis": plan.axis,
        "data_parallel": plan.dp,
        "devices": plan.devices,
        "group": plan.group,
        "axes": [{"axis": ax.axis, "name": AXIS_NAMES[ax.axis], "devices": ax.devices, "role": ax.role,
                  "residual_stream": "split on hidden" if ax.residual == Layout.SPLIT else "replicated"}
                 for ax in plan.axes],
        "residual_stream": _residual(plan),
        "placements": dict(sorted((k, _role(plan.primary, k, v)) for k, v in plan.placements.items())),
        "placements_by_axis": {str(ax.axis): dict(sorted((k, _role(ax, k, ax.placements.get(k, Placement.REPLICATE)))
                                                         for k in _params(plan)))
                               for ax in plan.axes},
        "kv_copies": dict(sorted(plan.kv_copies.items())),
        "experts": expert_banks(build.lowered, plan),  # each expert bank's experts per chip (expert_placement.py)
        "collectives_per_layer": [], "collectives_outside_layers": [],
        "notes": list(plan.notes),
        "fits": memory.fits(batch),
        "memory_per_chip": {
            "dram": memory.dram, "weights_dtype": str(weights_dtype), "kv_dtype": weights_dtype.kv_cache,
            "batch": batch, "seq": seq,
            "seq_bound": memory.seq_bound,
            "weights": use.weights, "weights_total": use.weights_total, "kv_cache": use.kv_cache,
            "activations": use.activations, "total": use.total, "fits_at_seq": use.fits,
            "max_context": memory.max_context(batch), "max_batch": memory.max_batch(seq),
            "compile_context": build.context if build.fits else None,
        },
        "bytes_moved_per_token_per_layer_per_device": 0,
        "bytes_moved_per_token_per_layer_per_device_by_axis": {},
    }
    from ..analysis.cost import estimate
    from .emitted import no_decode

    prompt = min(128, seq)
    est = estimate(build, batch, seq, prompt)
    report["modelled_time"] = {  # analysis/cost.py; `ttspec report` breaks it down
        "prompt": prompt, "context": seq, "batch": batch, "ttft_ms": est.ttft_s * 1e3,
        "decode_ms_per_step": est.decode_s * 1e3, "tokens_per_s_per_user": est.tokens_per_s_per_user,
        "tokens_per_s": est.tokens_per_s,
        "decode_bottleneck": max(est.decode.by_class().items(), key=lambda kv: kv[1]["time_s"])[1]["bottleneck"],
    }
    refused = no_decode(model)
    if refused:  # an encoder: its forward pass of `prompt` tokens, no decode step (report's `no_decode`)
        report["modelled_time"].update(decode_ms_per_step=None, tokens_per_s_per_user=None, tokens_per_s=None,
                                       decode_bottleneck=None, no_decode=refused)
    if not build.fits:
        report["hint"] = fitting_options(model, options)
    if plan.axes:  # one chip runs no collectives: its report has no per-layer traffic to list
        groups, outside = _layers(build.lowered, plan.collectives)
        first = next(iter(groups.values()), (0, []))[1]
        report["layers"] = sum(count for count, _ in groups.values())
        carried = carried_in_ccl_format(build)
        report["ccl_dtype"] = weights_dtype.ccl
        report["collectives_per_layer"] = [_collective(c, carried) for c in first]
        report["collectives_outside_layers"] = [_collective(c, carried) for c in outside]
        patterns = {tuple((c.op, c.dim, c.axis, c.reason) for c in cs) for _, cs in groups.values()}
        if len(patterns) > 1:
            report["notes"].append("the layers differ in their collectives; those of the first layer are listed, "
                                   "and the bytes moved are the average over all layers")
        total, by_axis = bytes_moved(build)
        report["bytes_moved_per_token_per_layer_per_device"] = total
        report["bytes_moved_per_token_per_layer_per_device_by_axis"] = by_axis
    compared = strategy_builds(model, options, build)
    if len(compared) > 1:
        report["strategies"] = [_strategy_row(s, b, build, batch, seq, prompt) for s, b in compared]
    return report


def _reason(build: Build, options) -> str | None:
    """Why the plan has its strategy: forced, the planner's choice, or the only one the mesh allows
    (one chip: none, there is no strategy)."""
    if build.shard_plan.strategy is None:
        return None
    label = STRATEGY_LABELS[build.shard_plan.strategy]
    if options.strategy:
        return f"--strategy {options.strategy} forces {label}"
    if build.strategy_reason:
        return f"the planner chose {label}: {build.strategy_reason}"
    if len(strategies_allowed(options.mesh, options.dp)) > 1:
        return f"{label} is the only strategy the planner can shard this model with on this mesh"
    return f"{label}: the only strategy on a " + ("mesh whose other axis --dp takes" if options.dp else
                                                  "one-row mesh")


def _strategy_row(strategy: str, built: Build | ArchError, chosen: Build, batch: int, seq: int, prompt: int) -> dict:
    """One strategy's figures for the side-by-side comparison (or the planner's refusal)."""
    if isinstance(built, ArchError):
        return {"strategy": strategy, "chosen": False, "refused": built.diagnostic.message}
    from ..analysis.cost import estimate
    from .emitted import no_decode

    memory = built.memory
    est = estimate(built, batch, seq, prompt)
    total, by_axis = bytes_moved(built)
    return {"strategy": strategy, "chosen": built is chosen, "fits": memory.fits(batch),
            "weights_per_chip": memory.weights_total, "kv_cache_bytes_per_token": memory.kv_bytes_per_token,
            "max_context": memory.max_context(batch),
            "bytes_moved_per_token_per_layer_per_device": total,
            "bytes_moved_per_token_per_layer_per_device_by_axis": by_axis,
            "ttft_ms": est.ttft_s * 1e3,
            "decode_ms_per_step": None if no_decode(built.model) else est.decode_s * 1e3}


def _params(plan) -> list[str]:
    """Every parameter any axis of the plan places (the parameters the plan knows)."""
    names: set[str] = set()
    for ax in plan.axes:
        names |= set(ax.placements)
    return sorted(names)


def bytes_moved(build: Build) -> tuple[int, dict[str, int]]:
    """Bytes one device receives per token in the collectives of one layer (averaged over the
    layers), in total and by cluster axis ({"0": ..., "1": ...}). Each collective moves the bf16
    value it converts, as one device holds it on the other axes (an axis-1 collective of a value
    split over 8 rows moves 1/8 of it), ring or line over the n devices of its own axis: all_gather
    and reduce_scatter (n - 1) / n of it, all_reduce twice that (a reduce-scatter, then an
    all-gather), mesh_partition nothing (each device keeps its slice). A distributed norm's
    statistics (ops/norms.py: each chip's float32 sums over its slice of hidden, one tile wide) are
    gathered whole: each device receives the n - 1 other chips' slices. The collectives outside the
    layers (before the final norm, at the output head) are left out."""
    plan = build.shard_plan
    groups, _ = _layers(build.lowered, plan.collectives)
    layers = sum(count for count, _ in groups.values())
    nodes = _nodes(build.lowered)
    carried = carried_in_ccl_format(build)
    by_axis = {str(ax): 0 for ax in sorted({ax.axis for ax in plan.axes})}
    for count, collectives in groups.values():
        for c in collectives:
            by_axis[str(c.axis)] = by_axis.get(str(c.axis), 0) + count * _moved(plan, c, nodes, carried)
    by_axis = {axis: moved // layers if layers else 0 for axis, moved in by_axis.items()}
    return sum(by_axis.values()), by_axis


def carried_in_ccl_format(build: Build) -> set[tuple[str, int]]:
    """The collectives (keys as the plan names them, with their layer variant) whose payload the program writes in
    --ccl-dtype's format (ops/queries.py reduces_into_residual), none where it is bf16."""
    if build.options.weights_dtype.ccl == "bf16":
        return set()
    out: set[tuple[str, int]] = set()

    def visit(graph, prefix: str, variant: int) -> None:
        out.update((prefix + node.id, variant) for node in graph.topo() if reduces_into_residual(graph, node))
        for node in graph.repeats():
            for v, (body, _) in enumerate(layer_variants(node)):
                visit(body, f"{prefix}{node.module}.*.", v)

    visit(build.lowered.graph, "", 0)
    return out


def _moved(plan, c, nodes: dict, carried: set[tuple[str, int]] = frozenset()) -> int:
    """Bytes one device receives per token in collective `c` (see bytes_moved); bfloat8_b (1,088 bytes per 1,024
    values) where the program sends it so (`carried`: carried_in_ccl_format)."""
    n = plan.mesh[c.axis]
    if c.op == MESH_PARTITION.name or n < 2:
        return 0
    node = nodes.get((c.node, c.variant)) or nodes[(c.node, 0)]
    shape = node.type.shape
    features = shape[1:2] + shape[3:] if len(shape) == 4 else shape[2:] if len(shape) == 3 else shape[1:]
    elements = 1
    for d in features:
        elements *= d
    for ax in plan.split_on(c.source):
        if ax.axis != c.axis:
            elements //= ax.devices
    source = nodes.get((c.source, c.variant)) or nodes[(c.source, 0)]
    if source.op == NORM_STATISTICS.name:  # a distributed norm's statistics: one float32 slice per chip
        return STATISTICS_BYTES * source.type.shape[-1] * (n - 1)
    rounds = 2 if c.op == ALL_REDUCE.name else 1
    if (c.node, c.variant) in carried:
        return rounds * tensor_bytes(elements, "bfloat8_b") * (n - 1) // n
    return rounds * ACTIVATION_BYTES * elements * (n - 1) // n


def _nodes(lowered: Model) -> dict[tuple[str, int], object]:
    """Every node of the lowered graph by (key as the plan names it, layer variant): inside a repeat
    the key carries its `NAME.*.` prefix."""
    out: dict[tuple[str, int], object] = {}

    def visit(graph, prefix: str, variant: int) -> None:
        for node in graph.topo():
            out.setdefault((prefix + node.id, variant), node)
        for node in graph.repeats():
            for v, (body, _) in enumerate(layer_variants(node)):
                visit(body, f"{prefix}{node.module}.*.", v)

    visit(lowered.graph, "", 0)
    return out


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
    # Every group's prefix is a top-level path and "." or ".*.": a name finds its groups by its own first
    # part, not by trying every group (one per layer when the layers are written out: quadratic).
    by_prefix: dict[str, list[tuple[str, int]]] = {}
    for g in groups:
        by_prefix.setdefault(g[0], []).append(g)
    position = {g: i for i, g in enumerate(groups)}

    def candidates(name: str) -> list[tuple[str, int]]:
        top = name.partition(".")[0]
        return [g for p in (f"{top}.", f"{top}.*.") if name.startswith(p) for g in by_prefix.get(p, ())]

    outside = []
    for c in collectives:
        group = next((g for g in candidates(c.node) if c.variant == g[1]), None)
        if group is None and c.node in graph:
            readers = [graph.node(u).module for u in graph.users.get(c.node, [])]
            group = min((g for r in readers for g in candidates(f"{r}.")), key=position.get, default=None)
        if group is None:
            outside.append(c)
        else:
            groups[group][1].append(c)
    return groups, outside


def _collective(c, carried: set[tuple[str, int]]) -> dict:
    payload = "bfloat8_b" if (c.node, c.variant) in carried else "bf16"  # (a norm's statistics travel in float32)
    return {"op": c.op, "dim": c.dim, "cluster_axis": c.axis, "of": c.source, "why": c.reason, "payload": payload}


def _kv_text(r: dict, name: str) -> str:
    copies, n = r["kv_copies"][name], r["devices"]
    if copies == n:
        return f"replicated (one KV head: every one of the {n} devices holds a copy)"
    return f"split by KV head, each head copied on {copies} devices ({n // copies} heads, 1 per device)"


def _placement_text(r: dict, name: str) -> str:
    """A parameter's placement: the 1-D description, or for a 2-D plan one phrase per axis."""
    if r["strategy"] != "2d":
        role = r["placements"].get(name, Placement.REPLICATE.value)
        return _kv_text(r, name) if name in r["kv_copies"] else Placement(role).description
    parts = []
    for ax in r["axes"]:
        role = Placement(r["placements_by_axis"][str(ax["axis"])].get(name, Placement.REPLICATE.value))
        parts.append((AXIS_WORDS[role], f"{AXIS_WORDS[role]} over {ax['name']} ({ax['devices']})"))
    if all(word == AXIS_WORDS[Placement.REPLICATE] for word, _ in parts):
        return "replicated"
    return ", ".join(text for _, text in parts)


def _moved_text(moved: int, by_axis: dict[str, int]) -> str:
    if len(by_axis) < 2:
        return f"{moved:,} B"
    return f"{moved:,} B (" + ", ".join(f"axis {a}: {n:,}" for a, n in by_axis.items()) + ")"


def _collective_text(c: dict) -> str:
    """As the program calls it (an all_reduce takes no dim)."""
    dim = "" if c["op"] == ALL_REDUCE.name else f"dim={c['dim']}, "
    payload = f" ({c['payload']} payload)" if c.get("payload", "bf16") != "bf16" else ""
    return f"  {c['op']}({dim}cluster_axis={c['cluster_axis']}) of {c['of']}{payload}: {c['why']}"


def render_plan(r: dict) -> str:
    m = r["memory_per_chip"]
    if r["devices"] > 1 or r["mesh"] != [1, 1]:
        lines = [f"{r['model']} on {r['target']}: {r['mesh'][0]}x{r['mesh'][1]} mesh, {r['strategy_text']}; "
                 f"residual stream {r['residual_stream']}",
                 f"strategy: {r['strategy_reason']}", ""]
        if r["strategy"] == "2d":
            lines.append("parameters, per mesh axis (rows: axis 0, columns: axis 1)")
        else:
            lines.append("parameters")
        names = list(r["placements_by_axis"][str(r["tensor_parallel_axis"])])
        width = max(len(k) for k in names) + 2
        for name in names:
            lines.append(f"  {name:<{width}}{_placement_text(r, name)}")
        lines += ["", "collectives in each layer, in order"]
        lines += [_collective_text(c) for c in r["collectives_per_layer"]]
        if r["collectives_outside_layers"]:
            lines += ["collectives outside the layers"]
            lines += [_collective_text(c) for c in r["collectives_outside_layers"]]
        lines += render_expert_banks(r.get("experts", []), r["strategy"])
        for note in r["notes"]:
            if not note.startswith("the planner chose"):  # the strategy line says it
                lines.append(f"note: {note}")
        lines.append("")
    else:
        lines = [f"{r['model']} on {r['target']}: one chip, no tensor parallelism and no collectives"]
        lines += render_expert_banks(r.get("experts", []), r["strategy"]) + [""]
    lines += render_memory(m, r["fits"])
    if r.get("hint"):
        lines.append(f"  hint: {r['hint']}")
    if r["devices"] > 1:
        moved = _moved_text(r["bytes_moved_per_token_per_layer_per_device"],
                            r["bytes_moved_per_token_per_layer_per_device_by_axis"])
        lines.append(f"communication: {moved} per token per layer per device (ring collectives of bf16 activations "
                     "and float32 norm statistics; all_reduce counted as a reduce-scatter and an all-gather)")
    t = r.get("modelled_time")
    if t and t.get("no_decode"):
        lines.append(f"modelled time: forward pass {t['ttft_ms']:.1f} ms ({t['prompt']:,} tokens); decode: none: "
                     f"{t['no_decode']} (`ttspec report` for the breakdown)")
    elif t:
        lines.append(f"modelled time: first token {t['ttft_ms']:.1f} ms (prompt {t['prompt']:,}); decode "
                     f"{t['decode_ms_per_step']:.2f} ms/step at batch {t['batch']}, context {t['context']:,} = "
                     f"{t['tokens_per_s_per_user']:.1f} tokens/s/user, {t['tokens_per_s']:.1f} tokens/s "
                     f"(mostly {t['decode_bottleneck']}; `ttspec report` for the breakdown)")
    if r.get("strategies"):
        lines += [""] + render_strategies(r)
    return "\n".join(lines)


def render_strategies(r: dict) -> list[str]:
    """The side-by-side comparison of the strategies the mesh allows."""
    t = r["modelled_time"]
    rows = r["strategies"]
    heads = [STRATEGY_LABELS[s["strategy"]] + (" (chosen)" if s["chosen"] else "") for s in rows]
    table = [("", *heads)]

    def row(label: str, key: str, fmt) -> None:
        table.append((label, *("-" if "refused" in s else fmt(s[key]) for s in rows)))

    row("fits", "fits", lambda v: "yes" if v else "no")
    row("weights per chip", "weights_per_chip", lambda v: f"{v:,} B")
    row("KV cache per token per user", "kv_cache_bytes_per_token", lambda v: f"{v:,} B")
    row(f"largest context at batch {t['batch']}", "max_context", lambda v: f"{v:,}" if v else "none")
    for axis in sorted({a for s in rows for a in s.get("bytes_moved_per_token_per_layer_per_device_by_axis", {})}):
        table.append((f"moved per token per layer, axis {axis}",
                      *("-" if "refused" in s else
                        f"{s['bytes_moved_per_token_per_layer_per_device_by_axis'].get(axis, 0):,} B" for s in rows)))
    row("moved per token per layer", "bytes_moved_per_token_per_layer_per_device", lambda v: f"{v:,} B")
    row(f"first token (prompt {t['prompt']:,})", "ttft_ms", lambda v: f"{v:.1f} ms")
    row(f"decode step (context {t['context']:,})", "decode_ms_per_step", lambda v: "none" if v is None else
        f"{v:.2f} ms")
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    lines = [f"strategies compared (per chip, per device; batch {t['batch']})"]
    for line in table:
        lines.append("  " + line[0].ljust(widths[0]) + "".join("  " + c.rjust(w) for c, w in
                                                             zip(line[1:], widths[1:], strict=True)))
    for s in rows:
        if "refused" in s:
            lines.append(f"  {STRATEGY_LABELS[s['strategy']]}: the planner refuses it: {s['refused']}")
    lines.append(f"  {r['strategy_reason']}")
    return lines


def render_memory(m: dict, fits: bool) -> list[str]:
    rows = [("weights", m["weights_total"], f"{m['weights_dtype']} matrices; tables, norms and biases bf16")]
    rows += [(f"  {kind}", value, "") for kind, value in m["weights"].items()]
    rows += [("KV cache", m["kv_cache"], f"{m.get('kv_dtype', 'bf16')}, batch {m['batch']}, seq {m['seq']:,}"),
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
        if m["fits_at_seq"]:
            lines.append(f"fits: yes, at seq {m['seq']:,} and batch {m['batch']} (weights, KV cache and activations)")
        else:  # one tile fits, the asked-for context does not: say which context does
            lines.append(f"fits: only with a shorter context: up to {ctx:,} tokens at batch {m['batch']}, "
                         f"not at seq {m['seq']:,}")
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
