"""The command line's options, each declared once (its flags, how it parses, its metavar) and parsed
once into a typed value: a target (targets.Target), a mesh (rows, cols), weight formats
(weight_formats.WeightFormats), a strategy (targets.Strategy), positive integers. Commands add an
option with their own help words (`Option.add`), or take a group they share as an argparse parent
parser (`parents`). Imports stay light: the core never touches torch or ttnn."""

from __future__ import annotations

import argparse
import sys

from ..errors import UsageError
from ..records import FrozenRecord, fresh
from ..targets import (
    COMPILE_TARGETS,
    DEFAULT_TARGET,
    DEVICE_TARGETS,
    MESHES,
    SINGLE_CHIP,
    STRATEGIES,
    TARGETS,
    TWO_AXES,
    Target,
    compile_target,
    get_target,
    mesh_text,
    parse_mesh,
)
from ..weight_formats import WeightFormats

EXIT_SPEC_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70


# between an option value's error and its own hint, in the text argparse carries from the type function to error()
HINT = "\n  hint: "


class Parser(argparse.ArgumentParser):
    def error(self, message: str):
        """One message and a hint: a bad option value (its type function's error) with the value's own hint; any
        other misuse (a missing or unknown argument) after the usage line, with where the options are listed."""
        message, _, hint = message.partition(HINT)
        if not hint:
            self.print_usage(sys.stderr)
            help_cmd = "ttspec --help" if self.prog == "ttspec" else f"ttspec {self.prog.split()[-1]} --help"
            hint = f"`{help_cmd}` lists the options"
        sys.stderr.write(f"ttspec: error: {message}{HINT}{hint}\n")
        sys.exit(EXIT_USAGE)


def value_error(e: UsageError, flag: str = "") -> argparse.ArgumentTypeError:
    """A type function's error for `e` (argparse names the option: `flag` is dropped from the message's start),
    its hint kept for Parser.error to print as the hint."""
    d = e.diagnostic
    message = d.message.removeprefix(f"{flag}: ").removeprefix(f"{flag} ") if flag else d.message
    return argparse.ArgumentTypeError(message + (HINT + d.hint.strip() if d.hint and d.hint.strip() else ""))


# ---------------------------------------------------------------- how values parse
MAX_INT_OPTION = 1 << 40  # --batch, --seq: far beyond any context or batch, and exact as a float
MAX_SEED = (1 << 63) - 1  # every generator a run seeds (torch's) takes a signed 64-bit seed


def positive_int(text: str) -> int:
    digits = text.strip().replace("_", "")
    if not digits.lstrip("+-").isdigit() or len(digits) > 20:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text[:40]!r}")
    value = int(digits)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    if value > MAX_INT_OPTION:
        raise argparse.ArgumentTypeError(f"{value:,} is too large (at most {MAX_INT_OPTION:,})")
    return value


def seed(text: str) -> int:
    digits = text.strip().replace("_", "")
    if not digits.lstrip("+").isdigit() or len(digits) > 20 or int(digits) > MAX_SEED:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to 2**63-1 ({MAX_SEED:,}), got {text[:40]!r}")
    return int(digits)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text[:40]!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text[:40]!r}")
    return value


def device_target(text: str) -> Target:
    try:
        return get_target(text)
    except UsageError as e:
        raise value_error(e) from None


def device_targets(text: str) -> list[Target]:
    """`n150` or a comma list `n150,n300,t3k` (report compares them), each a device target once."""
    chosen = [device_target(t.strip()) for t in text.split(",") if t.strip()]
    if not chosen:
        raise argparse.ArgumentTypeError("give a target, or several separated by commas, e.g. "
                                         + ",".join(DEVICE_TARGETS[:1] + MESHES[:2]))
    if len({t.name for t in chosen}) != len(chosen):
        raise argparse.ArgumentTypeError(f"a target is given twice in {text!r}")
    return chosen


def weights_formats(text: str) -> WeightFormats:
    """`bfloat8_b` or per kind `attention=bfloat8_b,mlp=bfloat4_b` (kinds are checked against the model later)."""
    from ..weight_formats import parse

    try:
        return parse(text)
    except UsageError as e:
        raise value_error(e, "--weights-dtype") from None


def kv_dtype(text: str) -> str:
    """`--kv-dtype`: bf16 or bfloat8_b."""
    from ..weight_formats import parse_kv

    try:
        return parse_kv(text)
    except UsageError as e:
        raise value_error(e, "--kv-dtype") from None


