"""Every analysis is linear in the size of the graph (issue 18): a spec that writes its layers out one by
one (no `repeat`) once made `plan` and `report` take over 120 s and `params` 44 s at 600 layers, because the
cost model rescanned the whole graph for every op and `params` scanned every component and parameter for
each component.

No wall-clock ratios: the work is counted as the lines of ttspec's own code that run (sys.settrace), which
is the same on every machine. Written-out layers are alike, so each layer adds the same work: with N, 2N
and 4N layers the second step adds exactly twice the first when the work is linear, and 4x when each
layer scans all the others (a scan per op gave 2.9x to 3.6x at these sizes, the rest of the work being
linear). One generous hang guard runs the commands on 600 layers."""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import pytest

import ttspec
from ttspec.cli import main as cli
from ttspec.ir.graph import Graph

PACKAGE = str(Path(ttspec.__file__).resolve().parent)
# Linear work gives 2.0; a quadratic term gives up to 4. The margin leaves room for work that grows a
# little faster than the layers (n log n) without admitting a scan per layer.
LINEAR_GROWTH = 2.25


def unrolled_spec(layers: int) -> str:
    """A GQA Llama whose decoder layers are written out one by one, with a tied head."""
    lines = ["model unrolled", "", "let vocab = 512", "let d = 256", "let heads = 8", "let kv_heads = 2",
             "let mlp = 768", "let max_seq = 1024", "let eps = 1e-5", "",
             "input tokens: int32[batch, seq] where seq <= max_seq", "",
             "block decoder(x: [batch, seq, d]) -> [batch, seq, d] kind decoder {",
             "    x = x + attention(rmsnorm(x, eps = eps) as attn_norm, heads = heads, kv_heads = kv_heads,",
             "                      rope = rope(theta = 500000.0)) as attn",
             "    x = x + swiglu(rmsnorm(x, eps = eps) as mlp_norm, hidden = mlp) as mlp",
             "    return x", "}", "", "h = token_embedding(tokens, vocab, d) as embedding"]
    lines += [f"h = decoder(h) as layer{i}" for i in range(layers)]
    lines += ["h = rmsnorm(h, eps = eps) as norm", "output logits = lm_head(h, vocab, tied = embedding)"]
    return "\n".join(lines) + "\n"


def _run(argv: list[str]) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        status = cli.main(argv)
    assert status == 0, out.getvalue()[-3000:]


def lines_run(argv: list[str]) -> int:
    """How many lines of ttspec's code run for one command, in this process."""
    count = 0

    def in_frame(frame, event, arg):
        nonlocal count
        if event == "line":
            count += 1
        return in_frame

    def on_call(frame, event, arg):
        return in_frame if frame.f_code.co_filename.startswith(PACKAGE) else None

    previous = sys.gettrace()
    sys.settrace(on_call)
    try:
        _run(argv)
    finally:
        sys.settrace(previous)
    return count


def growth(measure, tmp_path: Path, sizes=(4, 8, 16)) -> float:
    """How much more the second doubling of the layers adds than the first."""
    specs = []
    for n in sizes:
        path = tmp_path / f"unrolled{n}.arch"
        path.write_text(unrolled_spec(n), encoding="utf-8")
        specs.append(str(path))
    measure(specs[0])  # warm: what a process does once (the standard library's blocks) is not counted
    small, middle, large = (measure(s) for s in specs)
    assert small < middle < large
    return (large - middle) / (middle - small)


COMMANDS = {
    "check": ["check"],
    "check-target": ["check", "--target", "t3k"],
    "params": ["params"],
    "params-json": ["params", "--json"],
    "graph": ["graph"],
    "plan-1d": ["plan", "--target", "t3k"],
    "plan-2d": ["plan", "--target", "galaxy", "--json"],
    "report": ["report", "--target", "n150,galaxy"],
    "compile-torch": ["compile", "--target", "torch", "-o", "{out}"],
    "compile-ttnn": ["compile", "--target", "t3k", "-o", "{out}"],
    "compile-2d": ["compile", "--target", "galaxy", "-o", "{out}"],
}


