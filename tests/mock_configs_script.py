"""Runs inside a fresh mock-device process for tests/test_ttnn_configs.py (the mock needs its
environment before `import ttnn`): builds each case's ttnn objects by evaluating the code the
configuration layer rendered, runs the op once under `ttnn.graph` capture, and reports the
program factory and compute config ttnn resolved. Reads the cases from the JSON file argv[1]."""

import json
import re
import sys
import traceback

import torch
import ttnn

CASES = json.load(open(sys.argv[1], encoding="utf-8"))
DTYPES = {"bf16": ttnn.bfloat16, "bfloat8_b": ttnn.bfloat8_b, "bfloat4_b": ttnn.bfloat4_b}


def build(code: str):
    return eval(code, {"ttnn": ttnn})  # the rendered configuration: an expression over `ttnn` only


def allocate(dev, shape, dtype, memory, layout=ttnn.TILE_LAYOUT):
    return ttnn.allocate_tensor_on_device(ttnn.Shape(shape), dtype, layout, dev, memory)


def captured(run):
    """The device operation's program factory and math fidelity, from one captured call."""
    ttnn.graph.begin_graph_capture(ttnn.graph.RunMode.NORMAL)
    try:
        run()
    finally:
        graph = ttnn.graph.end_graph_capture()
    ops = [node for node in graph if node.get("node_type") == "function_start"
           and "program_factory_type" in (node.get("params") or {})]
    if not ops:
        return {"op": None, "factory": None, "fidelity": None, "device_ops": 0}
    arguments = " ".join(ops[0].get("arguments", []))
    fidelity = re.search(r"math_fidelity=(\w+)", arguments)
    return {"op": ops[0]["params"]["name"], "factory": ops[0]["params"]["program_factory_type"],
            "fidelity": fidelity.group(1) if fidelity else None, "device_ops": len(ops)}


def matmul(dev, case):
    k, n = case["k"], case["n"]
    w = allocate(dev, [k, n], DTYPES[case["dtype"]], build(case["weight"]))
    x = allocate(dev, [1, 1, 32, k], ttnn.bfloat16, build(case["input"]))
    program, compute, memory = build(case["program"]), build(case["compute"]), build(case["memory"])
    result = {}
    out = captured(lambda: result.setdefault("y", ttnn.linear(x, w, program_config=program,
                                                              compute_kernel_config=compute, memory_config=memory)))
    got, expected = result["y"].memory_config(), build(case["output"])
    out["output_as_stated"] = (got.memory_layout == expected.memory_layout and got.buffer_type == expected.buffer_type
                               and got.shard_spec.shape == expected.shard_spec.shape
                               and got.shard_spec.grid == expected.shard_spec.grid)
    # the graph shows the program config as an opaque variant: its repr shows the fused activation
    out["activation"] = re.search(r"fused_activation=([^,)]*)", repr(program)).group(1)
    if case.get("golden"):
        # ttnn's golden for linear takes the same configuration arguments and computes x @ w
        xs, ws = torch.randn(1, 1, 32, k), torch.randn(k, n)
        y = ttnn.get_golden_function(ttnn.linear)(xs, ws, program_config=program, compute_kernel_config=compute,
                                                  memory_config=memory)
        out["golden_error"] = float((y - xs @ ws).abs().max())
    return out


def norm(dev, case):
    width, memory = case["width"], build(case["memory"])
    x = allocate(dev, [1, 1, 32, width], ttnn.bfloat16, memory)
    gamma = allocate(dev, [1, 1, width // 32, 32], ttnn.bfloat16, ttnn.DRAM_MEMORY_CONFIG, ttnn.ROW_MAJOR_LAYOUT)
    program, compute = build(case["program"]), build(case["compute"])
    out = captured(lambda: ttnn.rms_norm(x, epsilon=1e-5, weight=gamma, program_config=program,
                                         compute_kernel_config=compute, memory_config=memory))
    xs, gs = torch.randn(1, 1, 32, width), torch.randn(width)
    y = ttnn.get_golden_function(ttnn.rms_norm)(xs, epsilon=1e-5, weight=gs, program_config=program,
                                                compute_kernel_config=compute, memory_config=memory)
    expected = xs * torch.rsqrt(xs.pow(2).mean(-1, keepdim=True) + 1e-5) * gs
    out["golden_error"] = float((y - expected).abs().max())
    return out


def sdpa(dev, case):
    users, heads, kv_heads, head_dim, length = (case[f] for f in ("users", "heads", "kv_heads", "head_dim", "length"))
    q = allocate(dev, [1, users, heads, head_dim], ttnn.bfloat16, ttnn.DRAM_MEMORY_CONFIG)
    k = allocate(dev, [users, kv_heads, length, head_dim], ttnn.bfloat16, ttnn.DRAM_MEMORY_CONFIG)
    v = allocate(dev, [users, kv_heads, length, head_dim], ttnn.bfloat16, ttnn.DRAM_MEMORY_CONFIG)
    pos = ttnn.from_torch(torch.full((users,), length - 1, dtype=torch.int32), device=dev)
    program, compute, memory = build(case["program"]), build(case["compute"]), build(case["memory"])
    return captured(lambda: ttnn.transformer.scaled_dot_product_attention_decode(
        q, k, v, cur_pos_tensor=pos, program_config=program, compute_kernel_config=compute, memory_config=memory))


def interleaved(dev, case):
    """A matmul on DRAM-interleaved tensors: prefill (rows folded into chunks) or 1-D multicast decode."""
    k, n = case["k"], case["n"]
    w = allocate(dev, [k, n], DTYPES[case["dtype"]], ttnn.DRAM_MEMORY_CONFIG)
    x = allocate(dev, [1, case["chunks"], case["chunk_rows"], k], ttnn.bfloat16, ttnn.DRAM_MEMORY_CONFIG)
    program, compute, memory = build(case["program"]), build(case["compute"]), build(case["memory"])
    return captured(lambda: ttnn.linear(x, w, program_config=program, compute_kernel_config=compute,
                                        memory_config=memory))


RUN = {"matmul": matmul, "norm": norm, "sdpa": sdpa, "interleaved": interleaved}
dev = ttnn.open_device(device_id=0)
results = []
for case in CASES:
    try:
        results.append({"ok": True, **RUN[case["kind"]](dev, case)})
    except Exception as e:  # a refused config is a result (the one-piece head must be refused)
        results.append({"ok": False, "error": f"{type(e).__name__}: {e}"[:3000],
                        "traceback": traceback.format_exc()[-2000:]})
ttnn.close_device(dev)
print("MOCK-RESULT " + json.dumps(results), flush=True)
