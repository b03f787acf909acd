"""`ttspec completion bash|zsh|fish` (issue 22): the bash script, sourced in a real bash, completes what a user
types, driven through its completion function as bash's programmable completion calls it (COMP_WORDS,
COMP_CWORD -> COMPREPLY); the scripts are written from the parser, so every command is in them."""

import subprocess

import pytest

from ttspec.cli.main import COMMANDS

from .conftest import ROOT, SPECS

# the device targets the README's target table lists; plan takes these, compile also `torch`
DEVICES = ["n150", "p100", "p150", "n300", "t3k", "galaxy", "p150x4", "p150x8"]


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory):
    import os
    import sys

    out = subprocess.run([sys.executable, "-m", "ttspec.cli", "completion", "bash"], capture_output=True, text=True,
                         cwd=ROOT, env=dict(os.environ), check=True)
    path = tmp_path_factory.mktemp("completion") / "ttspec.bash"
    path.write_text(out.stdout, encoding="utf-8")
    return path


def complete(script, *words, cwd=SPECS) -> list[str]:
    """What bash offers for `ttspec WORDS<TAB>` (the last word is the one being completed)."""
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in ("ttspec", *words))
    code = (f"source '{script}'\nCOMP_WORDS=({quoted}); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))\n"
            "_ttspec; printf '%s\\n' \"${COMPREPLY[@]}\"")
    out = subprocess.run(["bash", "--norc", "--noprofile", "-c", code], capture_output=True, text=True, cwd=cwd,
                         timeout=30)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    return sorted(line for line in out.stdout.splitlines() if line)


def test_commands_complete(bash_script):
    assert complete(bash_script, "compi") == ["compile"]
    assert complete(bash_script, "com") == ["compile", "completion"]
    assert complete(bash_script, "") == sorted([*COMMANDS, "-h", "--help", "--version"])


def test_target_values_complete(bash_script):
    assert complete(bash_script, "plan", "nano.arch", "--target", "") == sorted(DEVICES)
    assert complete(bash_script, "compile", "--target", "t") == ["t3k", "torch"]
    # report's --target is a comma list: its last item completes, the items before it kept
    assert complete(bash_script, "report", "x.arch", "--target", "n150,p15") == ["n150,p150", "n150,p150x4",
                                                                                 "n150,p150x8"]
    assert complete(bash_script, "check", "--kv-dtype", "") == ["bf16", "bfloat8_b"]
    assert complete(bash_script, "run", "--mode", "g") == ["golden"]


def test_options_complete(bash_script):
    assert complete(bash_script, "plan", "--st") == ["--strategy"]
    assert complete(bash_script, "report", "--ht") == ["--html"]
    assert complete(bash_script, "completion", "") == ["bash", "fish", "zsh"]


def test_spec_arguments_complete_arch_files(bash_script):
    # in specs/: the .arch files and the directories; not README-like files of other suffixes
    assert complete(bash_script, "compile", "nano-trickster") == ["nano-trickster-gpt2.arch",
                                                                  "nano-trickster-short.arch", "nano-trickster.arch"]
    assert complete(bash_script, "check", "bad/heads7") == ["bad/heads7-short.arch", "bad/heads7.arch"]
    assert "bad" in complete(bash_script, "params", "ba")
    assert complete(bash_script, "compile", "--target", "n150", "-o", "nano-trickster.a") == ["nano-trickster.arch"]


def test_zsh_and_fish_scripts(run_cli):
    bash = run_cli("completion", "bash").stdout
    zsh = run_cli("completion", "zsh").stdout
    assert "bashcompinit" in zsh and zsh.split("\n", 2)[2] == bash.split("\n", 1)[1]
    fish = run_cli("completion", "fish").stdout.splitlines()
    for name in COMMANDS:
        assert any(line.startswith(f"complete -c ttspec -n '__fish_use_subcommand' -a '{name}'") for line in fish)
    assert any("__fish_seen_subcommand_from plan' -l target -xa '" + " ".join(DEVICES) + "'" in line
               for line in fish)
    bad = run_cli("completion", "tcsh")
    assert bad.returncode == 2 and "invalid choice: 'tcsh'" in bad.stderr
