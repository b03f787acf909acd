"""Training memory (issue 23): `check --training`'s estimate (backends/torch/training_memory.py) against the
peak measured while fp32 AdamW trains the generated program on CPU (training/memory.py: the CPU allocator's
live tensor bytes, reported to torch's profiler). The measured peak is the outside truth; the estimate must
come within 25% of it on the shipped small specs at several batch and sequence sizes (docs/training-memory.md
has the table). The measurement itself is checked against a known allocation."""

import json

import pytest

from ttspec.backends.torch.backend import compile_torch
from ttspec.backends.torch.training_memory import training_memory
from ttspec.driver import load_model
from ttspec.ops.queries import input_vocabulary
from ttspec.runtime.runner import load_program

from .conftest import SPECS
from .test_check_json import doc_schema, validate

torch = pytest.importorskip("torch")

from ttspec.training.memory import language_model_step, measure_training_peak  # noqa: E402 (needs torch)

TOLERANCE = 0.25
CASES = [("nano-trickster.arch", 2, 64), ("nano-trickster-gpt2.arch", 1, 64), ("llama-gqa-tiny.arch", 2, 64),
         ("moe-tiny.arch", 4, 128), ("phi-tiny.arch", 1, 96), ("encoder-tiny.arch", 2, 64)]


@pytest.fixture(scope="module")
def programs():
    """Each spec's model and a fresh instance of its generated torch module, built once."""
    built = {}

    def get(spec):
        if spec not in built:
            model = load_model(SPECS / spec)
            module = load_program(compile_torch(model, str(SPECS / spec)), f"{model.name}_memory")
            cls = getattr(module, next(n for n in dir(module) if n.lower() == model.name.replace("_", "")))
            torch.manual_seed(0)
            built[spec] = model, cls()
        return built[spec]

    return get


@pytest.mark.parametrize("spec,batch,seq", CASES)
def test_estimate_agrees_with_the_measured_peak(programs, spec, batch, seq):
    model, module = programs(spec)
    tokens = torch.randint(0, input_vocabulary(model.graph), (batch, seq + 1),
                           generator=torch.Generator().manual_seed(1))
    measured = measure_training_peak(module, tokens)
    estimate = training_memory(model, batch, seq)
    assert abs(estimate.peak / measured.bytes - 1) <= TOLERANCE, (estimate.peak, measured.bytes)
    # the peak is more than the 16 bytes per parameter of the weights, gradients and moments alone
    assert measured.bytes > 16 * estimate.parameters


def test_measurement_counts_a_known_allocation(programs):
    """A step that also holds 10,000,000 bytes at once measures exactly that much more than the plain step:
    the measurement counts tensor bytes, not the process."""
    _, module = programs("moe-tiny.arch")
    tokens = torch.randint(0, 512, (1, 33), generator=torch.Generator().manual_seed(2))
    extra = 10_000_000

    def heavier(model, optimizer, batch_tokens):
        held = torch.empty(extra, dtype=torch.uint8)
        language_model_step(model, optimizer, batch_tokens)
        del held

    plain = measure_training_peak(module, tokens, steps=1)
    more = measure_training_peak(module, tokens, steps=1, step=heavier)
    assert more.bytes - plain.bytes == extra
    assert "profiler" in plain.how


def test_the_module_measured_is_left_as_it_was(programs):
    _, module = programs("moe-tiny.arch")
    before = {n: t.clone() for n, t in module.state_dict().items()}
    measure_training_peak(module, torch.randint(0, 512, (1, 17)), steps=1)
    assert all(torch.equal(before[n], t) for n, t in module.state_dict().items())
    assert all(p.grad is None for p in module.parameters())


def test_check_states_the_estimate(run_cli):
    """`check --training --batch --seq` states its estimate at that size, in text and in JSON."""
    spec = "specs/nano-trickster.arch"
    expected = training_memory(load_model(spec), 8, 256)
    out = run_cli("check", "--training", "--batch", "8", "--seq", "256", spec)
    assert out.returncode == 0, out.stderr
    assert f"training at batch 8 x seq 256 (fp32 AdamW) needs about {expected.peak / 1e6:,.1f} MB" in out.stdout
    doc = json.loads(run_cli("check", "--json", "--training", "--seq", "128", spec).stdout)
    validate(doc, doc_schema(), doc_schema())
    (entry,) = doc["specs"]
    assert entry["training"]["batch"] == 1 and entry["training"]["seq"] == 128
    assert entry["training"]["peak"] == training_memory(load_model(spec), 1, 128).peak
    doc["specs"][0]["training"]["peak"] = -1  # the schema's check can fail
    with pytest.raises(AssertionError):
        validate(doc, doc_schema(), doc_schema())
