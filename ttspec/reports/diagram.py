"""The architecture as a diagram: mermaid (as the lesson draws) or Graphviz dot.

One box per component (module) rather than per primitive op; a repeated block is drawn
once, as a subgraph labelled with its count.
"""

from __future__ import annotations

import re

from ..ir.graph import Graph, Model, Node, layer_structures, layer_variants, layers_text
from ..ops import REGISTRY


def _symbol(node: Node) -> str | None:
    """The infix symbol an op is drawn as (`+`), if it has one."""
    opdef = REGISTRY.get(node.op)
    return opdef.symbol if opdef else None


def _group(node: Node) -> str:
    """A component's box: its top-level module, or for a node outside any module `_` + its id.
    Labels never start with `_` (reserved), so an input, or an op outside a module, never shares
    a box with a component of the same name (`input mul` beside `... as mul`)."""
    return node.module.split(".")[0] if node.module else "_" + node.id


def _collapse(graph: Graph):
    """The quotient graph of components: returns (group -> its first node, edges between groups)."""
    import networkx as nx

    g = nx.DiGraph()
    for node in graph.topo():
        group = _group(node)
        if group not in g:
            g.add_node(group, first=node)
        g.add_edges_from((_group(graph.node(src)), group) for src in node.inputs
                         if _group(graph.node(src)) != group)
    return {n: g.nodes[n]["first"] for n in nx.topological_sort(g)}, list(g.edges)


def _label(graph: Graph, group: str, first: Node) -> str:
    if first.is_input:
        return f"{first.id}<br/>{first.type}"
    if _symbol(first) and not first.module:
        return _symbol(first)
    info = graph.modules.get(group)
    if info is None:
        return first.op
    if info.repeat is not None:
        variants = len(layer_variants(first)) if first.is_repeat else 1
        structures = layer_structures(first) if variants > 1 else []
        # The body drawn is layer 0's; where the layers differ in structure the label says which layers it is.
        shown = f", drawn: {layers_text(structures[0][1])}" if len(structures) > 1 else ""
        return f"{group}: {info.block} × {info.repeat}" + (f" ({variants} variants{shown})" if variants > 1 else "")
    return f"{group}<br/>{info.block}" if info.block != group else group


class _Idents:
    """Diagram node ids, one per (enclosing prefix, group), never two alike: `layers_` + `attn` inside
    a repeat and a top-level component `layers_attn` get different ids."""

    def __init__(self):
        self.ids: dict[tuple[str, str], str] = {}
        self.used: set[str] = set()

    def __call__(self, prefix: str, name: str) -> str:
        key = (prefix, name)
        if key not in self.ids:
            base = ident = prefix + re.sub(r"\W", "_", name)
            n = 1
            while ident in self.used:
                n += 1
                ident = f"{base}_{n}"
            self.ids[key] = ident
            self.used.add(ident)
        return self.ids[key]


def to_mermaid(model: Model) -> str:
    lines = ["graph TD"]
    _ident = _Idents()

    def emit(graph: Graph, prefix: str, indent: str) -> None:
        groups, edges = _collapse(graph)
        for g, first in groups.items():
            nid = _ident(prefix, g)
            if first.is_repeat:
                body: Graph = first.attrs.body
                lines.append(f'{indent}subgraph {nid}["{_label(graph, g, first)}"]')
                emit(body, nid + "_", indent + "    ")
                lines.append(f"{indent}end")
            elif first.is_input and prefix:
                lines.append(f'{indent}{nid}(["layer input"])')
            else:
                shape = ('(["', '"])') if first.is_input else ('(("', '"))') if _symbol(first) \
                    and not first.module else ('["', '"]')
                lines.append(f"{indent}{nid}{shape[0]}{_label(graph, g, first)}{shape[1]}")
        for s, d in edges:
            lines.append(f"{indent}{_ident(prefix, s)} --> {_ident(prefix, d)}")

    emit(model.graph, "", "    ")
    for name, nid in model.graph.outputs.items():
        out = _ident("__out_", name)  # `__`: no group starts so
        lines.append(f'    {out}(["{name}<br/>{model.graph.node(nid).type}"])')
        lines.append(f"    {_ident('', _group(model.graph.node(nid)))} --> {out}")
    return "\n".join(lines) + "\n"


