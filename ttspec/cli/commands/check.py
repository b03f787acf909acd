"""`ttspec check`: parse, elaborate and shape-check specs; warn where a model will not fit its target."""

from __future__ import annotations

from ..options import BATCH, DEVICE_TARGET, EXIT_SPEC_ERROR, JSON, KV_DTYPE, SEQ, WEIGHTS_DTYPE, WEIGHTS_FORMATS_HELP
from ..shared import print_diagnostic


def add_parser(sub) -> None:
    c = sub.add_parser("check", help="parse, elaborate and shape-check specs")
    c.add_argument("specs", nargs="+", metavar="SPEC")
    DEVICE_TARGET.add(
        c, "warn when the model will not fit this device (default: the spec's `target`); the same memory model "
           "as compile and plan")
    WEIGHTS_DTYPE.add(c, "for the fit check: " + WEIGHTS_FORMATS_HELP, default="bf16")
    KV_DTYPE.add(c)
    c.add_argument("--training", action="store_true",
                   help="state the memory one training step takes (fp32 AdamW: weights, gradients, moments, "
                        "activations; docs/training-memory.md) and warn when training would not fit the target")
    BATCH.add(c, "--training: sequences per step for the estimate (default 1)", default=1)
    SEQ.add(c, "--training: tokens per sequence for the estimate (default: the spec's bound)")
    c.add_argument("--strict", action="store_true", help="treat warnings as errors")
    JSON.add(c, "every diagnostic as JSON on stdout, with LSP ranges, notes and hints (docs/check-json.md)")


def run(args) -> int:
    from ...reports.check_json import check_json

    results = []
    for spec in args.specs:
        result = check_one(spec, args)
        results.append(result)
        if not args.json:
            for d in result.diagnostics:
                print_diagnostic(d)
            if result.ok:
                warnings = len(result.diagnostics)
                print(f"{spec}: ok ({result.model})" + (f", {warnings} warning(s)" if warnings else ""))
                if args.training:
                    print(f"{spec}: {training_estimate(spec, args).summary()}")
    if args.json:
        import json

        doc = check_json(results)
        if args.training:  # each spec that elaborated: its estimate (docs/check-json.md)
            for entry, result in zip(doc["specs"], results):
                if result.model is not None:
                    entry["training"] = training_estimate(result.spec, args)._asdict()
        print(json.dumps(doc, indent=2))
    return 0 if all(r.ok for r in results) else EXIT_SPEC_ERROR


def check_one(spec: str, args, load=None):
    """One spec's diagnostics: its errors, or its warnings (the spec's own and the target's fit); the code is
    reports.check_json.check_spec, which `ttspec lsp` runs on an editor's buffer. `load`: how the spec becomes
    a model (default driver.load_model; the Python API passes its own for a spec's text)."""
    from ...reports.check_json import check_spec

    return check_spec(spec, target=args.target, weights_dtype=args.weights_dtype, training=args.training,
                      strict=args.strict, load=load)


def training_estimate(spec: str, args):
    """The training-memory estimate of `spec` at --batch x --seq (backends/torch/training_memory.py)."""
    from ...backends.torch.training_memory import seq_bound, training_memory
    from ...driver import load_model
    from ...errors import UsageError

    model = load_model(spec)
    seq = args.seq or seq_bound(model)
    if seq is None:
        raise UsageError(f"{spec}: its token input has no bound on its sequence length to estimate training at",
                         hint="give --seq")
    return training_memory(model, args.batch, seq)
