"""`ttspec check`: parse, elaborate and shape-check specs; warn where a model will not fit its target."""

from __future__ import annotations

from ...errors import ArchError
from ..options import DEVICE_TARGET, EXIT_SPEC_ERROR, KV_DTYPE, WEIGHTS_DTYPE, WEIGHTS_FORMATS_HELP
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


def run(args) -> int:
    from ...driver import load_model
    from ...families import check_family_labels
    from ...reports.checks import target_warnings
    from ...targets import get_target

    failed = False
    for spec in args.specs:
        try:
            model = load_model(spec)
            check_family_labels(model)
        except ArchError as e:
            print_diagnostic(e.diagnostic)
            failed = True
            continue
        target = args.target or (get_target(model.target[0]) if model.target else None)
        warnings = model.warnings + (target_warnings(model, target, args.weights_dtype, args.training)
                                     if target else [])
        for w in warnings:
            print_diagnostic(w)
        if any(w.severity == "error" for w in warnings) or (warnings and args.strict):
            failed = True
        else:
            print(f"{spec}: ok ({model.name})" + (f", {len(warnings)} warning(s)" if warnings else ""))
    return EXIT_SPEC_ERROR if failed else 0
