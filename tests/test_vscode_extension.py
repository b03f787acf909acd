"""editors/vscode, the VS Code extension (issue 22; docs/editors.md): its TextMate grammar against ttspec's parser
(keywords), op registry, standard library and types, so the highlighting cannot drift from the language; the
grammar's scope tests (vscode-tmgrammar-test) and the extension's node tests (stand-ins for VS Code's API); the
.vsix build (@vscode/vsce), whose packaged language client is made to start its server.

Needs editors/vscode/node_modules (`.ci/install-editor-tools`, which `.ci/run` calls); without it these tests
fail, naming the script. A real VS Code is not run (it is a download)."""

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ttspec.driver import load_model
from ttspec.errors import ArchError
from ttspec.frontend.parser import parse_stdlib
from ttspec.ir.types import DTYPES
from ttspec.ops.registry import CONFIGS, REGISTRY
from ttspec.targets import COMPILE_TARGETS, DEVICE_TARGETS

from .conftest import ROOT

EXT = ROOT / "editors" / "vscode"
MANIFEST = json.loads((EXT / "package.json").read_text(encoding="utf-8"))
GRAMMAR_PATH = EXT / MANIFEST["contributes"]["grammars"][0]["path"]
GRAMMAR = json.loads(GRAMMAR_PATH.read_text(encoding="utf-8"))
TEST_FILES = sorted((EXT / "test").glob("*.test.arch"))
SPEC_TEST_FILES = [EXT / "test" / "tour.test.arch", EXT / "test" / "shortform.test.arch"]  # real specs
ASSERTION = re.compile(r"^#\s*(\^+|<-+)\s*(.*)$")
WORD = re.compile(r"^[a-z]+$")


# ---------------------------------------------------------------- the grammar against the language
def alternatives(regex: str) -> set[str]:
    """The words of a `\\b(?:a|b|c)\\b` rule."""
    m = re.fullmatch(r"\\b\(\?:([A-Za-z0-9_|]+)\)\\b(?:\(\?=.*\))?", regex)
    assert m, f"not a word list: {regex}"
    return set(m.group(1).split("|"))


def parser_keywords() -> set[str]:
    """The keywords of the parser ttspec runs (the LALR tables compiled from grammar/arch.lark)."""
    tables = json.loads((ROOT / "ttspec" / "frontend" / "arch_tables.json").read_text(encoding="utf-8"))
    return {p for p in tables["terminals"].values() if WORD.match(p)}


def test_grammar_keywords_are_the_parsers():
    lark_words = set(re.findall(r'"([a-z]+)"', (ROOT / "grammar" / "arch.lark").read_text(encoding="utf-8")))
    assert parser_keywords() == lark_words  # the tables are grammar/arch.lark's (test_parser_tables.py)
    grammar_words = set().union(*(alternatives(p["match"]) for p in GRAMMAR["repository"]["keywords"]["patterns"]))
    assert grammar_words == parser_keywords(), (
        f"editors/vscode/syntaxes/arch.tmLanguage.json #keywords differs from grammar/arch.lark: missing "
        f"{sorted(parser_keywords() - grammar_words)}, not keywords {sorted(grammar_words - parser_keywords())}")


def _rules(node, inside_keywords=False):
    """(rule, is inside #keywords) for every rule or capture of the grammar."""
    if isinstance(node, dict):
        if "name" in node or "match" in node:
            yield node, inside_keywords
        for key, value in node.items():
            yield from _rules(value, inside_keywords or node is GRAMMAR["repository"] and key == "keywords")
    elif isinstance(node, list):
        for value in node:
            yield from _rules(value, inside_keywords)


def test_keyword_scopes_come_only_from_the_keyword_list():
    """A keyword written into another rule's regex would escape test_grammar_keywords_are_the_parsers: the other
    rules give keyword scopes to symbols only, and reach the keywords through `include: #keywords`."""
    words_outside = []
    for rule, inside in _rules(GRAMMAR):
        scope = rule.get("name", "")
        if inside or not scope.startswith(("keyword.", "storage.type.", "constant.language.")):
            continue
        letters = re.sub(r"\\[A-Za-z]", "", rule.get("match", ""))
        if re.search(r"[A-Za-z]{2,}", letters):
            words_outside.append((scope, rule["match"]))
    assert not words_outside


