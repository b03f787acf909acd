"""`ttspec check`: parse, elaborate and shape-check specs; warn where a model will not fit its target."""

from __future__ import annotations

from ...errors import ArchError, UsageError
from ..options import DEVICE_TARGET, EXIT_SPEC_ERROR, JSON, KV_DTYPE, WEIGHTS_DTYPE, WEIGHTS_FORMATS_HELP
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
                   help="also warn when training (AdamW, mixed precision) would not fit the target")
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
    if args.json:
        import json

        print(json.dumps(check_json(results), indent=2))
    return 0 if all(r.ok for r in results) else EXIT_SPEC_ERROR


def check_one(spec: str, args, load=None):
    """One spec's diagnostics: its errors, or its warnings (the spec's own and the target's fit). `load`: how
    the spec becomes a model (default driver.load_model; the Python API passes its own for a spec's text)."""
    from ...driver import load_model
    from ...families import check_family_labels
    from ...reports.check_json import CheckResult
    from ...reports.checks import target_warnings
    from ...targets import get_target

    try:
        model = (load or load_model)(spec)
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
