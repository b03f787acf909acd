"""`ttspec report`: how fast it will run, modelled prefill and decode times per target."""

from __future__ import annotations

from ...errors import UsageError
from ...output import write_output
from ..options import (
    BATCH,
    CCL_DTYPE,
    DEVICE_TARGET_LIST,
    DP,
    JSON,
    KV_DTYPE,
    MESH,
    REPORT_TARGET_HELP,
    SEQ,
    STRATEGY,
    WEIGHTS_DTYPE,
    positive_int,
    spec_parent,
)
from ..shared import refuse_options_that_cannot_apply


def add_parser(sub) -> None:
    rp = sub.add_parser("report", help="how fast it will run: modelled prefill and decode times per target",
                        description="Modelled time to first token, decode ms/step and tokens/s on a target, per op "
                                    "class and per layer, with the bottleneck of each (a model from published "
                                    "hardware constants, not a measurement; README: How fast will it run?).",
                        parents=[spec_parent()])
    DEVICE_TARGET_LIST.add(rp, REPORT_TARGET_HELP)
    MESH.add(rp, "a sub-mesh, e.g. 1x4 (one target only)")
    DP.add(rp, "data parallelism on the other mesh axis")
    STRATEGY.add(rp)
    WEIGHTS_DTYPE.add(rp, default="bf16")
    KV_DTYPE.add(rp)
    CCL_DTYPE.add(rp)
    BATCH.add(rp, "users decoded together (default 1)", default=1)
    SEQ.add(rp, "context of the decode step (default 2048, or the spec's bound)")
    rp.add_argument("--prompt", type=positive_int,
                    help="prompt length for the time to first token (default 128, as tt_transformers measures)")
    JSON.add(rp, "machine-readable output (docs/report-json.md); a list of reports for several targets")
    rp.add_argument("--html", metavar="FILE",
                    help="also write a self-contained HTML page: diagram, parameters, memory per chip, time by op "
                         "class, sharding plan and, for several targets, a comparison chart")


def run(args) -> int:
    import json  # here, as every command's imports: `ttspec` imports all their modules to build its parser

    from ...driver import load_model
    from ...reports.report import cost_report, render_report

    if args.mesh and len(args.target) > 1:
        raise UsageError("--mesh applies to one target; leave it out to compare several targets on their full meshes")
    refuse_options_that_cannot_apply(args, args.target)
    model = load_model(args.spec)
    reports = [cost_report(model, target, args.mesh, args.weights_dtype, args.batch, args.seq, args.prompt, args.dp,
                           args.strategy) for target in args.target]
    if args.html:
        from ...analysis.params_report import params_report
        from ...reports.diagram import to_svg
        from ...reports.html_report import render_html
        from ...reports.plan_report import plan_report

        plans = [plan_report(model, target, args.mesh, args.weights_dtype, args.batch, r["context"], args.dp,
                             args.strategy) for target, r in zip(args.target, reports)]
        write_output(render_html(to_svg(model), params_report(model), reports, plans), args.html)
    if args.json:
        text = json.dumps(reports[0] if len(reports) == 1 else reports, indent=2)
    else:
        text = "\n\n".join(render_report(r) for r in reports)
        if args.html:
            text += f"\n\nwrote {args.html}"
    write_output(text, None)
    return 0
