"""The TT-NN configuration layer (ttspec/backends/ttnn/configs): its choices against tt_transformers'
published ones and closed forms, every choice against ttnn's stated constraints (hypothesis), and on
ttnn's mock device: each rendered configuration built by evaluating its code, run once under
`ttnn.graph` capture, resolving the program factory and fidelity chosen.

Expected numbers come from outside the code under test: tt_transformers' configurations as the
notes record them validating on the mock (../shared/notes/ttnn-0.81-decode.md; QKV 4096->6144 on 32
cores, w1/w3 on 64, w2, the LM head in thirds), its model_config.py comments (the 3B head in four
chunks on 48 cores) and HF config.json shapes."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from math import ceil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttspec import weight_formats
from ttspec.backends.common.printer import print_expr
from ttspec.backends.common.pyast import names_read
from ttspec.backends.ttnn.configs import rules
from ttspec.backends.ttnn.configs.decode import (
    attention_matmul,
    decode_matmul,
    decode_matmul_1d,
    decode_norm,
    decode_sdpa,
    lm_head_chunks,
)
from ttspec.backends.ttnn.configs.layer import decode_layer
from ttspec.backends.ttnn.configs.prefill import multicast_l1_bytes, prefill_matmul, prefill_sdpa
from ttspec.backends.ttnn.configs.values import ComputeKernel, Memory, SDPAProgram
from ttspec.targets import TARGETS, core_grids

N150, P150 = TARGETS["n150"], TARGETS["p150"]


# HF config.json of each model (hidden_size, num_attention_heads, num_key_value_heads, head_dim,
# intermediate_size, vocab_size), per chip: 70B on a T3K splits heads, KV heads, the MLP's hidden
# width and the vocabulary over 8 chips (tt_transformers: n_local_heads, hidden_dim // cluster_shape[1]).
MODELS = {
    "llama-3.2-1b": dict(dim=2048, heads=32, kv=8, head_dim=64, hidden=8192, vocab=128256, chips=1),
    "llama-3.2-3b": dict(dim=3072, heads=24, kv=8, head_dim=128, hidden=8192, vocab=128256, chips=1),
    "llama-3.1-8b": dict(dim=4096, heads=32, kv=8, head_dim=128, hidden=14336, vocab=128256, chips=1),
    "llama-3.1-70b-t3k": dict(dim=8192, heads=64, kv=8, head_dim=128, hidden=28672, vocab=128256, chips=8),
}


def layer_matmuls(model: dict, target=N150) -> dict:
    """Each decode weight matmul of one chip, under the performance preset."""
    m, chips = model, model["chips"]
    qkv = (m["heads"] + 2 * m["kv"]) * m["head_dim"] // chips
    fmt = rules.PERFORMANCE
    return {
        "wqkv": attention_matmul(m["dim"], qkv, fmt["wqkv"], target, role="wqkv"),
        "wo": attention_matmul(m["heads"] * m["head_dim"] // chips, m["dim"], fmt["wo"], target, role="wo"),
        "w1": decode_matmul(m["dim"], m["hidden"] // chips, fmt["ff1_ff3"], target, role="ff1_ff3"),
        "w2": decode_matmul(m["hidden"] // chips, m["dim"], fmt["ff2"], target, role="ff2"),
    }


# ---------------------------------------------------------------- tt_transformers' published choices
def test_llama_8b_decode_matmuls_match_tt_transformers():
    mm = layer_matmuls(MODELS["llama-3.1-8b"])
    shape = {name: (m.cores, m.op.program.in0_block_w, m.op.program.per_core_N) for name, m in mm.items()}
    assert shape["wqkv"] == (32, 4, 6)
    assert shape["w1"] == (64, 2, 7)
    assert shape["w2"][1:] == (7, 2)
    assert mm["wqkv"].input.grid == (8, 4) and mm["wqkv"].input.shard == (32, 4096 // 32)
    assert {m.op.program.per_core_M for m in mm.values()} == {1}


def test_weights_shard_over_the_dram_banks():
    # tt_transformers create_dram_sharded_mem_config: shard (K, ceil(N / (32 * banks)) * 32), 12 banks on Wormhole
    qkv = attention_matmul(4096, 6144, "bfloat8_b", N150)
    assert qkv.weight == Memory("DRAM", "WIDTH_SHARDED", (12, 1), (4096, 512))
    assert decode_matmul(4096, 14336, "bfloat4_b", N150).weight.shard == (4096, ceil(14336 / 384) * 32)
    assert decode_matmul(4096, 14336, "bfloat4_b", P150).weight.grid == (8, 1)
    assert core_grids(TARGETS["p100"]).dram_banks == 7


def test_matmul_outputs_fill_the_chip_grid_row_by_row():
    # as the mock captured them: the 8B QKV output on an n150 is [32, 192] shards on cores (0,0)-(7,3); on a
    # p150 (11 wide) on (0,0)-(10,1) and (0,2)-(9,2)
    qkv = attention_matmul(4096, 6144, "bfloat8_b", N150)
    assert qkv.output(N150).ranges() == [((0, 0), (7, 3))] and qkv.output(N150).shard == (32, 192)
    assert qkv.output(N150).grid == qkv.input.grid
    assert attention_matmul(4096, 6144, "bfloat8_b", P150).output(P150).ranges() == [((0, 0), (10, 1)),
                                                                                    ((0, 2), (9, 2))]
    with pytest.raises(ValueError, match="last row"):
        Memory("L1", "WIDTH_SHARDED", (8, 4), (32, 32), count=20)


def test_lm_head_splits_into_chunks_that_fit_l1():
    head = lm_head_chunks(4096, 128256, "bfloat8_b", N150)
    assert head.widths == (42752,) * 3  # tt_transformers splits the 8B head in 3
    assert [m.op.program.per_core_N for m in head.matmuls] == [21, 21, 21]
    assert head.starts == (0, 42752, 85504)
    # model_config.py: "128256 / 4 was experimentally the maximum columns that worked per device ... on 48 cores"
    head_3b = lm_head_chunks(3072, 128256, "bfloat8_b", N150)
    assert len(head_3b.widths) == 4 and {m.cores for m in head_3b.matmuls} == {48}
    assert sum(lm_head_chunks(8192, 128256, "bfloat8_b", N150, devices=8).widths) == 16032


def test_fidelity_follows_the_weight_format():
    assert rules.matmul_kernel("bfloat4_b").fidelity == "LoFi"
    assert rules.matmul_kernel("bfloat8_b", "wqkv") == ComputeKernel("HiFi2", True, True, True)
    assert rules.matmul_kernel("bfloat8_b", "ff2") == ComputeKernel("HiFi2", False, False, True)
    assert rules.matmul_kernel("bf16").fidelity == "HiFi4"
    with pytest.raises(rules.ConfigError):
        rules.matmul_kernel("float8")


def test_performance_preset_and_overrides():
    preset = rules.performance_preset()
    assert {role: p.dtype for role, p in preset.items()} == {
        "wqkv": "bfloat8_b", "wo": "bfloat8_b", "ff1_ff3": "bfloat4_b", "ff2": "bfloat8_b", "lm_head": "bfloat8_b"}
    assert preset["ff1_ff3"].compute.fidelity == "LoFi" and preset["ff2"].compute.fidelity == "HiFi2"
    changed = rules.performance_preset(ff2="bfloat4_b", lm_head=rules.Precision("bf16", rules.LOFI))
    assert changed["ff2"].compute.fidelity == "LoFi" and changed["lm_head"].compute.fidelity == "LoFi"
    with pytest.raises(rules.ConfigError, match="w9"):
        rules.performance_preset(w9="bf16")


@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_a_decode_layer_chains_norms_into_matmuls(model_name):
    m = MODELS[model_name]
    target = TARGETS["t3k"] if m["chips"] == 8 else N150
    layer = decode_layer(m["dim"], m["heads"], m["kv"], m["head_dim"], m["hidden"], m["vocab"], target,
                         devices=m["chips"])
    assert layer.attn_norm.memory == layer.wqkv.input and layer.mlp_norm.memory == layer.w1.input
    assert all(layer.final_norm.memory == chunk.input for chunk in layer.head.matmuls)
    assert layer.wqkv == layer_matmuls(m)["wqkv"] and layer.w2 == layer_matmuls(m)["w2"]
    assert layer.w1.op.compute.fidelity == "LoFi" and layer.w2.op.compute.fidelity == "HiFi2"
    assert sum(layer.head.widths) * m["chips"] == m["vocab"]
    assert layer.sdpa.concat_input.shard == (32, m["head_dim"])  # heads per chip padded to a tile


def test_weights_dtype_kinds_map_to_matmul_groups():
    formats = weight_formats.parse("attention=bfloat8_b,mlp=bfloat4_b")
    chosen = rules.precision_from_formats(formats)
    assert {role: (p.dtype, p.compute.fidelity) for role, p in chosen.items()} == {
        "wqkv": ("bfloat8_b", "HiFi2"), "wo": ("bfloat8_b", "HiFi2"), "ff1_ff3": ("bfloat4_b", "LoFi"),
        "ff2": ("bfloat4_b", "LoFi"), "lm_head": ("bf16", "HiFi4")}


def test_norm_and_sdpa_decode_match_tt_transformers():
    norm = decode_norm(4096, N150)  # the notes: grid [8, 4], subblock_w 4, block_h 1, block_w 4
    assert (norm.op.program.grid, norm.op.program.subblock_w, norm.op.program.block_w) == ((8, 4), 4, 4)
    assert norm.memory == norm.op.memory == layer_matmuls(MODELS["llama-3.1-8b"])["wqkv"].input
    sdpa = decode_sdpa(32, 128, 32, N150)
    assert sdpa.op.program == SDPAProgram((8, 8), 0, 0, False)
    assert sdpa.op.compute == ComputeKernel("HiFi2", False, False, False)
    assert sdpa.concat_input.shard == (32, 128) and sdpa.concat_input.cores == 32


def test_prefill_folds_the_sequence_into_chunks():
    p = prefill_matmul(8192, 4096, 14336, "bfloat4_b", N150)
    assert (p.chunk_rows, p.chunks) == (1024, 8)  # tt_transformers' 1024-row prefill cutoff on Wormhole
    assert p.op.program.grid == (8, 8) and p.op.program.per_core_M == 1024 // 32 // 8
    assert prefill_matmul(1152, 4096, 4096, "bfloat8_b", N150).chunk_rows == 576  # largest dividing 1152
    assert prefill_matmul(4096, 4096, 4096, "bfloat8_b", P150).chunk_rows == 512
    assert prefill_sdpa(4096, N150).program.q_chunk == 256 and prefill_sdpa(1024, N150).program.q_chunk == 64


def test_impossible_shapes_are_refused():
    with pytest.raises(rules.ConfigError, match="multiple of 32"):
        decode_matmul(4080 + 8, 4096, "bfloat8_b", N150)
    with pytest.raises(rules.ConfigError, match="users"):
        decode_matmul(4096, 4096, "bfloat8_b", N150, m=64)
    with pytest.raises(rules.ConfigError, match="divide"):
        decode_matmul(4096, 4096, "bfloat8_b", N150, cores=48)


# ---------------------------------------------------------------- rendering
def _rendered(value) -> str:
    text = print_expr(value.code())
    assert names_read([value.code()]) == {"ttnn"}
    ast.parse(text, mode="eval")
    return text


def test_configs_render_as_ttnn_constructors():
    mm = layer_matmuls(MODELS["llama-3.1-8b"])["w1"]
    assert _rendered(mm.op.program).startswith("ttnn.MatmulMultiCoreReuseMultiCastDRAMShardedProgramConfig(")
    assert "ttnn.MathFidelity.LoFi" in _rendered(mm.op.compute)
    assert "ttnn.CoreCoord(11, 0)" in _rendered(mm.weight)
    assert _rendered(mm.op.memory) == "ttnn.L1_WIDTH_SHARDED_MEMORY_CONFIG"
    assert _rendered(Memory("DRAM")) == "ttnn.DRAM_MEMORY_CONFIG"
    fused = decode_matmul(4096, 14336, "bfloat4_b", N150, fused_activation="SILU").op.program
    assert "ttnn.UnaryWithParam(ttnn.UnaryOpType.SILU)" in _rendered(fused)
    keywords = dict(mm.op.keywords())
    assert set(keywords) == {"memory_config", "program_config", "compute_kernel_config"}


# ---------------------------------------------------------------- ttnn's constraints, over shapes
def check_dram_sharded(mm, target) -> None:
    """ttnn's DRAM-sharded validation (rules.py's docstring) and the grid's bounds."""
    p, k_tiles = mm.op.program, mm.k // 32
    shard_tiles = mm.input.shard[1] // 32
    assert mm.input.layout == "WIDTH_SHARDED" and mm.input.buffer == "L1"
    assert mm.op.memory.layout == "WIDTH_SHARDED" and mm.op.memory.buffer == "L1"
    assert mm.weight.layout == "WIDTH_SHARDED" and mm.weight.buffer == "DRAM"
    assert p.per_core_M == 1 == mm.input.shard[0] // 32
    assert k_tiles % p.in0_block_w == 0 and shard_tiles % p.in0_block_w == 0
    assert mm.input.cores * mm.input.shard[1] == mm.k  # the shards cover K exactly
    assert p.per_core_N * mm.cores * 32 >= mm.n  # the workers cover N
    grid = core_grids(target).compute
    assert mm.input.grid[0] <= grid[0] and mm.input.grid[1] <= grid[1]
    banks = core_grids(target).dram_banks
    assert mm.weight.grid == (banks, 1) and mm.weight.shard[1] % 32 == 0 and banks * mm.weight.shard[1] >= mm.n
    assert 1 <= p.in0_block_w <= 8