def to_dot(model: Model) -> str:
    lines = [f'digraph "{model.name}" {{', "    rankdir=TB;", '    node [shape=box, fontname="Helvetica"];']
    _ident = _Idents()

    def emit(graph: Graph, prefix: str, indent: str) -> None:
        groups, edges = _collapse(graph)
        for g, first in groups.items():
            nid = _ident(prefix, g)
            label = _label(graph, g, first).replace("<br/>", "\\n")
            if first.is_repeat:
                lines.append(f"{indent}subgraph cluster_{nid} {{")
                lines.append(f'{indent}    label="{label}";')
                emit(first.attrs.body, nid + "_", indent + "    ")
                lines.append(f"{indent}}}")
            else:
                shape = "ellipse" if first.is_input else "circle" if _symbol(first) \
                    and not first.module else "box"
                if first.is_input and prefix:
                    label = "layer input"
                lines.append(f'{indent}{nid} [label="{label}", shape={shape}];')
        for s, d in edges:
            src, dst = graph.node(groups[s].id), groups[d]
            tail, head = _anchor(graph, s, src, prefix, "out", _ident), _anchor(graph, d, dst, prefix, "in", _ident)
            lines.append(f"{indent}{tail} -> {head};")

    emit(model.graph, "", "    ")
    for name, nid in model.graph.outputs.items():
        out = _ident("__out_", name)  # `__`: no group starts so
        lines.append(f'    {out} [label="{name}\\n{model.graph.node(nid).type}", shape=ellipse];')
        group = _group(model.graph.node(nid))
        lines.append(f"    {_anchor(model.graph, group, model.graph.node(nid), '', 'out', _ident)} -> {out};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _anchor(graph: Graph, group: str, node: Node, prefix: str, role: str, _ident: _Idents) -> str:
    """dot edges cannot end at a cluster; use the repeat body's input or output node."""
    if node.is_repeat:
        body: Graph = node.attrs.body
        inner = body.inputs[0] if role == "in" else body.outputs["out"]
        return _anchor(body, _group(body.node(inner)), body.node(inner), _ident(prefix, group) + "_", role,
                       _ident)
    return _ident(prefix, group)


# ---------------------------------------------------------------- SVG (ttspec report --html)
_LINE, _GAP, _PAD = 16, 30, 14


class _Laid:
    """A laid-out graph: its size and its SVG elements at an offset."""

    def __init__(self, w: float, h: float, draw):
        self.w, self.h, self.draw = w, h, draw


def _node_svg(kind: str, label: str, x: float, y: float, w: float, h: float) -> str:
    from .svg import esc

    lines = label.split("<br/>")
    if kind == "input":
        shape = f'<ellipse cx="{x + w / 2:.1f}" cy="{y + h / 2:.1f}" rx="{w / 2:.1f}" ry="{h / 2:.1f}"'
    elif kind == "symbol":
        shape = f'<circle cx="{x + w / 2:.1f}" cy="{y + h / 2:.1f}" r="{h / 2:.1f}"'
    else:
        shape = f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="4"'
    out = [f'<g class="node">{shape} fill="#eef3fb" stroke="#4e79a7"/>']
    top = y + h / 2 - (len(lines) - 1) * _LINE / 2 + 4
    for i, line in enumerate(lines):
        out.append(f'<text x="{x + w / 2:.1f}" y="{top + i * _LINE:.1f}" text-anchor="middle">{esc(line)}</text>')
    return "".join(out) + "</g>"


def _lay(graph: Graph, extra: list[tuple[str, str, str]] = (), body: bool = False) -> _Laid:
    """Rows of topological generations of the component graph, repeat bodies nested as boxes;
    an edge to the next row is a straight arrow, a longer one (a residual) runs down the right."""
    import networkx as nx

    from .svg import esc, text_width

    groups, edges = _collapse(graph)
    boxes: dict[str, tuple[str, str, float, float, _Laid | None]] = {}
    for g, first in groups.items():
        label = _label(graph, g, first)
        if first.is_repeat:
            inner = _lay(first.attrs.body, body=True)
            boxes[g] = ("repeat", label, max(inner.w, text_width(label)) + 2 * _PAD, inner.h + _LINE + 2 * _PAD, inner)
            continue
        kind = "input" if first.is_input else "symbol" if _symbol(first) and not first.module else "box"
        if first.is_input and body:
            label = "layer input"
        lines = label.split("<br/>")
        w = max(text_width(s) for s in lines) + (28 if kind == "input" else 20)
        h = len(lines) * _LINE + 12
        if kind == "symbol":
            w = h = 28
        boxes[g] = (kind, label, w, h, None)
    dag = nx.DiGraph()
    dag.add_nodes_from(groups)
    dag.add_edges_from(edges)
    for name, label, src in extra:  # the outputs
        lines = label.split("<br/>")
        boxes[name] = ("input", label, max(text_width(s) for s in lines) + 28, len(lines) * _LINE + 12, None)
        dag.add_edge(src, name)
        edges = [*edges, (src, name)]
    rows = [sorted(gen, key=list(dag.nodes).index) for gen in nx.topological_generations(dag)]
    rank = {g: i for i, gen in enumerate(rows) for g in gen}
    width = max(sum(boxes[g][2] for g in gen) + _GAP * (len(gen) - 1) for gen in rows)
    pos: dict[str, tuple[float, float]] = {}
    y = 0.0
    for gen in rows:
        row_w = sum(boxes[g][2] for g in gen) + _GAP * (len(gen) - 1)
        row_h = max(boxes[g][3] for g in gen)
        x = (width - row_w) / 2
        for g in gen:
            pos[g] = (x, y + (row_h - boxes[g][3]) / 2)
            x += boxes[g][2] + _GAP
        y += row_h + _GAP
    long_edges = [e for e in edges if rank[e[1]] - rank[e[0]] != 1]
    total_w = width + 12 * len(long_edges) + (8 if long_edges else 0)

    def draw(ox: float, oy: float) -> list[str]:
        out = []
        for g, (kind, label, w, h, inner) in boxes.items():
            x, y0 = pos[g][0] + ox, pos[g][1] + oy
            if inner is not None:
                out.append(f'<g class="repeat"><rect x="{x:.1f}" y="{y0:.1f}" width="{w:.1f}" height="{h:.1f}" '
                           f'rx="6" fill="#f7f7f2" stroke="#888" stroke-dasharray="5 3"/>'
                           f'<text x="{x + _PAD:.1f}" y="{y0 + _LINE:.1f}" font-weight="bold">{esc(label)}</text>')
                out += inner.draw(x + (w - inner.w) / 2, y0 + _LINE + _PAD)
                out.append("</g>")
            else:
                out.append(_node_svg(kind, label, x, y0, w, h))
        k = 0
        for s, d in edges:
            (sx, sy), (dx, dy) = pos[s], pos[d]
            sw, sh, dw, dh = boxes[s][2], boxes[s][3], boxes[d][2], boxes[d][3]
            if rank[d] - rank[s] == 1:
                path = f"M{ox + sx + sw / 2:.1f},{oy + sy + sh:.1f} L{ox + dx + dw / 2:.1f},{oy + dy:.1f}"
            else:
                k += 1
                xr = ox + width + 12 * k
                path = (f"M{ox + sx + sw:.1f},{oy + sy + sh / 2:.1f} H{xr:.1f} V{oy + dy + dh / 2:.1f} "
                        f"H{ox + dx + dw:.1f}")
            out.append(f'<path class="edge" d="{path}" fill="none" stroke="#555" marker-end="url(#ttspec-arrow)"/>')
        return out

    return _Laid(total_w, y - _GAP, draw)


def to_svg(model: Model) -> str:
    """The component diagram as inline SVG (no Graphviz needed): the same boxes as to_dot."""
    from .svg import esc

    outs = [("__out_" + name, f"{name}<br/>{model.graph.node(nid).type}", _group(model.graph.node(nid)))
            for name, nid in model.graph.outputs.items()]
    laid = _lay(model.graph, outs)
    w, h = laid.w + 20, laid.h + 20
    return (f'<svg class="diagram" role="img" width="{w:.0f}" height="{h:.0f}" viewBox="0 0 {w:.0f} {h:.0f}" '
            f'font-family="sans-serif" font-size="12"><title>{esc(model.name)}: architecture</title>'
            '<defs><marker id="ttspec-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
            'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>'
            + "".join(laid.draw(10, 10)) + "</svg>")

