"""`ttspec report --html`: one self-contained page (inline CSS and SVG, one inline script that
records script errors into the page; nothing fetched) from the same dicts `report --json`,
`plan --json` and `params --json` print. Every string from a spec passes through html.escape."""

from __future__ import annotations

from html import escape

from .svg import grouped_bars, hbars, stacked_bars

CSS = """
body { font-family: sans-serif; margin: 24px auto; max-width: 1100px; color: #222; }
h1 { font-size: 24px; } h2 { font-size: 19px; border-bottom: 1px solid #ccc; padding-bottom: 4px; margin-top: 32px; }
h3 { font-size: 15px; margin-bottom: 6px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #666; font-size: 13px; }
.charts { display: flex; flex-wrap: wrap; gap: 24px; }
svg { overflow: visible; }
#ttspec-errors:empty { display: none; }
#ttspec-errors { color: #b00; border: 1px solid #b00; padding: 8px; }
"""

# Records any script error into the page (the test reads it back from the DOM) and marks the
# page as loaded; it reads nothing and fetches nothing.
SCRIPT = """
window.addEventListener("error", function (e) {
  document.getElementById("ttspec-errors").textContent += "error: " + e.message + "\\n";
});
window.addEventListener("load", function () {
  document.body.setAttribute("data-loaded", String(document.querySelectorAll("svg").length));
});
"""


def _e(s: object) -> str:
    return escape(str(s), quote=True)


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.3f} ms" if ms < 10 else f"{ms:.1f} ms"


def _bytes(n: float) -> str:
    """Decimal units, as the CLI writes sizes (12.87 GB of DRAM, not 11.99 GiB)."""
    return _count(n, "B")


def _count(n: float, unit: str = "") -> str:
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {prefix}{unit}"
    return f"{n:.0f} {unit}".rstrip()


def _table(header: list[str], rows: list[list[str]], num: set[int] = frozenset(), cls: str = "") -> str:
    c = f' class="{_e(cls)}"' if cls else ""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td class="num">{_e(v)}</td>' if i in num else f"<td>{_e(v)}</td>"
                                    for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table{c}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _where(r: dict) -> str:
    where = f"{r['mesh'][0]}x{r['mesh'][1]} mesh, {r['devices']} devices" if r["devices"] > 1 else "one chip"
    replicas = r.get("data_parallel_replicas", 1)
    return where + (f", {replicas} data-parallel replicas" if replicas > 1 else "")


def _params(p: dict) -> str:
    total = p["total"] or 1
    rows = []
    for c in p["components"]:
        name = c["name"] + (f" × {c['repeat']}" if "repeat" in c else "")
        rows.append([name, c["block"], c["kind"], f"{c['params']:,}", f"{100 * c['params'] / total:.1f}%"])
    out = [f"<p>{p['total']:,} parameters.</p>",
           _table(["component", "block", "kind", "parameters", "share"], rows, {3, 4}, "params")]
    kinds = [(k, float(v), f"{_count(v)} ({100 * v / total:.1f}%)") for k, v in p["by_kind"].items()]
    weights = [(k, float(v), _bytes(v)) for k, v in p["bytes"].items()]
    out.append('<div class="charts">' + hbars(kinds, "parameters by kind", "chart params-by-kind", 520)
               + hbars(weights, "all weights in each format", "chart weight-bytes", 520) + "</div>")
    return "\n".join(out)


def _memory(reports: list[dict]) -> str:
    kinds = sorted({k for r in reports for k in r["memory_per_chip"]["weights"]})
    legend = [f"weights: {k}" for k in kinds] + ["KV cache", "activations"]
    rows = []
    for r in reports:
        m = r["memory_per_chip"]
        segs = [(f"weights: {k}", float(m["weights"].get(k, 0))) for k in kinds]
        segs += [("KV cache", float(m["kv_cache"])), ("activations", float(m["activations"]))]
        rows.append((f"{r['target']} ({_where(r)})", segs, float(m["dram"]), "DRAM"))
    chart = stacked_bars(rows, legend, "memory per chip against its DRAM", "chart memory", _bytes)
    r0 = reports[0]
    return (f'<p class="note">At batch {r0["batch"]} and a context of {r0["context"]:,} tokens, '
            f"from the memory model (analysis/memory.py); the dashed line is the chip's DRAM.</p>" + chart)


def _phase(r: dict, key: str, title: str, colors: dict[str, int]) -> str:
    p = r[key]
    rows = [(name, c["time_s"] * 1e3, f"{_ms(c['time_s'])} ({c['bottleneck']})")
            for name, c in p["by_op_class"].items()]
    return hbars(rows, f"{title}: {_ms(p['time_s'])} per chip", f"chart time-{key}", 500, colors)


