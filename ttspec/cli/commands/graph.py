"""`ttspec graph`: the architecture as a mermaid or dot diagram."""

from __future__ import annotations

from ...output import write_output
from ..options import OUTPUT, spec_parent


def add_parser(sub) -> None:
    g = sub.add_parser("graph", help="the architecture as a mermaid or dot diagram", parents=[spec_parent()])
    g.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")
    OUTPUT.add(g)


def run(args) -> int:
    from ...driver import load_model
    from ...reports.diagram import to_dot, to_mermaid

    model = load_model(args.spec)
    write_output(to_mermaid(model) if args.format == "mermaid" else to_dot(model), args.output)
    return 0
