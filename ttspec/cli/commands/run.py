"""`ttspec run`: compile and run one prefill; print and save the logits."""

from __future__ import annotations

from ...targets import DEFAULT_TARGET
from ..options import (
    CCL_DTYPE,
    KV_DTYPE,
    MODE,
    MODES_HELP,
    OUT,
    SEED,
    STRATEGY,
    TARGET,
    TOKENS,
    WEIGHTS,
    WEIGHTS_DTYPE,
    WEIGHTS_FORMATS_HELP,
    device_run_parent,
    spec_parent,
)
from ..shared import default_target, refuse_options_that_cannot_apply


def add_parser(sub) -> None:
    r = sub.add_parser("run", help="compile and run one prefill; print and save logits",
                       parents=[spec_parent(), device_run_parent()])
    TARGET.add(r, f"default: the spec's `target` statement, else {DEFAULT_TARGET}")
    MODE.add(r, MODES_HELP["run"], required=True)
    WEIGHTS.add(r, "a model directory (config.json with model.safetensors or a sharded model.safetensors.index.json), "
                   "one .safetensors file, or an index file; tensors under ttspec's names (`ttspec params --json`) "
                   "or, for a spec with a `family`, HF transformers names; checked against the spec before any data "
                   "is read, then streamed one tensor at a time (default: seeded random)")
    r.add_argument("--save-weights", metavar="F.safetensors",
                   help="write the weights this run used (e.g. the seeded random ones) under ttspec's names")
    WEIGHTS_DTYPE.add(r, WEIGHTS_FORMATS_HELP, default="bf16")
    KV_DTYPE.add(r)
    CCL_DTYPE.add(r)
    STRATEGY.add(r)
    r.add_argument("--allocate-only", action="store_true",
                   help="mock/device: allocate the weights on the device without host data (fit checks for "
                        "models too big for host memory), then run one forward pass")
    tokens = r.add_mutually_exclusive_group()
    TOKENS.add(tokens, "int token ids [batch, seq]")
    tokens.add_argument("--random-tokens", metavar="B,S", help="random token ids of this shape (default 1,32)")
    OUT.add(r, "save the logits", metavar="logits.npy")
    SEED.add(r, "seed for random weights and tokens (0 to 2**63-1)")


def program(args, target):
    """The typed Program of a `run` or `generate` command line."""
    from ...runtime.requests import Program

    return Program(spec=args.spec, mode=args.mode, target=target, weights_dtype=args.weights_dtype, mesh=args.mesh,
                   dp=args.dp, strategy=args.strategy, weights=args.weights, seed=args.seed)


def run(args) -> int:
    from ...driver import load_model
    from ...runtime import tempdirs
    from ...runtime.requests import RunRequest
    from ...runtime.runner import run_program

    model = load_model(args.spec)
    target = args.target or default_target(model)
    refuse_options_that_cannot_apply(args, [target], on_host=args.mode == "torch")
    request = RunRequest(program(args, target), tokens=args.tokens, random_tokens=args.random_tokens, out=args.out,
                         save_weights=args.save_weights, allocate_only=args.allocate_only)
    with tempdirs.session(keep=args.keep_temp):
        return run_program(model, request)