@pytest.fixture(autouse=True)
def _no_ast_cache(monkeypatch):
    monkeypatch.setenv("TTSPEC_NO_CACHE", "1")  # every run parses: the same work each time


@pytest.mark.parametrize("name", COMMANDS)
def test_work_grows_linearly_with_written_out_layers(name, tmp_path):
    out = str(tmp_path / "program.py")
    argv = [a.replace("{out}", out) for a in COMMANDS[name]]
    ratio = growth(lambda spec: lines_run(argv + [spec]), tmp_path)
    assert ratio <= LINEAR_GROWTH, f"`ttspec {' '.join(argv)}`: doubling the layers again added {ratio:.2f}x " \
                                   "the work of the first doubling (linear: 2)"


def test_plan_search_visits_nodes_linearly(tmp_path, monkeypatch):
    """`plan --search` prices thousands of phases: too many lines to trace, so it counts the nodes every
    scan of a graph visits (Graph.topo, the one way passes and analyses walk a graph's nodes)."""
    visited = 0
    topo = Graph.topo

    def counting_topo(self):
        nonlocal visited
        visited += len(self.nodes)
        return topo(self)

    monkeypatch.setattr(Graph, "topo", counting_topo)

    def measure(spec: str) -> int:
        nonlocal visited
        visited = 0
        _run(["plan", "--target", "t3k", "--search", "--weights-dtype", "bf16", "--json", spec])
        return visited

    ratio = growth(measure, tmp_path)
    assert ratio <= LINEAR_GROWTH, f"doubling the layers again visited {ratio:.2f}x the nodes of the first doubling"


def test_the_scan_counter_sees_a_scan_per_op(tmp_path, monkeypatch):
    """The measure can fail: the cost model finding the lookup tables afresh for every op (as it once
    did) is counted as quadratic work."""
    from ttspec.analysis import cost
    from ttspec.ops.queries import lookup_tables

    def facts_per_op(self):
        return lookup_tables(self.graph), cost.padded_shapes(self.graph)

    monkeypatch.setattr(cost.CostInterpreter, "_facts", facts_per_op)
    ratio = growth(lambda spec: lines_run(["plan", "--target", "n150", spec]), tmp_path)
    assert ratio > 2.5


LAYERS = 600
HANG_GUARD_S = 60  # generous: each command takes a few seconds on 600 layers where they once took minutes


@pytest.mark.parametrize("args", [["check", "--target", "t3k"], ["params"], ["plan", "--target", "t3k"],
                                  ["report", "--target", "n150"], ["compile", "--target", "t3k", "-o", "{out}"]],
                         ids=lambda a: "-".join(a[:3]))
def test_600_written_out_layers_finish(args, write_spec, run_cli, tmp_path):
    spec = write_spec(unrolled_spec(LAYERS))
    out = tmp_path / "program.py"
    result = run_cli(*[a.replace("{out}", str(out)) for a in args], spec, timeout=HANG_GUARD_S)
    assert result.returncode == 0, result.stderr[-2000:]
    if args[0] == "params":
        assert "layer599" in result.stdout
    if args[0] == "compile":
        assert out.stat().st_size > 0


@pytest.mark.parametrize("args", [["plan", "--search", "--target", "t3k"], ["plan", "--search", "--target", "galaxy"],
                                  ["compile", "--plan", "best", "--target", "t3k", "-o", "{out}"]],
                         ids=["search-t3k", "search-galaxy", "compile-plan-best"])
def test_the_plan_search_on_600_written_out_layers_finishes(args, write_spec, run_cli, tmp_path):
    """The search prices thousands of phases (every sub-mesh, weight format and batch): priced op by op
    it took 466 s on galaxy at 100 written-out layers; each distinct op is now priced once a phase."""
    spec = write_spec(unrolled_spec(LAYERS))
    out = tmp_path / "program.py"
    result = run_cli(*[a.replace("{out}", str(out)) for a in args], spec, timeout=HANG_GUARD_S)
    assert result.returncode == 0, result.stderr[-2000:]
    if args[0] == "plan":
        assert "compile the top plan" in result.stdout
    else:
        assert out.stat().st_size > 0