FORMATS = st.sampled_from(("bf16", "bfloat8_b", "bfloat4_b"))
CHIPS = st.sampled_from((N150, P150))


@settings(max_examples=150, deadline=None)
@given(k_tiles=st.integers(1, 512), n=st.integers(1, 65536), fmt=FORMATS, target=CHIPS)
def test_every_decode_matmul_satisfies_ttnn(k_tiles, n, fmt, target):
    mm = decode_matmul(k_tiles * 32, n, fmt, target)
    check_dram_sharded(mm, target)
    assert mm.op.compute.fidelity == {"bfloat4_b": "LoFi", "bfloat8_b": "HiFi2", "bf16": "HiFi4"}[fmt]
    check_dram_sharded(attention_matmul(k_tiles * 32, n, fmt, target), target)


@settings(max_examples=100, deadline=None)
@given(k_tiles=st.integers(1, 512), n_tiles=st.integers(1, 2048), users=st.integers(1, 32), fmt=FORMATS,
       target=CHIPS)
def test_every_1d_decode_matmul_satisfies_ttnn(k_tiles, n_tiles, users, fmt, target):
    op = decode_matmul_1d(k_tiles * 32, n_tiles * 32, fmt, target, m=users)
    p, grid = op.program, core_grids(target).compute
    assert p.grid[0] <= grid[0] and p.grid[1] <= grid[1] and p.grid[0] * p.grid[1] <= max(n_tiles, p.grid[0])
    assert p.per_core_M % p.out_subblock_h == 0 and p.per_core_N % p.out_subblock_w == 0
    assert p.out_subblock_h * p.out_subblock_w <= (4 if op.compute.fp32_dest_acc else 8)  # ttnn get_dest_reg_count
    assert k_tiles % p.in0_block_w == 0 and p.per_core_N * p.grid[0] * p.grid[1] >= n_tiles


