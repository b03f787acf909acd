"""ttnn's mock device, as packaged in ttspec/mock: cluster descriptors plus a stand-in SFPI toolchain.

Each device test runs one fresh Python process per target, because TT_METAL_MOCK_CLUSTER_DESC_PATH
and friends must be set before `import ttnn`. A process costs about 5 s here (4 s of it is importing
torch and ttnn), so the n150 process does both the op round trip and the out-of-memory check.

The tests skip only when Debian's RISC-V compiler (gcc-riscv64-unknown-elf), which the stand-in
toolchain is built on, is missing; anything else that goes wrong fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ttspec.mock import toolchain

# Runs inside the mock-device process. Every step is recorded, so that one failing step does not hide
# the others, and the device is always closed.
DEVICE_SCRIPT = r"""
import json, sys, time, traceback

target = sys.argv[1]
results = {"steps": {}, "times": {}}
def step(name, fn):
    t = time.perf_counter()
    try:
        value = fn()
        results["steps"][name] = {"ok": True, "value": value}
    except Exception as e:
        results["steps"][name] = {"ok": False, "type": type(e).__name__, "error": str(e)[:4000],
                                  "traceback": traceback.format_exc()[-4000:]}
    results["times"][name] = round(time.perf_counter() - t, 3)

t0 = time.perf_counter()
import torch
import ttnn
results["times"]["import"] = round(time.perf_counter() - t0, 3)

state = {}
def open_device():
    state["dev"] = ttnn.open_device(device_id=0)
    grid = state["dev"].compute_with_storage_grid_size()
    return [grid.x, grid.y]
step("open_device", open_device)

if results["steps"]["open_device"]["ok"]:
    dev = state["dev"]
    def to_device(t):
        return ttnn.from_torch(t, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=dev)
    def from_torch():
        state["x"] = to_device(torch.randn(32, 64, dtype=torch.bfloat16))
        state["w"] = to_device(torch.randn(64, 96, dtype=torch.bfloat16))
        state["g"] = to_device(torch.ones(1, 96, dtype=torch.bfloat16))
        return [list(state["x"].shape), str(state["x"].layout), str(state["x"].storage_type())]
    step("from_torch", from_torch)
    def linear():
        state["y"] = ttnn.linear(state["x"], state["w"])
        return list(state["y"].shape)
    step("linear", linear)
    step("linear_again", lambda: list(ttnn.linear(state["x"], state["w"]).shape))
    def rms_norm():
        state["z"] = ttnn.rms_norm(state["y"], epsilon=1e-5, weight=state["g"])
        return list(state["z"].shape)
    step("rms_norm", rms_norm)
    def to_torch():
        out = ttnn.to_torch(state["z"])
        return [list(out.shape), str(out.dtype)]
    step("to_torch", to_torch)

    def allocate(shape):
        def run():
            t = ttnn.allocate_tensor_on_device(ttnn.Shape(shape), ttnn.bfloat16, ttnn.TILE_LAYOUT, dev,
                                               ttnn.DRAM_MEMORY_CONFIG)
            ttnn.deallocate(t)
            return shape[-2] * shape[-1] * 2
        return run
    step("allocate_8GiB", allocate([1, 1, 65536, 65536]))      # 8.6 GB of bf16: fits a 12 GB n150
    step("allocate_13GB", allocate([1, 1, 81920, 81920]))      # 13.4 GB: more than an n150's DRAM
    step("allocate_40GB", allocate([1, 1, 144384, 144384]))    # 41.7 GB: more than a p150's 32 GB

    def close():
        ttnn.close_device(dev)
        return True
    step("close_device", close)

print("MOCK-RESULT " + json.dumps(results), flush=True)
"""


@pytest.fixture(scope="module")
def runtime_root():
    """The stand-in toolchain, or a skip when Debian's RISC-V gcc is not installed."""
    try:
        return toolchain.ensure_toolchain()
    except toolchain.ToolchainMissing as e:
        pytest.skip(str(e))


