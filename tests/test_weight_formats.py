"""Weight formats per kind (`--weights-dtype attention=bfloat8_b,mlp=bfloat4_b`) and per matrix role
(`performance`, tt_transformers' preset; `performance,ff2=bfloat4_b`) lowered into the TT-NN program:
each matrix is uploaded in its kind's or role's format, the memory model counts each matrix's bytes in
its format (closed forms from the model's shapes), and ttnn's allocator on the mock device books what
the memory model predicts."""

import re

import pytest
import torch

from ttspec.analysis.memory import weight_bytes_by_kind, weight_layouts
from ttspec.driver import compile_program, compile_source, load_model
from ttspec.runtime.device import run_worker
from ttspec.weight_formats import Matrix

from .conftest import SPECS, formats_of, target_of
from .test_mock_programs import needs_mock


def test_program_uploads_each_kind_in_its_format():
    model = load_model(SPECS / "nano-trickster.arch")
    formats = "attention=bfloat8_b,mlp=bfloat4_b,head=bfloat8_b"
    source = compile_source(model, "specs/nano-trickster.arch", target_of("n150"), formats_of(formats))
    assert "WEIGHTS_DTYPE = ttnn.bfloat16" in source
    assert re.search(r'weights\.linear\(\s*prefix \+ "w1",\s*dtype=ttnn\.bfloat4_b[,)]', source)
    assert re.search(r'weights\.linear\(\s*prefix \+ "wo",\s*dtype=ttnn\.bfloat8_b[,)]', source)
    # the tied head's own copy, as DRAM-sharded column chunks (backends/ttnn/lower_head.py)
    assert re.search(r'weights\.linear_chunks\(\s*"embedding",[^=]*?\],\s*dtype=ttnn\.bfloat8_b,?\s*\)', source)
    plain = compile_source(model, "specs/nano-trickster.arch", target_of("n150"), formats_of("bfloat8_b"))
    assert "dtype=ttnn.bfloat8_b)" not in plain.replace("WEIGHTS_DTYPE = ttnn.bfloat8_b", "")


@needs_mock
@pytest.mark.parametrize(("spec", "target", "formats"), [
    ("nano-trickster.arch", "n150", "attention=bfloat8_b,mlp=bfloat4_b,head=bfloat8_b"),
    ("llama-gqa-tiny.arch", "n150", "bfloat8_b,mlp=bfloat4_b"),
    ("nano-trickster.arch", "t3k", "attention=bfloat8_b,mlp=bfloat4_b"),
    ("llama-gqa-tiny.arch", "n150", "performance"),
])
def test_mock_allocator_books_the_memory_model(spec, target, formats):
    model = load_model(SPECS / spec)
    source, build = compile_program(model, f"specs/{spec}", target_of(target), formats_of(formats))
    result = run_worker(model, source, "mock", target, state=None, tokens=torch.zeros(1, 32, dtype=torch.int64))
    allocated = result["dram_bytes_allocated"]
    predicted = build.memory.weights_total  # per chip, DRAM-sharded layer matrices at their banks' whole shards
    print(f"{spec} {target} {formats}: allocated {allocated:,} B per chip; planned {predicted:,}")
    assert predicted <= allocated <= predicted * 1.005 + 2**20
    plain = run_worker(model, compile_source(model, f"specs/{spec}", target_of(target), formats_of("bf16")), "mock",
                       target, state=None,
                       tokens=torch.zeros(1, 32, dtype=torch.int64))
    assert allocated < plain["dram_bytes_allocated"]



