"""What a `ttnn.graph` capture of one program step says, reduced to the facts a performance review needs.

The input is the list of node dicts `ttnn.graph.end_graph_capture()` returns (ttnn 0.81.1). Each node has a
`node_type`, `params`, `input_tensors` (the counters of its input tensor nodes), `connections` and a
`stacking_level`. What this module reads from it, and why each reading is sound:

- A **device op** is a `function_start` node whose params carry `program_factory_type`: ttnn records one for
  every device operation it dispatches, naming the program factory it resolved (one chip also records one
  `program_execution` per op; the summary keeps that count beside it as a cross-check). Host-only calls
  (`Tensor::reshape`, `Tensor::to_device`) carry no factory and are not device ops.
- Its **math fidelity** is the `math_fidelity=` of the `ComputeKernelConfig` in its arguments (ops without a
  compute kernel config, such as data movement, have none); a collective's **topology** (Linear, Ring) is the
  one ttnn resolved for the mesh axis it runs over: 0.81.1's fabric-aware collectives (AllGatherParams,
  ReduceScatterMinimalDirectParams) print `<cluster axis>, FabricConfig::<fabric>, array(Topology::<axis 0>,
  Topology::<axis 1>)`, one topology per mesh axis (a 1x8 mesh under FABRIC_1D_RING: (Linear, Ring)); older ones
  print a single `Topology::`, taken as it is.
- Its **inputs** are the tensor nodes named by `input_tensors`; its **outputs** the tensor nodes that its
  matching `function_end` connects to. Each tensor node gives dtype, layout, shape, bytes (`size`) and memory
  config (buffer type DRAM/L1, interleaved or sharded).
- **Host to device bytes** are the `size` of each HOST tensor that `Tensor::to_device` takes (what
  `ttnn.from_torch` uploads, in the host dtype it was given; one device's share), times the devices of the
  tensor it becomes;
  **device to host bytes** are the `size` of each DEVICE tensor that `Tensor::cpu` reads, once per device.
- **Segments**: the capturing process brackets each decoder layer's call with a named scope
  (`ttnn.graph.track_function_start(LAYER_MARK + str(i))`); everything dispatched between a layer's start and
  end belongs to that layer, what comes before the first layer to "before", after the last to "after". The
  grouping is therefore what the capture shows, not a division of totals.
"""

from __future__ import annotations

import re
from collections import Counter

LAYER_MARK = "ttspec.layer "
BEFORE, AFTER = "before", "after"

_FIDELITY = re.compile(r"math_fidelity=(\w+)")
_TOPOLOGY = re.compile(r"Topology::(\w+)")
_AXIS_TOPOLOGIES = re.compile(r"(\d+), FabricConfig::\w+, array\(([^)]*)\)")
_MEMORY_LAYOUT = re.compile(r"memory_layout=TensorMemoryLayout::(\w+)")
_BUFFER_TYPE = re.compile(r"buffer_type=BufferType::(\w+)")


def tensor_facts(node: dict) -> dict:
    """dtype, layout, shape, bytes and memory placement of one tensor node."""
    params = node.get("params") or {}
    memory = params.get("memory_config", "")
    if params.get("storage_type") == "HOST":
        placement = "host"
    else:
        layout = _MEMORY_LAYOUT.search(memory)
        buffer = _BUFFER_TYPE.search(memory)
        placement = f"{buffer.group(1) if buffer else '?'} {layout.group(1).lower() if layout else '?'}"
    shape = re.findall(r"\d+", params.get("shape", ""))
    return {"dtype": params.get("dtype", "?").replace("DataType::", "").lower(),
            "layout": params.get("layout", "?").replace("Layout::", ""),
            "shape": [int(s) for s in shape], "bytes": int(params.get("size", 0)), "memory": placement,
            "devices": max(1, params.get("device_tensors", "").count('"device_id"')),
            "address": params.get("address")}


def _ends(graph: list[dict]) -> dict[int, int]:
    """function_start counter -> its function_end counter (scopes nest, so a stack pairs them)."""
    ends, stack = {}, []
    for node in graph:
        if node["node_type"] == "function_start":
            stack.append(node["counter"])
        elif node["node_type"] == "function_end" and stack:
            ends[stack.pop()] = node["counter"]
    return ends


