"""`ttspec completion bash|zsh|fish`: a shell completion script, written from this parser (cli/completion.py)."""

from __future__ import annotations

from ..completion import SHELLS


def add_parser(sub) -> None:
    c = sub.add_parser("completion", help="print a shell completion script (bash, zsh or fish)",
                       description="Print a completion script for the shell: commands, options, targets and other "
                                   "option values, .arch files for a spec. bash: `source <(ttspec completion bash)` in "
                                   "~/.bashrc; zsh: `source <(ttspec completion zsh)` in ~/.zshrc after compinit; "
                                   "fish: `ttspec completion fish > ~/.config/fish/completions/ttspec.fish`.")
    c.add_argument("shell", choices=SHELLS)


def run(args) -> int:
    from ...output import write_output
    from ..completion import script

    write_output(script(args.build_parser(), args.shell), None)
    return 0