@needs_mock
@pytest.mark.parametrize(("target", "formats"), [("t3k", "bf16"), ("n150", "bfloat8_b"), ("p150", "bf16")])
def test_allocator_books_a_biased_gelu_mlp_exactly(target, formats):
    """GPT-2's components at tiny sizes (biased QKV, wo, GELU MLP up and down; LayerNorms with biases; learned
    positions: no tables besides the parameters): ttnn's mock allocator books exactly the memory model's weights.
    Its interleaved tensors take whole pages in every DRAM bank (analysis/dram_pages.py): a bias is one row of
    tiles, and tensor-parallel over T3K a [32, 96] slice of the MLP's up bias (3 tiles) is booked as 12 (Wormhole's
    12 banks; Blackhole p150 has 8). Counted at their own tiles, the model was 582,400 B (23%) under the
    allocator's 2,507,520 B per chip on T3K."""
    spec = "nano-trickster-gpt2.arch"
    model = load_model(SPECS / spec)
    source, build = compile_program(model, f"specs/{spec}", target_of(target), formats_of(formats))
    result = run_worker(model, source, "mock", target, state=None, tokens=torch.zeros(1, 32, dtype=torch.int64))
    print(f"{spec} {target} {formats}: allocated {result['dram_bytes_allocated']:,} B per chip; "
          f"planned {build.memory.weights_total:,}")
    assert build.memory.weights_total == result["dram_bytes_allocated"]


# ---------------------------------------------------------------- per matrix: roles and the performance preset
def test_performance_preset_is_tt_transformers():
    """`performance` is tt_transformers' ModelOptimizations.performance over its defaults (model_config.py: FF1/FF3
    bfloat4_b, everything else bfloat8_b): the backend's table of it (configs.rules.PERFORMANCE, which
    tests/test_ttnn_configs.py checks against tt_transformers' choices) is what the preset gives each matmul group,
    format and compute kernel alike; it is `bfloat8_b,ff1_ff3=bfloat4_b` and prints back as `performance`."""
    from ttspec.backends.ttnn.configs.rules import performance_preset, precision_from_formats

    preset = formats_of("performance")
    assert preset == formats_of("bfloat8_b,ff1_ff3=bfloat4_b") and str(preset) == "performance"
    assert precision_from_formats(preset) == performance_preset()
    assert precision_from_formats(formats_of("performance,ff2=bfloat4_b")) == performance_preset(ff2="bfloat4_b")
    assert formats_of(str(formats_of("performance,wo=bf16"))) == formats_of("performance,wo=bf16")


@pytest.mark.parametrize("formats,expected", [
    # (attention wqkv, attention wo, mlp ff1_ff3, mlp ff2, head)
    ("performance", ("bfloat8_b", "bfloat8_b", "bfloat4_b", "bfloat8_b", "bfloat8_b")),
    ("performance,mlp=bfloat8_b", ("bfloat8_b",) * 5),  # a kind over the preset
    ("performance,ff2=bfloat4_b,head=bf16", ("bfloat8_b", "bfloat8_b", "bfloat4_b", "bfloat4_b", "bf16")),
    ("mlp=bfloat4_b,ff2=bfloat8_b", ("bf16", "bf16", "bfloat4_b", "bfloat8_b", "bf16")),  # a role over its kind
    ("bfloat4_b,wqkv=bf16", ("bf16", "bfloat4_b", "bfloat4_b", "bfloat4_b", "bfloat4_b")),
])
def test_the_most_specific_entry_wins(formats, expected):
    f = formats_of(formats)
    matrices = (Matrix("attention", "wqkv"), Matrix("attention", "wo"), Matrix("mlp", "ff1_ff3"), Matrix("mlp", "ff2"),
                Matrix("head"))
    assert tuple(f.dtype(m) for m in matrices) == expected


@pytest.mark.parametrize("spec,roles", [
    # llama: wq, wk, wv read the attention's input, wo its heads; w1, w3 the MLP's input, w2 their product
    ("llama-gqa-tiny.arch", {"wqkv": 3 * 4, "wo": 4, "ff1_ff3": 2 * 4, "ff2": 4}),
    # GPT-2: biases too (each takes its matrix's role; only matrices take a format); the MLP's up and down
    ("gpt2.arch", {"wqkv": 2 * 3 * 12, "wo": 2 * 12, "ff1_ff3": 2 * 12, "ff2": 2 * 12}),
])
def test_each_matrix_has_its_role(spec, roles):
    found: dict[str, int] = {}
    for (matrix, _, _), count in weight_layouts(load_model(SPECS / spec)).items():
        if matrix.role:
            found[matrix.role] = found.get(matrix.role, 0) + count
    assert found == roles


