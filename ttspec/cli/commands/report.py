"""`ttspec report`: how fast it will run, modelled prefill and decode times per target."""

from __future__ import annotations

import sys

from ...errors import ArchError, UsageError
from ...output import write_output
from ..options import (
    BATCH,
    CCL_DTYPE,
    DEVICE_TARGET_LIST,
    DP,
    EXIT_SPEC_ERROR,
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
from ..shared import print_diagnostic, refuse_options_that_cannot_apply


def add_parser(sub) -> None:
    rp = sub.add_parser("report", help="how fast it will run: modelled prefill and decode times per target",
                        description="Modelled time to first token, decode ms/step and tokens/s on a target, per op "
                                    "class and per layer, with the bottleneck of each (a model from published "
                                    "hardware constants, not a measurement; docs/performance-model.md).",
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
    from ...reports.report import render_report

    refuse_report_options(args)
    model = load_model(args.spec)
    rows, refused = report_rows(model, args)
    for name, e in refused.items():  # each refusal in full on stderr, in one line in the output
        sys.stderr.write(f"{name} cannot take the model (the other targets are reported):\n")
        print_diagnostic(e.diagnostic)
    if len(refused) == len(rows):  # every target refused the model: each said why on stderr
        return EXIT_SPEC_ERROR
    if args.json:
        text = json.dumps(rows[0] if len(rows) == 1 else rows, indent=2)
    else:
        text = "\n\n".join(render_report(r) if "refused" not in r else f"{r['target']}: refused: {r['refused']}"
                             for r in rows)
        if args.html:
            text += f"\n\nwrote {args.html}"
    write_output(text, None)
    return 0


def refuse_report_options(args) -> None:
    if args.mesh and len(args.target) > 1:
        raise UsageError("--mesh applies to one target; leave it out to compare several targets on their full meshes")
    refuse_options_that_cannot_apply(args, args.target)


def report_rows(model, args) -> tuple[list[dict], dict[str, ArchError]]:
    """`report --json`'s rows, one per target in the order given (a refused target's row is {target, refused}),
    and each refusal's error; with --html, the page is written when a target could be reported. What `ttspec
    report` and the Python API's Spec.report give for the same options."""
    from ...reports.report import cost_report

    reports, refused = _reports(args, model, cost_report)
    if not reports:
        return _in_order(args.target, reports, refused), refused
    targets = [t for t in args.target if t.name not in refused]
    if args.html:
        from ...analysis.params_report import params_report
        from ...reports.diagram import to_svg
        from ...reports.html_report import render_html
        from ...reports.plan_report import plan_report

        plans = [plan_report(model, target, args.mesh, args.weights_dtype, args.batch, r["context"], args.dp,
                             args.strategy) for target, r in zip(targets, reports)]
        write_output(render_html(to_svg(model), params_report(model), reports, plans), args.html)
    return _in_order(args.target, reports, refused), refused


def _reports(args, model, cost_report) -> tuple[list[dict], dict[str, ArchError]]:
    """A report for each target that can take the model, and the error of each other one. With several
    targets, one that refuses (heads that do not split over its mesh, say) is stated, on stderr in full and
    in the output in one line, and the others are still reported: the command fails (exit 1) only when
    no target could be reported. With one target its refusal is the command's error."""
    reports, refused = [], {}
    for target in args.target:
        try:
            reports.append(cost_report(model, target, args.mesh, args.weights_dtype, args.batch, args.seq,
                                       args.prompt, args.dp, args.strategy))
        except UsageError:
            raise
        except ArchError as e:
            if len(args.target) == 1:
                raise
            refused[target.name] = e
    return reports, refused


def _in_order(targets, reports: list[dict], refused: dict[str, ArchError]) -> list[dict]:
    """The reports and the refusals as rows, in the order the targets were given."""
    by_name = {r["target"]: r for r in reports}
    return [by_name[t.name] if t.name not in refused else {"target": t.name, "refused": _refusal(refused[t.name])}
            for t in targets]


def _refusal(e: ArchError) -> str:
    hint = f" (hint: {e.diagnostic.hint})" if e.diagnostic.hint else ""
    return e.diagnostic.message + hint