def run_mock(target: str, cwd) -> dict:
    env = dict(os.environ)
    env.update(toolchain.mock_env(target))
    env["LOGURU_LEVEL"] = "WARNING"  # ttnn's import logs its whole config at DEBUG
    # tt-metal writes generated/fabric and generated/watcher into its working directory.
    proc = subprocess.run([sys.executable, "-c", DEVICE_SCRIPT, target], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("MOCK-RESULT ")]
    assert proc.returncode == 0 and lines, (
        f"mock {target} process failed (rc {proc.returncode})\nstdout:\n{proc.stdout[-3000:]}\n"
        f"stderr:\n{proc.stderr[-6000:]}")
    return json.loads(lines[-1].removeprefix("MOCK-RESULT "))


@pytest.fixture(scope="module")
def n150(runtime_root, tmp_path_factory):
    return run_mock("n150", tmp_path_factory.mktemp("mock-n150"))


@pytest.fixture(scope="module")
def p150(runtime_root, tmp_path_factory):
    return run_mock("p150", tmp_path_factory.mktemp("mock-p150"))


def ok(result: dict, name: str):
    s = result["steps"][name]
    assert s["ok"], f"{name} failed on the mock device: {s['type']}: {s['error']}\n{s['traceback']}"
    return s["value"]


def check_round_trip(result: dict, grid: list[int]):
    assert ok(result, "open_device") == grid
    shape, layout, storage = ok(result, "from_torch")
    assert shape == [32, 64] and "TILE" in layout and "DEVICE" in storage
    assert ok(result, "linear") == [32, 96]
    assert ok(result, "linear_again") == [32, 96]
    assert ok(result, "rms_norm") == [32, 96]
    assert ok(result, "to_torch") == [[32, 96], "torch.bfloat16"]  # values: garbage or zeros
    assert ok(result, "close_device") is True


def test_n150_ops_round_trip(n150):
    check_round_trip(n150, grid=[8, 8])


def test_p150_ops_round_trip(p150):
    check_round_trip(p150, grid=[11, 10])


def test_n150_oversized_allocation_is_out_of_memory(n150):
    assert ok(n150, "allocate_8GiB") == 65536 * 65536 * 2  # the allocator works at all
    big = n150["steps"]["allocate_13GB"]
    assert not big["ok"], "a 13.4 GB tensor was allocated on a 12 GB n150"
    assert "Out of Memory" in big["error"] and "DRAM" in big["error"], big["error"]
    assert "1072693184" in big["error"], big["error"]  # 12 banks of 1,072,693,184 B


def test_p150_has_more_dram_than_n150(p150):
    assert ok(p150, "allocate_13GB") == 81920 * 81920 * 2
    big = p150["steps"]["allocate_40GB"]
    assert not big["ok"] and "Out of Memory" in big["error"], big


def test_standin_compiler_is_labelled(runtime_root):
    gxx = runtime_root / "runtime" / "sfpi" / "compiler" / "bin" / "riscv-tt-elf-g++"
    version = subprocess.run([str(gxx), "--version"], capture_output=True, text=True, check=True).stdout
    assert "MOCK stand-in" in version and "never run" in version, version
    assert "KERNELS BUILT BY THIS NEVER RUN" in gxx.read_text(encoding="utf-8")
    # Nothing was written into the installed ttnn package.
    assert not (toolchain.ttnn_package_dir() / "runtime" / "sfpi").exists()


def test_missing_debian_toolchain_names_the_apt_package(monkeypatch):
    monkeypatch.setattr(toolchain, "riscv_gcc", lambda: None)
    with pytest.raises(toolchain.ToolchainMissing, match="gcc-riscv64-unknown-elf"):
        toolchain.ensure_toolchain()


def test_mock_env_names_each_target_descriptor(runtime_root):
    import yaml  # a dependency of transformers

    from ttspec.targets import TARGETS

    for target in ("n150", "n300", "t3k", "galaxy", "p150", "p150x4", "p150x8"):
        env = toolchain.mock_env(target)
        desc = env["TT_METAL_MOCK_CLUSTER_DESC_PATH"]
        text = open(desc, encoding="utf-8").read()
        assert text.startswith("# Source: tenstorrent/tt-umd"), desc
        assert len(yaml.safe_load(text)["arch"]) == TARGETS[target].chips, target
        assert env["TT_METAL_RUNTIME_ROOT"] == str(runtime_root)
        assert os.path.isdir(env["TT_METAL_CACHE"])
    with pytest.raises(ValueError, match="no mock cluster descriptor"):
        toolchain.mock_env("n151")
