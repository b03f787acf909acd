"""Blackhole meshes: p150 x4 and p150 x8 (issue 13). Their programs, in golden mode, equal the
single p150 chip up to bf16 rounding (test_mesh.py's rule, bounds from tests/numerics.py); a GQA
Llama on them matches HF transformers; `ttspec plan` books Blackhole's DRAM per chip; the mock cluster descriptors are
tt-umd's own examples of these systems."""

import json

import pytest

from ttspec.driver import compile_source, load_model
from ttspec.runtime.runner import run_golden
from ttspec.targets import get_target

from .conftest import SPECS
from .numerics import assert_same_up_to_rounding

torch = pytest.importorskip("torch")
pytest.importorskip("ttnn")

from .conftest import formats_of, mesh_of, target_of  # noqa: E402
from .test_mesh import assert_same_as_single_chip, single_chip_runs  # noqa: E402  (after the importorskips)

BH_MESHES = [("p150x4", (1, 4)), ("p150x8", (1, 8))]
# tt-metal's mesh graph descriptors and MESH_DEVICE tables (sources in ttspec/targets.py)
P150_DRAM = 8 * 4_277_141_376  # ttnn's allocator: 8 banks of 4,277,141,376 B on a p150


@pytest.fixture(scope="module")
def single_p150():
    return single_chip_runs("p150")


@pytest.mark.parametrize("spec", ["nano-trickster.arch", "llama-gqa-tiny.arch"])
@pytest.mark.parametrize("target,mesh", BH_MESHES)
def test_blackhole_mesh_golden_equals_single_p150(single_p150, spec, target, mesh):
    model, state, tokens, expected = single_p150(spec)
    fp32 = single_p150.fp32(spec)
    assert get_target(target).mesh == mesh and get_target(target).arch == "blackhole"
    source = compile_source(model, f"specs/{spec}", target_of(target), formats_of("bf16"))
    assert f"MESH_SHAPE = {mesh}" in source or f"MESH_SHAPE = ({mesh[0]}, {mesh[1]})" in source
    logits, calls = run_golden(model, f"specs/{spec}", get_target(target), state, tokens, source=source)
    assert_same_as_single_chip(logits, expected, fp32)
    layers = model.graph.repeats()[0].attrs.count
    assert calls["reduce_scatter"] == 2 * layers
    assert calls["all_gather"] == 2 * layers + 1


def test_gqa_llama_on_blackhole_meshes_matches_hf(write_spec):
    from .test_references import LLAMA_SPEC, check_programs, hf_logits, llama_config, tokens_for

    tokens = tokens_for(256)
    hf, expected = hf_logits(llama_config(kv=2), tokens=tokens)
    path = write_spec(LLAMA_SPEC.format(name="llama_gqa_bh", kv=2, rope=""), "llama_gqa_bh.arch")
    _, results = check_programs(path, hf.state_dict(), tokens, expected,
                                meshes=(("p150", None), ("p150x4", None), ("p150x8", None)))
    single = results[("p150", None)].float()
    for target in ("p150x4", "p150x8"):
        # the single chip up to bf16 rounding: test_mesh.py's rule, against HF's fp32 logits
        assert_same_up_to_rounding(results[(target, None)].float(), single, expected, target)


@pytest.mark.parametrize("target,chips", [("p150x4", 4), ("p150x8", 8)])
def test_plan_books_blackhole_dram_per_chip(run_cli, target, chips):
    single = json.loads(run_cli("plan", "specs/llama-gqa-tiny.arch", "--target", "p150", "--json",
                                timeout=120).stdout)
    out = run_cli("plan", "specs/llama-gqa-tiny.arch", "--target", target, "--json", timeout=120)
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["mesh"] == [1, chips] and plan["devices"] == chips
    m = plan["memory_per_chip"]
    assert m["dram"] == P150_DRAM == single["memory_per_chip"]["dram"]
    # column/row-parallel matrices split over the chips; norms are replicated
    assert m["weights"]["mlp"] * chips == single["memory_per_chip"]["weights"]["mlp"]
    assert m["weights_total"] < single["memory_per_chip"]["weights_total"]
    text = run_cli("plan", "specs/llama-gqa-tiny.arch", "--target", target, timeout=120).stdout
    assert f"on {target}: 1x{chips} mesh" in text


def test_cli_accepts_blackhole_mesh_targets(run_cli, tmp_path):
    for target in ("p150x4", "p150x8"):
        out = run_cli("compile", "specs/nano-trickster.arch", "--target", target, "-o", tmp_path / f"{target}.py",
                      timeout=120)
        assert out.returncode == 0, out.stderr
        assert (tmp_path / f"{target}.py").read_text().count("ttnn.reduce_scatter(") >= 1
    out = run_cli("run", "specs/nano-trickster.arch", "--target", "p150x4", "--mode", "golden", timeout=300)
    assert out.returncode == 0, out.stderr