def test_grammar_names_the_primitives_blocks_and_types_ttspec_has(tmp_path):
    repo = GRAMMAR["repository"]
    spec_ops = {name for name, op in REGISTRY.items() if op.in_spec}
    # what a spec can call besides blocks (ttspec/elaborate/calls.py eval_call): ops, configs, `activation`
    assert alternatives(repo["primitive-names"]["match"]) == spec_ops | set(CONFIGS) | {"activation"}
    prelude = parse_stdlib(ROOT / "ttspec" / "stdlib" / "prelude.arch", "<stdlib>/prelude.arch")
    blocks = {item.name for item in prelude.items if type(item).__name__ == "BlockDef"}
    assert alternatives(repo["stdlib-names"]["match"]) == blocks
    dtype_rule, scalar_rule, _ = repo["type-names"]["patterns"]
    assert alternatives(dtype_rule["match"]) == set(DTYPES)
    assert alternatives(scalar_rule["match"]) == scalar_types(tmp_path / "unknown_type.arch")


def scalar_types(spec: Path) -> set[str]:
    """The parameter types the checker accepts, as its own error for an unknown one lists them."""
    spec.write_text("model m\nblock b(x: no_such_type) { return x }\ninput t: int32[b, s]\n"
                    "output o = lm_head(b(token_embedding(t, 8, 8)), 8)\n", encoding="utf-8")
    with pytest.raises(ArchError, match="unknown type `no_such_type`") as e:
        load_model(spec)
    hint = e.value.diagnostic.hint
    m = re.fullmatch(r"types: (.*), or a tensor type like .*", hint)
    assert m, hint
    return set(m.group(1).split(", "))


def test_extension_targets_are_ttspecs():
    source = (EXT / "extension.js").read_text(encoding="utf-8")
    m = re.search(r"const DEVICE_TARGETS = \[([^\]]*)\];", source)
    assert m and re.findall(r"'([^']+)'", m.group(1)) == list(DEVICE_TARGETS)
    assert "const COMPILE_TARGETS = ['torch', ...DEVICE_TARGETS];" in source
    assert COMPILE_TARGETS == ("torch", *DEVICE_TARGETS)


# ---------------------------------------------------------------- the grammar tests cover the grammar
def assertions(path: Path) -> list[tuple[str, list[str]]]:
    """(the text a `^^^`/`<--` line points at, its required scopes) for each assertion of a test file."""
    found, source = [], None
    for line in path.read_text(encoding="utf-8").splitlines():
        m = ASSERTION.match(line)
        if not m:
            source = line
            continue
        marks, scopes = m.groups()
        start = 0 if marks.startswith("<") else line.index("^")
        text = source[start:start + (len(marks) - 1 if marks.startswith("<") else len(marks))]
        found.append((text, scopes.split(" - ")[0].split()))
    return found


def test_grammar_tests_assert_every_keyword_and_scope():
    """Every keyword is asserted somewhere with a keyword scope, and every scope the grammar gives is asserted
    at least once (so each construct has a test)."""
    asserted = [a for path in TEST_FILES for a in assertions(path)]
    keyword_hits = {text for text, scopes in asserted
                    if any(s.startswith(("keyword.", "storage.type.", "constant.language.")) for s in scopes)}
    assert parser_keywords() <= keyword_hits, sorted(parser_keywords() - keyword_hits)
    given = {rule["name"] for rule, _ in _rules(GRAMMAR) if "name" in rule} - {GRAMMAR["name"]}
    scopes = {s for _, ss in asserted for s in ss}
    assert given - scopes == set(), f"scopes no test asserts: {sorted(given - scopes)}"


@pytest.mark.parametrize("path", SPEC_TEST_FILES, ids=lambda p: p.name)
def test_grammar_test_files_are_real_specs(path):
    """The tour and the short form elaborate: they show the language as ttspec reads it."""
    assert load_model(path).graph is not None


# ---------------------------------------------------------------- running the npm tools
@pytest.fixture(scope="module")
def node_tools():
    missing = [n for n in ("node", "npm") if shutil.which(n) is None]
    bins = [EXT / "node_modules" / ".bin" / b for b in ("vscode-tmgrammar-test", "vsce")]
    missing += [str(b.relative_to(ROOT)) for b in bins if not b.exists()]
    if missing or not (EXT / "node_modules" / "vscode-languageclient").is_dir():
        pytest.fail(f"the VS Code extension's tools are not installed ({', '.join(missing) or 'node_modules'}): "
                    "run .ci/install-editor-tools (npm ci in editors/vscode; .ci/run does it)", pytrace=False)
    return EXT / "node_modules" / ".bin"


