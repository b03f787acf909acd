"""`ttspec params` as a table: the report of analysis/params_report.py rendered for people."""

from __future__ import annotations

from ..ops import ATTEND


def _si(n: float, unit: str) -> str:
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.2f} {prefix}{unit}"
    return f"{n:.0f} {unit}"


def render_table(report: dict) -> str:
    total = report["total"]
    rows: list[tuple[str, str, str, str, str]] = []

    def walk(c: dict, depth: int) -> None:
        name = "  " * depth + c["name"] + (f" × {c['repeat']}" if "repeat" in c else "")
        note = ""
        tied = [t for t in c["tensors"] if t["tied_to"]]
        if tied:
            note = "tied to " + ", ".join(t["tied_to"] for t in tied)
        elif not c["children"] and c["tensors"]:
            note = " ".join(f"{t['name']}{t['shape']}" for t in c["tensors"])
        share = f"{100 * c['params'] / total:.1f}%" if total and depth == 0 else ""
        rows.append((name, c["block"], f"{c['params']:,}", share, note))
        if "structures" in c:  # layers that differ in parameters: each structure, its layers, one layer
            for s in c["structures"]:
                rows.append(("  " * (depth + 1) + f"({s['layers_text']}, per layer)", "", f"{s['per_layer']:,}",
                             "", ""))
                for child in s["children"]:
                    walk(child, depth + 2)
            return
        if "repeat" in c:
            variants = f", {c['variants']} variants" if c.get("variants") else ""
            rows.append(("  " * (depth + 1) + f"(per layer{variants})", "", f"{c['per_layer']:,}", "", ""))
        for child in c["children"]:
            walk(child, depth + 1)

    for c in report["components"]:
        walk(c, 0)
    widths = [max(len(r[i]) for r in rows + [("component", "block", "params", "", "")]) for i in range(4)]
    lines = [f"{report['model']}  ({report['spec']})", ""]
    header = ("component", "block", "params", "share", "")
    for r in [header] + rows:
        lines.append(f"  {r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]:>6}  {r[4]}".rstrip())
    lines.append("  " + "-" * (widths[0] + widths[1] + widths[2] + 12))
    lines.append(f"  {'total':<{widths[0]}}  {'':<{widths[1]}}  {total:>{widths[2]},}")
    active = report.get("active", total)
    if active != total:  # a mixture of experts: each token uses its top-k experts' parameters
        lines.append(f"  {'active':<{widths[0]}}  {'per token':<{widths[1]}}  {active:>{widths[2]},}  "
                     f"{100 * active / total:5.1f}%")
    lines.append("")
    kinds = " · ".join(f"{k} {v:,}" for k, v in report["by_kind"].items())
    lines.append(f"  by kind:     {kinds}")
    for c in report["components"]:
        for s in c.get("structures", [c] if "repeat" in c else []):
            per = " · ".join(f"{k} {v:,}" for k, v in s["per_layer_by_kind"].items())
            which = s["layers_text"] if "layers" in s else f"{c['name']}, {c['repeat']} layers"
            lines.append(f"  per layer:   {per}   ({which} of {c['block']})")
    b = report["bytes"]
    lines.append("  weights:     " + " · ".join(f"{k} {_si(v, 'B')}" for k, v in b.items()))
    f = report["flops_per_token"]
    lines.append(f"  forward:     {_si(f['total'], 'FLOP')}/token at seq {f['seq']}"
                 + (f" (attention scores and values {_si(f['by_op'].get(ATTEND.name, 0), 'FLOP')})"
                    if f["by_op"].get(ATTEND.name) else ""))
    return "\n".join(lines)
