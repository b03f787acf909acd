"""The architecture as a diagram: mermaid (as the lesson draws) or Graphviz dot.

One box per component (module) rather than per primitive op; a repeated block is drawn
once, as a subgraph labelled with its count.
"""

from __future__ import annotations

import re

from ..ir.graph import Graph, Model, Node, layer_variants
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
    if first.op == "input":
        return f"{first.id}<br/>{first.type}"
    if _symbol(first) and not first.module:
        return _symbol(first)
    info = graph.modules.get(group)
    if info is None:
        return first.op
    if info.repeat is not None:
        variants = len(layer_variants(first)) if first.op == "repeat" else 1
        # The body drawn is layer 0's; variants differ in behaviour only (same components and weights).
        return f"{group}: {info.block} × {info.repeat}" + (f" ({variants} variants)" if variants > 1 else "")
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
            if first.op == "repeat":
                body: Graph = first.attrs["body"]
                lines.append(f'{indent}subgraph {nid}["{_label(graph, g, first)}"]')
                emit(body, nid + "_", indent + "    ")
                lines.append(f"{indent}end")
            elif first.op == "input" and prefix:
                lines.append(f'{indent}{nid}(["layer input"])')
            else:
                shape = ('(["', '"])') if first.op == "input" else ('(("', '"))') if _symbol(first) \
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
            if first.op == "repeat":
                lines.append(f"{indent}subgraph cluster_{nid} {{")
                lines.append(f'{indent}    label="{label}";')
                emit(first.attrs["body"], nid + "_", indent + "    ")
                lines.append(f"{indent}}}")
            else:
                shape = "ellipse" if first.op == "input" else "circle" if _symbol(first) \
                    and not first.module else "box"
                if first.op == "input" and prefix:
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
    if node.op == "repeat":
        body: Graph = node.attrs["body"]
        inner = body.inputs[0] if role == "in" else body.outputs["out"]
        return _anchor(body, _group(body.node(inner)), body.node(inner), _ident(prefix, group) + "_", role,
                       _ident)
    return _ident(prefix, group)