@settings(max_examples=60, deadline=None)
@given(k_tiles=st.integers(1, 512), vocab=st.integers(1000, 262144), devices=st.sampled_from((1, 2, 8)),
       target=CHIPS)
def test_every_lm_head_chunk_satisfies_ttnn_and_covers_the_vocabulary(k_tiles, vocab, devices, target):
    head = lm_head_chunks(k_tiles * 32, vocab, "bfloat8_b", target, devices=devices)
    assert sum(head.widths) == ceil(vocab / devices) and min(head.widths) >= 1
    assert all(start % 32 == 0 for start in head.starts)  # chunks split the weight on tile boundaries
    for mm in head.matmuls:
        check_dram_sharded(mm, target)
        if target.arch == "wormhole_b0":  # tt_transformers' 668 columns per core
            assert mm.n <= 668 * mm.cores


@settings(max_examples=100, deadline=None)
@given(tiles=st.integers(1, 512), users=st.integers(1, 32), target=CHIPS)
def test_every_sharded_norm_satisfies_ttnn(tiles, users, target):
    norm = decode_norm(tiles * 32, target, m=users)
    p = norm.op.program
    assert p.block_w * norm.memory.cores == tiles and p.block_w % p.subblock_w == 0
    assert p.subblock_w <= (4 if norm.op.compute.fp32_dest_acc else 8)
    assert p.block_h == norm.memory.shard[0] // 32 == 1 and p.grid == norm.memory.grid


