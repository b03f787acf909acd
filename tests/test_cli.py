"""The `ttspec` command as a user meets it: output formats, exit codes, files, start-up."""

import json
import subprocess
import sys

from .conftest import ROOT


def test_params_table(run_cli):
    out = run_cli("params", "specs/nano-trickster.arch")
    assert out.returncode == 0
    assert "5,180,672" in out.stdout
    assert "tied to embedding.weight" in out.stdout
    assert "per layer:   attention 262,144 · mlp 589,824 · norm 512" in out.stdout


def test_params_json_is_stable_and_documented(run_cli):
    a = run_cli("params", "--json", "specs/tinyllama-1.1b.arch")
    b = run_cli("params", "--json", "specs/tinyllama-1.1b.arch")
    assert a.stdout == b.stdout
    report = json.loads(a.stdout)
    doc = (ROOT / "docs" / "params-json.md").read_text()
    for key in report:
        assert f"`{key}`" in doc, f"top-level key {key} is not documented"
    assert report["schema"] == "ttspec-params/1"
    assert report["bytes"]["bf16"] == 2 * report["total"]
    assert report["flops_per_token"]["seq"] == 2048


def test_params_seq_option(run_cli):
    out = run_cli("params", "--json", "--seq", "128", "specs/nano-trickster.arch")
    assert json.loads(out.stdout)["flops_per_token"]["seq"] == 128
    bad = run_cli("params", "--seq", "0", "specs/nano-trickster.arch")
    assert bad.returncode == 2
    assert "expected a positive integer, got 0" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_output_file_is_atomic(run_cli, tmp_path):
    target = tmp_path / "out.json"
    ok = run_cli("params", "--json", "-o", target, "specs/nano-trickster.arch")
    assert ok.returncode == 0 and json.loads(target.read_text())["total"] == 5_180_672
    before = target.read_text()
    bad = run_cli("params", "--json", "-o", target, "specs/bad/heads7.arch")
    assert bad.returncode == 1
    assert target.read_text() == before  # the previous result survives a failed run
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temp files left behind


def test_graph_formats(run_cli):
    mermaid = run_cli("graph", "specs/nano-trickster.arch")
    assert mermaid.returncode == 0
    assert mermaid.stdout.startswith("graph TD\n")
    assert 'subgraph layers["layers: decoder × 6"]' in mermaid.stdout
    dot = run_cli("graph", "--format", "dot", "specs/gpt2.arch")
    assert dot.stdout.startswith('digraph "gpt2" {')
    assert dot.stdout.count("{") == dot.stdout.count("}")
    assert "decoder × 12" in dot.stdout
    again = run_cli("graph", "--format", "dot", "specs/gpt2.arch")
    assert again.stdout == dot.stdout


def test_usage_errors(run_cli):
    out = run_cli("compiel", "specs/nano-trickster.arch")
    assert out.returncode == 2
    assert "invalid choice: 'compiel'" in out.stderr
    out = run_cli("check", "--target", "n151", "specs/nano-trickster.arch")
    assert out.returncode == 2
    assert "unknown target `n151`" in out.stderr and "did you mean `n150`" in out.stderr


def test_missing_spec_file(run_cli):
    out = run_cli("params", "specs/nope.arch")
    assert out.returncode == 1
    assert out.stderr.startswith("error: no such file: specs/nope.arch")


def test_core_never_imports_torch_ttnn_or_a_template_engine(tmp_path):
    """The core commands start fast: no torch, ttnn, transformers or numpy, and no jinja2 (the programs'
    text is written in Python, backends/*/program.py)."""
    sink = str(tmp_path / "out.py")  # never /dev/null: as root, a replaced /dev/null breaks the machine
    code = ("import sys\nfrom ttspec.cli.main import main\n"
            "for argv in (['check', 'specs/llama-3.1-8b.arch'], ['params', '--json', 'specs/gpt2.arch'],"
            " ['graph', 'specs/phi-2.arch'], ['compile', 'specs/gpt2.arch', '--target', 'n150', '-o', SINK],"
            " ['compile', 'specs/gpt2.arch', '--target', 'torch', '-o', SINK],"
            " ['report', 'specs/gpt2.arch', '--target', 'n150'],"
            " ['compile', 'specs/nano-trickster.arch', '--target', 't3k', '-o', SINK],"
            " ['plan', 'specs/nano-trickster.arch', '--target', 't3k'],"
            " ['plan', 'specs/gpt2.arch', '--target', 'n150'],"
            " ['check', 'specs/llama-3.1-70b.arch', '--target', 't3k']):\n    main(argv)\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'ttnn', 'transformers', 'numpy',"
            " 'jinja2', 'pygls', 'lsprotocol'))\nassert not heavy, heavy\n").replace("SINK", repr(sink))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