def test_mock_descriptors_are_tt_umds_blackhole_systems():
    import yaml  # a dependency of transformers

    from ttspec.mock.toolchain import cluster_descriptor

    for target, chips, links in (("p150x4", 4, 16), ("p150x8", 8, 20)):
        text = cluster_descriptor(target).read_text(encoding="utf-8")
        assert text.startswith("# Source: tenstorrent/tt-umd, tests/cluster_descriptor_examples/blackhole_"), target
        desc = yaml.safe_load(text)
        assert set(desc["arch"].values()) == {"blackhole"} and len(desc["arch"]) == chips == get_target(target).chips
        assert len(desc["ethernet_connections"]) == links
        pairs = {tuple(sorted((a["chip"], b["chip"]))) for a, b in desc["ethernet_connections"]}
        # every chip has a neighbour on each side of a ring through all of them (ring_axes in targets.py)
        degree = {c: sum(c in p for p in pairs) for c in range(chips)}
        assert min(degree.values()) >= 2, degree


try:
    from ttspec.mock.toolchain import riscv_gcc
except ImportError:  # pragma: no cover
    riscv_gcc = None


@pytest.mark.skipif(riscv_gcc is None or riscv_gcc() is None, reason="Debian gcc-riscv64-unknown-elf missing")
@pytest.mark.parametrize("target", ["p150x4", "p150x8"])
def test_mock_blackhole_mesh(target):
    """ttnn's mock p150 x4 / x8 (tt-umd's descriptors) validates the program, and its allocator's
    bytes per chip match the memory model's weights within test_mesh.py's tolerance."""
    from ttspec.analysis.memory import weight_bytes_by_kind
    from ttspec.driver import compile_program
    from ttspec.runtime.device import run_worker

    model = load_model(SPECS / "nano-trickster.arch")
    source, build = compile_program(model, "specs/nano-trickster.arch", target_of(target), formats_of("bf16"))
    result = run_worker(model, source, "mock", target, state=None, tokens=torch.zeros(1, 64, dtype=torch.int64))
    assert tuple(result["logits"].shape) == (1, 64, 256)
    # the plan the program was compiled from
    predicted = sum(weight_bytes_by_kind(model, formats_of("bf16"), build.shard_plan).values())
    assert abs(result["dram_bytes_allocated"] - predicted) <= 0.05 * predicted + 4 * 2**20


def test_removing_any_collective_breaks_a_blackhole_mesh(single_p150):
    """As on Wormhole meshes (tests/test_mesh.py): every all_gather and reduce_scatter of the p150 x4
    program is needed; without one, the next op's shape check fails right after it."""
    from .test_mesh import assert_each_removal_caught, removal_outcomes

    spec = "nano-trickster.arch"
    model, state, tokens, expected = single_p150(spec)
    source = compile_source(model, f"specs/{spec}", target_of("p150x4"), formats_of("bf16"))
    sites, outcomes = removal_outcomes(model, f"specs/{spec}", "p150x4", state, tokens, expected, source)
    assert_each_removal_caught(sites, outcomes)
    assert {o[1] for o in outcomes} == {"shape"}


# ---------------------------------------------------------------- 2-D on Blackhole (tt-metal's 2x2 descriptor)
@pytest.mark.parametrize("spec", ["nano-trickster.arch", "llama-gqa-tiny.arch"])
def test_2d_on_p150x4_as_2x2_equals_single_p150(single_p150, spec):
    """p150 x4 opened as its mesh graph descriptor's 2x2 with --strategy 2d: the rows split heads and
    the MLP, the columns hidden; golden logits as close to fp32 as the single p150's."""
    from ttspec.driver import compile_program

    from .test_mesh_2d import assert_2d_as_accurate_as_single_chip

    model, state, tokens, expected = single_p150(spec)
    source, build = compile_program(model, f"specs/{spec}", target_of("p150x4"), formats_of("bf16"),
                                    mesh=mesh_of("2x2"), strategy="2d")
    assert build.shard_plan.strategy == "2d" and build.shard_plan.mesh == (2, 2)
    logits, calls = run_golden(model, f"specs/{spec}", get_target("p150x4"), state, tokens, source=source)
    assert_2d_as_accurate_as_single_chip(logits, expected, single_p150.fp32(spec))
    assert calls.get("reduce_scatter", 0) == 0 and calls["all_reduce"] > 0


@pytest.mark.skipif(riscv_gcc is None or riscv_gcc() is None, reason="Debian gcc-riscv64-unknown-elf missing")
def test_mock_p150x4_runs_a_2d_program():
    """ttnn's mock p150 x4 validates the 2x2 2-D program (distributed norms, all_reduce on both cluster
    axes); its allocator's bytes per chip match the plan within test_mesh.py's tolerance (measured
    2,965,504 allocated, 2,760,704 planned: rope tables and the like beside the weights)."""
    from ttspec.analysis.memory import weight_bytes_by_kind
    from ttspec.driver import compile_program
    from ttspec.runtime.device import run_worker

    model = load_model(SPECS / "nano-trickster.arch")
    source, build = compile_program(model, "specs/nano-trickster.arch", target_of("p150x4"), formats_of("bf16"),
                                    mesh=mesh_of("2x2"), strategy="2d")
    result = run_worker(model, source, "mock", "p150x4", state=None, tokens=torch.zeros(1, 64, dtype=torch.int64))
    assert tuple(result["logits"].shape) == (1, 64, 256)
    predicted = sum(weight_bytes_by_kind(model, formats_of("bf16"), build.shard_plan).values())
    assert abs(result["dram_bytes_allocated"] - predicted) <= 0.05 * predicted + 4 * 2**20