@settings(max_examples=100, deadline=None)
@given(m_tiles=st.integers(1, 256), k_tiles=st.integers(1, 512), n_tiles=st.integers(1, 1024), fmt=FORMATS,
       target=CHIPS)
def test_every_prefill_matmul_satisfies_ttnn(m_tiles, k_tiles, n_tiles, fmt, target):
    p = prefill_matmul(m_tiles * 32, k_tiles * 32, n_tiles * 32, fmt, target)
    g = p.op.program
    grid = core_grids(target).compute
    assert g.grid[0] <= grid[0] and g.grid[1] <= grid[1]
    assert g.per_core_M % g.out_subblock_h == 0 and g.per_core_N % g.out_subblock_w == 0
    assert g.out_subblock_h * g.out_subblock_w <= (4 if p.op.compute.fp32_dest_acc else 8)  # ttnn get_dest_reg_count
    assert k_tiles % g.in0_block_w == 0
    assert g.per_core_M * g.grid[1] * 32 >= p.chunk_rows and g.per_core_N * g.grid[0] >= n_tiles
    assert p.chunks * p.chunk_rows == m_tiles * 32 and p.chunk_rows <= {"wormhole_b0": 1024, "blackhole": 512}[
        target.arch]
    assert p.l1_bytes == multicast_l1_bytes(g, k_tiles, fmt, "bf16", p.op.compute) <= rules.l1_cb_bytes(target)


