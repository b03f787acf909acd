"""The TT-NN runtime's mixture of experts (rt/moe.py, configs/moe.py) on ttnn 0.81.1's mock device: the same
functions the golden tests check against HF (tests/test_moe_runtime.py) pass ttnn's own validation of every op,
config and allocation on the mock n150 and the mock T3K (experts over its 8 chips, then the reduce_scatter of
the MLP's partial sums), at decode (32 users) and prefill shapes, with tiny random weights and with one layer of
a published model's shapes allocated without host data (OLMoE-1B-7B on n150, Mixtral-8x7B on T3K, bfloat8_b
experts). Expected values: ttnn's allocator and graph capture, and closed forms for the experts' bytes.

One fresh process per target (the mock environment must precede `import ttnn`; tests/mock_moe_script.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ttspec.runtime.device import device_env

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(dim=128, hidden=64, dtype="bf16", meta=False, prefill=96)
CASES = {
    "n150": (1, [
        dict(name="olmoe_tiny", experts=16, top_k=4, softmax="before", normalize=False, **TINY),
        dict(name="qwen2_moe_tiny", experts=12, top_k=4, softmax="before", normalize=False, shared=256, **TINY),
        dict(name="after_tiny", experts=8, top_k=2, softmax="after", normalize=False, **TINY),
        # OLMoE-1B-7B's layer (config.json: hidden_size 2048, intermediate_size 1024, 64 experts, top 8)
        dict(name="olmoe_layer", dim=2048, hidden=1024, experts=64, top_k=8, softmax="before", normalize=False,
             dtype="bfloat8_b", meta=True, prefill=128),
    ]),
    "t3k": (8, [
        dict(name="mixtral_tiny", experts=8, top_k=2, softmax="before", normalize=True, **TINY),
        dict(name="qwen2_moe_tiny", experts=12, top_k=4, softmax="before", normalize=False, shared=256, **TINY),
        # Mixtral-8x7B's layer (hidden_size 4096, intermediate_size 14336, 8 experts, top 2): one expert per chip
        dict(name="mixtral_layer", dim=4096, hidden=14336, experts=8, top_k=2, softmax="before", normalize=True,
             dtype="bfloat8_b", meta=True, prefill=128),
    ]),
}


def run_mock(target: str, tmp: Path) -> dict:
    devices, cases = CASES[target]
    request, result = tmp / f"{target}.json", tmp / f"{target}-result.json"
    request.write_text(json.dumps({"target": target, "devices": devices, "cases": cases}))
    env = device_env("mock", target)
    env["TTNN_CONFIG_OVERRIDES"] = json.dumps({"enable_fast_runtime_mode": False})  # program factories in captures
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "mock_moe_script.py"), str(request), str(result)],
                          cwd=tmp, env=env, capture_output=True, text=True, timeout=900)
    assert result.exists(), (proc.stderr or proc.stdout)[-3000:]
    return json.loads(result.read_text())["cases"]


@pytest.fixture(scope="module", params=sorted(CASES))
def mock_run(request, tmp_path_factory):
    return request.param, run_mock(request.param, tmp_path_factory.mktemp(f"moe-{request.param}"))


def expert_bytes(case, devices):
    """A chip's expert weights: ceil(E / chips) experts of three [d, I] matrices in whole 32x32 tiles, bf16 2 B a
    value, bfloat8_b 1,088 B a tile (1,024 mantissas + 64 shared exponents)."""
    local = -(-case["experts"] // devices)
    tiles = 3 * local * (case["dim"] // 32) * (case["hidden"] // 32)
    return tiles * (2048 if case["dtype"] == "bf16" else 1088)


def test_every_case_validates_at_decode_and_prefill(mock_run):
    target, results = mock_run
    devices, cases = CASES[target]
    for case in cases:
        got = results[case["name"]]
        assert "error" not in got, got.get("traceback")
        for mode, rows in (("decode", 32), ("prefill", case["prefill"])):
            assert "error" not in got[mode], (case["name"], mode, got[mode].get("traceback"))
            assert got[mode]["shape"] == [1, 1, rows, case["dim"] // devices]  # reduce_scattered on a mesh
            print(target, case["name"], mode, got[mode]["ops"], "device ops", got[mode]["by_op"])


def test_expert_weights_take_what_the_allocator_books(mock_run):
    """The DRAM the placed weights took (ttnn's allocator, per chip x banks) is at least the experts' bytes and
    at most those plus the router, selector, mask and shared expert (a few tiles each, and whole pages)."""
    target, results = mock_run
    devices, cases = CASES[target]
    for case in cases:
        booked, experts = results[case["name"]]["weights_dram"], expert_bytes(case, devices)
        assert experts <= booked, (case["name"], booked, experts)
        shared = 3 * case.get("shared", 0) // devices * case["dim"] * 2
        router = (case["dim"] * 32 * 2 + 32 * 32 * 2) * -(-case["experts"] // 32) + 32 * 32 * 2 * 2
        assert booked <= experts + shared + router + 12 * 4096 * 8, (case["name"], booked, experts)


def test_the_batched_expert_matmuls_run_the_stated_1d_program(mock_run):
    """Every expert matmul resolves the 1-D multicast factory (the program configs/moe.py states) at the expert
    format's fidelity (bf16 HiFi4, bfloat8_b HiFi2); the router and selector at HiFi4; a mesh reduces once."""
    target, results = mock_run
    devices, cases = CASES[target]
    for case in cases:
        decode = results[case["name"]]["decode"]
        local = -(-case["experts"] // devices)
        experts = [m for m in decode["matmuls"] if m[2] and m[2][1] == local and m[2][-1] in (case["hidden"],
                                                                                               case["dim"])]
        assert len(experts) == 3, decode["matmuls"]
        fidelity = "HiFi4" if case["dtype"] == "bf16" else "HiFi2"
        assert all(m[0] == "MatmulMultiCoreReuseMcast1DProgramFactory" and m[1] == fidelity for m in experts)
        assert len(decode["collectives"]) == (1 if devices > 1 else 0), decode["by_op"]
