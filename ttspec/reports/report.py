"""`ttspec report`: how fast a program will run on a target (analysis/cost.py), beside the
memory it needs (analysis/memory.py), as a person reads it or as JSON (docs/report-json.md)."""

from __future__ import annotations

from ..analysis.cost import SCHEMA, Phase, estimate, hardware
from ..analysis.program import EXPERTS_DENSE, EXPERTS_ROUTED, DecodeProgram
from ..driver import prepare, resolve_options
from ..ir.graph import Model
from ..ops import EXPERT_GLU
from ..targets import DECODE_COSTS, Strategy, Target
from ..weight_formats import BF16, WeightFormats
from .emitted import emitted_programs, no_decode
from .plan_report import strategy_text

DEFAULT_PROMPT = 128  # tt_transformers' PERF.md measures time to first token at a 128-token prompt
DEFAULT_CONTEXT = 2048

ASSUMPTIONS_IDEALISED = [
    "ops run one after another on each chip; an op takes max(compute, DRAM) plus a fixed dispatch cost (traced)",
    "compute: the op registry's FLOPs at the matrix engine's rate for the weight format's math fidelity; "
    "matmuls compute whole 32-row tiles",
    "DRAM: weights as the memory model stores them, the rows of a table looked up, the KV cache of each layer "
    "(read in decode, written in prefill), prefill activations in and out (bf16 tiles); decode activations stay in L1",
    "collectives: tt-metal's measured CCL model (startup, per hop, bytes through the busiest link), ring or line as "
    "the target wires the axis, plus CCL dispatch",
    "the logits return to the host over PCIe every pass",
]
# the decode step priced from the program ttspec emits (analysis/program.py, backends/ttnn/decode_facts.py)
ASSUMPTIONS_PROGRAM = [
    "decode: the device ops per layer and per step are the emitted program's (its decode step read as Python: "
    "the lowering's calls and the runtime helpers they call), each a fixed cost (op_dispatch_s) with trace; "
    "ops run one after another on each chip, no overlap",
    "decode: a weight matmul streams its weight at the DRAM rate of the program factory its config selects "
    "(DRAM-sharded or DRAM-interleaved) and computes at the math fidelity its compute kernel states; other ops' "
    "DRAM is the KV cache (read whole each step) at the chip's DRAM rate",
    "decode: activations stay where the program writes them; a matmul writing to DRAM adds its output's bytes, "
    "other DRAM activations (a residual add's) are left out",
    "decode: collectives run on the fabric the program opens (FABRIC_1D: a line, FABRIC_1D_RING: a ring), at the "
    "payload dtype they are asked to write, with tt-metal's measured single-op CCL model plus CCL dispatch",
    "decode: the host writes the step's inputs ([users] int32 each) and reads the logits (bf16 tiles) or, with "
    "on-device sampling, one id per user, over PCIe; plus a fixed host cost per step (host_step_s)",
    "prefill: the emitted program's prefill (backends/ttnn/prefill_facts.py) with decode's constants: a fixed cost "
    "per device op it dispatches (priced as traced), each 2-D matmul reading its weight once per chunk of rows it "
    "runs at the interleaved DRAM rate and computing on its chunk's program grid at its kernel's fidelity, the LM "
    "head on the last position's tile, one host cost per pass (host_step_s); activations in and out in DRAM",
]
LEAVES_OUT = [
    "overlap between ops (prefetching weights during other ops, async CCLs)",
    "per-op kernel floors of small ops beyond the dispatch cost, and the layout conversions (reshard, typecast, "
    "tilize) a hand-written program inserts",
    "host-side sampling, tokenisation and Python overhead (beyond an emitted decode step's fitted host work per "
    "step); eager (untraced) dispatch is priced as traced",
    "L1-resident reuse in prefill (activations are charged to DRAM)",
]


def _phase(p: Phase, program: DecodeProgram | None = None) -> dict:
    out = {
        "batch": p.batch, "tokens_per_user": p.tokens, "context": p.context, "time_s": p.time_s,
        "ops": sum(o.count for o in p.ops if o.op_class != "host_read"),
        "by_op_class": p.by_class(), "by_layer": p.by_layer(),
    }
    if program is not None:  # the device ops the emitted decode step dispatches
        out["ops"] = program.ops_per_step
        out["program"] = program.summary()
    return out


