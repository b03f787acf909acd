"""`ttspec check`: parse, elaborate and shape-check specs; warn where a model will not fit its target."""

from __future__ import annotations

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
    """One spec's diagnostics: its errors, or its warnings (the spec's own and the target's fit); the code is
    reports.check_json.check_spec, which `ttspec lsp` runs on an editor's buffer. `load`: how the spec becomes
    a model (default driver.load_model; the Python API passes its own for a spec's text)."""
    from ...reports.check_json import check_spec

    return check_spec(spec, target=args.target, weights_dtype=args.weights_dtype, training=args.training,
                      strict=args.strict, load=load)