def _time(r: dict, colors: dict[str, int]) -> str:
    t = r["totals"]
    if r.get("no_decode"):  # an encoder: its forward pass, no decode step (report's `no_decode` says why)
        summary = _table(["forward pass", "decode"], [[f"{t['ttft_ms']:.1f} ms ({r['prompt']:,} tokens)",
                                                       "none: " + r["no_decode"]]], {0}, "totals")
    else:
        summary = _table(["time to first token", "decode per step", "tokens/s/user", "tokens/s"],
                         [[f"{t['ttft_ms']:.1f} ms (prompt {r['prompt']:,})",
                           f"{t['decode_ms_per_step']:.2f} ms (batch {r['batch']}, context {r['context']:,})",
                           f"{t['tokens_per_s_per_user']:.1f}", f"{t['tokens_per_s']:.1f}"]], {0, 1, 2, 3}, "totals")
    classes = []
    for key in ("prefill", "decode") if r["decode"] is not None else ("prefill",):
        for name, c in r[key]["by_op_class"].items():
            moved = c["collective_bytes"] or c["host_bytes"]
            classes.append([key, name, str(c["ops"]), _ms(c["time_s"]), c["bottleneck"], _count(c["flops"], "FLOP"),
                            _bytes(c["dram_bytes"]), _bytes(moved) if moved else ""])
    table = _table(["phase", "op class", "ops", "time", "bottleneck", "compute", "DRAM", "ethernet / PCIe"],
                   classes, {2, 3, 5, 6, 7}, "op-classes")
    return (f'<h3>{_e(r["target"])} ({_e(_where(r))}), weights {_e(r["weights_dtype"])}</h3>' + summary
            + '<div class="charts">' + (_phase(r, "prefill", f"forward pass of {r['prompt']:,} tokens", colors)
                                         if r["decode"] is None else
                                         _phase(r, "prefill", f"prefill of {r['prompt']:,} tokens", colors)
                                         + _phase(r, "decode", f"decode step, batch {r['batch']}", colors))
            + "</div>" + table)


def _comparison(reports: list[dict]) -> str:
    def bars(key: str) -> list[tuple[str, float, str]]:
        return [(r["target"], float(r["totals"][key]), f"{r['totals'][key]:.1f}") for r in reports
                if r["totals"][key] is not None]  # (a model that cannot decode has no decode figures)

    groups = [("time to first token (ms)", bars("ttft_ms")), ("decode ms/step", bars("decode_ms_per_step")),
              ("tokens/s/user", bars("tokens_per_s_per_user")), ("tokens/s at the batch", bars("tokens_per_s"))]
    return grouped_bars([(title, rows) for title, rows in groups if rows], "targets compared", "chart comparison")


def _plan(p: dict) -> str:
    head = f'<h3>{_e(p["target"])}</h3>'
    if p["devices"] <= 1:
        return head + "<p>One chip: nothing is sharded and no collectives run.</p>"
    out = [head, f"<p>{p['mesh'][0]}x{p['mesh'][1]} mesh, {_e(p['strategy_text'])}; residual stream "
                 f"{_e(p['residual_stream'])}.</p>",
           f'<p class="strategy">Strategy: {_e(p["strategy_reason"])}.</p>']
    if p["strategy"] == "2d":  # one column per mesh axis
        axes = p["axes"]
        names = sorted({k for ax in axes for k in p["placements_by_axis"][str(ax["axis"])]})
        header = ["parameter"] + [f"mesh axis {ax['axis']}: {ax['name']} ({ax['devices']})" for ax in axes]
        rows = [[k] + [p["placements_by_axis"][str(ax["axis"])].get(k, "replicate") for ax in axes] for k in names]
        out.append(_table(header, rows, cls="placements placements-2d"))
    else:
        out.append(_table(["parameter", "placement"], [[k, v] for k, v in p["placements"].items()], cls="placements"))
    coll = [["each layer", c["op"], str(c["dim"]), str(c["cluster_axis"]), c["of"], c["why"]]
            for c in p["collectives_per_layer"]]
    coll += [["outside the layers", c["op"], str(c["dim"]), str(c["cluster_axis"]), c["of"], c["why"]]
             for c in p["collectives_outside_layers"]]
    out.append(_table(["where", "collective", "dim", "cluster axis", "of", "why"], coll, cls="collectives"))
    by_axis = p.get("bytes_moved_per_token_per_layer_per_device_by_axis", {})
    split = (" (" + ", ".join(f"axis {a}: {n:,}" for a, n in by_axis.items()) + ")") if len(by_axis) > 1 else ""
    out.append(f'<p class="note">{p["bytes_moved_per_token_per_layer_per_device"]:,} bytes moved per token per layer '
               f"per device{split}.</p>")
    if p.get("strategies"):
        out.append(_strategies(p))
    out += [f'<p class="note">{_e(n)}</p>' for n in p["notes"]]
    return "\n".join(out)