def run(args, cwd=EXT, timeout=120):
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_grammar_scope_tests_pass(node_tools):
    r = run([node_tools / "vscode-tmgrammar-test", "test/*.test.arch"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(re.findall(r"✓ test/(\S+) run successfuly", r.stdout)) == [p.name for p in TEST_FILES]


def test_grammar_scope_tests_can_fail(node_tools, tmp_path):
    wrong = tmp_path / "wrong.test.arch"
    text = (EXT / "test" / "shortform.test.arch").read_text(encoding="utf-8")
    wrong.write_text(text.replace("^^^ constant.numeric.integer.arch", "^^^ constant.numeric.float.arch", 1))
    r = run([node_tools / "vscode-tmgrammar-test", wrong])
    assert r.returncode != 0 and "missing required scopes: constant.numeric.float.arch" in r.stdout, r.stdout


def test_extension_node_tests_pass(node_tools):
    r = run(["node", "--test", "test/extension.test.js"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^# fail 0$", r.stdout, re.M) and int(re.search(r"^# pass (\d+)$", r.stdout, re.M)[1]) >= 10


def test_every_spec_highlights_cleanly(node_tools):
    """specs/ (the bad ones too), the standard library and the grammar tests' specs: no token is marked invalid,
    every keyword outside comments and strings gets a keyword scope (test/scan.js, with vscode-textmate)."""
    files = sorted({*ROOT.glob("specs/**/*.arch"), *ROOT.glob("ttspec/stdlib/**/*.arch"), *SPEC_TEST_FILES})
    assert len(files) > 40
    r = run(["node", "test/scan.js", *files])
    assert r.returncode == 0 and f"scanned {len(files)} files: 0 problems" in r.stdout, r.stdout + r.stderr
    r = run(["node", "test/scan.js", EXT / "test" / "invalid.test.arch"])  # the scan can fail
    assert r.returncode == 1 and "invalid: " in r.stdout and "invalid.illegal.semicolon.arch" in r.stdout, r.stdout


@pytest.fixture(scope="module")
def vsix(node_tools, tmp_path_factory):
    out = tmp_path_factory.mktemp("vsix")
    r = run(["npm", "run", "--silent", "package", "--", "--out", f"{out}/"])
    assert r.returncode == 0, r.stdout + r.stderr
    name = f"{MANIFEST['name']}-{MANIFEST['version']}.vsix"
    assert sorted(p.name for p in out.iterdir()) == [name]
    return out / name


def test_vsix_holds_the_extension(vsix):
    with zipfile.ZipFile(vsix) as z:
        names = set(z.namelist())
        assert json.loads(z.read("extension/package.json"))["contributes"] == MANIFEST["contributes"]
        assert z.read("extension/syntaxes/arch.tmLanguage.json") == GRAMMAR_PATH.read_bytes()
        for f in ("extension.js", "language-configuration.json", "LICENSE.txt", "readme.md"):
            assert f"extension/{f}" in names, f
    assert "extension/node_modules/vscode-languageclient/package.json" in names  # shipped: a dependency
    assert not [n for n in names if n.startswith(("extension/test/", "extension/node_modules/@vscode/vsce/"))]


@pytest.fixture(scope="module")
def unpacked(vsix, tmp_path_factory):
    out = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(vsix) as z:
        z.extractall(out)
    return out


def test_vsix_client_starts_ttspec_lsp(unpacked, tmp_path):
    """The packaged extension.js, with the vscode-languageclient inside the .vsix, starts its server as
    `ttspec lsp` (stdio, no extra arguments): a stand-in ttspec records how it was started."""
    r = run(["node", EXT / "test" / "packaged-client.js", unpacked, tmp_path / "args.json"], timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads((tmp_path / "args.json").read_text()) == ["lsp"]


def test_vsix_client_session_with_ttspec_lsp(unpacked, tmp_path):
    """The packaged client and the real `ttspec lsp`: initialize, a buffer with heads = 7 gets the checker's error
    on the checker's line, an edit fixing it clears it, shutdown (test/session.js)."""
    spec = tmp_path / "nano.arch"
    spec.write_text((ROOT / "specs" / "nano-trickster.arch").read_text(encoding="utf-8"), encoding="utf-8")
    bad = tmp_path / "bad.arch"
    bad.write_text(re.sub(r"let heads = \d+", "let heads = 7", spec.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(ArchError) as e:  # what `ttspec check` says of that text
        load_model(bad)
    ttspec = tmp_path / "ttspec"  # the CLI of this checkout, as the `ttspec` the extension runs
    ttspec.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m ttspec.cli "$@"\n', encoding="utf-8")
    ttspec.chmod(0o755)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(["node", str(EXT / "test" / "session.js"), str(unpacked), str(ttspec), str(spec)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    steps = {s.pop("step"): s for s in map(json.loads, r.stdout.splitlines())}
    assert list(steps) == ["initialized", "opened", "fixed", "stopped"]
    assert "textDocumentSync" in steps["initialized"]["capabilities"]
    (d,) = steps["opened"]["diagnostics"]
    assert d["line"] == e.value.diagnostic.loc.line - 1 and d["message"].startswith(e.value.diagnostic.message)
    assert steps["fixed"]["diagnostics"] == []
