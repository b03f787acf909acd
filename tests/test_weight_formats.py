"""Weight formats per kind (`--weights-dtype attention=bfloat8_b,mlp=bfloat4_b`) lowered into the
TT-NN program: each matrix is uploaded in its kind's format, and ttnn's allocator on the mock
device books what the memory model predicts."""

import re

import pytest
import torch

from ttspec.driver import compile_program, compile_source, load_model
from ttspec.runtime.device import run_worker

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
