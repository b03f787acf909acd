"""Runs inside a fresh mock-device process for tests/test_moe_mock.py (the mock needs its environment before
`import ttnn`): opens the target's mesh as a program does (rt/mesh.open_device), places each case's MoE weights
as the lowering places them (tests/moe_placement.py; random data, or torch meta tensors: allocated without host
data), runs the runtime's MoE block (rt/moe.py) with the configs the configuration layer renders
(configs/moe.py, evaluated as a program evaluates them) at decode and prefill shapes, each under `ttnn.graph`
capture, and reports the device ops (graph_summary.walk), the DRAM the weights took and what failed.
Reads the request from the JSON file argv[1]; writes the result to argv[2]."""

import json
import sys
import traceback
from collections import Counter

import torch
import ttnn

from tests.moe_placement import place, shapes
from ttspec.backends.common.printer import print_expr
from ttspec.backends.ttnn.configs.moe import moe_configs
from ttspec.backends.ttnn.rt import mesh, moe, weights
from ttspec.runtime.graph_summary import walk
from ttspec.targets import TARGETS

REQUEST = json.load(open(sys.argv[1], encoding="utf-8"))
DTYPES = {"bf16": ttnn.bfloat16, "bfloat8_b": ttnn.bfloat8_b, "bfloat4_b": ttnn.bfloat4_b}
DEVICES = REQUEST["devices"]
for module in (mesh, weights, moe):
    module.MESH_SHAPE = (1, DEVICES)


def dram(device):
    stats = ttnn.get_memory_view(device, ttnn.BufferType.DRAM)
    return int(stats.total_bytes_allocated_per_bank) * int(stats.num_banks)


def summary(graph):
    ops = walk(graph)["ops"]
    return {"ops": len(ops), "by_op": dict(Counter(op["op"] for op in ops)),
            "matmuls": [[op["factory"], op["fidelity"], op["outputs"][0]["shape"] if op["outputs"] else None]
                        for op in ops if op["op"] == "MatmulDeviceOperation"],
            "collectives": [op["op"] for op in ops if "Reduce" in op["op"] and "Scatter" in op["op"]]}


def run_case(device, case):
    c = case
    names = shapes(c["dim"], c["hidden"], c["experts"], c.get("shared"))
    if c["meta"]:
        tensors = {k: torch.empty(v, device="meta") for k, v in names.items()}
    else:
        g = torch.Generator().manual_seed(0)
        tensors = {k: torch.randn(v, generator=g) * v[-1] ** -0.5 for k, v in names.items()}
    before = dram(device)
    layer = place(weights, moe, tensors, device, c["experts"], DEVICES, c.get("shared"), DTYPES[c["dtype"]])
    out = {"weights_dram": dram(device) - before}
    shape = dict(dim=c["dim"], hidden=c["hidden"], experts=c["experts"], devices=DEVICES, weight_format=c["dtype"],
                 target=TARGETS[REQUEST["target"]], shared=c.get("shared"))
    scope = {"ttnn": ttnn, "MoEOps": moe.MoEOps, "dict": dict}
    for mode, rows in (("decode", 32), ("prefill", c["prefill"])):
        ops = {r: eval(print_expr(cfg.code()), scope) for r, cfg in moe_configs(mode, rows, **shape).items()}
        x = ttnn.from_torch(torch.randn(1, 1, rows, c["dim"]), dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT,
                            device=device, mesh_mapper=mesh.shard(device))
        ttnn.graph.begin_graph_capture(ttnn.graph.RunMode.NORMAL)
        try:
            y = moe.moe_block(x, layer, top_k=c["top_k"], softmax=c["softmax"], normalize=c["normalize"], ops=ops)
            if DEVICES > 1:  # the decoder's reduction of an MLP's partial sums on a 1-D mesh
                y = ttnn.reduce_scatter(y, -1, cluster_axis=1, memory_config=ttnn.DRAM_MEMORY_CONFIG)
            out[mode] = {"shape": list(y.shape)}
        except Exception as e:
            out[mode] = {"error": f"{type(e).__name__}: {str(e)[:1500]}", "traceback": traceback.format_exc()[-2000:]}
        finally:
            graph = ttnn.graph.end_graph_capture()
        out[mode].update(summary(graph))
    return out


def main():
    result = {"cases": {}}
    device = mesh.open_device()
    try:
        for case in REQUEST["cases"]:
            try:
                result["cases"][case["name"]] = run_case(device, case)
            except Exception as e:
                result["cases"][case["name"]] = {"error": f"{type(e).__name__}: {str(e)[:1500]}",
                                                 "traceback": traceback.format_exc()[-2000:]}
    finally:
        mesh.close_device(device)
    json.dump(result, open(sys.argv[2], "w", encoding="utf-8"))


main()