def _first(pattern: re.Pattern, node: dict) -> str | None:
    """The first match of `pattern` in a node's arguments (ttnn prints each argument as text)."""
    for argument in node.get("arguments") or ():
        found = pattern.search(str(argument))
        if found:
            return found.group(1)
    return None


def _topology(node: dict) -> str | None:
    """The topology of a collective over its cluster axis (see the module's docstring), else the first one printed."""
    for argument in node.get("arguments") or ():
        found = _AXIS_TOPOLOGIES.search(str(argument))
        if found:
            per_axis = _TOPOLOGY.findall(found.group(2))
            axis = int(found.group(1))
            return per_axis[axis] if axis < len(per_axis) else None
    return _first(_TOPOLOGY, node)


def walk(graph: list[dict], weights: dict[int, str] | None = None) -> dict:
    """Device ops and host transfers of a capture, each tagged with its segment (BEFORE, a layer index, AFTER)
    and the outermost Python-level ttnn call it came from. `weights`: device address -> weight name, for
    naming the weight operand of a matmul (the program's own list of weight matrices)."""
    weights = weights or {}
    by_counter = {node["counter"]: node for node in graph}
    ends = _ends(graph)
    ops, transfers, executions = [], [], Counter()
    segment, seen_layer, caller = BEFORE, False, None
    for node in graph:
        kind, params = node["node_type"], node.get("params") or {}
        name = params.get("name", "")
        if kind == "program_execution":
            executions[segment] += 1
        if kind == "function_end" and name.startswith(LAYER_MARK):
            segment = AFTER
            continue
        if kind != "function_start":
            continue
        if name.startswith(LAYER_MARK):
            segment, seen_layer = int(name[len(LAYER_MARK):]), True
            continue
        if not _inside_scope(node, graph, segment):
            caller = name
        if "program_factory_type" in params:
            ops.append(_device_op(node, by_counter, ends, segment, caller, weights))
        elif name in ("Tensor::to_device", "Tensor::cpu"):
            transfer = _transfer(node, by_counter, ends, segment, caller)
            if transfer:
                transfers.append(transfer)
    if not seen_layer:
        for op in ops:  # no layer marks: a model with no repeated layer list; everything is "before"
            op["segment"] = BEFORE
    return {"ops": ops, "transfers": transfers, "program_executions": dict(executions)}


def _inside_scope(node: dict, graph: list[dict], segment) -> bool:
    """Whether a function_start sits inside another Python-level call: the outermost call of a
    segment is at stacking level 1 (2 inside a layer's mark)."""
    return node["stacking_level"] > (1 if isinstance(segment, str) else 2)


def _device_op(node, by_counter, ends, segment, caller, weights) -> dict:
    params = node["params"]
    inputs = [tensor_facts(by_counter[i]) for i in node.get("input_tensors") or ()]
    end = by_counter.get(ends.get(node["counter"]), {})
    outputs = [tensor_facts(by_counter[c]) for c in end.get("connections") or () if c in by_counter
               and by_counter[c]["node_type"] == "tensor"]
    weight = next((weights[t["address"]] for t in inputs[1:2] if t["address"] in weights), None)
    factory = params["program_factory_type"].split("::")[-1]
    return {"op": params["name"], "factory": factory, "fidelity": _first(_FIDELITY, node),
            "topology": _topology(node), "caller": caller,
            "segment": segment, "weight": weight, "inputs": _strip(inputs), "outputs": _strip(outputs)}


def _strip(tensors: list[dict]) -> list[dict]:
    return [{k: v for k, v in t.items() if k != "address"} for t in tensors]


def _transfer(node, by_counter, ends, segment, caller) -> dict | None:
    """A host->device upload (a HOST tensor into Tensor::to_device: its bytes, which are one device's, times
    the devices of the tensor it becomes) or a device->host read (Tensor::cpu: a device tensor's bytes per
    device, times its devices)."""
    tensors = [tensor_facts(by_counter[i]) for i in node.get("input_tensors") or ()]
    if not tensors:
        return None
    tensor, upload = tensors[0], node["params"]["name"] == "Tensor::to_device"
    if upload and tensor["memory"] != "host":
        return None  # a no-op to_device of a tensor already there
    devices = tensor["devices"]
    if upload:
        end = by_counter.get(ends.get(node["counter"]), {})
        landed = [tensor_facts(by_counter[c]) for c in end.get("connections") or ()
                  if by_counter[c]["node_type"] == "tensor"]
        devices = landed[0]["devices"] if landed else 1
    return {"direction": "to_device" if upload else "to_host", "bytes": tensor["bytes"], "devices": devices,
            "dtype": tensor["dtype"], "layout": tensor["layout"], "shape": tensor["shape"], "segment": segment,
            "caller": caller}


