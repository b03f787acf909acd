"""Prefill matmul tables against ttnn 0.81.1's MatmulMultiCoreReuseMultiCastProgramConfig rules, for every
linear of every spec in specs/ at the prompt lengths a program meets. chunked_linear (rt/weights.py) runs a
prompt of T rows as T / c chunks of the largest c in its table dividing T, each chunk with table[c]; ttnn
validates that program against a [c, k] x [k, n] matmul (matmul_device_operation.cpp, the 2-D multicast
branch; the strings are in _ttnncpp.so): num_blocks_y = ceil(Mt / per_core_M) <= grid.y,
num_blocks_x = ceil(Nt / per_core_N) <= grid.x, K in whole blocks of in0_block_w, the output subblock
dividing the per-core block and within the destination registers (4 tiles with fp32 accumulation, else 8).
Plus one mock run of the case that broke it: bf16 Mistral-7B (one layer), a 2048-token prefill."""

import re
from math import ceil

import pytest

from ttspec.backends.ttnn import lower_matmul
from ttspec.backends.ttnn.configs.prefill import prefill_programs
from ttspec.backends.ttnn.configs.rules import ROLES, ConfigError
from ttspec.driver import compile_source, load_model
from ttspec.ir.graph import layer_variants
from ttspec.targets import TARGETS

from .conftest import SPECS, formats_of, target_of

try:
    from ttspec.mock.toolchain import riscv_gcc
except ImportError:  # pragma: no cover
    riscv_gcc = None

CHIP_GRID = {"n150": (8, 8), "p150": (8, 8)}  # tt_transformers' 8x8 on both (Wormhole 8x8, Blackhole capped)
LENGTHS = (32, 128, 1024, 2048)


def _shapes(model) -> set[tuple[int, int]]:
    """(k, n) of every linear, and of the linears reading one input fused (QKV; w1 with w3)."""
    shapes = set()

    def walk(graph):
        by_input: dict[str, list[int]] = {}
        for node in graph.topo():
            if node.op == "linear":
                k, n = graph.node(node.inputs[0]).type.shape[-1], node.type.shape[-1]
                by_input.setdefault(node.inputs[0], []).append(n)
                shapes.update({(k, n), (k, sum(by_input[node.inputs[0]]))})
            if node.is_repeat:
                for body, _ in layer_variants(node):
                    walk(body)

    walk(model.graph)
    return shapes


SPEC_FILES = sorted(p.name for p in SPECS.glob("*.arch"))


@pytest.mark.parametrize("spec", SPEC_FILES)
def test_every_prefill_table_satisfies_ttnn(spec):
    model = load_model(SPECS / spec)
    bound = model.bounds.get("seq")
    lengths = LENGTHS + ((bound // 32 * 32,) if bound and bound <= 8192 else ()) + (1056, 1536)
    checked = 0
    for k, n in sorted(_shapes(model)):
        for target in ("n150", "p150"):
            gx_max, gy_max = CHIP_GRID[target]
            for fmt in ("bf16", "bfloat8_b", "bfloat4_b"):
                for role in ROLES:
                    try:
                        table = prefill_programs(k, n, fmt, TARGETS[target], lower_matmul.PREFILL_CHUNKS, role=role)
                    except ConfigError:  # the plan refuses this linear: the program keeps the 1-D path
                        continue
                    assert 32 in table, (spec, k, n, fmt, role)  # every whole-tile prompt has a chunk
                    assert list(table) == sorted(table, reverse=True)  # chunked_linear takes the first dividing
                    for length in lengths:
                        chunk = next(c for c in table if length % c == 0)
                        p = table[chunk]
                        g = p.op.program
                        mt, kt, nt = chunk // 32, ceil(k / 32), ceil(n / 32)
                        where = (spec, target, fmt, role, k, n, length, chunk, g)
                        assert p.chunk_rows == chunk and p.chunks == 1, where
                        assert g.grid[0] <= gx_max and g.grid[1] <= gy_max, where
                        assert ceil(mt / g.per_core_M) <= g.grid[1], where  # num_blocks_y <= grid.y
                        assert ceil(nt / g.per_core_N) <= g.grid[0], where  # num_blocks_x <= grid.x
                        assert kt % g.in0_block_w == 0, where
                        assert g.per_core_M % g.out_subblock_h == 0 and g.per_core_N % g.out_subblock_w == 0, where
                        assert g.out_subblock_h * g.out_subblock_w <= (4 if p.op.compute.fp32_dest_acc else 8), where
                        checked += 1
    assert checked >= 100


def test_bf16_mistral_w1_runs_in_chunks_that_fit():
    """The failing case's table: 1024 rows of bf16 w1 (4096 -> 14336) do not fit L1 at fp32 accumulation, so
    2048 rows run as 4 chunks of 512 (ttnn's bound: 16 tiles of rows over 8 grid rows, 2 each)."""
    table = prefill_programs(4096, 14336, "bf16", TARGETS["n150"], lower_matmul.PREFILL_CHUNKS, role="ff1_ff3")
    chunk = next(c for c in table if 2048 % c == 0)
    g = table[chunk].op.program
    assert chunk < 1024 and ceil(chunk // 32 / g.per_core_M) <= g.grid[1] == 8


@pytest.mark.skipif(riscv_gcc is None or riscv_gcc() is None,
                    reason="Debian gcc-riscv64-unknown-elf missing: run .ci/install-mock-toolchain")
def test_bf16_mistral_prefill_2048_on_mock(tmp_path):
    """One layer of bf16 Mistral-7B for n150, a 2048-token prefill on ttnn's mock n150 (weights allocated
    without host data): every chunked_linear validates (it failed with num_blocks_y <= grid.y before)."""
    pytest.importorskip("ttnn")
    from ttspec.runtime.decode_capture import capture_decode

    text = (SPECS / "mistral-7b.arch").read_text(encoding="utf-8")
    path = tmp_path / "mistral-1.arch"
    path.write_text(re.sub(r"(?m)^let layers = \d+", "let layers = 1", text), encoding="utf-8")
    model = load_model(path)
    source = compile_source(model, str(path), target_of("n150"), formats_of("bf16"))
    result = capture_decode(model, source, "n150", users=1, context=2048, prefill=2048, timeout=600)
    prefill = result["prefill"]
    # the layer's five weight matmuls (QKV, wo, w1, w3, w2) each ran as chunked_linear's 2-D multicast program
    weights = [(m["weight"], m["factory"]) for m in prefill["layer0_matmuls"] if m["weight"]]
    assert weights == [(f"layers.0.{w}", "MatmulMultiCoreReuseMcast2DProgramFactory")
                       for w in ("attn.wqkv", "attn.wo", "mlp.w1", "mlp.w3", "mlp.w2")]
