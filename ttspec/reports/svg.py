"""A small SVG chart writer for `ttspec report --html`: horizontal bars, stacked bars against a
limit, and grouped comparisons. No plotting library: every chart is a few rectangles and texts,
and every string that reaches the SVG passes through `esc` (labels come from specs)."""

from __future__ import annotations

from html import escape

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac")
FONT = 12
CHAR_W = 7.0  # an estimate of a 12px sans-serif character's width
ROW = 22


def esc(text: object) -> str:
    return escape(str(text), quote=True)


def text_width(text: str, size: int = FONT) -> float:
    return len(text) * CHAR_W * size / FONT


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def svg(width: float, height: float, body: list[str], cls: str, title: str) -> str:
    return (f'<svg class="{esc(cls)}" role="img" width="{width:.0f}" '
            f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" font-family="sans-serif" '
            f'font-size="{FONT}"><title>{esc(title)}</title>' + "".join(body) + "</svg>")


def _text(x: float, y: float, s: str, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{esc(s)}</text>'


def _rect(x: float, y: float, w: float, h: float, fill: str, tip: str, cls: str = "") -> str:
    c = f' class="{esc(cls)}"' if cls else ""
    return (f'<rect{c} x="{x:.1f}" y="{y:.1f}" width="{max(w, 0.0):.1f}" height="{h:.1f}" fill="{fill}">'
            f"<title>{esc(tip)}</title></rect>")


def hbars(rows: list[tuple[str, float, str]], title: str, cls: str, width: int = 640,
          colors: dict[str, int] | None = None) -> str:
    """One bar per row: (label, value, the value as text); `colors` fixes a label's colour index,
    so that one name has one colour across charts."""
    label_w = max([text_width(r[0]) for r in rows] + [40]) + 10
    value_w = max([text_width(r[2]) for r in rows] + [40]) + 10
    span = max(width - label_w - value_w, 80)
    top = max([r[1] for r in rows] + [0]) or 1.0
    body = [_text(0, 14, title, extra=' font-weight="bold"')]
    for i, (label, value, shown) in enumerate(rows):
        y = 24 + i * ROW
        w = span * value / top
        body.append(_text(label_w - 6, y + 14, label, "end"))
        fill = color(colors[label] if colors and label in colors else i)
        body.append(_rect(label_w, y + 2, w, ROW - 6, fill, f"{label}: {shown}", "bar"))
        body.append(_text(label_w + w + 4, y + 14, shown))
    return svg(width, 30 + len(rows) * ROW, body, cls, title)


def stacked_bars(rows: list[tuple[str, list[tuple[str, float]], float, str]], legend: list[str], title: str,
                 cls: str, fmt, width: int = 760) -> str:
    """One stacked bar per row: (label, [(segment, value)], limit, the limit's name), drawn on one
    scale with a marker at each row's limit; segment colours follow `legend`'s order."""
    label_w = max([text_width(r[0]) for r in rows] + [40]) + 10
    span = width - label_w - 150
    top = max([max(sum(v for _, v in segs), limit) for _, segs, limit, _ in rows] + [1.0])
    body = [_text(0, 14, title, extra=' font-weight="bold"')]
    y = 24
    for label, segs, limit, limit_name in rows:
        x = label_w
        body.append(_text(label_w - 6, y + 20, label, "end"))
        for name, value in segs:
            w = span * value / top
            body.append(_rect(x, y + 6, w, 22, color(legend.index(name)), f"{label}: {name} {fmt(value)}",
                              "segment"))
            x += w
        total = sum(v for _, v in segs)
        lx = label_w + span * limit / top
        body.append(f'<line class="limit" x1="{lx:.1f}" y1="{y:.1f}" x2="{lx:.1f}" y2="{y + 34:.1f}" '
                    f'stroke="#222" stroke-width="2" stroke-dasharray="4 2"><title>{esc(limit_name)} '
                    f"{esc(fmt(limit))}</title></line>")
        state = "fits" if total <= limit else "does NOT fit"
        body.append(_text(max(x, lx) + 6, y + 20, f"{fmt(total)} of {fmt(limit)} {limit_name}: {state}"))
        y += 40
    x = 0.0
    for i, name in enumerate(legend):
        body.append(_rect(x, y + 4, 12, 12, color(i), name))
        body.append(_text(x + 16, y + 14, name))
        x += 30 + text_width(name)
    return svg(max(width, x + 10), y + 24, body, cls, title)


def grouped_bars(groups: list[tuple[str, list[tuple[str, float, str]]]], title: str, cls: str) -> str:
    """Small vertical bar charts side by side, one per group: (metric, [(label, value, shown)])."""
    panel_w, panel_h, top_pad = 220, 180, 40
    body = [_text(0, 14, title, extra=' font-weight="bold"')]
    for g, (metric, bars) in enumerate(groups):
        x0 = g * (panel_w + 20)
        body.append(_text(x0 + panel_w / 2, 34, metric, "middle"))
        top = max([b[1] for b in bars] + [0]) or 1.0
        bw = min(50.0, (panel_w - 20) / max(len(bars), 1) - 8)
        for i, (label, value, shown) in enumerate(bars):
            h = (panel_h - 40) * value / top
            x = x0 + 10 + i * (bw + 8)
            base = top_pad + panel_h - 20
            body.append(_rect(x, base - h, bw, h, color(i), f"{metric}, {label}: {shown}", "bar"))
            body.append(_text(x + bw / 2, base - h - 4, shown, "middle", ' font-size="10"'))
            body.append(_text(x + bw / 2, base + 14, label, "middle"))
    return svg(len(groups) * (panel_w + 20), top_pad + panel_h, body, cls, title)