def summarize(walked: dict, layers: int) -> dict:
    """Per-layer and per-step totals of a walk(): op counts by name, factory and fidelity, host bytes."""
    ops, transfers = walked["ops"], walked["transfers"]
    per_layer = [[op for op in ops if op["segment"] == i] for i in range(layers)]
    counts = [len(layer) for layer in per_layer]
    uploads = [sum(t["bytes"] * t["devices"] for t in transfers if t["segment"] == i and t["direction"] ==
                   "to_device") for i in range(layers)]
    step_up = sum(t["bytes"] * t["devices"] for t in transfers if t["direction"] == "to_device")
    step_down = sum(t["bytes"] * t["devices"] for t in transfers if t["direction"] == "to_host")
    first = per_layer[0] if per_layer else []
    return {
        "layers": layers,
        "device_ops_per_layer": counts,
        "device_ops_total": len(ops),
        "device_ops_before_layers": sum(op["segment"] == BEFORE for op in ops),
        "device_ops_after_layers": sum(op["segment"] == AFTER for op in ops),
        "program_executions": walked["program_executions"],
        "layer0_ops": Counter(op["op"] for op in first),
        "layer0_ops_in_uploads": sum(op["caller"] == "ttnn.from_torch" for op in first),
        "layer0_factories": Counter(f"{op['op']}: {op['factory']}" for op in first),
        "layer0_matmuls": [_matmul_row(op) for op in first if op["op"] == "MatmulDeviceOperation"],
        "layer0_memory": Counter(t["memory"] for op in first for t in op["inputs"] + op["outputs"]),
        "layer0_activation_dtypes": Counter(t["dtype"] for op in first for t in op["outputs"]),
        "ops_after_layers": Counter(f"{op['op']}: {op['factory']}" for op in ops if op["segment"] == AFTER),
        "head_matmuls": [_matmul_row(op) for op in ops if op["segment"] == AFTER
                         and op["op"] == "MatmulDeviceOperation"],
        "collectives": _collectives(first),
        "bytes_to_device_per_layer": uploads,
        "bytes_to_device_per_step": step_up,
        "bytes_to_device_outside_layers": step_up - sum(uploads),
        "bytes_to_host_per_step": step_down,
        "uploads_per_step": _transfer_rows(transfers, "to_device"),
        "reads_per_step": _transfer_rows(transfers, "to_host"),
    }


def _matmul_row(op: dict) -> dict:
    weight = op["inputs"][1] if len(op["inputs"]) > 1 else {}
    return {"weight": op["weight"], "factory": op["factory"], "fidelity": op["fidelity"], "caller": op["caller"],
            "weight_dtype": weight.get("dtype"), "weight_memory": weight.get("memory"),
            "weight_shape": weight.get("shape"), "activation_memory": op["inputs"][0]["memory"],
            "output_dtype": op["outputs"][0]["dtype"] if op["outputs"] else None}


_CCL = ("AllGather", "ReduceScatter", "AllReduce", "AllBroadcast", "Ccl", "AllToAll")


def _collectives(ops: list[dict]) -> list[dict]:
    """Each collective's factory, topology and payload (its first input: dtype and one device's shape)."""
    return [{"op": op["op"], "factory": op["factory"], "topology": op["topology"],
             "payload_dtype": op["inputs"][0]["dtype"] if op["inputs"] else None,
             "payload_shape": op["inputs"][0]["shape"] if op["inputs"] else None}
            for op in ops if op["op"].startswith(_CCL)]  # not LayerNormPreAllGather: local work around one


def _transfer_rows(transfers: list[dict], direction: str) -> Counter:
    """(segment kind, caller, dtype, shape, bytes x devices) -> how many per step."""
    rows = Counter()
    for t in transfers:
        if t["direction"] == direction:
            where = "layer" if isinstance(t["segment"], int) else t["segment"]
            tensor = f"{t['dtype']} {t['layout']} {t['shape']}"
            rows[f"{where}: {t['caller']} {tensor} {t['bytes']:,} B x {t['devices']}"] += 1
    return rows
