"""`ttspec compile`: generate a program for a target (generated/<model>_<target>.py), or the top plan
of the plan search (`--plan best`), and say how to run it."""

from __future__ import annotations

import shlex

from ...errors import UsageError
from ...output import write_output
from ...targets import TARGETS, TORCH, Target, listing, mesh_text
from ..options import (
    BATCH,
    CCL_DTYPE,
    COMPILE_TARGET_HELP,
    DP,
    KV_DTYPE,
    MESH,
    OUTPUT_PATH,
    SEQ,
    STRATEGY,
    TARGET,
    WEIGHTS_DTYPE,
    WEIGHTS_FORMATS_HELP,
    formats_given,
    search_options,
    spec_parent,
)
from ..shared import (
    default_target,
    output_path,
    refuse_options_that_cannot_apply,
    search_kwargs,
    search_only,
)


def add_parser(sub) -> None:
    co = sub.add_parser("compile", help="generate a program for a target (generated/<model>_<target>.py)",
                        parents=[spec_parent()])
    TARGET.add(co, COMPILE_TARGET_HELP)
    MESH.add(co, "mesh shape for a mesh target, e.g. 1x4 (a sub-mesh)")
    DP.add(co, "2-D meshes: split the batch over the axis not used for tensor parallelism")
    STRATEGY.add(co)
    WEIGHTS_DTYPE.add(co, "TT-NN targets: " + WEIGHTS_FORMATS_HELP)
    KV_DTYPE.add(co)
    CCL_DTYPE.add(co)
    OUTPUT_PATH.add(co, "output file, or a directory (an existing one, or a path ending in `/`) to write "
                          "<model>_<target>.py into (default: ./generated/)")
    co.add_argument("--plan", choices=("best",),
                    help="compile the top plan of `ttspec plan --search` (its mesh, --dp and weight formats; "
                         "--mesh, --dp and --weights-dtype given fix those choices)")
    SEQ.add(co, "--plan: the context the search plans for (as plan --search)")
    BATCH.add(co, "TT-NN targets: users the KV cache is sized for (up to 32 per program, default 1, or the plan's "
                  "with --plan best, where it fixes the batch the search plans for): the context baked into the "
                  "program is the longest that fits with their cache")
    search_options(co, "--plan")


def run_command(args, target: Target, built=None) -> str:
    """The `ttspec run` line that runs what compile just wrote, with every option that was given, and the
    strategy the planner chose where the mesh allows two (`run` would weigh them at its own batch)."""
    words = ["ttspec", "run", shlex.quote(args.spec)]
    if args.target:
        words += ["--target", target.name]
    if args.weights_dtype:
        words += ["--weights-dtype", shlex.quote(str(args.weights_dtype))]
    if args.kv_dtype:
        words += ["--kv-dtype", args.kv_dtype]
    if args.ccl_dtype:
        words += ["--ccl-dtype", args.ccl_dtype]
    if args.mesh:
        words += ["--mesh", mesh_text(args.mesh)]
    if args.dp:
        words.append("--dp")
    strategy = args.strategy
    if built is not None:
        from ...driver import strategies_allowed

        if len(strategies_allowed(built.options.mesh, built.options.dp)) > 1:  # forced, it is the one built
            strategy = built.shard_plan.strategy
    if strategy:
        words += ["--strategy", strategy]
    if target is TORCH:
        return " ".join(words + ["--mode", "torch"])
    return " ".join(words + ["--mode", "golden"]) + "   (or --mode mock, --mode device)"


def run(args) -> int:
    from ...driver import compile_program, load_model

    model = load_model(args.spec)
    target = args.target or default_target(model)
    refuse_options_that_cannot_apply(args, [target], on_host=target is TORCH, search=bool(args.plan))
    chosen = None
    if not args.plan:
        search_only(args, (("--seq", args.seq),), "--plan best",
                    "`ttspec compile SPEC --target T --plan best {flag} ...` compiles the top plan")
    if args.plan:
        chosen = _plan_best(model, target, args)
    weights_dtype = formats_given(args)
    args.batch = args.batch or (chosen.batch if chosen else 1)
    text, built = compile_program(model, args.spec, target, weights_dtype, args.mesh, args.dp, args.batch,
                                  args.strategy)
    output = output_path(args.output, f"{model.name}_{target.name}.py")
    write_output(text, output)
    print(f"wrote {output}: {model.name} for {target.name}"
          + (f", {weights_dtype} weights" if target is not TORCH else ""))
    if chosen:
        print(f"plan ({args.objective}): {chosen.mesh_text} mesh, "
              + ("2-D tensor parallel over both axes" if chosen.strategy == "2d" else
                 f"tensor parallel {chosen.tensor_parallel}")
              + (f", {chosen.replicas} data-parallel replicas" if chosen.replicas > 1 else "")
              + f", batch {chosen.batch} at context {chosen.context:,}: modelled {chosen.ttft_ms:.1f} ms to first "
              f"token, {chosen.tokens_per_s_per_user:.1f} tokens/s/user, {chosen.tokens_per_s:.1f} tokens/s")
    if built:
        _say_what_was_built(args, target, built, chosen)
    print(f"run it: {run_command(args, target, built)}")
    return 0


def _plan_best(model, target: Target, args):
    """The top plan of the search; its choices become the options compiled."""
    if target is TORCH:
        raise UsageError("--plan best plans a TT-NN target; torch has nothing to plan",
                         hint=f"pass --target {listing(TARGETS)}")
    from ...reports.plan_search import best

    chosen = best(model, target, **search_kwargs(args))
    args.mesh, args.dp, args.weights_dtype = chosen.mesh, chosen.dp, chosen.weights_dtype
    args.strategy = chosen.strategy_option
    args.target = target
    return chosen


def _say_what_was_built(args, target: Target, built, chosen) -> None:
    """The context, KV cache and strategy of a TT-NN program."""
    bound = built.memory.seq_bound
    if bound is None or built.context < bound:
        allows = f" (the spec allows {bound:,})" if bound else ""
        print(f"context: up to {built.context:,} tokens, the most that fits {target.name}'s DRAM at batch "
              f"{args.batch} with the KV cache and activations{allows}; `ttspec plan` shows the memory per chip")
    per = " per chip" if built.shard_plan.chips > 1 else ""
    if built.memory.kv_bytes_per_token:  # none for a model that cannot decode (non-causal attention)
        print(f"KV cache: {args.batch} user(s) x {built.context:,} positions, "
              f"{built.memory.kv_cache(args.batch, built.context):,} bytes{per} (--batch sizes it)")
    if built.shard_plan.axes:  # one chip has no strategy to state
        from ...driver import strategies_allowed
        from ...reports.plan_report import strategy_text

        one = len(strategies_allowed(built.options.mesh, built.options.dp)) < 2
        how = ("" if one else " (the plan search's choice)" if chosen
               else " (--strategy)" if args.strategy else " (the planner's choice; --strategy forces one)")
        print(f"strategy: {strategy_text(built.shard_plan)}{how}")
