"""`ttspec report --html`: the page renders in headless Chromium (Debian's `chromium`, installed by
.ci/install-chromium) without script errors, self-contained, with the diagram, the memory bars,
the time breakdown, the sharding plan and, for several targets, the comparison chart; strings from
a spec cannot inject markup. Without Chromium these tests skip, which CI (TTSPEC_REQUIRE_ALL=1)
turns into failures."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from .conftest import ROOT, formats_of, target_of

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is missing (.ci/install-chromium)")
LLAMA = ROOT / "specs" / "llama-3.1-8b.arch"
HOSTILE = "<script>alert('x')</script>\"'&amp;<img id=pwned src=x onerror=alert(1)>"


def ttspec(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ttspec.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def chromium(page: Path, tmp: Path) -> tuple[str, str, bytes]:
    """(the DOM after load, Chromium's console log lines, a 1280x4000 screenshot as PNG bytes)."""
    shot = tmp / (page.stem + ".png")
    common = [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", f"--user-data-dir={tmp}/prof"]
    subprocess.run([*common, f"--screenshot={shot}", "--window-size=1280,4000", page.as_uri()], capture_output=True,
                   timeout=120, check=True)
    dom = subprocess.run([*common, "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120, check=True)
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    return dom.stdout, "\n".join(console), shot.read_bytes()


def png_variety(png: bytes) -> tuple[int, int, int]:
    """(width, height, distinct byte values of the decompressed image data): a blank page's filtered
    rows are nearly all one value."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, size = 8, b"", (0, 0)
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        data = png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            size = struct.unpack(">II", data[:8])
        elif kind == b"IDAT":
            idat += data
        pos += 12 + length
    return size[0], size[1], len(set(zlib.decompress(idat)))


def assert_self_contained(text: str) -> None:
    assert not re.search(r"https?:", text), "a URL in the page"
    assert not re.search(r"<(link|iframe|object|embed|img|image|use)\b", text, re.I)
    assert not re.search(r"\b(src|href)\s*=", text, re.I)
    assert "@import" not in text
    assert set(re.findall(r"url\(([^)]*)\)", text)) <= {"#ttspec-arrow"}
    assert text.count("<script") == 1  # the one inline error recorder, with no src


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("html")
    page = tmp / "report.html"
    out = ttspec("report", LLAMA, "--target", "n150,n300,t3k", "--weights-dtype", "bfloat8_b", "--html", page)
    assert out.returncode == 0, out.stderr
    return tmp, page, out


def test_multi_target_page_is_self_contained(multi):
    _, page, out = multi
    text = page.read_text(encoding="utf-8")
    assert f"wrote {page}" in out.stdout and out.stdout.count("time to first token") == 3
    assert_self_contained(text)
    # Sizes in the CLI's decimal units (issue 22): n150's DRAM, 12,872,318,208 B, is 12.87 GB, never 11.99 GiB.
    assert not re.search(r"\d [KMGT]iB\b", text) and re.search(r"\d GB\b", text) and re.search(r"\d MB\b", text)
    # The numbers on the page are report --json's.
    reports = json.loads(ttspec("report", LLAMA, "--target", "n150,n300,t3k", "--weights-dtype", "bfloat8_b",
                                "--json").stdout)
    assert [r["target"] for r in reports] == ["n150", "n300", "t3k"]
    for r in reports:
        assert f"{r['totals']['decode_ms_per_step']:.2f} ms" in text
        assert f"{r['totals']['tokens_per_s_per_user']:.1f}" in text


@needs_chromium
def test_multi_target_page_renders_in_chromium(multi):
    tmp, page, _ = multi
    dom, console, png = chromium(page, tmp)
    assert console == "", console
    assert re.search(r'<body data-loaded="\d+"', dom), "the inline script did not run to its load handler"
    assert re.search(r'<pre id="ttspec-errors"></pre>', dom), "a script error was recorded"
    # The diagram: the component boxes of a Llama decoder and the repeat box.
    diagram = re.search(r'<svg class="diagram".*?</svg>', dom, re.S).group(0)
    for label in ("embedding", "attn_norm", "attention", "swiglu", "lm_head", "layers: decoder × 32"):
        assert f">{label}<" in diagram, label
    assert diagram.count('class="edge"') >= 12
    # Memory bars: one stacked bar per target, each with a DRAM marker.
    memory = re.search(r'<svg class="chart memory".*?</svg>', dom, re.S).group(0)
    assert memory.count('class="limit"') == 3 and memory.count('class="segment"') >= 3 * 5
    for target in ("n150 (one chip)", "n300 (1x2 mesh, 2 devices)", "t3k (1x8 mesh, 8 devices)"):
        assert target in memory
    # Time by op class, prefill and decode, for each target; the comparison chart.
    assert dom.count('class="chart time-prefill"') == 3 and dom.count('class="chart time-decode"') == 3
    assert ">linear<" in re.search(r'<svg class="chart time-decode".*?</svg>', dom, re.S).group(0)
    comparison = re.search(r'<svg class="chart comparison".*?</svg>', dom, re.S).group(0)
    assert comparison.count('class="bar"') == 4 * 3
    # The sharding plan: t3k's collectives with the reason for each.
    assert dom.count('class="collectives"') == 2 and "rms_norm needs whole rows" in dom
    assert "One chip: nothing is sharded" in dom
    # The hardware constants with their sources: one table for the three Wormhole targets.
    assert dom.count('class="hardware"') == 1 and "wormhole_b0 (n150, n300, t3k)" in dom
    assert dom.count('class="ethernet"') == 1 and "axis 1: ring" in dom
    width, height, variety = png_variety(png)
    assert (width, height) == (1280, 4000) and variety > 40


@needs_chromium
def test_blank_page_is_told_apart(tmp_path):
    """The screenshot check tells a blank page from a drawn one; the console check sees a script error."""
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    _, console, png = chromium(blank, tmp_path)
    assert console == "" and png_variety(png)[2] <= 40
    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><html><body><script>no_such_function();</script></body></html>")
    assert "no_such_function is not defined" in chromium(broken, tmp_path)[1]


@needs_chromium
def test_one_target_page(tmp_path):
    page = tmp_path / "one.html"
    out = ttspec("report", ROOT / "specs" / "nano-trickster.arch", "--target", "n150", "--html", page, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["target"] == "n150"  # --json keeps one object for one target
    text = page.read_text(encoding="utf-8")
    assert_self_contained(text)
    assert "comparison" not in text
    dom, console, _ = chromium(page, tmp_path)
    assert console == "" and '<pre id="ttspec-errors"></pre>' in dom and 'class="diagram"' in dom
    assert 'class="chart memory"' in dom and 'class="chart time-decode"' in dom


@needs_chromium
def test_2d_plan_page(tmp_path):
    """A 2-D plan on Galaxy: the strategy stated, a placements table with one column per mesh axis (as
    tt-metal's Galaxy models place a Llama's weights), and both strategies compared."""
    page = tmp_path / "galaxy.html"
    out = ttspec("report", ROOT / "specs" / "nano-trickster.arch", "--target", "galaxy", "--strategy", "2d",
                 "--html", page)
    assert out.returncode == 0, out.stderr
    assert "strategy: 2-D tensor parallelism" in out.stdout
    text = page.read_text(encoding="utf-8")
    assert_self_contained(text)
    dom, console, png = chromium(page, tmp_path)
    assert console == "" and '<pre id="ttspec-errors"></pre>' in dom
    assert "galaxy (8x4 mesh, 32 devices)" in dom
    assert "Strategy: --strategy 2d forces 2-D." in dom
    table = re.search(r'<table class="placements placements-2d">.*?</table>', dom, re.S).group(0)
    assert "<th>parameter</th><th>mesh axis 0: rows (8)</th><th>mesh axis 1: columns (4)</th>" in table
    for name, rows, columns in (("layers.*.attn.wq.weight", "column", "row"),
                                ("layers.*.attn.wo.weight", "row", "column"),
                                ("layers.*.mlp.w1.weight", "column", "row"),
                                ("layers.*.mlp.w2.weight", "row", "column"),
                                ("embedding.weight", "replicate", "hidden"), ("lm_head.weight", "vocab", "row"),
                                ("norm.weight", "replicate", "hidden")):
        assert f"<tr><td>{name}</td><td>{rows}</td><td>{columns}</td></tr>" in table, name
    # bytes per token per layer: axis 0 all-reduces wo and w2 (64 of 256 per column, 7/8, twice for a ring
    # all-reduce); axis 1 gathers two norms' statistics (the 3 other columns' float32 tile of 32) and
    # all-reduces wqkv, w1, w3 (768 / 8 rows, 3/4, twice)
    axis0, axis1 = 2 * (2 * 2 * 64 * 7 // 8), 2 * (4 * 32 * 3) + 3 * (2 * 2 * 96 * 3 // 4)
    assert f"(axis 0: {axis0:,}, axis 1: {axis1:,})" in dom
    strategies = re.search(r'<table class="strategies">.*?</table>', dom, re.S).group(0)
    assert "<td>2d (chosen)</td>" in strategies and "<td>1d</td>" in strategies
    assert f"axis 0: {axis0:,}, axis 1: {axis1:,}" in strategies and f"axis 0: {4 * (2 * 256 * 7 // 8):,}" in strategies
    assert png_variety(png)[2] > 40


def _poison(value, keys: bool = False):
    """Every string in a report's dicts, and the keys of its name maps, made hostile."""
    if isinstance(value, str):
        return HOSTILE + value
    if isinstance(value, list):
        return [_poison(v) for v in value]
    if isinstance(value, dict):
        names = {"by_op_class", "placements", "by_kind", "weights", "kv_copies"}
        return {(HOSTILE + k if keys else k): _poison(v, k in names) for k, v in value.items()}
    return value


@needs_chromium
def test_spec_strings_cannot_inject_markup(tmp_path, monkeypatch):
    from ttspec.analysis.params_report import params_report
    from ttspec.driver import load_model
    from ttspec.reports import diagram
    from ttspec.reports.html_report import render_html
    from ttspec.reports.plan_report import plan_report
    from ttspec.reports.report import cost_report

    model = load_model(LLAMA)
    reports = [cost_report(model, target_of(t), weights_dtype=formats_of("bfloat8_b")) for t in ("n150", "t3k")]
    plans = [plan_report(model, target_of(t), None, formats_of("bfloat8_b"), 1, None) for t in ("n150", "t3k")]
    label = diagram._label
    monkeypatch.setattr(diagram, "_label", lambda *a: HOSTILE + label(*a))
    model.name = HOSTILE
    page = tmp_path / "hostile.html"
    page.write_text(render_html(diagram.to_svg(model), _poison(params_report(model)), _poison(reports),
                                _poison(plans)), encoding="utf-8")
    text = page.read_text(encoding="utf-8")
    assert "<img" not in text and "alert('x')</script>" not in text and text.count("<script") == 1
    assert "&lt;script&gt;" in text and "&amp;amp;" in text and "&quot;" in text
    dom, console, _ = chromium(page, tmp_path)
    assert console == "", console
    assert 'id="pwned"' not in dom and dom.count("<script") == 1 and "<img" not in dom
    assert '<pre id="ttspec-errors"></pre>' in dom


def test_report_target_lists(tmp_path):
    bad = ttspec("report", LLAMA, "--target", "n150,nope")
    assert bad.returncode == 2 and "nope" in bad.stderr
    twice = ttspec("report", LLAMA, "--target", "n150,n150")
    assert twice.returncode == 2 and "twice" in twice.stderr
    mesh = ttspec("report", LLAMA, "--target", "n300,t3k", "--mesh", "1x2")
    assert mesh.returncode == 2 and "--mesh applies to one target" in mesh.stderr
    missing = ttspec("report", LLAMA, "--target", "n150", "--html", tmp_path / "no" / "dir" / "r.html")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    assert not (tmp_path / "no").exists() and "Traceback" not in missing.stderr


def _boxes(svg: str) -> list[tuple[float, float, float, float]]:
    """(x0, y0, x1, y1) of every component's shape in a diagram."""
    out = []
    for shape in re.findall(r'<g class="node">(<[^>]*>)', svg):
        a = {k: float(v) for k, v in re.findall(r'(\w+)="([-\d.]+)"', shape)}
        if shape.startswith("<rect"):
            out.append((a["x"], a["y"], a["x"] + a["width"], a["y"] + a["height"]))
        elif shape.startswith("<ellipse"):
            out.append((a["cx"] - a["rx"], a["cy"] - a["ry"], a["cx"] + a["rx"], a["cy"] + a["ry"]))
        else:
            out.append((a["cx"] - a["r"], a["cy"] - a["r"], a["cx"] + a["r"], a["cy"] + a["r"]))
    return out


@pytest.mark.parametrize("spec", sorted(p.name for p in (ROOT / "specs").glob("*.arch")))
def test_diagram_of_every_shipped_spec(spec):
    """The SVG diagram draws what `ttspec graph --format dot` draws (one shape per dot node, one arrow
    per dot edge), inside its canvas, with no two shapes overlapping."""
    from ttspec.driver import load_model
    from ttspec.reports.diagram import to_dot, to_svg

    model = load_model(ROOT / "specs" / spec)
    svg, dot = to_svg(model), to_dot(model)
    assert svg.count('class="edge"') == dot.count(" -> ")
    boxes = _boxes(svg)
    assert len(boxes) == len(re.findall(r"\[label=", dot))
    w, h = map(float, re.search(r'viewBox="0 0 ([\d.]+) ([\d.]+)"', svg).groups())
    for x0, y0, x1, y1 in boxes:
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
    for path in re.findall(r'<path class="edge" d="([^"]+)"', svg):
        nums = [float(v) for v in re.findall(r"[-\d.]+", path)]
        assert all(0 <= v <= max(w, h) for v in nums)


@needs_chromium
def test_readme_chromium_command_works(tmp_path):
    """The README's screenshot command, as written (joined across its line break), runs here, as root in CI
    (issue 22: without --no-sandbox Chromium refuses root)."""
    import shlex

    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    command = re.search(r"`(chromium --headless [^`]*)`", readme).group(1)
    assert "--no-sandbox" in command
    page = tmp_path / "report.html"
    page.write_text("<!DOCTYPE html><html><body><h1>ttspec</h1></body></html>")
    words = [w.replace("$PWD", str(tmp_path)) for w in shlex.split(command)]
    words[0] = CHROMIUM
    subprocess.run([*words, "--disable-gpu", "--no-first-run", f"--user-data-dir={tmp_path}/prof"], cwd=tmp_path,
                   capture_output=True, timeout=120, check=True)
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