def test_memory_model_counts_each_matrix_in_its_format():
    """Llama-3.1-8B in the performance preset, closed forms from its published shapes: 32 layers of wq 4096x4096,
    wk and wv 1024x4096, wo 4096x4096 (bfloat8_b: 1,088 B per 32x32 tile); w1 and w3 14336x4096 (bfloat4_b: 576 B
    per tile), w2 4096x14336 (bfloat8_b); the head 128256x4096 (bfloat8_b); the embedding stays a bf16 table."""
    model = load_model(SPECS / "llama-3.1-8b.arch")

    def tiles(rows, cols):
        return rows * cols // 1024

    got = weight_bytes_by_kind(model, formats_of("performance"))
    assert got["attention"] == 32 * (2 * tiles(4096, 4096) + 2 * tiles(1024, 4096)) * 1088
    assert got["mlp"] == 32 * (2 * tiles(14336, 4096) * 576 + tiles(4096, 14336) * 1088)
    assert got["head"] == tiles(128256, 4096) * 1088
    assert got["embedding"] == 128256 * 4096 * 2


def placed_dtypes(source: str) -> dict[str, str | None]:
    """Each matrix the program places (`weights.linear(prefix + "w1", ...)`) -> the dtype it states, None for the
    program's WEIGHTS_DTYPE; read from the program as Python, whatever other options the call has."""
    import ast

    out = {}
    for call in ast.walk(ast.parse(source)):
        if (isinstance(call, ast.Call) and ast.unparse(call.func) == "weights.linear" and call.args
                and isinstance(call.args[0], ast.BinOp) and isinstance(call.args[0].right, ast.Constant)):
            dtype = next((ast.unparse(k.value) for k in call.keywords if k.arg == "dtype"), None)
            out[call.args[0].right.value] = dtype
    return out


def test_program_uploads_each_matrix_in_its_roles_format():
    model = load_model(SPECS / "llama-gqa-tiny.arch")
    source = compile_source(model, "specs/llama-gqa-tiny.arch", target_of("n150"), formats_of("performance"))
    assert "WEIGHTS_DTYPE = ttnn.bfloat8_b" in source  # the preset's default: wqkv, wo, w2, the head
    placed = placed_dtypes(source)
    assert {m: placed[m] for m in ("w1", "w3", "w2", "wo", "wqkv")} == {
        "w1": "ttnn.bfloat4_b", "w3": "ttnn.bfloat4_b", "w2": None, "wo": None, "wqkv": None}
    source = compile_source(model, "specs/llama-gqa-tiny.arch", target_of("n150"),
                            formats_of("performance,ff2=bfloat4_b,wqkv=bf16"))
    placed = placed_dtypes(source)
    assert {m: placed[m] for m in ("w2", "wqkv", "wo")} == {"w2": "ttnn.bfloat4_b", "wqkv": "ttnn.bfloat16",
                                                             "wo": None}


def test_cost_model_prices_each_matrix_in_its_format():
    """A batch-1 decode step of Llama-3.1-8B on n150 reads every weight once: the performance preset's weights
    (w1, w3 bfloat4_b; w2 bfloat8_b) lie strictly between bfloat8_b everywhere and bfloat8_b with the whole MLP in
    bfloat4_b, and so does the modelled step; a bfloat8_b KV cache makes a long-context step cheaper still."""
    from ttspec.reports.report import cost_report

    model = load_model(SPECS / "llama-3.1-8b.arch")

    def step(formats):
        return cost_report(model, target_of("n150"), None, formats, 1, 8192, 128)["totals"]["decode_ms_per_step"]

    plain, preset, mlp4 = (step(formats_of(f)) for f in ("bfloat8_b", "performance", "bfloat8_b,mlp=bfloat4_b"))
    assert plain > preset > mlp4
    assert step(formats_of("performance").with_kv_cache("bfloat8_b")) < preset