# ---------------------------------------------------------------- on the mock device
SCRIPT = Path(__file__).with_name("mock_configs_script.py")
FACTORY = "ttnn::prim::MatmulMultiCoreReuseMultiCastDRAMShardedProgramFactory"
WORMHOLE_L1, BLACKHOLE_L1 = rules.L1_REGION["wormhole_b0"], rules.L1_REGION["blackhole"]
MCAST_1D, MCAST_2D = (f"ttnn::prim::MatmulMultiCoreReuseMcast{d}DProgramFactory" for d in (1, 2))


def _matmul_case(mm, fmt, golden=False, target=N150) -> dict:
    return {"kind": "matmul", "k": mm.k, "n": mm.n, "dtype": fmt, "weight": print_expr(mm.weight.code()),
            "input": print_expr(mm.input.code()), "program": print_expr(mm.op.program.code()),
            "compute": print_expr(mm.op.compute.code()), "memory": print_expr(mm.op.memory.code()),
            "output": print_expr(mm.output(target).code()), "golden": golden}


def mock_cases() -> list[tuple[str, dict, dict]]:
    """(label, case, expectation): every decode matmul of the four models, each distinct LM-head chunk, the
    8B head in one piece (refused), the sharded norm and SDPA decode of two of them, and two 8B prefill
    matmuls of 8192 rows folded into chunks."""
    cases = []
    for model_name, model in MODELS.items():
        for name, mm in layer_matmuls(model).items():
            fmt = rules.PERFORMANCE[{"w1": "ff1_ff3", "w2": "ff2"}.get(name, name)]
            cases.append((f"{model_name} {name}", _matmul_case(mm, fmt, golden=model_name == "llama-3.2-1b"),
                          {"fidelity": mm.op.compute.fidelity}))
        head = lm_head_chunks(model["dim"], model["vocab"], "bfloat8_b", N150, devices=model["chips"])
        for width in sorted(set(head.widths)):
            mm = head.matmuls[head.widths.index(width)]
            cases.append((f"{model_name} head {width}", _matmul_case(mm, "bfloat8_b"), {"fidelity": "HiFi2"}))
    fused = decode_matmul(4096, 14336, "bfloat4_b", N150, role="ff1_ff3", fused_activation="SILU")
    cases.append(("llama-3.1-8b w1 with SiLU fused", _matmul_case(fused, "bfloat4_b"),
                  {"fidelity": "LoFi", "silu": True}))
    whole = decode_matmul(4096, 128256, "bfloat8_b", N150, cores=64, role="lm_head")
    cases.append(("llama-3.1-8b head in one piece", _matmul_case(whole, "bfloat8_b"), {"refused": True}))
    for model_name in ("llama-3.2-1b", "llama-3.1-8b"):
        norm = decode_norm(MODELS[model_name]["dim"], N150)
        cases.append((f"{model_name} norm", {"kind": "norm", "width": MODELS[model_name]["dim"],
                                             "memory": print_expr(norm.memory.code()),
                                             "program": print_expr(norm.op.program.code()),
                                             "compute": print_expr(norm.op.compute.code())}, {"fidelity": "HiFi2"}))
    for model_name in ("llama-3.1-8b", "llama-3.1-70b-t3k"):
        m = MODELS[model_name]
        heads, kv = m["heads"] // m["chips"], m["kv"] // m["chips"]
        sdpa = decode_sdpa(heads, m["head_dim"], 32, N150)
        cases.append((f"{model_name} sdpa", {"kind": "sdpa", "users": 32, "heads": heads, "kv_heads": kv,
                                             "head_dim": m["head_dim"], "length": 256,
                                             "program": print_expr(sdpa.op.program.code()),
                                             "compute": print_expr(sdpa.op.compute.code()),
                                             "memory": print_expr(sdpa.op.memory.code())}, {"fidelity": "HiFi2"}))
    for label, (k, n, fmt) in GALAXY_70B.items():
        op = decode_matmul_1d(k, n, fmt, TARGETS["galaxy"])
        case = {"kind": "interleaved", "k": k, "n": n, "dtype": fmt, "chunks": 1, "chunk_rows": 32,
                "program": print_expr(op.program.code()), "compute": print_expr(op.compute.code()),
                "memory": print_expr(op.memory.code())}
        cases.append((f"llama-3.1-70b galaxy {label} 1-D", case, {"fidelity": op.compute.fidelity,
                                                                  "factory": MCAST_1D}))
    for label, (k, n, fmt, compute) in PREFILL.items():
        p = prefill_matmul(8192, k, n, fmt, N150, compute=compute)
        cases.append((f"llama-3.1-8b prefill {label}", _prefill_case(p, k, n, fmt),
                      {"fidelity": p.op.compute.fidelity, "factory": MCAST_2D}))
        for variant, too_big in _larger_than_chosen(p, k):
            # the L1 estimate refused this one: ttnn must refuse it too, at the end address the estimate gives
            end = multicast_l1_bytes(too_big.op.program, k // 32, fmt, "bf16", p.op.compute) + WORMHOLE_L1[1]
            assert end > WORMHOLE_L1[0]
            cases.append((f"llama-3.1-8b prefill {label} {variant}", _prefill_case(too_big, k, n, fmt),
                          {"refused": True, "end": end}))
    return cases


# 70B on Galaxy per chip (tt_transformers FF1_3_TG_PROGCFG: [32, dim / 4] x [dim / 4, hidden / 8]; FF2 back)
GALAXY_70B = {"w1": (8192 // 4, 28672 // 8, "bfloat4_b"), "w2": (28672 // 8, 8192 // 4, "bfloat8_b")}


# 8B prefill matmuls (K, N, weight format, compute kernel or the format's own): where the chosen K block is
# narrower than 8 or the chunk shorter than 1024 rows, it is because the wider or longer one overflows L1
PREFILL = {"w1": (4096, 14336, "bfloat4_b", None), "w2": (14336, 4096, "bfloat8_b", None),
           "w1 bfloat8_b": (4096, 14336, "bfloat8_b", None), "wqkv bf16": (4096, 6144, "bf16", None),
           "w1 HiFi4": (4096, 14336, "bfloat4_b", rules.HIFI4)}


def _larger_than_chosen(p, k):
    """The next wider K block, and twice the chunk, of a chosen prefill matmul, where those exist."""
    program = p.op.program
    wider = [w for w in range(program.in0_block_w + 1, 9) if (k // 32) % w == 0]
    if wider:
        yield f"in0_block_w {wider[0]}", p.replace(op=p.op.replace(program=program.replace(in0_block_w=wider[0])))
    if p.chunks % 2 == 0 and p.chunk_rows * 2 <= 1024:
        longer = program.replace(per_core_M=program.per_core_M * 2)
        yield f"{p.chunk_rows * 2} rows", p.replace(chunk_rows=p.chunk_rows * 2, chunks=p.chunks // 2,
                                                   op=p.op.replace(program=longer))


def _prefill_case(p, k, n, fmt) -> dict:
    return {"kind": "interleaved", "k": k, "n": n, "dtype": fmt, "chunks": p.chunks, "chunk_rows": p.chunk_rows,
            "program": print_expr(p.op.program.code()), "compute": print_expr(p.op.compute.code()),
            "memory": print_expr(p.op.memory.code())}


def run_mock(target: str, cases: list, workdir: Path) -> list:
    """Run the cases in one fresh mock-device process of `target`; (case, result) pairs."""
    from ttspec.mock import toolchain

    try:
        toolchain.ensure_toolchain()
    except toolchain.ToolchainMissing as e:
        pytest.skip(str(e))
    (workdir / "cases.json").write_text(json.dumps([case for _, case, _ in cases]), encoding="utf-8")
    env = dict(os.environ, LOGURU_LEVEL="WARNING", **toolchain.mock_env(target))
    # graph capture records program factories only outside ttnn's fast runtime mode
    env["TTNN_CONFIG_OVERRIDES"] = json.dumps({"enable_fast_runtime_mode": False})
    proc = subprocess.run([sys.executable, str(SCRIPT), str(workdir / "cases.json")], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("MOCK-RESULT ")]
    assert proc.returncode == 0 and lines, f"rc {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return list(zip(cases, json.loads(lines[-1].removeprefix("MOCK-RESULT "))))


@pytest.fixture(scope="module")
def mock_results(tmp_path_factory):
    return run_mock("n150", mock_cases(), tmp_path_factory.mktemp("mock-configs-n150"))


def test_blackhole_core_grids_on_the_mock(tmp_path):
    """p150: weights sharded over its 8 DRAM banks, inputs on its grid; the table's entry (targets.py) holds."""
    model = MODELS["llama-3.1-8b"]
    matmuls = layer_matmuls(model, P150)
    assert {m.weight.grid for m in matmuls.values()} == {(8, 1)}
    norm = decode_norm(model["dim"], P150)
    cases = [(f"p150 {name}", _matmul_case(m, rules.PERFORMANCE[role], target=P150),
              {"fidelity": m.op.compute.fidelity})
             for (name, m), role in zip(matmuls.items(), ("wqkv", "wo", "ff1_ff3", "ff2"))]
    cases.append(("p150 norm", {"kind": "norm", "width": model["dim"], "memory": print_expr(norm.memory.code()),
                                "program": print_expr(norm.op.program.code()),
                                "compute": print_expr(norm.op.compute.code())}, {"fidelity": "HiFi2"}))
    # Blackhole folds prefill into 512-row chunks: the 1024-row chunks of these overflow its L1
    for fmt, compute in (("bfloat8_b", None), ("bfloat4_b", rules.HIFI4)):
        p = prefill_matmul(8192, 4096, 14336, fmt, P150, compute=compute)
        assert p.chunk_rows == 512
        longer = p.op.program.replace(per_core_M=p.op.program.per_core_M * 2)
        end = multicast_l1_bytes(longer, 4096 // 32, fmt, "bf16", p.op.compute) + BLACKHOLE_L1[1]
        label = f"p150 prefill w1 {fmt} {p.op.compute.fidelity}"
        cases.append((label, _prefill_case(p, 4096, 14336, fmt), {"fidelity": p.op.compute.fidelity}))
        too_long = p.replace(chunk_rows=1024, chunks=8, op=p.op.replace(program=longer))
        cases.append((label + " 1024 rows", _prefill_case(too_long, 4096, 14336, fmt), {"end": end}))
    for (label, case, expect), result in run_mock("p150", cases, tmp_path):
        if "end" in expect:
            # 1572864 B = 1.5 MiB, Blackhole's L1 per core
            assert f"grow to {expect['end']} B which is beyond max L1 size of 1572864 B" in result["error"], result
            continue
        assert result["ok"], f"{label}: {result['error']}\n{result['traceback']}"
        assert result["fidelity"] == expect["fidelity"], (label, result)
        assert result["device_ops"] == 1, (label, result)  # an activation fused into the matmul adds no op
        if case["kind"] == "matmul":
            assert ("SILU" in result["activation"]) == expect.get("silu", False), (label, result)
            assert result["output_as_stated"], (label, result)  # DecodeMatmul.output is what ttnn writes
            assert result["factory"] == FACTORY, (label, result)


def test_chosen_decode_configs_resolve_on_the_mock(mock_results):
    for (label, case, expect), result in mock_results:
        if expect.get("refused"):
            continue
        assert result["ok"], f"{label}: {result['error']}\n{result['traceback']}"
        assert result["fidelity"] == expect["fidelity"], (label, result)
        if case["kind"] == "matmul":
            assert result["factory"] == FACTORY, (label, result)
        if case["kind"] == "interleaved":
            assert result["factory"] == expect["factory"], (label, result)
        if case["kind"] == "norm":
            assert result["factory"] == "ttnn::prim::LayerNormShardedProgramFactory", (label, result)
        if case["kind"] == "sdpa":
            assert result["op"] == "SdpaDecodeDeviceOperation", (label, result)


def test_configs_the_l1_rules_refuse_are_refused_on_the_mock(mock_results):
    refused = {label: (expect, result) for (label, _, expect), result in mock_results if expect.get("refused")}
    assert len(refused) >= 4, sorted(refused)
    for label, (_, result) in refused.items():
        assert not result["ok"], f"{label} was accepted"
        assert "beyond max L1 size of 1499136 B" in result["error"], (label, result["error"])  # the notes' figure
    # the notes' measurement of the one-piece 8B head (tt_transformers splits it in 3)
    assert "grow to 2982496 B" in refused["llama-3.1-8b head in one piece"][1]["error"]
    # the 2-D multicast buffers end where multicast_l1_bytes says (fp16 and fp32 partial sums, wider K blocks
    # and longer chunks)
    for label, (expect, result) in refused.items():
        if "end" in expect:
            assert f"grow to {expect['end']} B" in result["error"], (label, expect, result["error"][:300])


def test_goldens_accept_the_configs(mock_results):
    goldens = [(label, result) for (label, case, _), result in mock_results if "golden_error" in result]
    assert len(goldens) >= 6, [label for label, _ in goldens]
    for label, result in goldens:
        assert result["golden_error"] < 1e-2, (label, result)
