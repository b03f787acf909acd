"""The `ttspec` command. Imports stay light: the core never touches torch or ttnn."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

from . import __version__
from .errors import ArchError, Diagnostic, SourceCache, UsageError
from .output import write_output

EXIT_SPEC_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70
COMPILE_TARGETS = ("torch", "n150", "p100", "p150", "n300", "t3k", "galaxy", "p150x4", "p150x8")
DEFAULT_TARGET = "n150"  # when neither --target nor the spec's `target` statement names one
STRATEGY_HELP = ("tensor parallelism on a mesh: 1d splits the weights over one mesh axis (the longer), the other "
                 "axis holding replicas of the model (or, with --dp, a share of the batch); 2d splits every weight "
                 "matrix over both axes, one dimension per axis, as tt-metal's Galaxy models do (galaxy's 8x4, or a "
                 "--mesh RxC with both sides 2 or more; docs/design-2d-tp.md). Default: the planner chooses, memory "
                 "first, then the modelled decode step (`ttspec plan` compares both)")
WEIGHTS_FORMATS_HELP = ("device dtype of weight matrices: one of bf16, bfloat8_b, bfloat4_b, or per parameter kind "
                        "(the kinds of `ttspec params` with weight matrices), e.g. attention=bfloat8_b,mlp=bfloat4_b; "
                        "kinds not named keep bf16 or the one plain dtype given (default bf16)")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line and a hint, not a wall of usage text
        self.print_usage(sys.stderr)
        help_cmd = "ttspec --help" if self.prog == "ttspec" else f"ttspec {self.prog.split()[-1]} --help"
        sys.stderr.write(f"ttspec: error: {message}\n  hint: `{help_cmd}` lists the options\n")
        sys.exit(EXIT_USAGE)


MAX_INT_OPTION = 1 << 40  # --batch, --seq: far beyond any context or batch, and exact as a float


def _positive_int(text: str) -> int:
    digits = text.strip().replace("_", "")
    if not digits.lstrip("+-").isdigit() or len(digits) > 20:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text[:40]!r}")
    value = int(digits)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    if value > MAX_INT_OPTION:
        raise argparse.ArgumentTypeError(f"{value:,} is too large (at most {MAX_INT_OPTION:,})")
    return value


MAX_SEED = (1 << 63) - 1  # every generator a run seeds (torch's) takes a signed 64-bit seed


def _seed(text: str) -> int:
    digits = text.strip().replace("_", "")
    if not digits.lstrip("+").isdigit() or len(digits) > 20 or int(digits) > MAX_SEED:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to 2**63-1 ({MAX_SEED:,}), got {text[:40]!r}")
    return int(digits)


KEEP_TEMP_HELP = ("keep the temporary directories (the generated program; a mock or device run's worker folder with "
                  "its copy of the weights) and print where they are; by default they are removed when the command "
                  "ends")


def _device_target(text: str) -> str:
    from .targets import get_target

    try:
        return get_target(text).name
    except UsageError as e:
        d = e.diagnostic
        raise argparse.ArgumentTypeError(f"{d.message}; {d.hint.strip()}") from None


def _device_targets(text: str) -> list[str]:
    """`n150` or a comma list `n150,n300,t3k` (report compares them), each a device target once."""
    names = [_device_target(t.strip()) for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give a target, or several separated by commas, e.g. n150,n300,t3k")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"a target is given twice in {text!r}")
    return names


def _weights_formats(text: str) -> str:
    """`bfloat8_b` or per kind `attention=bfloat8_b,mlp=bfloat4_b` (kinds are checked against the model later)."""
    from .weight_formats import parse

    try:
        return str(parse(text))
    except UsageError as e:
        d = e.diagnostic
        message = d.message.removeprefix("--weights-dtype: ")
        raise argparse.ArgumentTypeError(message + (f"; {d.hint.strip()}" if d.hint else "")) from None


def _mesh(text: str) -> str:
    from .targets import parse_mesh

    try:
        parse_mesh(text)
    except UsageError as e:
        raise argparse.ArgumentTypeError(e.diagnostic.message) from None
    return text


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text[:40]!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text[:40]!r}")
    return value


def _search_options(parser, what: str) -> None:
    """The plan search's objective and floors (`plan --search`, `compile --plan best`)."""
    parser.add_argument("--objective", choices=("latency", "throughput"), default="latency",
                        help=f"{what}: latency ranks by decode tokens/s per user, throughput by tokens/s at the "
                             "batch (default latency)")
    parser.add_argument("--min-tokens-per-s-per-user", type=_positive_float, metavar="X",
                        help=f"{what}: keep only plans whose modelled decode reaches X tokens/s per user")
    parser.add_argument("--max-ttft-ms", type=_positive_float, metavar="Y",
                        help=f"{what}: keep only plans whose modelled time to first token is at most Y ms")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ttspec", description="Declarative transformer specs -> shapes, counts, TT-NN programs.")
    p.add_argument("--version", action="version", version=f"ttspec {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    c = sub.add_parser("check", help="parse, elaborate and shape-check specs")
    c.add_argument("specs", nargs="+", metavar="SPEC")
    c.add_argument("--target", type=_device_target,
                   help="warn when the model will not fit this device (default: the spec's `target`); "
                                    "the same memory model as compile and plan")
    c.add_argument("--weights-dtype", default="bf16", type=_weights_formats, metavar="DTYPE|KIND=DTYPE,...",
                   help="for the fit check: " + WEIGHTS_FORMATS_HELP)
    c.add_argument("--training", action="store_true",
                   help="also warn when training (AdamW, mixed precision) would not fit the target")
    c.add_argument("--strict", action="store_true", help="treat warnings as errors")

    pa = sub.add_parser("params", help="exact parameter counts by component, bytes and FLOPs")
    pa.add_argument("spec", metavar="SPEC")
    pa.add_argument("--json", action="store_true", help="machine-readable output (docs/params-json.md)")
    pa.add_argument("--seq", type=_positive_int, help="sequence length for FLOPs (default: the spec's bound)")
    pa.add_argument("-o", "--output", help="write to this file instead of stdout")

    co = sub.add_parser("compile", help="generate a program for a target (generated/<model>_<target>.py)")
    co.add_argument("spec", metavar="SPEC")
    co.add_argument("--target", choices=COMPILE_TARGETS,
                    help="torch: a PyTorch reference nn.Module; n150, p100, p150: a single-chip TT-NN program; "
                         "n300, t3k, galaxy, p150x4, p150x8: a tensor-parallel mesh program "
                         f"(default: the spec's `target`, else {DEFAULT_TARGET})")
    co.add_argument("--mesh", metavar="RxC", type=_mesh, help="mesh shape for a mesh target, e.g. 1x4 (a sub-mesh)")
    co.add_argument("--dp", action="store_true",
                    help="2-D meshes: split the batch over the axis not used for tensor parallelism")
    co.add_argument("--strategy", choices=("1d", "2d"), help=STRATEGY_HELP)
    co.add_argument("--weights-dtype", type=_weights_formats, metavar="DTYPE|KIND=DTYPE,...",
                    help="TT-NN targets: " + WEIGHTS_FORMATS_HELP)
    co.add_argument("-o", "--output", metavar="FILE|DIR",
                    help="output file, or a directory (an existing one, or a path ending in `/`) to write "
                         "<model>_<target>.py into (default: ./generated/)")
    co.add_argument("--plan", choices=("best",),
                    help="compile the top plan of `ttspec plan --search` (its mesh, --dp and weight formats; "
                         "--mesh, --dp and --weights-dtype given fix those choices)")
    co.add_argument("--seq", type=_positive_int, help="--plan: the context the search plans for (as plan --search)")
    co.add_argument("--batch", type=_positive_int,
                    help="TT-NN targets: users the KV cache is sized for (up to 32 per program, default 1, or the "
                         "plan's with --plan best, where it fixes the batch the search plans for): the context baked "
                         "into the program is the longest that fits with their cache")
    _search_options(co, "--plan")

    r = sub.add_parser("run", help="compile and run one prefill; print and save logits")
    r.add_argument("spec", metavar="SPEC")
    r.add_argument("--target", choices=COMPILE_TARGETS,
                   help=f"default: the spec's `target` statement, else {DEFAULT_TARGET}")
    r.add_argument("--mode", required=True, choices=("torch", "golden", "mock", "device"),
                   help="torch: the PyTorch reference; golden: the TT-NN program on ttnn's golden functions; "
                        "mock: on ttnn's mock device (validates ops and memory; outputs are not meaningful); "
                        "device: real hardware (untested here)")
    r.add_argument("--weights", metavar="PATH",
                   help="a model directory (config.json with model.safetensors or a sharded "
                        "model.safetensors.index.json), one .safetensors file, or an index file; tensors under "
                        "ttspec's names (`ttspec params --json`) or, for a spec with a `family`, HF transformers "
                        "names; checked against the spec before any data is read, then streamed one tensor at a "
                        "time (default: seeded random)")
    r.add_argument("--save-weights", metavar="F.safetensors",
                   help="write the weights this run used (e.g. the seeded random ones) under ttspec's names")
    r.add_argument("--weights-dtype", default="bf16", type=_weights_formats, metavar="DTYPE|KIND=DTYPE,...",
                   help=WEIGHTS_FORMATS_HELP)
    r.add_argument("--mesh", metavar="RxC", type=_mesh, help="mesh shape for a mesh target, e.g. 1x4")
    r.add_argument("--dp", action="store_true", help="2-D meshes: data parallelism on the other axis")
    r.add_argument("--strategy", choices=("1d", "2d"), help=STRATEGY_HELP)
    r.add_argument("--allocate-only", action="store_true",
                   help="mock/device: allocate the weights on the device without host data (fit checks for "
                        "models too big for host memory), then run one forward pass")
    tokens = r.add_mutually_exclusive_group()
    tokens.add_argument("--tokens", metavar="F.npy", help="int token ids [batch, seq]")
    tokens.add_argument("--random-tokens", metavar="B,S", help="random token ids of this shape (default 1,32)")
    r.add_argument("--out", metavar="logits.npy", help="save the logits")
    r.add_argument("--seed", type=_seed, default=0, help="seed for random weights and tokens (0 to 2**63-1)")
    r.add_argument("--keep-temp", action="store_true", help=KEEP_TEMP_HELP)

    ge = sub.add_parser("generate", help="generate text (or --score token ids) through the program's KV cache",
                        description="Prefill each prompt into a KV cache, then decode one token per step for every "
                                    "user, greedy or sampled; tokens stream as they come, then time to first token "
                                    "and decode speed. --score instead feeds given tokens through prefill and "
                                    "decode and saves the logits of every position.")
    ge.add_argument("spec", metavar="SPEC")
    ge.add_argument("--mode", default="torch", choices=("torch", "golden", "mock", "device"),
                    help="torch (default): the PyTorch reference; golden: the TT-NN program on ttnn's golden "
                         "functions; mock: ttnn's mock device (values not meaningful); device: real hardware")
    ge.add_argument("--target", choices=COMPILE_TARGETS,
                    help=f"TT-NN modes: default the spec's `target` statement, else {DEFAULT_TARGET}")
    ge.add_argument("--mesh", metavar="RxC", type=_mesh, help="mesh shape for a mesh target, e.g. 1x4")
    ge.add_argument("--dp", action="store_true", help="2-D meshes: data parallelism on the other axis")
    ge.add_argument("--strategy", choices=("1d", "2d"), help="TT-NN modes: " + STRATEGY_HELP)
    ge.add_argument("--weights", metavar="PATH",
                    help="a model directory (its tokenizer.json tokenises --prompt), a .safetensors file or an "
                         "index, as for `ttspec run` (default: seeded random weights)")
    ge.add_argument("--weights-dtype", default="bf16", type=_weights_formats, metavar="DTYPE|KIND=DTYPE,...",
                    help="TT-NN modes: one format, or per parameter kind (default bf16)")
    ge.add_argument("--prompt", metavar="TEXT",
                    help="tokenised by the weights directory's tokenizer.json, else as UTF-8 bytes (a vocabulary "
                         "of at least 256)")
    ge.add_argument("--prompts", metavar="FILE", help="one prompt per line, one user each")
    ge.add_argument("--tokens", metavar="F.npy", help="int token ids [batch, T]: prompts, or what --score feeds")
    ge.add_argument("--batch", type=_positive_int,
                    help="users: the --prompt repeated (default 1); at most 32 in the TT-NN modes (one tile row), "
                         "256 with --mode torch")
    ge.add_argument("--max-new-tokens", type=_positive_int, default=32, help="default 32")
    ge.add_argument("--temperature", type=float, default=0.0, help="0 (default): greedy")
    ge.add_argument("--top-k", type=_positive_int, help="sample from the k most likely tokens")
    ge.add_argument("--top-p", type=float, help="sample from the smallest set of tokens whose probability reaches p")
    ge.add_argument("--seed", type=_seed, default=0, help="seed for sampling and random weights (0 to 2**63-1)")
    ge.add_argument("--keep-temp", action="store_true", help=KEEP_TEMP_HELP)
    ge.add_argument("--stop", type=int, nargs="+", metavar="ID", help="token ids that end a user's generation")
    ge.add_argument("--no-trace", dest="trace", action="store_false",
                    help="--mode device: run every decode step op by op instead of capturing it once as a trace and "
                         "replaying it (the default; golden and mock runs never trace)")
    ge.add_argument("--score", action="store_true",
                    help="feed --tokens through prefill (the first --prefill of each row) and decode (the rest, one "
                         "step each) and save the logits [batch, T, vocab] with --out")
    ge.add_argument("--prefill", type=_positive_int, help="--score: tokens of each row to prefill (default 1)")
    ge.add_argument("--out", metavar="F.npy",
                    help="save the new ids [batch, n] (-1 after a user stopped), or --score's logits")

    pl = sub.add_parser("plan", help="memory per chip, what fits, and on a mesh the tensor-parallel sharding plan")
    pl.add_argument("spec", metavar="SPEC")
    pl.add_argument("--target", required=True, choices=COMPILE_TARGETS[1:])
    pl.add_argument("--mesh", metavar="RxC", type=_mesh, help="a sub-mesh, e.g. 1x4")
    pl.add_argument("--dp", action="store_true", help="data parallelism on the other mesh axis")
    pl.add_argument("--strategy", choices=("1d", "2d"),
                    help=STRATEGY_HELP + "; with --search: fixes the strategy instead of searching both")
    pl.add_argument("--weights-dtype", type=_weights_formats, metavar="DTYPE|KIND=DTYPE,...",
                    help=WEIGHTS_FORMATS_HELP)
    pl.add_argument("--batch", type=_positive_int,
                    help="batch for the memory breakdown and the largest context that fits (default 1); with "
                         "--search: fixes the batch")
    pl.add_argument("--seq", type=_positive_int,
                    help="context for the memory breakdown and the largest batch that fits (default: the spec's bound)")
    pl.add_argument("--json", action="store_true")
    pl.add_argument("--search", action="store_true",
                    help="search the plans the target allows (sub-mesh and tensor-parallel degree, data "
                         "parallelism, weight format per kind, batch), keep those that fit and meet the floors, "
                         "and rank them; --mesh, --dp and --weights-dtype given fix those choices")
    _search_options(pl, "--search")
    pl.add_argument("--top", type=_positive_int, help="--search: plans to show (default 5)")

    rp = sub.add_parser("report", help="how fast it will run: modelled prefill and decode times per target",
                        description="Modelled time to first token, decode ms/step and tokens/s on a target, per op "
                                    "class and per layer, with the bottleneck of each (a model from published "
                                    "hardware constants, not a measurement; README: How fast will it run?).")
    rp.add_argument("spec", metavar="SPEC")
    rp.add_argument("--target", required=True, type=_device_targets, metavar="T[,T...]",
                    help="a device target (n150, p100, p150, n300, t3k, galaxy, p150x4, p150x8), or several "
                         "separated by commas to compare them")
    rp.add_argument("--mesh", metavar="RxC", type=_mesh, help="a sub-mesh, e.g. 1x4 (one target only)")
    rp.add_argument("--dp", action="store_true", help="data parallelism on the other mesh axis")
    rp.add_argument("--strategy", choices=("1d", "2d"), help=STRATEGY_HELP)
    rp.add_argument("--weights-dtype", default="bf16", type=_weights_formats, metavar="DTYPE|KIND=DTYPE,...",
                    help=WEIGHTS_FORMATS_HELP)
    rp.add_argument("--batch", type=_positive_int, default=1, help="users decoded together (default 1)")
    rp.add_argument("--seq", type=_positive_int, help="context of the decode step (default 2048, or the spec's bound)")
    rp.add_argument("--prompt", type=_positive_int,
                    help="prompt length for the time to first token (default 128, as tt_transformers measures)")
    rp.add_argument("--json", action="store_true",
                    help="machine-readable output (docs/report-json.md); a list of reports for several targets")
    rp.add_argument("--html", metavar="FILE",
                    help="also write a self-contained HTML page: diagram, parameters, memory per chip, time by op "
                         "class, sharding plan and, for several targets, a comparison chart")

    ih = sub.add_parser("import-hf", help="write a spec from a Hugging Face model directory or config.json",
                        description="Write a .arch spec from a Hugging Face model directory (config.json, "
                                    "*.safetensors, tokenizer.json) or a config.json file. Supported model types: "
                                    "llama, mistral, qwen2, qwen3, gemma, gemma2, phi, phi3, gpt2.")
    ih.add_argument("path", metavar="PATH", help="a model directory or a config.json")
    ih.add_argument("-o", "--output", metavar="FILE|DIR",
                    help="write the spec to this file, or to DIR/<model>.arch for a directory (an existing one, or "
                         "a path ending in `/`); default, or `-`: stdout")
    ih.add_argument("--name", help="the spec's model name (default: made from the directory's name)")
    ih.add_argument("--ignore", metavar="FIELD", action="append", default=[],
                    help="a config field ttspec does not know that you know does not change the computation "
                         "(repeatable)")

    g = sub.add_parser("graph", help="the architecture as a mermaid or dot diagram")
    g.add_argument("spec", metavar="SPEC")
    g.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")
    g.add_argument("-o", "--output", help="write to this file instead of stdout")
    return p


def _print_diagnostic(d: Diagnostic) -> None:
    sys.stderr.write(d.render(SourceCache()) + "\n")


def cmd_check(args) -> int:
    from .driver import load_model
    from .families import check_family_labels
    from .reports.checks import target_warnings
    from .targets import get_target

    override = get_target(args.target).name if args.target else None
    failed = False
    for spec in args.specs:
        try:
            model = load_model(spec)
            check_family_labels(model)
        except ArchError as e:
            _print_diagnostic(e.diagnostic)
            failed = True
            continue
        target = override or (get_target(model.target[0]).name if model.target else None)
        warnings = model.warnings + (target_warnings(model, target, args.weights_dtype, args.training)
                                     if target else [])
        for w in warnings:
            _print_diagnostic(w)
        if any(w.severity == "error" for w in warnings) or (warnings and args.strict):
            failed = True
        else:
            print(f"{spec}: ok ({model.name})" + (f", {len(warnings)} warning(s)" if warnings else ""))
    return EXIT_SPEC_ERROR if failed else 0


def cmd_params(args) -> int:
    from .analysis.params_report import params_report
    from .driver import load_model
    from .reports.params_table import render_table

    model = load_model(args.spec)
    report = params_report(model, seq=args.seq)
    text = json.dumps(report, indent=2) if args.json else render_table(report)
    write_output(text, args.output)
    return 0


def cmd_graph(args) -> int:
    from .driver import load_model
    from .reports.diagram import to_dot, to_mermaid

    model = load_model(args.spec)
    write_output(to_mermaid(model) if args.format == "mermaid" else to_dot(model), args.output)
    return 0


def default_target(model) -> str:
    """The spec's `target` statement, else n150: what compile and run use without --target."""
    return model.target[0] if model.target else DEFAULT_TARGET


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


def run_command(args, target: str, built=None) -> str:
    """The `ttspec run` line that runs what compile just wrote, with every option that was given, and the
    strategy the planner chose where the mesh allows two (`run` would weigh them at its own batch)."""
    words = ["ttspec", "run", shlex.quote(args.spec)]
    if args.target:
        words += ["--target", target]
    if args.weights_dtype:
        words += ["--weights-dtype", shlex.quote(args.weights_dtype)]
    if args.mesh:
        words += ["--mesh", shlex.quote(args.mesh)]
    if args.dp:
        words.append("--dp")
    strategy = getattr(args, "strategy", None)
    if built is not None and built.shard_plan is not None:
        from .driver import strategies_allowed

        if strategy or len(strategies_allowed(built.options.mesh, built.options.dp)) > 1:
            strategy = built.shard_plan.strategy
    if strategy:
        words += ["--strategy", strategy]
    if target == "torch":
        return " ".join(words + ["--mode", "torch"])
    return " ".join(words + ["--mode", "golden"]) + "   (or --mode mock, --mode device)"


def search_kwargs(args) -> dict:
    """What `plan --search` and `compile --plan best` pass to analysis/plan_search.search."""
    return {"objective": args.objective, "seq": args.seq, "min_tokens_per_s_per_user": args.min_tokens_per_s_per_user,
            "max_ttft_ms": args.max_ttft_ms, "mesh": args.mesh, "dp": True if args.dp else None,
            "weights_dtype": args.weights_dtype, "batch": getattr(args, "batch", None),
            "strategy": getattr(args, "strategy", None)}


def plan_best_command(args, target: str) -> str:
    """The `ttspec compile ... --plan best` line with the search flags that were given."""
    words = ["ttspec", "compile", shlex.quote(args.spec), "--target", target, "--plan", "best"]
    for flag, value in (("--objective", None if args.objective == "latency" else args.objective),
                        ("--seq", args.seq), ("--mesh", args.mesh), ("--batch", getattr(args, "batch", None)),
                        ("--weights-dtype", args.weights_dtype), ("--strategy", getattr(args, "strategy", None)),
                        ("--min-tokens-per-s-per-user", args.min_tokens_per_s_per_user),
                        ("--max-ttft-ms", args.max_ttft_ms)):
        if value is not None:
            words += [flag, shlex.quote(f"{value:g}" if isinstance(value, float) else str(value))]
    return " ".join(words + (["--dp"] if args.dp else []))


def _search_only(args, more, what: str, hint: str) -> None:
    """Refuse the search's options without the search (`compile` without --plan, `plan` without --search)."""
    for flag, value in (*more, ("--objective", args.objective != "latency"),
                        ("--min-tokens-per-s-per-user", args.min_tokens_per_s_per_user),
                        ("--max-ttft-ms", args.max_ttft_ms)):
        if value:
            raise UsageError(f"{flag} is an option of {what}", hint=hint.format(flag=flag))


MESH_OPTIONS = ("--mesh", "--dp", "--strategy")
DP_MESHES = "--target galaxy (8x4), --target t3k --mesh 2x4 or --target p150x4 --mesh 2x2"


def refuse_options_that_cannot_apply(args, targets, on_host: bool = False, search: bool = False) -> None:
    """Options that would change nothing where they are given are refused (exit 2), never echoed as if
    applied. `targets`: the device targets the command plans or runs on (resolved from the spec where
    --target is not given); `on_host`: it runs the torch reference, which has no device, mesh or
    strategy; `search`: --dp without --mesh fixes data parallelism for the plan search's sub-meshes."""
    from .targets import get_target, parse_mesh

    mode = getattr(args, "mode", None)
    if mode == "torch" and args.target not in (None, "torch"):
        raise UsageError(f"--mode torch runs the PyTorch reference; --target {args.target} names a device it does "
                         "not use", hint="leave out --target, or run the TT-NN program on it: --mode golden, mock or "
                                         "device")
    if on_host:
        where = "--mode torch" if mode == "torch" else "--target torch"
        for flag in MESH_OPTIONS:
            if getattr(args, flag.removeprefix("--"), None):
                raise UsageError(f"{flag} places a TT-NN program on a device mesh; {where} runs the PyTorch "
                                 "reference on the host, which has none",
                                 hint=f"leave out {flag}, or use a mesh target (n300, t3k, galaxy, p150x4, p150x8)"
                                      + (" with --mode golden" if mode else ""))
    if getattr(args, "html", None) is not None and not args.html.strip():
        raise UsageError("--html needs a file name, got an empty one", hint="e.g. --html report.html")
    if not getattr(args, "dp", False) or on_host:
        return
    for target in (t for t in targets if t != "torch"):  # a TT-NN mode with --target torch is refused where it runs
        if search and not args.mesh:
            from .reports.plan_search import sub_meshes

            if not any(use_dp for _, use_dp in sub_meshes(get_target(target))):
                raise UsageError(f"--dp splits the batch over a second mesh axis; no mesh of {target} has one",
                                 hint=f"leave out --dp, or search a target with a 2-D mesh: {DP_MESHES}")
            continue
        rows, cols = parse_mesh(args.mesh) if args.mesh else get_target(target).mesh
        if min(rows, cols) < 2:
            mesh = f" --mesh {args.mesh}" if args.mesh else ""
            shape = "one chip" if rows * cols == 1 else f"a {rows}x{cols} mesh"
            raise UsageError(f"--dp splits the batch over a second mesh axis; {target}{mesh} is {shape}, which has "
                             "none", hint=f"leave out --dp, or give a mesh with two axes: {DP_MESHES}")


def cmd_compile(args) -> int:
    from .driver import compile_program, load_model

    model = load_model(args.spec)
    target = args.target or default_target(model)
    refuse_options_that_cannot_apply(args, [target], on_host=target == "torch", search=bool(args.plan))
    chosen = None
    if not args.plan:
        _search_only(args, (("--seq", args.seq),), "--plan best",
                     "`ttspec compile SPEC --target T --plan best {flag} ...` compiles the top plan")
    if args.plan:
        if target == "torch":
            raise UsageError("--plan best plans a TT-NN target; torch has nothing to plan",
                             hint="pass --target n150, n300, t3k, galaxy, p100, p150, p150x4 or p150x8")
        from .reports.plan_search import best

        chosen = best(model, target, **search_kwargs(args))
        args.mesh, args.dp, args.weights_dtype = chosen.mesh_text, chosen.dp, chosen.weights_dtype
        args.strategy = chosen.strategy_option
        args.target = target
    weights_dtype = args.weights_dtype or "bf16"
    args.batch = args.batch or (chosen.batch if chosen else 1)
    text, built = compile_program(model, args.spec, target, weights_dtype, args.mesh, args.dp, args.batch,
                                  args.strategy)
    output = output_path(args.output, f"{model.name}_{target}.py")
    write_output(text, output)
    print(f"wrote {output}: {model.name} for {target}" + (f", {weights_dtype} weights" if target != "torch" else ""))
    if chosen:
        print(f"plan ({args.objective}): {chosen.mesh_text} mesh, "
              + ("2-D tensor parallel over both axes" if chosen.strategy == "2d" else
                 f"tensor parallel {chosen.tensor_parallel}")
              + (f", {chosen.replicas} data-parallel replicas" if chosen.replicas > 1 else "")
              + f", batch {chosen.batch} at context {chosen.context:,}: modelled {chosen.ttft_ms:.1f} ms to first "
              f"token, {chosen.tokens_per_s_per_user:.1f} tokens/s/user, {chosen.tokens_per_s:.1f} tokens/s")
    bound = built.memory.seq_bound if built else None
    if built and (bound is None or built.context < bound):
        allows = f" (the spec allows {bound:,})" if bound else ""
        print(f"context: up to {built.context:,} tokens, the most that fits {target}'s DRAM at batch {args.batch} "
              f"with the KV cache and activations{allows}; `ttspec plan` shows the memory per chip")
    if built:
        per = " per chip" if built.shard_plan else ""
        print(f"KV cache: {args.batch} user(s) x {built.context:,} positions, "
              f"{built.memory.kv_cache(args.batch, built.context):,} bytes{per} (--batch sizes it)")
    if built and built.shard_plan is not None:
        from .driver import strategies_allowed
        from .reports.plan_report import strategy_text

        one = len(strategies_allowed(built.options.mesh, built.options.dp)) < 2
        how = ("" if one else " (the plan search's choice)" if chosen
               else " (--strategy)" if args.strategy else " (the planner's choice; --strategy forces one)")
        print(f"strategy: {strategy_text(built.shard_plan)}{how}")
    print(f"run it: {run_command(args, target, built)}")
    return 0


def cmd_run(args) -> int:
    from .driver import load_model
    from .runtime import tempdirs
    from .runtime.runner import run_program

    model = load_model(args.spec)
    refuse_options_that_cannot_apply(args, [args.target or default_target(model)], on_host=args.mode == "torch")
    args.target = args.target or default_target(model)
    with tempdirs.session(keep=args.keep_temp):
        return run_program(model, args)


def cmd_generate(args) -> int:
    from .driver import load_model
    from .runtime import tempdirs
    from .runtime.generation import run_generate

    model = load_model(args.spec)
    refuse_options_that_cannot_apply(args, [args.target or default_target(model)], on_host=args.mode == "torch")
    if args.mode != "torch" and args.target is None:
        args.target = default_target(model)
    with tempdirs.session(keep=args.keep_temp):
        return run_generate(model, args)


def cmd_plan(args) -> int:
    from .driver import load_model
    from .reports.plan_report import plan_report, render_plan

    model = load_model(args.spec)
    refuse_options_that_cannot_apply(args, [args.target], search=args.search)
    if args.search:
        from .reports.plan_search import no_plan, render_search, search

        kwargs = search_kwargs(args)
        result = search(model, args.target, **kwargs)
        if not result.plans:
            raise no_plan(model, result, **kwargs)
        data = result.as_dict(args.top or 5)
        write_output(json.dumps(data, indent=2) if args.json
                     else render_search(data, plan_best_command(args, args.target)), None)
        return 0
    _search_only(args, (("--top", args.top),), "--search",
                 "`ttspec plan SPEC --target T --search {flag} ...` searches and ranks the plans")
    report = plan_report(model, args.target, args.mesh, args.weights_dtype or "bf16", args.batch or 1, args.seq,
                         args.dp, args.strategy)
    write_output(json.dumps(report, indent=2) if args.json else render_plan(report), None)
    return 0


def cmd_report(args) -> int:
    from .driver import load_model
    from .reports.report import cost_report, render_report

    if args.mesh and len(args.target) > 1:
        raise UsageError("--mesh applies to one target; leave it out to compare several targets on their full meshes")
    refuse_options_that_cannot_apply(args, args.target)
    model = load_model(args.spec)
    reports = [cost_report(model, target, args.mesh, args.weights_dtype, args.batch, args.seq, args.prompt, args.dp,
                           args.strategy) for target in args.target]
    if args.html:
        from .analysis.params_report import params_report
        from .reports.diagram import to_svg
        from .reports.html_report import render_html
        from .reports.plan_report import plan_report

        plans = [plan_report(model, target, args.mesh, args.weights_dtype, args.batch, r["context"], args.dp,
                             args.strategy) for target, r in zip(args.target, reports)]
        write_output(render_html(to_svg(model), params_report(model), reports, plans), args.html)
    if args.json:
        text = json.dumps(reports[0] if len(reports) == 1 else reports, indent=2)
    else:
        text = "\n\n".join(render_report(r) for r in reports)
        if args.html:
            text += f"\n\nwrote {args.html}"
    write_output(text, None)
    return 0


def cmd_import_hf(args) -> int:
    from .importers.hf import import_hf
    from .inputs import quote

    imported = import_hf(args.path, name=args.name, ignore=tuple(args.ignore))
    if args.output in (None, "-"):
        write_output(imported.text, None)
        return 0
    output = output_path(args.output, f"{imported.name}.arch")
    write_output(imported.text, output)
    shown = quote(output, limit=4096)  # the path may hold control characters: shown, not sent to the terminal
    print(f"wrote {shown}: {imported.name}, family {imported.family} (HF {imported.hf_class})")
    print(f"next: ttspec check {quote(shlex.quote(output), limit=4096)}; ttspec params "
          f"{quote(shlex.quote(output), limit=4096)}")
    return 0


COMMANDS = {"check": cmd_check, "params": cmd_params, "graph": cmd_graph, "compile": cmd_compile, "run": cmd_run,
            "generate": cmd_generate, "plan": cmd_plan, "report": cmd_report, "import-hf": cmd_import_hf}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UsageError as e:
        _print_diagnostic(e.diagnostic)
        return EXIT_USAGE
    except ArchError as e:
        _print_diagnostic(e.diagnostic)
        return EXIT_SPEC_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # a bug in ttspec, not in the user's input
        if os.environ.get("TTSPEC_DEBUG"):
            raise
        sys.stderr.write(f"ttspec: internal error: {type(e).__name__}: {e}\n"
                         "  this is a bug in ttspec; rerun with TTSPEC_DEBUG=1 for a traceback\n")
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
