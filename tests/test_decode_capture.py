"""The decode-step capture (ttspec/runtime/decode_capture.py, graph_summary.py; bench/decode_capture.py) holds to
facts known from outside it: its per-layer grouping agrees with total(2 layers) - total(1 layer) on ttnn's mock
n150, every named matmul operand is a weight matrix the program places, with the dtype --weights-dtype gave its
kind and the [in, out] shape of the model's parameters, and every byte count is the closed form of its tensor's
shape and dtype. A hand-built graph checks the walk itself without ttnn."""

import math
import re

import pytest

from ttspec.driver import compile_source, load_model
from ttspec.runtime.graph_summary import LAYER_MARK, summarize, walk
from ttspec.runtime.weights import stored_shapes

from .conftest import SPECS, formats_of, target_of

try:
    from ttspec.mock.toolchain import riscv_gcc
except ImportError:  # pragma: no cover
    riscv_gcc = None

USERS, CONTEXT, PREFILL = 32, 64, 64
FORMATS = "attention=bfloat8_b,mlp=bfloat4_b"  # the head keeps bf16
ITEM_BYTES = {"float32": 4, "int32": 4, "uint32": 4, "bfloat16": 2}
# llama-gqa-tiny: d 256, 8 heads of 32 sharing 2 KV heads, MLP 768, vocab 512
D, HEADS, KV, HEAD_DIM, MLP, VOCAB = 256, 8, 2, 32, 768, 512


def _needs_mock():
    pytest.importorskip("torch")
    pytest.importorskip("ttnn")
    if riscv_gcc is None or riscv_gcc() is None:
        pytest.skip("Debian gcc-riscv64-unknown-elf missing: run .ci/install-mock-toolchain")


@pytest.fixture(scope="module")
def captures(tmp_path_factory):
    """llama-gqa-tiny with 1 and 2 layers, each compiled for n150 and captured on the mock n150."""
    _needs_mock()
    from ttspec.runtime.decode_capture import capture_decode

    text = (SPECS / "llama-gqa-tiny.arch").read_text(encoding="utf-8")
    out = {}
    for layers in (1, 2):
        path = tmp_path_factory.mktemp(f"layers{layers}") / "tiny.arch"
        path.write_text(re.sub(r"(?m)^let layers = \d+", f"let layers = {layers}", text), encoding="utf-8")
        model = load_model(path)
        source = compile_source(model, str(path), target_of("n150"), formats_of(FORMATS), batch=USERS)
        result = capture_decode(model, source, "n150", users=USERS, context=CONTEXT, prefill=PREFILL, timeout=600)
        out[layers] = (model, source, result)
    return out


def test_per_layer_ops_are_the_difference_of_one_and_two_layers(captures):
    one, two = captures[1][2]["decode"], captures[2][2]["decode"]
    assert one["device_ops_per_layer"][0] > 0
    assert two["device_ops_per_layer"] == [one["device_ops_per_layer"][0]] * 2
    assert two["device_ops_total"] - one["device_ops_total"] == two["device_ops_per_layer"][0]
    for segment in ("before", "after"):
        assert one[f"device_ops_{segment}_layers"] == two[f"device_ops_{segment}_layers"]
    # one chip: ttnn records one program execution per device op, in the same segment
    assert two["program_executions"] == {"before": two["device_ops_before_layers"], "0": two["device_ops_per_layer"][0],
                                         "1": two["device_ops_per_layer"][1], "after": two["device_ops_after_layers"]}
    prefill_one, prefill_two = captures[1][2]["prefill"], captures[2][2]["prefill"]
    assert prefill_two["device_ops_total"] - prefill_one["device_ops_total"] == prefill_two["device_ops_per_layer"][0]