def _strategies(p: dict) -> str:
    """The strategies the mesh allows, side by side (plan --json's `strategies`)."""
    rows = []
    for s in p["strategies"]:
        name = s["strategy"] + (" (chosen)" if s["chosen"] else "")
        if "refused" in s:
            rows.append([name, "refused: " + s["refused"], "", "", "", "", "", ""])
            continue
        by_axis = s["bytes_moved_per_token_per_layer_per_device_by_axis"]
        moved = ", ".join(f"axis {a}: {n:,}" for a, n in by_axis.items())
        rows.append([name, "yes" if s["fits"] else "no", _bytes(s["weights_per_chip"]),
                     f"{s['kv_cache_bytes_per_token']:,}", f"{s['max_context']:,}", moved,
                     f"{s['ttft_ms']:.1f}",
                     "none" if s["decode_ms_per_step"] is None else f"{s['decode_ms_per_step']:.2f}"])
    t = p["modelled_time"]
    return ("<p>Strategies compared:</p>"
            + _table(["strategy", "fits", "weights per chip", "KV cache B per token",
                      f"max context (batch {t['batch']})", "B moved per token per layer", "first token ms",
                      f"decode ms (context {t['context']:,})"],
                     rows, {2, 3, 4, 6, 7}, "strategies"))


def _value(c: dict) -> str:
    v, unit = float(c["value"]), c["unit"]
    if unit == "s":
        return f"{v * 1e6:g} µs"
    if abs(v) >= 1e6:
        return _count(v, unit)  # 1.00 GHz, 267.00 GB/s, 1.57 MB
    return f"{v:,.0f} {unit}" if v.is_integer() else f"{v:g} {unit}"


def _hardware(reports: list[dict]) -> str:
    """The constants of each chip (report --json's `hardware`) with their sources, and how each
    target's collectives run over its ethernet."""
    out, chips = [], {}
    for r in reports:  # targets with the same chip and constants share a table
        chips.setdefault((r["hardware"]["chip"], repr(r["hardware"]["constants"])), []).append(r)
    for (chip, _), rs in chips.items():
        rows = [[name, _value(c), c["source"]] for name, c in rs[0]["hardware"]["constants"].items()]
        names = ", ".join(r["target"] for r in rs)
        out.append(f"<h3>{_e(chip)} ({_e(names)})</h3>" + _table(["constant", "value", "source"], rows, {1},
                                                                   "hardware"))
    eth = []
    for r in reports:
        e = r["hardware"].get("ethernet") or {}
        if e.get("collective_topology_by_axis"):
            topo = ", ".join(f"axis {a}: {t}" for a, t in e["collective_topology_by_axis"].items())
            eth.append([r["target"], _value(e["line_rate"]), topo, e.get("wiring", ""), e["line_rate"]["source"]])
    if eth:
        out.append("<h3>ethernet</h3>" + _table(["target", "line rate", "collectives", "wiring", "source"], eth,
                                                cls="ethernet"))
    return "\n".join(out)


def render_html(diagram_svg: str, params: dict, reports: list[dict], plans: list[dict]) -> str:
    """The page. `diagram_svg` comes from diagram.to_svg (which escapes its labels); the dicts are
    those of params_report, cost_report (one per target) and plan_report (one per target)."""
    r0 = reports[0]
    # One colour per op class on every time chart, the slowest classes of the first decode first.
    names = [n for r in reports for key in ("decode", "prefill") if r[key] is not None for n in r[key]["by_op_class"]]
    colors = {n: i for i, n in enumerate(dict.fromkeys(names))}
    targets = ", ".join(r["target"] for r in reports)
    sections = [
        ("architecture", "Architecture", f'<div class="diagram-box">{diagram_svg}</div>'),
        ("parameters", "Parameters", _params(params)),
        ("memory", "Memory per chip", _memory(reports)),
        ("time", "Time by op class", "\n".join(_time(r, colors) for r in reports)),
    ]
    if len(reports) > 1:
        sections.append(("comparison", "Targets compared", _comparison(reports)))
    sections.append(("sharding", "Sharding plan and collectives", "\n".join(_plan(p) for p in plans)))
    sections.append(("assumptions", "What the model assumes and leaves out",
                     "<ul>" + "".join(f"<li>{_e(a)}</li>" for a in r0["assumptions"]) + "</ul><p>Leaves out:</p><ul>"
                     + "".join(f"<li>{_e(a)}</li>" for a in r0["leaves_out"]) + "</ul>"
))
    sections.append(("hardware", "Hardware constants and their sources", _hardware(reports)))
    body = "\n".join(f'<section id="{sid}"><h2>{_e(title)}</h2>\n{html}\n</section>' for sid, title, html in sections)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(r0["model"])}: ttspec report ({_e(targets)})</title>
<style>{CSS}</style>
<script>{SCRIPT}</script>
</head>
<body>
<pre id="ttspec-errors"></pre>
<h1>{_e(r0["model"])} on {_e(targets)}</h1>
<p class="note">A model from published hardware constants, not a measurement (ttspec/analysis/cost.py).
Weights {_e(r0["weights_dtype"])}; decode at batch {r0["batch"]} and context {r0["context"]:,}; prefill of a
{r0["prompt"]:,}-token prompt.</p>
{body}
</body>
</html>
"""
