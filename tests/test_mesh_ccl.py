"""The decode step's collectives (issue 20, "Meshes"), against outside truths:

- the fabric: on ttnn 0.81.1's mock T3K, a program compiled for it opens FABRIC_1D_RING and ttnn resolves Ring
  for every all_gather and reduce_scatter of its decode step (read from the capture: the per-axis topology ttnn
  prints for the collective's cluster axis), with no op added per layer; a target whose wiring closes no ring
  (n300's line of 2) keeps FABRIC_1D;
- the golden model of a reduce of block-float partial sums (golden.py `_block_reduce`, what golden mode runs if a
  program sends bfloat8_b partial sums): the exact sum is ttnn's golden for the collective, and the difference is
  within the format's rounding (n - 1 re-packings, tests/numerics.py's steps) and not zero. Programs send
  bfloat8_b payloads only with `--ccl-dtype bfloat8_b` (tests/test_ccl_dtype.py: its decode score's bound).
"""

from __future__ import annotations

import re

import pytest

from ttspec.driver import compile_source, load_model
from ttspec.runtime.graph_summary import _topology

from .conftest import SPECS, formats_of, target_of

torch = pytest.importorskip("torch")
ttnn = pytest.importorskip("ttnn")

from ttspec.runtime.golden import GoldenTTNN, HostMesh, MeshTensor, _block_reduce, quantise  # noqa: E402

from .numerics import block_float_steps  # noqa: E402

try:
    from ttspec.mock.toolchain import riscv_gcc
except ImportError:  # pragma: no cover
    riscv_gcc = None

USERS, CONTEXT = 32, 64


# ---------------------------------------------------------------- the capture's topology, without ttnn running

def test_topology_is_the_one_of_the_collectives_cluster_axis():
    """ttnn 0.81.1 prints one topology per mesh axis after the cluster axis and the fabric (captured on the mock
    T3K under FABRIC_1D_RING: axis 0 of a 1x8 mesh is Linear, axis 1 Ring); an older op prints one."""
    gather = "AllGatherParams(-1, <TensorSpec>, 1, FabricConfig::FABRIC_1D_RING, array(Topology::Linear, " \
             "Topology::Ring), array(1, 0), array(1, 8), array(0, 1), 8, 4352, std::nullopt, std::nullopt)"
    assert _topology({"arguments": [gather]}) == "Ring"
    assert _topology({"arguments": [gather.replace(", 1, Fabric", ", 0, Fabric")]}) == "Linear"
    older = "operation_attributes_t(MemoryConfig(...), std::nullopt, 3, 1, std::nullopt, Topology::Linear, 1)"
    assert _topology({"arguments": [older]}) == "Linear"


# ---------------------------------------------------------------- the golden block-float reduce

def test_block_reduce_is_ttnns_sum_within_the_formats_roundings():
    t = GoldenTTNN()._ttnn
    mesh = HostMesh((1, 8))
    generator = torch.Generator().manual_seed(5)
    partial = [quantise(t, torch.randn(1, 32, 256, generator=generator), t.bfloat8_b) for _ in range(8)]
    tensor = MeshTensor(partial, mesh)
    got = _block_reduce(t, "reduce_scatter", tensor, t.bfloat8_b, -1, cluster_axis=1)
    exact = ttnn.get_golden_function(ttnn.reduce_scatter)(
        [p.unsqueeze(0) for p in partial], 3, cluster_axis=1, _ttnn_golden_mesh_shape=(1, 8),
        _ttnn_golden_mesh_shard_dims=(None, None)).squeeze(0).float()
    assert exact.shape == (1, 32, 256)
    running, bound = partial[0].float(), torch.zeros_like(exact)
    for p in partial[1:]:  # each re-packing of a running sum errs by at most one step of its block (x2: the
        running = running + p.float()  # running sums differ from the exact ones by earlier roundings)
        bound += 2 * block_float_steps(running, "bfloat8_b")
    whole = torch.cat([s.float() for s in got.shards], dim=-1)
    error = (whole - exact).abs()
    assert [s.shape for s in got.shards] == [(1, 32, 32)] * 8  # device i keeps its slice
    assert bool((error <= bound).all()), float((error - bound).max())
    assert float(error.max()) > 0  # it does round
    assert got.block_dtype == t.bfloat8_b
    everyone = _block_reduce(t, "all_reduce", tensor, t.bfloat8_b, cluster_axis=1)
    assert all(torch.equal(s, torch.cat(got.shards, dim=-1)) for s in everyone.shards)