def cost_report(model: Model, target: Target, mesh: tuple[int, int] | None = None,
                weights_dtype: WeightFormats = BF16, batch: int = 1, seq: int | None = None, prompt: int | None = None,
                dp: bool = False, strategy: Strategy | None = None) -> dict:
    options = resolve_options(target, weights_dtype, mesh, dp, batch, strategy)
    build = prepare(model, options)
    plan = build.shard_plan
    memory = build.memory
    bound = memory.seq_bound
    context = seq or min(DEFAULT_CONTEXT, bound or DEFAULT_CONTEXT)
    prompt = prompt or min(DEFAULT_PROMPT, context)
    program, prefill = emitted_programs(build)
    est = estimate(build, batch, context, prompt, program, prefill)
    use = memory.usage(batch, context)
    refused = no_decode(model)  # an encoder: no decode step to price, its forward pass in prefill's place
    priced = bool(refused) and prefill is not None  # (its forward pass read from the emitted program)
    report = {
        "schema": SCHEMA,
        "model": model.name,
        "target": options.target.name,
        "mesh": list(options.mesh),
        "devices": plan.group,
        "strategy": plan.strategy,
        "strategy_text": strategy_text(plan),
        "data_parallel_replicas": memory.replicas,
        "weights_dtype": str(options.weights_dtype),
        "kv_dtype": options.weights_dtype.kv_cache,
        "ccl_dtype": options.weights_dtype.ccl if plan.axes else "bf16",
        "batch": batch, "context": context, "prompt": prompt,
        "totals": {
            "ttft_ms": est.ttft_s * 1e3,
            "decode_ms_per_step": None if refused else est.decode_s * 1e3,
            "tokens_per_s_per_user": None if refused else est.tokens_per_s_per_user,
            "tokens_per_s": None if refused else est.tokens_per_s,
        },
        "prefill": _phase(est.prefill, prefill),
        "decode": None if refused else _phase(est.decode, program),
        "priced_program": "emitted" if program is not None or priced else "idealised",
        "memory_per_chip": {
            "dram": memory.dram, "weights": use.weights, "weights_total": use.weights_total,
            "kv_cache": use.kv_cache, "activations": use.activations, "total": use.total,
            "fits": memory.fits(batch), "fits_at_context": use.fits,
        },
        "hardware": hardware(options.target),
        "assumptions": ASSUMPTIONS_PROGRAM if program is not None or priced else ASSUMPTIONS_IDEALISED,
        "constants": constants(options.target, program is not None or priced),
        "leaves_out": LEAVES_OUT,
    }
    if EXPERT_GLU.name in est.prefill.by_class():  # which expert reads it prices (analysis/program.py)
        emitted = program or prefill
        report["experts_priced"] = EXPERTS_DENSE if emitted is not None and emitted.dense_experts else EXPERTS_ROUTED
    if refused:  # (docs/report-json.md: decode null, no_decode the reason, prefill the forward pass)
        report["no_decode"] = refused
        report["prefill"]["forward"] = True
    return report


def constants(target: Target, from_program: bool) -> dict:
    """Which terms are measured constants (published single-op figures, or fitted to tt_transformers' PERF.md)
    and which are assumptions, each with its value and source."""
    chip = target.chip
    measured = {name: dict(c, basis="published") for name, c in chip.constants().items()}
    if from_program:
        measured.update(DECODE_COSTS[chip.arch].constants())
    return {"measured": measured,
            "assumed": (ASSUMPTIONS_PROGRAM if from_program else ASSUMPTIONS_IDEALISED) + LEAVES_OUT}


def _si(n: float, unit: str) -> str:
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {prefix}{unit}"
    return f"{n:.0f} {unit}"


def _phase_lines(title: str, p: dict) -> list[str]:
    lines = [f"{title}: {p['time_s'] * 1e3:.2f} ms, {p['ops']:,} ops per chip", "  by op class"]
    rows = [(name, c) for name, c in p["by_op_class"].items()]
    width = max(len(n) for n, _ in rows) + 2
    for name, c in rows:
        moved = _si(c["collective_bytes"], "B") + " over ethernet" if c["collective_bytes"] else ""
        moved = moved or (_si(c["host_bytes"], "B") + " to host" if c["host_bytes"] else "")
        lines.append(f"    {name:<{width}}{c['time_s'] * 1e3:8.3f} ms  {c['bottleneck']:<8}  "
                     f"{_si(c['flops'], 'FLOP'):>12}  {_si(c['dram_bytes'], 'B'):>10} DRAM  {moved}".rstrip())
    lines.append("  by layer (one layer of each group)")
    for g in p["by_layer"]:
        lines.append(f"    {g['layers']:<{width}}{g['time_s'] * 1e3:8.3f} ms x {g['count']}  "
                     f"{_si(g['flops'], 'FLOP'):>12}  {_si(g['dram_bytes'], 'B'):>10} DRAM"
                     + (f"  {_si(g['collective_bytes'], 'B')} over ethernet" if g["collective_bytes"] else ""))
    return lines


