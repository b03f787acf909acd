"""Every spec's n150 program on ttnn's mock n150: real ttnn host code validates each op,
layout and allocation (kernels never run, so values are not checked here; golden mode and
the torch reference check numbers). Llama-3.1-8B fits with bfloat8_b weights, allocated
without host data; in bf16 ttspec refuses it before ttnn is touched."""

import pytest

from ttspec.driver import compile_program, compile_source, load_model
from ttspec.errors import ArchError
from ttspec.runtime.device import run_worker

from .conftest import SPECS, formats_of, target_of

torch = pytest.importorskip("torch")
pytest.importorskip("ttnn")

try:
    from ttspec.mock.toolchain import riscv_gcc
except ImportError:  # pragma: no cover
    riscv_gcc = None

needs_mock = pytest.mark.skipif(riscv_gcc is None or riscv_gcc() is None,
                                reason="Debian gcc-riscv64-unknown-elf missing: run .ci/install-mock-toolchain")

# Llama-3.1-70B and -405B fit no single chip (even bfloat4_b weights need ~40 GB and ~228 GB); they run on
# meshes (test_mesh.py, test_mesh_2d.py).
# Mixtral-8x7B and Qwen3-30B-A3B neither (bfloat4_b: ~25 GB and ~16 GB): T3K and larger meshes.
TOO_BIG_FOR_ONE_CHIP = {"llama-3.1-70b.arch", "llama-3.1-405b.arch", "mixtral-8x7b.arch", "qwen3-30b-a3b.arch"}
SPEC_FILES = sorted(p.name for p in SPECS.glob("*.arch") if p.name not in TOO_BIG_FOR_ONE_CHIP)
# OLMoE-1B-7B fits one n150 in bfloat8_b (7.5 GB of weights), Qwen1.5-MoE-A2.7B in bfloat4_b (~7.6 GB)
DTYPE = {"llama-3.1-8b.arch": "bfloat8_b", "mistral-7b.arch": "bfloat8_b", "olmoe-1b-7b.arch": "bfloat8_b",
         "qwen1.5-moe-a2.7b.arch": "bfloat4_b"}


@pytest.mark.parametrize("dtype", ["bf16", "bfloat8_b", "bfloat4_b"])
def test_70b_refused_on_one_chip(dtype):
    model = load_model(SPECS / "llama-3.1-70b.arch")
    with pytest.raises(ArchError) as info:
        compile_source(model, "specs/llama-3.1-70b.arch", target_of("n150"), formats_of(dtype))
    assert f"bytes of DRAM for {dtype} weights; n150 has 12,872,318,208" in info.value.render()


@needs_mock
@pytest.mark.parametrize("spec", SPEC_FILES)
def test_every_spec_runs_on_mock_n150(spec):
    model = load_model(SPECS / spec)
    dtype = DTYPE.get(spec, "bf16")
    source, build = compile_program(model, f"specs/{spec}", target_of("n150"), formats_of(dtype))
    tokens = torch.zeros(1, 32, dtype=torch.int64)
    result = run_worker(model, source, "mock", "n150", state=None, tokens=tokens)
    vocab = model.graph.node(next(iter(model.graph.outputs.values()))).type.shape[-1]
    assert tuple(result["logits"].shape) == (1, 32, vocab)
    allocated = result["dram_bytes_allocated"]
    predicted = build.memory.weights_total  # the DRAM-sharded layer matrices at their banks' whole shards
    # ttspec's own byte count agrees with ttnn's allocator (which also holds rope tables etc.)
    print(f"{spec}: allocated {allocated:,} B, planned {predicted:,}")
    assert predicted <= allocated <= predicted * 1.005 + 8 * 2**20


@needs_mock
def test_nano_trickster_with_data_on_mock():
    from ttspec.runtime.runner import random_hf_state_dict

    model = load_model(SPECS / "nano-trickster.arch")
    source = compile_source(model, "specs/nano-trickster.arch", target_of("n150"))
    tokens = torch.randint(0, 256, (2, 64))
    result = run_worker(model, source, "mock", "n150", state=random_hf_state_dict(model), tokens=tokens)
    assert tuple(result["logits"].shape) == (2, 64, 256)


@needs_mock
def test_p150_program_on_mock_p150():
    model = load_model(SPECS / "nano-trickster.arch")
    source = compile_source(model, "specs/nano-trickster.arch", target_of("p150"))
    result = run_worker(model, source, "mock", "p150", state=None, tokens=torch.zeros(1, 32, dtype=torch.int64))
    assert tuple(result["logits"].shape) == (1, 32, 256)


def test_llama8b_bf16_refused_before_ttnn(run_cli, tmp_path):
    # the weights' tiles, the DRAM-sharded layer matrices' whole shards per bank (h-meshdram: 16,362,242,048) and the
    # bf16 head's 6 column chunks at theirs: 5 x 22,688 columns in 12 shards of 1,920 and 14,816 in 12 of 1,248,
    # 1,920 columns x 4,096 rows x 2 B = 15,728,640 more; and the 65 norm vectors (32 layers x 2 + the final one),
    # 128 tiles each, booked at 12 DRAM banks x ceil(128 / 12) = 132 tiles: 65 x 4 x 2,048 B = 532,480 more
    out = run_cli("compile", "specs/llama-3.1-8b.arch", "--target", "n150", "-o", tmp_path / "out.py")
    assert out.returncode == 1
    assert "llama_3_1_8b needs 16,378,503,168 bytes of DRAM for bf16 weights; n150 has 12,872,318,208" in out.stderr
    assert "--weights-dtype bfloat8_b" in out.stderr
    with pytest.raises(ArchError, match="llama_3_1_8b needs 16,378,503,168 bytes of DRAM for bf16 weights"):
        compile_source(load_model(SPECS / "llama-3.1-8b.arch"), "x", target_of("n150"), formats_of("bf16"))


def test_mock_catches_an_invalid_program():
    """The mock validates for real: a program whose matmul dims disagree is rejected by ttnn."""
    model = load_model(SPECS / "nano-trickster.arch")
    source = compile_source(model, "specs/nano-trickster.arch", target_of("n150"))
    broken = source.replace("(ttnn.mul(gate, up), self.w2,", "(ttnn.mul(gate, up), self.w1,")
    assert broken != source
    if riscv_gcc is None or riscv_gcc() is None:
        pytest.skip("Debian gcc-riscv64-unknown-elf missing")
    with pytest.raises(ArchError) as info:
        run_worker(model, broken, "mock", "n150", state=None, tokens=torch.zeros(1, 32, dtype=torch.int64))
    # ttnn's own matmul validation, in its C++ device operation
    message = info.value.render()
    assert "TT_FATAL" in message and "matmul_device_operation.cpp" in message
    assert "a_shape[-1] == b_shape[-2]" in message