# ---------------------------------------------------------------- what the mock T3K runs

def _needs_mock():
    if riscv_gcc is None or riscv_gcc() is None:
        pytest.skip("Debian gcc-riscv64-unknown-elf missing: run .ci/install-mock-toolchain")


@pytest.fixture(scope="module")
def t3k_capture(tmp_path_factory):
    """Llama-3.2-1B cut to 1 layer (`let layers = 1`), for T3K with bfloat8_b weights, its decode step captured on
    the mock T3K (weights allocated without data: seconds). llama-gqa-tiny's 32-wide per-chip matmuls are refused
    on the mock T3K by ttnn's matmul validation (num_blocks_total <= num_cores), with or without this change."""
    _needs_mock()
    from ttspec.runtime.decode_capture import capture_decode

    path = tmp_path_factory.mktemp("t3k") / "llama-1b-1layer.arch"
    text = (SPECS / "llama-3.2-1b.arch").read_text(encoding="utf-8")
    path.write_text(re.sub(r"(?m)^let layers = \d+", "let layers = 1", text), encoding="utf-8")
    model = load_model(path)
    source = compile_source(model, str(path), target_of("t3k"), formats_of("bfloat8_b"), batch=USERS)
    return source, capture_decode(model, source, "t3k", users=USERS, context=CONTEXT, timeout=600)


def test_t3k_opens_a_ring_and_every_collective_runs_as_one(t3k_capture):
    source, result = t3k_capture
    assert re.search(r"^FABRIC = ttnn\.FabricConfig\.FABRIC_1D_RING\b", source, re.M)
    assert result["fabric"] == "FABRIC_1D_RING"
    collectives = result["decode"]["collectives"]
    assert len(collectives) == 4  # the layer's 2 all_gather + 2 reduce_scatter
    assert {c["topology"] for c in collectives} == {"Ring"}
    assert result["decode"]["device_ops_per_layer"] == [23]  # issue 20's T3K bound is 26: no op added


def test_a_line_keeps_fabric_1d():
    path = SPECS / "llama-gqa-tiny.arch"
    model = load_model(path)
    n300 = compile_source(model, str(path), target_of("n300"), formats_of("bfloat8_b"), batch=USERS)
    assert re.search(r"^FABRIC = ttnn\.FabricConfig\.FABRIC_1D\b", n300, re.M)  # a line of 2 closes no ring
    # Galaxy is modelled as lines on both axes (targets.py), and its mock refuses an 8x4 mesh under FABRIC_1D_RING
    galaxy = compile_source(model, str(path), target_of("galaxy"), formats_of("bfloat8_b"), batch=USERS)
    assert re.search(r"^FABRIC = ttnn\.FabricConfig\.FABRIC_1D\b", galaxy, re.M)


def test_galaxy_2d_head_all_reduce_is_native(tmp_path):
    """Llama-3.2-1B cut to 1 layer on the mock Galaxy, 2-D: its head (vocabulary 128256 over the 8 rows, partial sums
    over the 4 columns) is padded to 129024 rows, so ttnn's all_reduce over the columns runs ReduceScatter +
    AllGather; unpadded (501 tiles a row, not a multiple of 4) it was AllBroadcast + Concat + MorehSum."""
    _needs_mock()
    from ttspec.runtime.decode_capture import capture_decode

    path = tmp_path / "llama-1b-1layer.arch"
    text = (SPECS / "llama-3.2-1b.arch").read_text(encoding="utf-8")
    path.write_text(re.sub(r"(?m)^let layers = \d+", "let layers = 1", text), encoding="utf-8")
    model = load_model(path)
    source = compile_source(model, str(path), target_of("galaxy"), formats_of("bfloat8_b"), batch=USERS,
                            strategy="2d")
    assert "rows=129024" in source
    result = capture_decode(model, source, "galaxy", users=USERS, context=CONTEXT, timeout=600)
    after = [op["op"] for op in result["decode_ops"] if op["segment"] == "after"]
    head = after[after.index("MatmulDeviceOperation") + 1:]
    # the head's all-reduce, then the greedy step's own ops (the padded vocabulary's mask, untilize, argmax, max)
    assert head[:2] == ["ReduceScatterDeviceOperation", "AllGatherDeviceOperation"], after
    assert not {"AllBroadcastDeviceOperation", "ConcatDeviceOperation", "MorehSumOperation"} & set(after), after
