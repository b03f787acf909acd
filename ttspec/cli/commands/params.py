"""`ttspec params`: exact parameter counts by component, bytes and FLOPs."""

from __future__ import annotations

from ...output import write_output
from ..options import JSON, OUTPUT, SEQ, spec_parent


def add_parser(sub) -> None:
    pa = sub.add_parser("params", help="exact parameter counts by component, bytes and FLOPs", parents=[spec_parent()])
    JSON.add(pa, "machine-readable output (docs/params-json.md)")
    SEQ.add(pa, "sequence length for FLOPs (default: the spec's bound)")
    OUTPUT.add(pa)


def run(args) -> int:
    import json  # here, as every command's imports: `ttspec` imports all their modules to build its parser

    from ...analysis.params_report import params_report
    from ...driver import load_model
    from ...reports.params_table import render_table

    model = load_model(args.spec)
    report = params_report(model, seq=args.seq)
    text = json.dumps(report, indent=2) if args.json else render_table(report)
    write_output(text, args.output)
    return 0