def test_named_matmul_operands_are_the_programs_weight_matrices(captures):
    model, source, result = captures[2]
    stated = set(re.findall(r'weights\.linear\(\s*prefix \+ "([\w.]+)"', source))  # what the program places
    shapes = stored_shapes(model)  # [out, in], ttspec's names
    dtypes = {"attn": "bfloat8_b", "mlp": "bfloat4_b"}
    for layer in range(2):
        ops = [op for op in result["decode_ops"] if op["segment"] == layer and op["weight"]
               and op["op"] == "MatmulDeviceOperation"]
        names = [op["weight"] for op in ops]
        assert all(name.startswith(f"layers.{layer}.") for name in names)
        # each matrix the program places in a layer is one matmul's operand, once (the head's is after the layers)
        assert sorted(name.rsplit(".", 1)[1] for name in names) == sorted(stated - {"lm_head"})
        for op in ops:
            kind, part = op["weight"].split(".")[2:4]
            parts = ("wq", "wk", "wv") if part == "wqkv" else (part,)
            out = sum(shapes[f"layers.{layer}.{kind}.{p}.weight"][0] for p in parts)
            assert op["inputs"][1]["shape"] == [shapes[f"layers.{layer}.{kind}.{parts[0]}.weight"][1], out]
            assert op["inputs"][1]["dtype"] == dtypes[kind]
            assert op["fidelity"] in ("LoFi", "HiFi2", "HiFi3", "HiFi4")
    head = [op for op in result["decode_ops"] if op["segment"] == "after" and op["weight"]
            and op["op"] == "MatmulDeviceOperation"]
    # the LM head in DRAM-sharded column chunks (one for the 512-entry vocabulary here), placed as lm_head_<i>
    assert [(op["weight"], op["inputs"][1]["shape"], op["inputs"][1]["dtype"], op["inputs"][1]["memory"],
             op["factory"]) for op in head] == [("lm_head_0", [D, VOCAB], "bfloat16", "DRAM width_sharded",
                                                 DRAM_SHARDED)]
    assert shapes["layers.0.attn.wq.weight"] == (HEADS * HEAD_DIM, D)  # the spec's sizes, as read above
    assert shapes["layers.0.attn.wk.weight"] == (KV * HEAD_DIM, D)
    assert shapes["layers.0.mlp.w1.weight"] == (MLP, D)


DRAM_SHARDED = "MatmulMultiCoreReuseMultiCastDRAMShardedProgramFactory"


def test_layer_matmuls_run_dram_sharded_and_prefill_reads_the_same_weights(captures):
    """Issue 20: every weight matmul of a layer on ttnn's DRAM-sharded factory (weight width-sharded in DRAM,
    activation width-sharded in L1), bfloat4_b at LoFi and bfloat8_b at HiFi2 (tt-metal's LLM guide), at most
    20 device ops per layer; the head (another helper's) is not a layer matmul. Prefill reads the same
    DRAM-sharded weights through its 2-D programs: it validated at 64 tokens (one chunk of 64) in the fixture,
    and here at 160 (five chunks of 32)."""
    from ttspec.runtime.decode_capture import capture_decode

    model, source, result = captures[2]
    fidelity = {"bfloat4_b": "LoFi", "bfloat8_b": "HiFi2"}
    for layer in range(2):
        ops = [op for op in result["decode_ops"] if op["segment"] == layer and op["weight"]
               and op["op"] == "MatmulDeviceOperation"]
        assert len(ops) == 5
        for op in ops:
            assert op["factory"] == DRAM_SHARDED, op["weight"]
            assert op["inputs"][1]["memory"] == "DRAM width_sharded" and op["inputs"][0]["memory"] == "L1 width_sharded"
            assert op["fidelity"] == fidelity[op["inputs"][1]["dtype"]], op["weight"]
    assert result["decode"]["device_ops_per_layer"] == [result["decode"]["device_ops_per_layer"][0]] * 2
    assert result["decode"]["device_ops_per_layer"][0] <= 20
    assert result["prefill"]["device_ops_per_layer"][0] > 0
    one_model, one_source, _ = captures[1]
    longer = capture_decode(one_model, one_source, "n150", users=USERS, context=192, prefill=160, timeout=600)
    # the prefill ran (every chunk validated) and returned the last position's tile of logits: 32 rows x vocab, bf16
    assert longer["prefill"]["bytes_to_host_per_step"] == 32 * VOCAB * 2


