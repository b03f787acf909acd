"""The `ttspec` command: its parser (each command's module adds its own) and the one place that
turns errors into exit codes. Imports stay light: the core never touches torch or ttnn."""

from __future__ import annotations

import argparse
import gc
import os
import sys

from .. import __version__
from ..errors import ArchError, UsageError
from .commands import check, compile, completion, generate, graph, import_hf, lsp, params, plan, report, run, train
from .options import EXIT_INTERNAL, EXIT_SPEC_ERROR, EXIT_USAGE, Parser, typed_formats, typed_targets
from .shared import print_diagnostic

# in the order `ttspec --help` lists them
COMMANDS = {"check": check, "params": params, "compile": compile, "run": run, "generate": generate, "plan": plan,
            "report": report, "import-hf": import_hf, "graph": graph, "train": train, "lsp": lsp,
            "completion": completion}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or with only the command `only` (what parse_args needs once the command is
    known: building every command's options costs a core command's start-up a few ms)."""
    p = Parser(prog="ttspec", description="Declarative transformer specs -> shapes, counts, TT-NN programs.")
    p.add_argument("--version", action="version", version=f"ttspec {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    p.set_defaults(build_parser=build_parser)  # `completion` writes its script from the whole parser
    for name, command in COMMANDS.items():
        if only in (None, name):
            command.add_parser(sub)
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line as typed values (targets.Target, meshes, WeightFormats ...); exits 2 on misuse."""
    words = sys.argv[1:] if argv is None else argv
    # a command's own parser prints the same usage, help and errors with or without the others
    args = build_parser(words[0] if words and words[0] in COMMANDS else None).parse_args(words)
    typed_targets(args)
    typed_formats(args)
    return args


# Commands that read a spec and write text: one short process that builds many objects (parse
# trees, ASTs, graphs, code trees) and frees few. The cyclic collector's passes over them cost
# their start-up about a tenth and reclaim next to nothing, so it pauses while one runs (and
# resumes after: tests call main() in-process). `run` and `generate` hold weights and keep it.
SHORT_LIVED = frozenset({"check", "params", "compile", "plan", "report", "graph", "import-hf"})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    collecting = gc.isenabled()
    if args.command in SHORT_LIVED:
        gc.disable()
    try:
        return _run(args)
    finally:
        if collecting:
            gc.enable()


def _run(args: argparse.Namespace) -> int:
    """The command, its errors as exit codes."""
    try:
        return COMMANDS[args.command].run(args)
    except UsageError as e:
        print_diagnostic(e.diagnostic)
        return EXIT_USAGE
    except ArchError as e:
        for d in e.diagnostics:
            print_diagnostic(d)
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
