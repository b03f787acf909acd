"""`ttspec plan`: memory per chip, what fits, and on a mesh the tensor-parallel sharding plan; with
--search, the plans the target allows, ranked."""

from __future__ import annotations

from ...output import write_output
from ...targets import DEVICE_TARGETS
from ..options import (
    BATCH,
    CCL_DTYPE,
    DP,
    JSON,
    KV_DTYPE,
    MESH,
    SEQ,
    STRATEGY,
    STRATEGY_HELP,
    TARGET,
    WEIGHTS_DTYPE,
    formats_given,
    positive_int,
    search_options,
    spec_parent,
)
from ..shared import plan_best_command, refuse_options_that_cannot_apply, search_kwargs, search_only


def add_parser(sub) -> None:
    pl = sub.add_parser("plan", help="memory per chip, what fits, and on a mesh the tensor-parallel sharding plan",
                        parents=[spec_parent()])
    TARGET.add(pl, required=True, choices=DEVICE_TARGETS)
    MESH.add(pl, "a sub-mesh, e.g. 1x4")
    DP.add(pl, "data parallelism on the other mesh axis")
    STRATEGY.add(pl, STRATEGY_HELP + "; with --search: fixes the strategy instead of searching both")
    WEIGHTS_DTYPE.add(pl)
    KV_DTYPE.add(pl)
    CCL_DTYPE.add(pl)
    BATCH.add(pl, "batch for the memory breakdown and the largest context that fits (default 1); with --search: "
                  "fixes the batch")
    SEQ.add(pl, "context for the memory breakdown and the largest batch that fits (default: the spec's bound)")
    JSON.add(pl)
    pl.add_argument("--search", action="store_true",
                    help="search the plans the target allows (sub-mesh and tensor-parallel degree, data "
                         "parallelism, weight format per kind, batch), keep those that fit and meet the floors, "
                         "and rank them; --mesh, --dp and --weights-dtype given fix those choices")
    search_options(pl, "--search")
    pl.add_argument("--top", type=positive_int, help="--search: plans to show (default 5)")


def run(args) -> int:
    import json  # here, as every command's imports: `ttspec` imports all their modules to build its parser

    from ...driver import load_model
    from ...reports.plan_report import render_plan

    model = load_model(args.spec)
    refuse_options_that_cannot_apply(args, [args.target], search=args.search)
    if args.search:
        from ...reports.plan_search import render_search

        data = search_data(model, args)
        write_output(json.dumps(data, indent=2) if args.json
                     else render_search(data, plan_best_command(args, args.target)), None)
        return 0
    report = plan_data(model, args)
    write_output(json.dumps(report, indent=2) if args.json else render_plan(report), None)
    return 0


def plan_data(model, args) -> dict:
    """The plan without --search (`plan --json`'s document): what `ttspec plan` and the Python API's
    Spec.plan give for the same options."""
    from ...reports.plan_report import plan_report

    search_only(args, (("--top", args.top),), "--search",
                "`ttspec plan SPEC --target T --search {flag} ...` searches and ranks the plans")
    return plan_report(model, args.target, args.mesh, formats_given(args), args.batch or 1, args.seq,
                       args.dp, args.strategy)


def search_data(model, args) -> dict:
    """`plan --search --json`'s document: the plans the target allows that fit and meet the floors, ranked (the
    Python API's Spec.search gives the same)."""
    from ...reports.plan_search import no_plan, search

    kwargs = search_kwargs(args)
    result = search(model, args.target, **kwargs)
    if not result.plans:
        raise no_plan(model, result, **kwargs)
    return result.as_dict(args.top or 5)