def ccl_dtype(text: str) -> str:
    """`--ccl-dtype`: bf16 or bfloat8_b."""
    from ..weight_formats import parse_ccl

    try:
        return parse_ccl(text)
    except UsageError as e:
        d = e.diagnostic
        raise argparse.ArgumentTypeError(d.message.removeprefix("--ccl-dtype: ") + (f"; {d.hint}" if d.hint else "")) \
            from None


def typed_formats(args: argparse.Namespace) -> None:
    """`--kv-dtype` and `--ccl-dtype` join the formats `--weights-dtype` gave (weight_formats.WeightFormats.kv_cache,
    .ccl); a command whose --weights-dtype has no default (compile, plan: the plan search chooses) reads them with
    formats_given."""
    kv, ccl = getattr(args, "kv_dtype", None), getattr(args, "ccl_dtype", None)
    if kv and getattr(args, "weights_dtype", None) is not None:
        args.weights_dtype = args.weights_dtype.with_kv_cache(kv)
    if ccl and getattr(args, "weights_dtype", None) is not None:
        args.weights_dtype = args.weights_dtype.with_ccl(ccl)


def formats_given(args: argparse.Namespace) -> WeightFormats:
    """The formats of a command whose --weights-dtype may be left out: bf16 weights, the KV cache --kv-dtype's, the
    collective payloads --ccl-dtype's."""
    from ..weight_formats import BF16

    return args.weights_dtype or BF16.with_kv_cache(getattr(args, "kv_dtype", None) or "bf16").with_ccl(
        getattr(args, "ccl_dtype", None) or "bf16")


def mesh(text: str) -> tuple[int, int]:
    try:
        return parse_mesh(text)
    except UsageError as e:
        raise value_error(e) from None


def typed_targets(args: argparse.Namespace) -> None:
    """`--target` names given as `choices` (compile, run, generate, plan) become targets.Target (targets.TORCH
    for the PyTorch reference): argparse checks the names against the target table, this gives their values."""
    if isinstance(getattr(args, "target", None), str):
        args.target = compile_target(args.target)


# ---------------------------------------------------------------- help words shared by several commands
STRATEGY_HELP = ("tensor parallelism on a mesh: 1d splits the weights over one mesh axis (the longer), the other "
                 "axis holding replicas of the model (or, with --dp, a share of the batch); 2d splits every weight "
                 "matrix over both axes, one dimension per axis, as tt-metal's Galaxy models do "
                 f"({TWO_AXES[0]}'s {mesh_text(TARGETS[TWO_AXES[0]].mesh)}, or a --mesh RxC with both sides 2 or "
                 "more; docs/design-2d-tp.md). Default: the planner chooses, memory first, then the modelled decode "
                 "step (`ttspec plan` compares both)")
WEIGHTS_FORMATS_HELP = ("device dtype of weight matrices: one of bf16, bfloat8_b, bfloat4_b; `performance`, "
                        "tt_transformers' performance preset (MLP w1/w3 bfloat4_b, every other matrix bfloat8_b); or "
                        "entries KEY=DTYPE overriding it, where KEY is a parameter kind (the kinds of `ttspec params` "
                        "with weight matrices: attention, mlp, head ...) or a matrix role (wqkv: attention's q/k/v "
                        "projections, wo: its output, ff1_ff3: the MLP's w1 and w3 (or up), ff2: its w2 (down)), "
                        "e.g. attention=bfloat8_b,mlp=bfloat4_b or performance,ff2=bfloat4_b; a role wins over its "
                        "kind, a kind over the plain dtype or preset; what is not named keeps bf16 or the plain "
                        "value given (default bf16)")
KV_DTYPE_HELP = ("the KV cache's device dtype: bf16 (default) or bfloat8_b (1,088 bytes per 32x32 tile: about half "
                 "the DRAM, so a longer context or more users fit; tt_transformers' performance and accuracy presets "
                 "store it so)")
CCL_DTYPE_HELP = ("the format of the decode partial sums a mesh program's reduce-scatters and all-reduces carry into "
                  "the residual stream: bf16 (default) or bfloat8_b (1,088 bytes per 32x32 tile: about half the "
                  "ethernet bytes; each device re-packs the running sum, so decode loses some accuracy; "
                  "tt_transformers does so on Galaxy only)")
KEEP_TEMP_HELP = ("keep the temporary directories (the generated program; a mock or device run's worker folder with "
                  "its copy of the weights) and print where they are; by default they are removed when the command "
                  "ends")
COMPILE_TARGET_HELP = (f"torch: a PyTorch reference nn.Module; {', '.join(SINGLE_CHIP)}: a single-chip TT-NN program; "
                       f"{', '.join(MESHES)}: a tensor-parallel mesh program "
                       f"(default: the spec's `target`, else {DEFAULT_TARGET})")
