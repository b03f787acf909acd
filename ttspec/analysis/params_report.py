"""Parameter, memory and FLOP accounting, as a JSON-able dict (ttspec/reports/params_table.py renders it).

The dict is the stable `ttspec params --json` format (schema "ttspec-params/1"); see
docs/params-json.md. Everything is exact integer arithmetic over the graph IR.
"""

from __future__ import annotations

from ..ir.graph import Graph, Model, ModuleInfo, Param, layer_structures, layer_variants, layers_text
from ..ops.queries import kind_of
from ..weight_formats import DTYPE_BYTES, tensor_bytes
from .interpreters import count_active, count_params, forward_flops

SCHEMA = "ttspec-params/1"


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
        structures = [_structure(body, layers) for body, layers in layer_structures(node)]
        first = structures[0]
        entry.update({
            "repeat": info.repeat,
            "params": sum(s["per_layer"] * len(s["layers"]) for s in structures),
            "per_layer": first["per_layer"],
            "per_layer_by_kind": first["per_layer_by_kind"],
            "tensors": first["tensors"],
            "children": first["children"],
        })
        variants = len(layer_variants(node))
        if variants > 1:
            entry["variants"] = variants
        if len(structures) > 1:  # layers that differ in parameters: each structure with its layers
            entry["structures"] = structures
    return entry


def _structure(body: Graph, layers: list[int]) -> dict:
    """One layer structure of a repeat: the layers that have it and one layer's parameters."""
    inner = _Components(body)
    return {
        "layers": layers,
        "layers_text": layers_text(layers),
        "per_layer": count_params(body),
        "per_layer_by_kind": params_by_kind(body),
        "tensors": [_tensor(p) for p in inner.own.get("", ())],
        "children": [_component(inner, c) for c in inner.children.get("", ())],
    }


def _tensor(p: Param) -> dict:
    return {"name": p.name.rpartition(".")[2], "shape": list(p.shape), "numel": p.numel, "tied_to": p.tied_to}


def _flat_parameters(graph: Graph, prefix: str = "", repeat: int | None = None) -> list[dict]:
    rows = []
    for p in graph.params.values():
        rows.append({"name": prefix + p.name, "shape": list(p.shape), "numel": p.numel,
                     "tied_to": p.tied_to, "repeat": repeat})
    for node in graph.repeats():
        # one row per parameter name and shape, `*` for the layer; `layers` lists the layers that hold it
        # where not all do (layers that differ in structure)
        structures = layer_structures(node)
        if len(structures) == 1:
            rows.extend(_flat_parameters(structures[0][0], f"{prefix}{node.module}.*.", node.attrs.count))
            continue
        held: dict[tuple, tuple[Param, list[int]]] = {}
        for body, layers in structures:
            for p in body.params.values():
                held.setdefault((p.name, p.shape, p.tied_to), (p, []))[1].extend(layers)
        for p, layers in held.values():
            row = {"name": f"{prefix}{node.module}.*.{p.name}", "shape": list(p.shape), "numel": p.numel,
                   "tied_to": p.tied_to, "repeat": len(layers)}
            if len(layers) < node.attrs.count:
                row["layers"] = sorted(layers)
            rows.append(row)
        for body, layers in structures:  # repeats inside the layers, per structure (after the body's own rows)
            rows.extend(_flat_parameters(body, f"{prefix}{node.module}.*.", len(layers))[len(body.params):])
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
        "active": count_active(g),
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
