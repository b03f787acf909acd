"""What several commands share: the default target, where output goes, the plan search's options,
and the refusal of options that cannot apply where they are given."""

from __future__ import annotations

import os
import shlex
import sys

from ..errors import ArchError, Diagnostic, SourceCache, UsageError
from ..targets import DEFAULT_TARGET, DP_MESHES, MESHES, TORCH, Target, get_target, mesh_text


def print_diagnostic(d: Diagnostic) -> None:
    sys.stderr.write(d.render(SourceCache()) + "\n")


def default_target(model) -> Target:
    """The spec's `target` statement, else the default target: what compile and run use without --target."""
    return get_target(model.target[0] if model.target else DEFAULT_TARGET)


def output_path(output: str | None, filename: str) -> str:
    """Where compile writes: ./generated/FILENAME by default; DIR/FILENAME for an existing
    directory or a path ending in `/` (created); else the file named."""
    if output is None:
        folder = "generated"
    elif output.endswith(("/", os.sep)) or os.path.isdir(output):
        folder = output
    else:
        return output
    try:
        os.makedirs(folder, exist_ok=True)
    except FileExistsError:
        raise ArchError(f"cannot create output directory {folder}: a file of that name exists",
                        hint="remove or rename it, or pass -o FILE") from None
    except OSError as e:
        raise ArchError(f"cannot create output directory {folder}: {e.strerror or e}") from None
    return os.path.join(folder, filename)


def search_kwargs(args) -> dict:
    """What `plan --search` and `compile --plan best` pass to reports/plan_search.search."""
    return {"objective": args.objective, "seq": args.seq, "min_tokens_per_s_per_user": args.min_tokens_per_s_per_user,
            "max_ttft_ms": args.max_ttft_ms, "mesh": args.mesh, "dp": True if args.dp else None,
            "weights_dtype": args.weights_dtype, "kv_dtype": getattr(args, "kv_dtype", None) or "bf16",
            "ccl_dtype": getattr(args, "ccl_dtype", None) or "bf16",
            "batch": getattr(args, "batch", None),
            "strategy": getattr(args, "strategy", None)}


def plan_best_command(args, target: Target) -> str:
    """The `ttspec compile ... --plan best` line with the search flags that were given."""
    words = ["ttspec", "compile", shlex.quote(args.spec), "--target", target.name, "--plan", "best"]
    for flag, value in (("--objective", None if args.objective == "latency" else args.objective),
                        ("--seq", args.seq), ("--mesh", mesh_text(args.mesh) if args.mesh else None),
                        ("--batch", getattr(args, "batch", None)),
                        ("--weights-dtype", args.weights_dtype), ("--kv-dtype", getattr(args, "kv_dtype", None)),
                        ("--ccl-dtype", getattr(args, "ccl_dtype", None)),
                        ("--strategy", getattr(args, "strategy", None)),
                        ("--min-tokens-per-s-per-user", args.min_tokens_per_s_per_user),
                        ("--max-ttft-ms", args.max_ttft_ms)):
        if value is not None:
            words += [flag, shlex.quote(f"{value:g}" if isinstance(value, float) else str(value))]
    return " ".join(words + (["--dp"] if args.dp else []))


def search_only(args, more, what: str, hint: str) -> None:
    """Refuse the search's options without the search (`compile` without --plan, `plan` without --search)."""
    for flag, value in (*more, ("--objective", args.objective != "latency"),
                        ("--min-tokens-per-s-per-user", args.min_tokens_per_s_per_user),
                        ("--max-ttft-ms", args.max_ttft_ms)):
        if value:
            raise UsageError(f"{flag} is an option of {what}", hint=hint.format(flag=flag))


MESH_OPTIONS = ("--mesh", "--dp", "--strategy")


