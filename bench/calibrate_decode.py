"""Fit the decode cost model's constants (targets.DecodeCosts: DRAM-sharded rate, per-op fixed cost, host work per
step) to tt_transformers' published decode speeds, and print every PERF.md row's modelled speed and ratio.

The program priced is the one ttspec emits (backends/ttnn/decode_facts.py, what `ttspec report` prices): column
"emitted". Where it lacks a fact tt_transformers' program has (column "gaps": layer or head matmuls not DRAM-sharded,
logits read back, T3K collectives on a line), column "tt_t. facts" prices the same step with those facts set as
tt_transformers has them. The fit reads, per fit row, the emitted program where its decoder layers, sampling and
fabric are tt_transformers' (the LM head as emitted), else the step with tt_transformers' facts (tests/
test_cost_model.py: KNOWN_GAPS). The weights are PERF.md's configuration, model_config.py's
ModelOptimizations.performance (w1/w3 bfp4, w2, wqkv, wo and head bfp8): `--weights-dtype performance` where ttspec
has that preset, else the nearest per-kind formats (w2 bfp4); --weights overrides.

Run: PYTHONPATH=. .venv/bin/python bench/calibrate_decode.py [--fit] [--weights TEXT]
(--fit searches the constants on the fit rows; without it the constants in ttspec/targets.py are used.)
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ttspec.analysis.cost import estimate  # noqa: E402
from ttspec.analysis.program import DRAM_SHARDED  # noqa: E402
from ttspec.backends.ttnn.backend import compile_ttnn  # noqa: E402
from ttspec.backends.ttnn.decode_facts import decode_program  # noqa: E402
from ttspec.backends.ttnn.prefill_facts import prefill_program  # noqa: E402
from ttspec.driver import load_model, prepare, resolve_options  # noqa: E402
from ttspec.errors import UsageError  # noqa: E402
from ttspec.targets import DECODE_COSTS, INTERLEAVED_PER_SHARDED, Source, get_target  # noqa: E402
from ttspec.weight_formats import parse  # noqa: E402

# tenstorrent/tt-metal@040a27c1 models/tt_transformers/PERF.md, "Performance" (batch 1, 128-token prompt, up to 200
# decode iterations; bfp4 MLP, bfp8 attention): (spec, target, tokens/s/user)
PERF = [
    ("llama-3.2-1b", "n150", 87.8), ("llama-3.2-1b", "n300", 105.9), ("llama-3.2-1b", "t3k", 119.8),
    ("llama-3.2-1b", "galaxy", 51.0),
    ("llama-3.2-3b", "n150", 54.0), ("llama-3.2-3b", "n300", 68.0), ("llama-3.2-3b", "t3k", 68.5),
    ("llama-3.2-3b", "galaxy", 33.5),
    ("llama-3.1-8b", "n150", 28.3), ("llama-3.1-8b", "n300", 44.2), ("llama-3.1-8b", "t3k", 64.3),
    ("llama-3.1-8b", "galaxy", 29.5),
    ("mistral-7b", "n150", 29.75), ("mistral-7b", "n300", 47.01), ("mistral-7b", "t3k", 67.82),
    ("llama-3.1-70b", "t3k", 16.6), ("llama-3.1-70b", "galaxy", 12.7),
]
# the same table's TTFT (ms) for a 128-token prompt (TG rows publish none)
TTFT = {("llama-3.2-1b", "n150"): 26, ("llama-3.2-1b", "n300"): 22, ("llama-3.2-1b", "t3k"): 32,
        ("llama-3.2-3b", "n150"): 55, ("llama-3.2-3b", "n300"): 39, ("llama-3.2-3b", "t3k"): 52,
        ("llama-3.1-8b", "n150"): 104, ("llama-3.1-8b", "n300"): 67, ("llama-3.1-8b", "t3k"): 53,
        ("mistral-7b", "n150"): 100.24, ("mistral-7b", "n300"): 65.95, ("mistral-7b", "t3k"): 53.93,
        ("llama-3.1-70b", "t3k"): 164}
FIT = [("llama-3.2-1b", "n150"), ("llama-3.1-8b", "n150"), ("llama-3.1-8b", "t3k")]
PER_KIND = "attention=bfloat8_b,mlp=bfloat4_b,head=bfloat8_b"  # the nearest per-kind formats (w2 bfp4, not bfp8)
BAND_PARTS = ("layers", "sampling", "fabric")  # gaps that leave a row's emitted figure unclaimed (the head's does not)
CONTEXT = 128 + 200  # the prompt and the decode iterations PERF.md measures


def default_weights() -> str:
    try:
        parse("performance")
    except UsageError:
        return PER_KIND
    return "performance"


def gaps(program, target: str) -> list[str]:
    """The parts of the emitted step that differ from tt_transformers' (module doc)."""
    out = []
    if any(op.weight and op.factory != DRAM_SHARDED for op in program.layer_ops):
        out.append("layers")
    if any(op.weight and op.factory != DRAM_SHARDED for op in program.step_ops):
        out.append("head")
    if not program.reads_ids:
        out.append("sampling")
    if target == "t3k" and program.topology != "ring":
        out.append("fabric")
    return out