REPORT_TARGET_HELP = (f"a device target ({', '.join(DEVICE_TARGETS)}), or several separated by commas to compare "
                      "them")
MODES_HELP = {"run": "torch: the PyTorch reference; golden: the TT-NN program on ttnn's golden functions; "
                     "mock: on ttnn's mock device (validates ops and memory; outputs are not meaningful); "
                     "device: real hardware (untested here)",
              "generate": "torch (default): the PyTorch reference; golden: the TT-NN program on ttnn's golden "
                          "functions; mock: ttnn's mock device (values not meaningful); device: real hardware"}


# ---------------------------------------------------------------- each option, once
class Option(FrozenRecord):
    """One option: its flags and how it parses. `add` puts it on a command's parser with that
    command's help (and default, where the command has one)."""

    flags: tuple[str, ...]
    settings: dict = fresh(dict)

    def add(self, parser: argparse.ArgumentParser, help: str | None = None, **overrides) -> None:
        settings = dict(self.settings, **overrides)
        if help is not None:
            settings["help"] = help
        parser.add_argument(*self.flags, **settings)


def option(*flags: str, **settings) -> Option:
    return Option(flags, settings)


SPEC = option("spec", metavar="SPEC")
TARGET = option("--target", choices=COMPILE_TARGETS)  # compile, run, generate; plan takes DEVICE_TARGETS
DEVICE_TARGET = option("--target", type=device_target)  # check: a device to check the fit against
DEVICE_TARGET_LIST = option("--target", required=True, type=device_targets, metavar="T[,T...]")  # report
MESH = option("--mesh", metavar="RxC", type=mesh)
DP = option("--dp", action="store_true")
STRATEGY = option("--strategy", choices=STRATEGIES, help=STRATEGY_HELP)
WEIGHTS_DTYPE = option("--weights-dtype", type=weights_formats, metavar="DTYPE|performance|KEY=DTYPE,...",
                       help=WEIGHTS_FORMATS_HELP)
KV_DTYPE = option("--kv-dtype", type=kv_dtype, metavar="DTYPE", help=KV_DTYPE_HELP)
CCL_DTYPE = option("--ccl-dtype", type=ccl_dtype, metavar="DTYPE", help=CCL_DTYPE_HELP)
BATCH = option("--batch", type=positive_int)
SEQ = option("--seq", type=positive_int)
JSON = option("--json", action="store_true")
OUTPUT = option("-o", "--output", help="write to this file instead of stdout")
OUTPUT_PATH = option("-o", "--output", metavar="FILE|DIR")  # a file, or a directory to write into
OUT = option("--out")  # what a run saves (.npy)
MODE = option("--mode", choices=("torch", "golden", "mock", "device"))
WEIGHTS = option("--weights", metavar="PATH")
TOKENS = option("--tokens", metavar="F.npy")
SEED = option("--seed", type=seed, default=0)
KEEP_TEMP = option("--keep-temp", action="store_true", help=KEEP_TEMP_HELP)
OBJECTIVE = option("--objective", choices=("latency", "throughput"), default="latency")
MIN_TOKENS_PER_S_PER_USER = option("--min-tokens-per-s-per-user", type=positive_float, metavar="X")
MAX_TTFT_MS = option("--max-ttft-ms", type=positive_float, metavar="Y")


def search_options(parser: argparse.ArgumentParser, what: str) -> None:
    """The plan search's objective and floors (`plan --search`, `compile --plan best`)."""
    OBJECTIVE.add(parser, f"{what}: latency ranks by decode tokens/s per user, throughput by tokens/s at the batch "
                          "(default latency)")
    MIN_TOKENS_PER_S_PER_USER.add(parser, f"{what}: keep only plans whose modelled decode reaches X tokens/s per user")
    MAX_TTFT_MS.add(parser, f"{what}: keep only plans whose modelled time to first token is at most Y ms")


def parent(*options: tuple[Option, str | None]) -> argparse.ArgumentParser:
    """A parent parser (argparse `parents=`) holding a group of options several commands take alike."""
    group = argparse.ArgumentParser(add_help=False)
    for each, help in options:
        each.add(group, help)
    return group


def spec_parent() -> argparse.ArgumentParser:
    return parent((SPEC, None))


def device_run_parent() -> argparse.ArgumentParser:
    """What `run` and `generate` share: the mesh a TT-NN mode places its program on, and --keep-temp."""
    return parent((MESH, "mesh shape for a mesh target, e.g. 1x4"),
                  (DP, "2-D meshes: data parallelism on the other axis"), (KEEP_TEMP, None))