def refuse_options_that_cannot_apply(args, targets: list[Target], on_host: bool = False,
                                     search: bool = False) -> None:
    """Options that would change nothing where they are given are refused (exit 2), never echoed as if
    applied. `targets`: the device targets the command plans or runs on (resolved from the spec where
    --target is not given); `on_host`: it runs the torch reference, which has no device, mesh or
    strategy; `search`: --dp without --mesh fixes data parallelism for the plan search's sub-meshes."""
    mode = getattr(args, "mode", None)
    if mode == "torch" and args.target not in (None, TORCH):
        raise UsageError(f"--mode torch runs the PyTorch reference; --target {args.target.name} names a device it "
                         "does not use", hint="leave out --target, or run the TT-NN program on it: --mode golden, "
                                              "mock or device")
    if on_host:
        where = "--mode torch" if mode == "torch" else "--target torch"
        if getattr(args, "kv_dtype", None) not in (None, "bf16"):
            raise UsageError(f"--kv-dtype {args.kv_dtype} stores a TT-NN program's KV cache on the device; {where} "
                             "runs the PyTorch reference, whose cache is not stored in a device format",
                             hint="leave out --kv-dtype, or run the TT-NN program: --mode golden rounds the cache "
                                  "as the device stores it")
        if getattr(args, "ccl_dtype", None) not in (None, "bf16"):
            raise UsageError(f"--ccl-dtype {args.ccl_dtype} is the format of a TT-NN mesh program's collective "
                             f"payloads; {where} runs the PyTorch reference, which has none",
                             hint="leave out --ccl-dtype, or run the TT-NN program on a mesh target with --mode golden")
        for flag in MESH_OPTIONS:
            if getattr(args, flag.removeprefix("--"), None):
                raise UsageError(f"{flag} places a TT-NN program on a device mesh; {where} runs the PyTorch "
                                 "reference on the host, which has none",
                                 hint=f"leave out {flag}, or use a mesh target ({', '.join(MESHES)})"
                                      + (" with --mode golden" if mode else ""))
    _refuse_ccl_without_collectives(args, targets, on_host, search)
    if getattr(args, "html", None) is not None and not args.html.strip():
        raise UsageError("--html needs a file name, got an empty one", hint="e.g. --html report.html")
    if not getattr(args, "dp", False) or on_host:
        return
    for target in (t for t in targets if t is not TORCH):  # a TT-NN mode with --target torch is refused where it runs
        _refuse_dp_without_second_axis(args, target, search)


def _refuse_ccl_without_collectives(args, targets: list[Target], on_host: bool, search: bool) -> None:
    """--ccl-dtype bfloat8_b changes the payloads of a mesh's collectives: refused where every target runs on one
    chip (the plan search may choose a mesh: it is not refused there)."""
    ccl = getattr(args, "ccl_dtype", None)
    if ccl in (None, "bf16") or on_host or search:
        return
    mesh = getattr(args, "mesh", None)
    if all((mesh or t.mesh) == (1, 1) for t in targets if t is not TORCH):
        where = f"--mesh {mesh_text(mesh)}" if mesh else " and ".join(t.name for t in targets if t is not TORCH)
        raise UsageError(f"--ccl-dtype {ccl} is the format of the partial sums a mesh's collectives carry; {where} "
                         "is one chip, which runs no collectives",
                         hint=f"leave out --ccl-dtype, or use a mesh target ({', '.join(MESHES)})")


def _refuse_dp_without_second_axis(args, target: Target, search: bool) -> None:
    if search and not args.mesh:
        from ..reports.plan_search import sub_meshes

        if not any(use_dp for _, use_dp in sub_meshes(target)):
            raise UsageError(f"--dp splits the batch over a second mesh axis; no mesh of {target.name} has one",
                             hint=f"leave out --dp, or search a target with a 2-D mesh: {DP_MESHES}")
        return
    rows, cols = args.mesh or target.mesh
    if min(rows, cols) < 2:
        mesh = f" --mesh {mesh_text(args.mesh)}" if args.mesh else ""
        shape = "one chip" if rows * cols == 1 else f"a {rows}x{cols} mesh"
        raise UsageError(f"--dp splits the batch over a second mesh axis; {target.name}{mesh} is {shape}, which has "
                         "none", hint=f"leave out --dp, or give a mesh with two axes: {DP_MESHES}")
