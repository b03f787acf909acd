"""The Python API's keyword arguments as the command line's parsed options (an argparse Namespace holding the
same typed values: targets.Target, (rows, cols) meshes, weight_formats.WeightFormats), so Spec.plan and
Spec.report run the commands' own code (cli/commands/plan.py, report.py) on them. Each value is checked by the
function the option's parser uses, and a bad one raises UsageError naming the keyword, never exits."""

from __future__ import annotations

import argparse

from ..errors import UsageError, did_you_mean
from ..targets import DEVICE_TARGETS, STRATEGIES, Target, get_target, parse_mesh
from ..weight_formats import WeightFormats


def namespace(spec: str, **values) -> argparse.Namespace:
    """The Namespace a command's parser would give: `values` already typed (see the converters below), the
    search-only options left at their defaults, --kv-dtype/--ccl-dtype joined to --weights-dtype as
    options.typed_formats does."""
    from ..cli.options import typed_formats

    args = argparse.Namespace(spec=spec, json=True, search=False, top=None, objective="latency",
                              min_tokens_per_s_per_user=None, max_ttft_ms=None, html=None, prompt=None)
    for key, value in values.items():
        setattr(args, key, value)
    typed_formats(args)
    return args


def device_target(name: str | Target) -> Target:
    if isinstance(name, Target):
        return name
    return get_target(str(name).strip())


def device_targets(names: str | list[str] | tuple[str, ...]) -> list[Target]:
    """"n150", "n150,n300" or ["n150", "n300"]: each a device target once, in the order given."""
    listed = [n for part in ([names] if isinstance(names, (str, Target)) else names)
              for n in (part.split(",") if isinstance(part, str) else [part])]
    chosen = [device_target(n) for n in listed if not isinstance(n, str) or n.strip()]
    if not chosen:
        raise UsageError(f"targets: give a target, or several, e.g. targets={list(DEVICE_TARGETS[:2])!r}")
    if len({t.name for t in chosen}) != len(chosen):
        raise UsageError(f"targets: a target is given twice in {names!r}")
    return chosen


def mesh(value: tuple[int, int] | list[int] | str | None) -> tuple[int, int] | None:
    """(rows, cols), [rows, cols] or "RxC", checked as --mesh is."""
    if value is None:
        return None
    if isinstance(value, (tuple, list)):
        if len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise UsageError(f"mesh: expected (rows, cols) or 'RxC', e.g. (1, 4) or '1x4', got {value!r}")
        value = f"{value[0]}x{value[1]}"
    try:
        return parse_mesh(str(value))
    except UsageError as e:
        raise UsageError(e.diagnostic.message.replace("--mesh", "mesh", 1), hint=e.diagnostic.hint) from None


def weights_dtype(value: str | WeightFormats | None) -> WeightFormats | None:
    """What --weights-dtype takes: "bf16", "bfloat8_b", "performance", "attention=bfloat8_b,mlp=bfloat4_b"."""
    if value is None or isinstance(value, WeightFormats):
        return value
    from ..weight_formats import parse

    return parse(str(value))


def kv_dtype(value: str | None) -> str | None:
    from ..weight_formats import parse_kv

    return None if value is None else parse_kv(str(value))


def ccl_dtype(value: str | None) -> str | None:
    from ..weight_formats import parse_ccl

    return None if value is None else parse_ccl(str(value))


def strategy(value: str | None) -> str | None:
    if value is None or value in STRATEGIES:
        return value
    raise UsageError(f"strategy: unknown strategy {value!r}",
                     hint=" ".join(filter(None, (did_you_mean(str(value), STRATEGIES),
                                                 "strategies: " + ", ".join(STRATEGIES)))))


def positive(name: str, value: int | None) -> int | None:
    """batch, seq, prompt: a positive integer, as the options' positive_int takes it."""
    if value is None:
        return None
    from ..cli.options import positive_int

    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{name}: expected a positive integer, got {value!r}")
    try:
        return positive_int(str(value))
    except argparse.ArgumentTypeError as e:
        raise UsageError(f"{name}: {e}") from None


def positive_number(name: str, value: float | None) -> float | None:
    """The floors (min_tokens_per_s_per_user, max_ttft_ms): a positive finite number, as positive_float takes it."""
    if value is None:
        return None
    from ..cli.options import positive_float

    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"{name}: expected a positive number, got {value!r}")
    try:
        return positive_float(repr(float(value)))
    except argparse.ArgumentTypeError as e:
        raise UsageError(f"{name}: {e}") from None