def render_report(r: dict) -> str:
    t = r["totals"]
    where = f"{r['mesh'][0]}x{r['mesh'][1]} mesh, {r['devices']} devices" if r["devices"] > 1 else "one chip"
    kv = f", {r['kv_dtype']} KV cache" if r.get("kv_dtype", "bf16") != "bf16" else ""
    kv += f", {r['ccl_dtype']} collective payloads" if r.get("ccl_dtype", "bf16") != "bf16" else ""
    lines = [f"{r['model']} on {r['target']} ({where}), {r['weights_dtype']} weights{kv}: a model, not a measurement",
             *([f"strategy: {r['strategy_text']}"] if r.get("strategy_text") else []),
             ""]
    if r.get("no_decode"):  # an encoder: its forward pass, no decode step
        lines += [f"forward pass          {t['ttft_ms']:.1f} ms  ({r['prompt']:,} tokens, one sequence)",
                  f"decode                none: {r['no_decode']}", ""]
        lines += _phase_lines(f"forward pass ({r['prompt']:,} tokens, one sequence)", r["prefill"])
    else:
        lines += [f"time to first token   {t['ttft_ms']:.1f} ms  (prompt of {r['prompt']:,} tokens)",
                  f"decode                {t['decode_ms_per_step']:.2f} ms/step at batch {r['batch']}, context "
                  f"{r['context']:,}",
                  f"                      {t['tokens_per_s_per_user']:.1f} tokens/s/user, {t['tokens_per_s']:.1f} "
                  "tokens/s", ""]
        lines += _phase_lines(f"prefill ({r['prompt']:,} tokens, one user)", r["prefill"])
        lines.append("")
        lines += _phase_lines(f"decode step (batch {r['batch']}, context {r['context']:,})", r["decode"])
    m = r["memory_per_chip"]
    lines += ["", f"memory per chip: {m['total']:,} B of {m['dram']:,} B (weights {m['weights_total']:,}, KV cache "
                  f"{m['kv_cache']:,}, activations {m['activations']:,}): "
                  + ("fits" if m["fits_at_context"] else "does NOT fit at this batch and context")]
    c = r["hardware"]["constants"]
    lines += ["", f"hardware ({r['hardware']['chip']}): {c['cores']['value']:.0f} cores at "
                  f"{c['clock_hz']['value'] / 1e9:.2f} GHz, DRAM {c['dram_bandwidth']['value'] / 1e9:.0f} GB/s, "
                  f"{c['op_overhead_traced_s']['value'] * 1e6:.0f} us per op; `--json` lists every constant's source"]
    measured = r["constants"]["measured"]
    if "op_dispatch_s" in measured:
        lines.append(f"decode (emitted program): DRAM-sharded {measured['dram_sharded_bandwidth']['value'] / 1e9:.0f} "
                     f"GB/s, DRAM-interleaved {measured['dram_interleaved_bandwidth']['value'] / 1e9:.0f} GB/s, "
                     f"{measured['op_dispatch_s']['value'] * 1e6:.0f} us per device op, host "
                     f"{measured['host_step_s']['value'] * 1e3:.2f} ms per step")
    program = (r["decode"] or {}).get("program")
    if r.get("no_decode"):
        lines.append("decode not priced: the model cannot decode")
    elif program is not None:
        factories = sorted({m["factory"] for m in program["weight_matmuls"].values()})
        lines.append(f"decode priced from the emitted program: {program['device_ops_per_layer']} device ops per layer "
                     f"(+{program['device_ops_once_per_step']} per step), weight matmuls {', '.join(factories)}, "
                     f"collectives {program['collective_topology']} ({program['fabric']}), reads "
                     f"{program['reads']}")
    else:
        lines.append("decode priced as an idealised program (no TT-NN program could be written for this build)")
    prefill = r["prefill"].get("program")
    if prefill is not None:
        what = "forward pass" if r.get("no_decode") else "prefill"
        lines.append(f"{what} priced from the emitted program: {prefill['device_ops_per_layer']} device ops per "
                     f"layer (+{prefill['device_ops_once_per_step']} per pass); hardware timing is untested")
    if r.get("experts_priced"):
        lines.append(f"experts priced {r['experts_priced']}")
    fitted = [name for name, c in r["constants"]["measured"].items() if c["basis"] != "published"]
    if fitted:
        lines.append("fitted to tt_transformers' PERF.md: " + ", ".join(fitted) + "; every other constant is "
                     "published (`--json` constants); assumptions: `--json` assumptions")
    lines.append("leaves out: " + "; ".join(r["leaves_out"]))
    return "\n".join(lines)
