"""`ttspec check`: parse, elaborate and shape-check specs; warn where a model will not fit its target."""

from __future__ import annotations

from ...errors import ArchError, UsageError
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


def check_one(spec: str, args):
    """One spec's diagnostics: its error, or its warnings (the spec's own and the target's fit)."""
    from ...driver import load_model
    from ...families import check_family_labels
    from ...reports.check_json import CheckResult
    from ...reports.checks import target_warnings
    from ...targets import get_target

    try:
        model = load_model(spec)
        check_family_labels(model)
        target = args.target or (get_target(model.target[0]) if model.target else None)
        warnings = model.warnings + (target_warnings(model, target, args.weights_dtype, args.training)
                                     if target else [])
    except UsageError:
        raise
    except ArchError as e:
        return CheckResult(spec, e.diagnostics, ok=False)
    failed = any(w.severity == "error" for w in warnings) or bool(warnings and args.strict)
    return CheckResult(spec, warnings, ok=not failed, model=model.name)


def training_estimate(spec: str, args):
    """The training-memory estimate of `spec` at --batch x --seq (backends/torch/training_memory.py)."""
    from ...backends.torch.training_memory import seq_bound, training_memory
    from ...driver import load_model

    model = load_model(spec)
    seq = args.seq or seq_bound(model)
    if seq is None:
        raise UsageError(f"{spec}: its token input has no bound on its sequence length to estimate training at",
                         hint="give --seq")
    return training_memory(model, args.batch, seq)
