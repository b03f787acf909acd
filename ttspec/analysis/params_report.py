"""Parameter, memory and FLOP accounting, as a JSON-able dict and as a table.

The dict is the stable `ttspec params --json` format (schema "ttspec-params/1"); see
docs/params-json.md. Everything is exact integer arithmetic over the graph IR.
"""

from __future__ import annotations

from ..ir.graph import Graph, Model, ModuleInfo, Param, layer_variants
from ..ops import ATTEND, REGISTRY
from .interpreters import count_params, forward_flops

SCHEMA = "ttspec-params/1"
# Bytes per value for each weight format; block-float formats store 1024 values (one 32x32
# tile) as 1024 (bfloat8_b) or 512 (bfloat4_b) mantissa bytes plus 64 bytes of exponents.
DTYPE_BYTES = {"fp32": (4, 1), "bf16": (2, 1), "bfloat8_b": (1088, 1024), "bfloat4_b": (576, 1024)}


def tensor_bytes(numel: int, dtype: str) -> int:
    num, per = DTYPE_BYTES[dtype]
    if per == 1:
        return numel * num
    return -(-numel // per) * num  # whole blocks of 1024 values


def weight_bytes(graph: Graph) -> dict[str, int]:
    out = dict.fromkeys(DTYPE_BYTES, 0)
    for p in graph.params.values():
        if p.tied_to is None:
            for dtype in out:
                out[dtype] += tensor_bytes(p.numel, dtype)
    for node in graph.repeats():
        for variant, n in layer_variants(node):
            body = weight_bytes(variant)
            for dtype in out:
                out[dtype] += n * body[dtype]
    return out


def kind_of(graph: Graph, module: str) -> str:
    path = module
    while path:
        info = graph.modules.get(path)
        if info is not None and info.kind is not None:
            return info.kind
        path = path.rpartition(".")[0]
    info = graph.modules.get(module)
    opdef = REGISTRY.get(info.block) if info else None
    return opdef.kind if opdef and opdef.kind else "other"


def params_by_kind(graph: Graph) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in graph.params.values():
        if p.tied_to is None:
            k = kind_of(graph, p.module)
            out[k] = out.get(k, 0) + p.numel
    for node in graph.repeats():
        for body, n in layer_variants(node):
            for k, v in params_by_kind(body).items():
                out[k] = out.get(k, 0) + n * v
    return dict(sorted(out.items()))


class _Components:
    """One graph's components indexed once: each one's children, its own tensors, the parameters in
    its subtree and its `repeat` node. Asking the graph per component (scanning every module and
    every parameter each time) made `params` quadratic on specs that write their layers out."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.children: dict[str, list[ModuleInfo]] = {}
        for path, info in graph.modules.items():
            self.children.setdefault(path.rpartition(".")[0], []).append(info)
        self.own: dict[str, list[Param]] = {}
        self.subtree: dict[str, int] = {}  # untied parameters at or below each module path
        for p in graph.params.values():
            self.own.setdefault(p.module, []).append(p)
            if p.tied_to is None:
                path = p.module
                while True:
                    self.subtree[path] = self.subtree.get(path, 0) + p.numel
                    if "." not in path:
                        break
                    path = path.rpartition(".")[0]
        self.repeats = {}
        for node in graph.repeats():
            self.repeats.setdefault(node.module, node)


def _component(index: _Components, info: ModuleInfo) -> dict:
    graph = index.graph
    entry = {
        "name": info.path.rpartition(".")[2],
        "path": info.path,
        "block": info.block,
        "kind": kind_of(graph, info.path),
        "params": index.subtree.get(info.path, 0),
        "tensors": [_tensor(p) for p in index.own.get(info.path, ())],
        "children": [_component(index, c) for c in index.children.get(info.path, ())],
    }
    if info.repeat is not None:
        node = index.repeats[info.path]
        body: Graph = node.attrs["body"]
        per_layer = count_params(body)
        inner = _Components(body)
        entry.update({
            "repeat": info.repeat,
            "params": per_layer * info.repeat,
            "per_layer": per_layer,
            "per_layer_by_kind": params_by_kind(body),
            "tensors": [_tensor(p) for p in inner.own.get("", ())],
            "children": [_component(inner, c) for c in inner.children.get("", ())],
        })
        variants = len(layer_variants(node))
        if variants > 1:  # the layers differ in behaviour only: the parameters are layer 0's for all
            entry["variants"] = variants
    return entry


def _tensor(p: Param) -> dict:
    return {"name": p.name.rpartition(".")[2], "shape": list(p.shape), "numel": p.numel, "tied_to": p.tied_to}


def _flat_parameters(graph: Graph, prefix: str = "", repeat: int | None = None) -> list[dict]:
    rows = []
    for p in graph.params.values():
        rows.append({"name": prefix + p.name, "shape": list(p.shape), "numel": p.numel,
                     "tied_to": p.tied_to, "repeat": repeat})
    for node in graph.repeats():
        # Variants have the same parameters: layer 0's body names them for every layer.
        rows.extend(_flat_parameters(node.attrs["body"], f"{prefix}{node.module}.*.", node.attrs["count"]))
    return rows


def params_report(model: Model, seq: int | None = None) -> dict:
    g = model.graph
    if seq is None:
        seq = model.bounds.get("seq", 1)
    flops = forward_flops(model, seq=seq)
    tokens = seq
    total = count_params(g)
    top = _Components(g)
    return {
        "schema": SCHEMA,
        "model": model.name,
        "spec": model.file,
        "total": total,
        "bytes": weight_bytes(g),
        "by_kind": params_by_kind(g),
        "components": [_component(top, m) for m in top.children.get("", ())],
        "parameters": _flat_parameters(g),
        "flops_per_token": {
            "seq": seq,
            "total": flops.total // tokens,
            "by_op": {k: v // tokens for k, v in sorted(flops.by_op.items())},
        },
    }


# ---------------------------------------------------------------- text rendering
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
    lines.append("")
    kinds = " · ".join(f"{k} {v:,}" for k, v in report["by_kind"].items())
    lines.append(f"  by kind:     {kinds}")
    for c in report["components"]:
        if "repeat" in c:
            per = " · ".join(f"{k} {v:,}" for k, v in c["per_layer_by_kind"].items())
            lines.append(f"  per layer:   {per}   ({c['name']}, {c['repeat']} layers of {c['block']})")
    b = report["bytes"]
    lines.append("  weights:     " + " · ".join(f"{k} {_si(v, 'B')}" for k, v in b.items()))
    f = report["flops_per_token"]
    lines.append(f"  forward:     {_si(f['total'], 'FLOP')}/token at seq {f['seq']}"
                 + (f" (attention scores and values {_si(f['by_op'].get(ATTEND.name, 0), 'FLOP')})"
                    if f["by_op"].get(ATTEND.name) else ""))
    return "\n".join(lines)
