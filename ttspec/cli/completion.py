"""Shell completion scripts written from the command line's own argparse parser (so a new command or option is
completed without editing a script): commands, their options, option values (choices, the targets, dtypes,
strategies; a comma list such as report's --target completes its last item), .arch files for a spec, files for
a path. bash is written directly; zsh runs the same script through its bashcompinit; fish gets `complete` lines."""

from __future__ import annotations

import argparse
import re
import shlex

from ..targets import DEVICE_TARGETS
from ..weight_formats import CCL_DTYPES, DTYPES, KV_DTYPES, PRESETS
from . import options

SHELLS = ("bash", "zsh", "fish")
# values of options whose type function checks them (argparse's `choices` covers the others); True: a comma list
TYPED_VALUES = {options.device_target: (DEVICE_TARGETS, False), options.device_targets: (DEVICE_TARGETS, True),
                options.weights_formats: (DTYPES + tuple(PRESETS), True), options.kv_dtype: (KV_DTYPES, False),
                options.ccl_dtype: (CCL_DTYPES, False)}
# a value that names a file: an option whose destination or metavar says so (others: numbers, meshes, text)
FILE_DESTS = ("output", "out", "html", "weights", "save_weights", "tokens", "path", "data", "checkpoint", "resume")
FILE_METAVAR = re.compile(r"FILE|PATH|DIR|\.[a-z]+$")
SPEC_NAMES = ("spec", "specs")


class Opt:
    """One option of a command: its flags, whether it takes a value, and what completes the value: words
    (`values`, a comma list when `listed`), files, or nothing."""

    def __init__(self, action: argparse.Action) -> None:
        self.flags = list(action.option_strings)
        self.takes_value = action.nargs != 0
        self.help = (action.help or "").split("; ")[0][:80]
        self.values, self.listed = _values(action)
        self.files = self.takes_value and not self.values and (action.dest in FILE_DESTS
                                                               or bool(FILE_METAVAR.search(action.metavar or "")))


def _values(action: argparse.Action) -> tuple[list[str], bool]:
    if action.choices:
        return [str(c) for c in action.choices], False
    values, listed = TYPED_VALUES.get(action.type, ((), False))
    return list(values), listed


class Command:
    """A command's name, help, options and what completes its positional arguments ("spec", "files" or
    words)."""

    def __init__(self, name: str, parser: argparse.ArgumentParser, help: str) -> None:
        self.name, self.help = name, help
        self.options = [Opt(a) for a in parser._actions if a.option_strings]
        positionals = [a for a in parser._actions if not a.option_strings]
        chosen = next((a for a in positionals if a.choices), None)
        self.words = [str(c) for c in chosen.choices] if chosen else []
        self.spec = not chosen and any(a.dest in SPEC_NAMES for a in positionals)


def commands(parser: argparse.ArgumentParser) -> list[Command]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help or "" for a in sub._choices_actions}
    return [Command(name, p, helps.get(name, "")) for name, p in sub.choices.items()]


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    cmds = commands(parser)
    top = [f for a in parser._actions if a.option_strings for f in a.option_strings]
    if shell == "fish":
        return fish(cmds, top)
    text = bash(cmds, top)
    if shell == "zsh":
        return ("# zsh completion for ttspec: `source <(ttspec completion zsh)` in ~/.zshrc, after compinit\n"
                "autoload -U +X bashcompinit && bashcompinit\n" + text.split("\n", 1)[1])
    return text


def _words(words) -> str:
    return shlex.quote(" ".join(words))


BASH_HELPERS = r"""
_ttspec_words() {  # $1: the words; $2: 1 for a comma list (its last item completes)
    local head=""
    if [[ "$2" == 1 && "$cur" == *,* ]]; then head="${cur%,*},"; fi
    COMPREPLY=($(compgen -P "$head" -W "$1" -- "${cur##*,}"))
}
_ttspec_files() {
    compopt -o filenames 2>/dev/null
    COMPREPLY=($(compgen -f -- "$cur"))
}
_ttspec_specs() {  # .arch files, and directories to find them in
    compopt -o filenames 2>/dev/null
    COMPREPLY=($(compgen -d -- "$cur") $(compgen -f -X '!*.arch' -- "$cur"))
}
complete -F _ttspec ttspec
"""


def bash(cmds: list[Command], top: list[str]) -> str:
    lines = ["# bash completion for ttspec: `source <(ttspec completion bash)` in ~/.bashrc",
             "_ttspec() {",
             '    local cur="${COMP_WORDS[COMP_CWORD]}" prev="" command="" i',
             '    (( COMP_CWORD > 0 )) && prev="${COMP_WORDS[COMP_CWORD-1]}"',
             "    for ((i = 1; i < COMP_CWORD; i++)); do",
             '        case "${COMP_WORDS[i]}" in -*) ;; *) command="${COMP_WORDS[i]}"; break ;; esac',
             "    done",
             "    COMPREPLY=()",
             '    case "$command" in',
             f'        "") _ttspec_words {_words([c.name for c in cmds] + top)} ;;']
    for c in cmds:
        lines += [f"        {shlex.quote(c.name)})", '            case "$prev" in']
        for o in c.options:
            if not o.takes_value:
                continue
            action = ("_ttspec_files" if o.files else
                      f"_ttspec_words {_words(o.values)} {int(o.listed)}" if o.values else "true")
            lines.append(f"                {'|'.join(o.flags)}) {action}; return ;;")
        rest = "_ttspec_specs" if c.spec else f"_ttspec_words {_words(c.words)}" if c.words else "_ttspec_files"
        flags = _words(f for o in c.options for f in o.flags)
        lines += ["            esac",
                  f'            if [[ "$cur" == -* ]]; then _ttspec_words {flags}',
                  f"            else {rest}; fi ;;"]
    lines += ["    esac", "}"]
    return "\n".join(lines) + BASH_HELPERS


def fish(cmds: list[Command], top: list[str]) -> str:
    def q(text: str) -> str:
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"

    lines = ["# fish completion for ttspec: `ttspec completion fish > ~/.config/fish/completions/ttspec.fish`",
             "complete -c ttspec -f"]
    lines += [f"complete -c ttspec -n '__fish_use_subcommand' -a {q(c.name)} -d {q(c.help)}" for c in cmds]
    lines += [f"complete -c ttspec -n '__fish_use_subcommand' -l {f.lstrip('-')}" for f in top if f.startswith("--")]
    for c in cmds:
        when = f"-n '__fish_seen_subcommand_from {c.name}'"
        for o in c.options:
            flags = " ".join(f"-l {f[2:]}" if f.startswith("--") else f"-s {f[1:]}" for f in o.flags)
            value = (" -rF" if o.files else f" -xa {q(' '.join(o.values))}" if o.values else
                     " -x" if o.takes_value else "")
            lines.append(f"complete -c ttspec {when} {flags}{value} -d {q(o.help)}")
        if c.spec:
            lines.append(f"complete -c ttspec {when} -ka '(__fish_complete_suffix .arch)'")
        elif c.words:
            lines.append(f"complete -c ttspec {when} -xa {q(' '.join(c.words))}")
        else:
            lines.append(f"complete -c ttspec {when} -F")
    return "\n".join(lines) + "\n"