def tt_transformers_facts(program, target: str):
    """The emitted program's decode facts with what tt_transformers does differently (module doc)."""
    def sharded(ops):
        return tuple(op._replace(factory=DRAM_SHARDED) if op.weight else op for op in ops)
    fabric = "FABRIC_1D_RING" if target == "t3k" else program.fabric
    return program._replace(layer_ops=sharded(program.layer_ops), step_ops=sharded(program.step_ops),
                            reads_ids=True, fabric=fabric)


def rows(weights: str):
    out = []
    for spec, target, measured in PERF:
        model = load_model(ROOT / "specs" / f"{spec}.arch")
        build = prepare(model, resolve_options(get_target(target), parse(weights), None))
        source = compile_ttnn(build, spec)
        emitted = decode_program(source)
        fitted = tt_transformers_facts(emitted, target) if set(gaps(emitted, target)) & set(BAND_PARTS) else emitted
        out.append((spec, target, measured, build, emitted, tt_transformers_facts(emitted, target), fitted,
                    prefill_program(source)))
    return out


def speeds(table, costs, which=5):
    DECODE_COSTS["wormhole_b0"] = costs
    return [1.0 / estimate(r[3], 1, CONTEXT, 128, r[which]).decode_s for r in table]


def with_values(base, bw, op_s, host_s):
    return base.replace(dram_sharded_bandwidth=Source(bw, "B/s", base.dram_sharded_bandwidth.source),
                        dram_interleaved_bandwidth=Source(bw * INTERLEAVED_PER_SHARDED, "B/s",
                                                          base.dram_interleaved_bandwidth.source),
                        op_dispatch_s=Source(op_s, "s", base.op_dispatch_s.source),
                        host_step_s=Source(host_s, "s", base.host_step_s.source))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fit", action="store_true")
    ap.add_argument("--weights", default=None, help="--weights-dtype text (default: PERF.md's configuration)")
    args = ap.parse_args()
    weights = args.weights or default_weights()
    print(f"weights: {weights}")
    table = rows(weights)
    base = DECODE_COSTS["wormhole_b0"]
    if args.fit:
        fit = [r for r in table if (r[0], r[1]) in FIT]
        best = None
        # the per-op cost is published (tt-metal#12074), not fitted
        for bw, op_us, host_us in itertools.product(range(150, 290, 5), (4,), range(0, 8001, 250)):
            costs = with_values(base, bw * 1e9, op_us * 1e-6, host_us * 1e-6)
            err = sum(math.log(s / r[2]) ** 2 for s, r in zip(speeds(fit, costs, 6), fit, strict=True))
            if best is None or err < best[0]:
                best = (err, bw, op_us, host_us)
        print(f"fit: DRAM-sharded {best[1]} GB/s, {best[2]} us per device op, {best[3]} us host per step "
              f"(sum of squared log ratios {best[0]:.4f})")
        base = with_values(base, best[1] * 1e9, best[2] * 1e-6, best[3] * 1e-6)
    tt = speeds(table, base)
    emitted = speeds(table, base, which=4)
    DECODE_COSTS["wormhole_b0"] = base
    print(f"{'model':<15}{'target':<8}{'PERF.md':>9}{'emitted':>9}{'ratio':>7}{'tt_t. facts':>12}{'ratio':>7}"
          f"  ops/layer  {'role':<9}{'TTFT ms':>8}{'emitted':>8}{'ideal':>7}  gaps")
    for r, s, e in zip(table, tt, emitted, strict=True):
        role = "fit" if (r[0], r[1]) in FIT else "held out"
        ttft = TTFT.get((r[0], r[1]))
        first = estimate(r[3], 1, CONTEXT, 128, r[4], r[7]).ttft_s * 1e3
        ideal = estimate(r[3], 1, CONTEXT, 128).ttft_s * 1e3
        print(f"{r[0]:<15}{r[1]:<8}{r[2]:>9.1f}{e:>9.1f}{e / r[2]:>7.2f}{s:>12.1f}{s / r[2]:>7.2f}"
              f"  {len(r[4].layer_ops) / r[4].cycle:>9g}  {role:<9}{ttft or '-':>8}{first:>8.1f}{ideal:>7.1f}  "
              f"{', '.join(gaps(r[4], r[1])) or '-'}")


if __name__ == "__main__":
    main()