def closed_form_bytes(dtype: str, layout: str, shape: list[int]) -> int:
    """A tensor's bytes from its shape: row-major, elements x element size; TILE, whole 32x32 tiles of the last two
    dims (block floats: 1,024 mantissas of 8 or 4 bits plus 64 shared exponent bytes per tile)."""
    if layout == "ROW_MAJOR":
        return math.prod(shape) * ITEM_BYTES[dtype]
    *outer, rows, cols = [1] + shape if len(shape) == 1 else shape
    tiles = math.prod(outer) * -(-rows // 32) * -(-cols // 32)
    return tiles * {"bfloat8_b": 1088, "bfloat4_b": 576}.get(dtype, 1024 * ITEM_BYTES.get(dtype, 0))


def test_host_bytes_are_closed_forms_of_the_tensors(captures):
    one, two = captures[1][2]["decode"], captures[2][2]["decode"]
    for decode in (one, two):
        for direction in ("uploads", "reads"):
            for row in decode[f"{direction}_per_step"]:
                dtype, layout, shape, size = re.search(r" (\w+) (\w+) \[([\d, ]*)\] ([\d,]+) B x 1$", row).groups()
                shape = [int(s) for s in shape.split(", ")]
                assert int(size.replace(",", "")) == closed_form_bytes(dtype, layout, shape), row
    # what a layer uploads is all that a second layer adds
    assert two["bytes_to_device_per_layer"][0] == two["bytes_to_device_per_layer"][1]
    assert two["bytes_to_device_per_step"] - one["bytes_to_device_per_step"] == two["bytes_to_device_per_layer"][0]
    assert two["bytes_to_device_outside_layers"] == one["bytes_to_device_outside_layers"]
    # the greedy step (what generate runs) reads each user's token id (uint32) and largest logit (bf16), chosen on
    # the device, never the logits [users, vocab]: 6 B a user
    assert two["bytes_to_host_per_step"] == USERS * (4 + 2) <= 1024 * USERS
    # a prefill's head runs on the tile holding its last position: one tile of rows comes back, bf16
    assert captures[2][2]["prefill"]["bytes_to_host_per_step"] == 32 * VOCAB * 2 < PREFILL * VOCAB * 2


@pytest.mark.parametrize("target,devices", [("n300", 2), ("t3k", 8)])
def test_a_greedy_step_on_a_mesh_reads_one_group_of_ids(tmp_path, target, devices):
    """1-D meshes (the vocabulary split over the devices): each device finds the best of its slice, so a greedy
    step reads devices x (a uint32 id + a bf16 largest logit) per user, and a prefill one tile of rows of each
    device's slice of the logits; the layer matmuls run DRAM-sharded. T3K's tiny program (one 32-wide head per
    chip, KV heads repeated: its fused QKV holds 96 columns per chip, not 384 / 8) was refused by the mock in its
    decode QKV matmul (num_blocks_total <= num_cores: a 1-D program sized for 48 columns) until the per-chip
    shape counted the repeated KV heads (decode_configs.local_matmul_shape)."""
    _needs_mock()
    from ttspec.runtime.decode_capture import capture_decode

    text = (SPECS / "llama-gqa-tiny.arch").read_text(encoding="utf-8")
    path = tmp_path / "tiny.arch"
    path.write_text(re.sub(r"(?m)^let layers = \d+", "let layers = 1", text), encoding="utf-8")
    model = load_model(path)
    source = compile_source(model, str(path), target_of(target), formats_of(FORMATS), batch=USERS)
    result = capture_decode(model, source, target, users=USERS, context=CONTEXT, prefill=PREFILL, timeout=600)
    assert result["decode"]["bytes_to_host_per_step"] == devices * USERS * (4 + 2)
    assert result["prefill"]["bytes_to_host_per_step"] == devices * 32 * (VOCAB // devices) * 2
    ops = [op for op in result["decode_ops"] if op["segment"] == 0 and op["weight"]
           and op["op"] == "MatmulDeviceOperation"]
    assert [op["factory"] for op in ops] == [DRAM_SHARDED] * 5
    qkv = next(op for op in ops if op["weight"].endswith("wqkv"))
    assert qkv["inputs"][1]["shape"][-1] == (HEADS // devices + 2 * max(1, KV // devices)) * HEAD_DIM


# ---------------------------------------------------------------- the walk on a hand-built capture


def _tensor(counter, storage, size, shape, dtype="DataType::BFLOAT16", memory="INTERLEAVED", buffer="DRAM"):
    params = {"storage_type": storage, "size": size, "shape": f"Shape({shape})", "dtype": dtype,
              "layout": "Layout::TILE"}
    if storage == "DEVICE":
        params["memory_config"] = (f"MemoryConfig(memory_layout=TensorMemoryLayout::{memory},"
                                   f"buffer_type=BufferType::{buffer})")
        params["device_tensors"] = '[{"address":64,"device_id":0,"mesh_device_id":0}]'
        params["address"] = 64 if size == 8192 else 96
    return {"counter": counter, "node_type": "tensor", "params": params, "input_tensors": [], "connections": [],
            "stacking_level": 2, "arguments": []}


def _call(counter, level, name, inputs=(), outputs=(), arguments=(), factory=None):
    params = {"name": name}
    if factory:
        params["program_factory_type"] = f"ttnn::prim::{factory}"
    start = {"counter": counter, "node_type": "function_start", "params": params, "input_tensors": list(inputs),
             "connections": [], "stacking_level": level, "arguments": list(arguments)}
    end = {"counter": counter + 1, "node_type": "function_end", "params": {"name": name}, "input_tensors": [],
           "connections": list(outputs), "stacking_level": level, "arguments": []}
    return start, end


def test_walk_groups_by_layer_marks_and_counts_bytes():
    """One upload before the layer, a layer holding a linear (with a named weight) and an upload, one read
    after it: each lands in its segment with its factory, fidelity, memory and bytes."""
    graph = [_tensor(1, "HOST", 128, "[1, 32]", "DataType::UINT32")]
    graph += _call(2, 1, "Tensor::to_device", inputs=[1], outputs=[4])
    graph += [_tensor(4, "DEVICE", 128, "[1, 32]", "DataType::UINT32")]
    mark_start, mark_end = _call(5, 1, f"{LAYER_MARK}0")
    graph += [mark_start, _tensor(7, "DEVICE", 16384, "[1, 32, 256]"), _tensor(8, "DEVICE", 8192, "[256, 32]")]
    linear, linear_end = _call(9, 2, "ttnn.linear")
    matmul, matmul_end = _call(11, 3, "MatmulDeviceOperation", inputs=[7, 8], outputs=[13],
                               arguments=["MatmulParams(ComputeKernelConfig(math_fidelity=LoFi,x=0))"],
                               factory="MatmulMultiCoreReuseMultiCastDRAMShardedProgramFactory")
    graph += [linear, matmul, matmul_end, _tensor(13, "DEVICE", 2048, "[1, 32, 32]", memory="WIDTH_SHARDED",
                                                  buffer="L1"), linear_end]
    graph += [_tensor(14, "HOST", 4096, "[1, 1, 32, 32]", "DataType::FLOAT32")]
    graph += _call(15, 2, "Tensor::to_device", inputs=[14], outputs=[17])
    graph += [_tensor(17, "DEVICE", 4096, "[1, 1, 32, 32]", "DataType::FLOAT32"), mark_end]
    mark_end["counter"] = 18
    graph += _call(19, 1, "Tensor::cpu", inputs=[13])
    walked = walk(graph, weights={64: "layers.0.w"})
    [op] = walked["ops"]
    assert (op["segment"], op["weight"], op["fidelity"], op["caller"]) == (0, "layers.0.w", "LoFi", "ttnn.linear")
    assert op["factory"] == "MatmulMultiCoreReuseMultiCastDRAMShardedProgramFactory"
    assert [t["memory"] for t in op["inputs"] + op["outputs"]] == ["DRAM interleaved"] * 2 + ["L1 width_sharded"]
    assert [(t["segment"], t["direction"], t["bytes"]) for t in walked["transfers"]] == \
        [("before", "to_device", 128), (0, "to_device", 4096), ("after", "to_host", 2048)]
    summary = summarize(walked, layers=1)
    assert summary["device_ops_per_layer"] == [1]
    assert summary["bytes_to_device_per_layer"] == [4096]
    assert summary["bytes_to_device_per_step"] == 4096 + 128
    assert summary["bytes_to_host_per_step"] == 2048


# the program factory family the capture shows for each family the cost model reads from the program
CAPTURED_FACTORY = {"dram_sharded": "MatmulMultiCoreReuseMultiCastDRAMShardedProgramFactory",
                    "mcast_1d": "MatmulMultiCoreReuseMcast1DProgramFactory",
                    "ttnn_default": "MatmulMultiCoreReuseMcast1DProgramFactory",  # DRAM-interleaved, unconfigured
                    "mcast_2d": "MatmulMultiCoreReuseMcast2DProgramFactory"}


def test_report_prices_the_captured_decode_step(captures):
    """`ttspec report`'s decode step is the one the mock device runs: its device ops per layer within 10% of the
    capture's (issue 20), and each weight matmul's program factory and math fidelity as captured."""
    from ttspec.reports.report import cost_report

    model, _, result = captures[2]
    report = cost_report(model, target_of("n150"), weights_dtype=formats_of(FORMATS), batch=USERS, seq=CONTEXT)
    assert report["priced_program"] == "emitted"
    program = report["decode"]["program"]
    captured = result["decode"]["device_ops_per_layer"][0]
    assert abs(program["device_ops_per_layer"] - captured) <= 0.1 * captured, (program["layer_ops"], captured)
    # exactly, as decode_facts reads the program: per layer, and once per step (the embedding, RoPE's cos and sin
    # gathered and resharded, before the layers; the final norm, head and greedy sampling after)
    assert program["device_ops_per_layer"] == captured, program["layer_ops"]
    once = result["decode"]["device_ops_before_layers"] + result["decode"]["device_ops_after_layers"]
    assert program["device_ops_once_per_step"] == once
    assert report["decode"]["ops"] == 2 * program["device_ops_per_layer"] + program["device_ops_once_per_step"]
    matmuls = {m["weight"].rsplit(".", 1)[-1]: m for m in result["decode"]["layer0_matmuls"] if m["weight"]}
    assert matmuls and set(matmuls) <= set(program["weight_matmuls"])
    for weight, m in matmuls.items():
        modelled = program["weight_matmuls"][weight]
        assert CAPTURED_FACTORY[modelled["factory"]] == m["factory"], weight
        assert modelled["fidelity"] == m["fidelity"], weight
    # the prefill, read from the program the same way (prefill_facts): per layer, the capture's device ops less those
    # ttnn.from_torch dispatches uploading RoPE's tables for a new prompt length (kept for later prompts of that
    # length: the steady state PERF.md's TTFT measures after its warm-up); before and after the layers exactly
    # (head_chunks_prefill's concat, which a head of one column chunk, this model's, skips, is not counted)
    prefill, captured_prefill = report["prefill"]["program"], result["prefill"]
    uploads = captured_prefill["layer0_ops_in_uploads"]
    assert prefill["device_ops_per_layer"] == captured_prefill["device_ops_per_layer"][0] - uploads, prefill
    once = captured_prefill["device_ops_before_layers"] + captured_prefill["device_ops_after_layers"]
    assert prefill["device_ops_once_per_step"] == once, prefill
    assert uploads <= 0.2 * captured_prefill["device_ops_per_layer"][0]  # (4 of 27: RoPE's cos and sin, twice)
    # the bytes that cross PCIe each step: the step's inputs up, the logits down
    host = report["decode"]["by_op_class"]["host_read"]["host_bytes"]
    assert host == result["decode"]["bytes_to_device_per_step"] + result["decode"]["bytes_to_host_per_step"]
