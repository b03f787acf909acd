"""`ttspec run` and `ttspec generate` against hostile inputs (issue 18): tokenizers that are there but
unusable, prompt files that are devices or not text, work past any bound (users, context, token shapes),
option values at the edge of floating point, programs that give NaN, temporary directories left
behind, and the sampler checked against HF transformers' own logits processors.

Every refusal is one message, a non-zero exit (1 for bad input, 2 for command-line misuse), no
traceback, never exit 70 (an internal error). Expected values come from outside the code under test:
closed forms from the spec's numbers, HF transformers' TemperatureLogitsWarper, TopKLogitsWarper and
TopPLogitsWarper, and the greedy choice.
"""

import os
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ttspec.driver import load_model  # noqa: E402
from ttspec.runtime.runner import build_torch, random_state_dict  # noqa: E402

from .conftest import ROOT  # noqa: E402

# one attention layer: 256 byte tokens, 32 features, 2 heads of 16 (KV cache: 2 x 2 x 16 fp32 = 256 bytes
# per user and position)
TINY = """model tiny
input tokens: int32[batch, seq]{where}
h = token_embedding(tokens, 256, 32) as embedding
h = h + attention(rmsnorm(h, eps = 1e-5) as attn_norm, heads = 2, rope = rope(theta = 10000.0)) as attn
h = rmsnorm(h, eps = 1e-5) as norm
output logits = lm_head(h, 256) as head
"""
BOUNDED = TINY.format(where=" where seq <= 64 and batch <= 4")
UNBOUNDED = TINY.format(where="")
TINY_PARAMS = 256 * 32 + 32 + 4 * 32 * 32 + 32 + 256 * 32  # embedding, attn_norm, q k v o, norm, head
TINY_KV_PER_POSITION = 1 * 2 * (16 + 16) * 4  # layers x kv heads x (key + value features) x fp32 bytes


def one_message(stderr: str) -> bool:
    """One diagnostic (`error:` or `FILE:LINE:COL: error:` opening a line), no traceback, not an internal error."""
    return (len(re.findall(r"^(?:\S+: )?error:", stderr, re.MULTILINE)) == 1 and "Traceback" not in stderr
            and "internal error" not in stderr)


def refused(out, status: int, *fragments: str) -> None:
    assert out.returncode == status, (out.returncode, out.stdout, out.stderr)
    assert one_message(out.stderr), out.stderr
    for fragment in fragments:
        assert fragment in out.stderr, (fragment, out.stderr)


@pytest.fixture
def bounded(tmp_path):
    path = tmp_path / "tiny.arch"
    path.write_text(BOUNDED)
    return path


@pytest.fixture
def unbounded(tmp_path):
    path = tmp_path / "unbounded.arch"
    path.write_text(UNBOUNDED)
    return path


def save_weights(path, spec, change=None):
    """The spec's seeded random weights (ttspec names) in a .safetensors file, `change` applied first."""
    from safetensors.torch import save_file

    state = random_state_dict(load_model(spec), 0)
    if change is not None:
        change(state)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def save_npy(path, array):
    np.save(path, np.asarray(array))
    return path


def greedy_ids(run_cli, tmp_path, spec, *args):
    out = run_cli("generate", spec, *args, "--out", tmp_path / "greedy.npy", timeout=120)
    assert out.returncode == 0, out.stderr
    return np.load(tmp_path / "greedy.npy")


# ---------------------------------------------------------------- 1. tokenizers
def _dangling(path):
    path.symlink_to(path.parent / "gone.json")


def _directory(path):
    path.mkdir()


@pytest.mark.parametrize("make, kind", [(_dangling, "symlink to"), (os.mkfifo, "a FIFO"),
                                        (_directory, "a directory")], ids=["dangling", "fifo", "directory"])
def test_tokenizer_there_but_not_a_file_is_refused(tmp_path, run_cli, bounded, make, kind):
    """A tokenizer.json beside --weights that is there but is not a readable file never falls back to bytes."""
    weights = save_weights(tmp_path / "model" / "w.safetensors", bounded)
    make(weights.parent / "tokenizer.json")
    out = run_cli("generate", bounded, "--weights", weights, "--prompt", "hi", "--max-new-tokens", 2, timeout=60)
    refused(out, 1, "tokenizer.json", kind)
    assert out.stdout == ""


def test_tokenizer_absent_falls_back_to_bytes(tmp_path, run_cli, bounded):
    weights = save_weights(tmp_path / "model" / "w.safetensors", bounded)
    out = run_cli("generate", bounded, "--weights", weights, "--prompt", "hi", "--max-new-tokens", 2, timeout=60)
    assert out.returncode == 0, out.stderr


def test_tokenizer_that_cannot_encode_is_refused(tmp_path, run_cli, bounded):
    """A WordLevel tokenizer without its unknown token loads, then fails on a character it does not know."""
    tokenizers = pytest.importorskip("tokenizers")
    weights = save_weights(tmp_path / "model" / "w.safetensors", bounded)
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordLevel({"a": 0, "b": 1}))  # unk_token "<unk>" not in it
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Split("", "isolated")
    tokenizer.save(str(weights.parent / "tokenizer.json"))
    with pytest.raises(Exception, match="Missing"):  # the library's own behaviour, outside ttspec
        tokenizers.Tokenizer.from_file(str(weights.parent / "tokenizer.json")).encode("abc")
    out = run_cli("generate", bounded, "--weights", weights, "--prompt", "abc", "--max-new-tokens", 2, timeout=60)
    refused(out, 1, "cannot encode the prompt", "Missing [UNK] token")


@pytest.mark.parametrize("text, message", [
    ('{"model": ' + "[" * 100_000 + "]" * 100_000 + "}", "nests deeper than"),
    ('{"version": "1.0",\n "big": ' + "7" * 5000 + "}", "an integer of 5,000 digits"),
], ids=["deep", "long-integer"])
def test_tokenizer_json_hostile_json_is_located(tmp_path, run_cli, bounded, text, message):
    """Checked before HF's library parses it (RecursionError, int-limit ValueError otherwise), at file:line:col."""
    weights = save_weights(tmp_path / "model" / "w.safetensors", bounded)
    (weights.parent / "tokenizer.json").write_text(text)
    out = run_cli("generate", bounded, "--weights", weights, "--prompt", "hi", "--max-new-tokens", 2, timeout=60)
    line = text.count("\n", 0, text.index("7")) + 1 if "7" in text else 1
    col = text.index("7") - text.rfind("\n", 0, text.index("7")) if "7" in text else text.index("[") + 64
    refused(out, 1, message, f"tokenizer.json:{line}:{col}:")


# ---------------------------------------------------------------- 2. --prompts
def test_prompts_from_a_device_or_fifo_are_refused(tmp_path, run_cli, bounded):
    """/dev/zero would be read until memory runs out, a FIFO would block forever: neither is opened."""
    out = run_cli("generate", bounded, "--prompts", "/dev/zero", timeout=60)
    refused(out, 1, "--prompts file", "/dev/zero", "a character device")
    fifo = tmp_path / "prompts.fifo"
    os.mkfifo(fifo)
    out = run_cli("generate", bounded, "--prompts", fifo, timeout=60)
    refused(out, 1, "a FIFO")


def test_prompts_past_the_size_limit_are_refused(tmp_path, run_cli, bounded):
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:  # sparse: 17 MiB on paper, no disk
        f.truncate(17 << 20)
    out = run_cli("generate", bounded, "--prompts", big, timeout=60)
    refused(out, 1, f"{17 << 20:,} bytes", "at most 16,777,216")


def test_prompts_not_utf8_are_located(tmp_path, run_cli, bounded):
    prompts = tmp_path / "prompts.txt"
    prompts.write_bytes(b"hello\nab\xffc\n")
    out = run_cli("generate", bounded, "--prompts", prompts, timeout=60)
    refused(out, 1, "prompts.txt:2:3:", "not UTF-8", "0xff")


# ---------------------------------------------------------------- 3. users and context, before anything is allocated
def test_users_past_the_torch_bound_are_refused(tmp_path, run_cli, unbounded):
    out = run_cli("generate", unbounded, "--prompt", "hi", "--batch", 2 ** 40, timeout=60)
    refused(out, 2, "--batch gives 1,099,511,627,776 users", "at most 256")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("hi\n" * 257)
    out = run_cli("generate", unbounded, "--prompts", prompts, timeout=60)
    refused(out, 1, "257 users", "at most 256")


def test_users_past_the_spec_batch_bound_are_refused(run_cli, bounded):
    out = run_cli("generate", bounded, "--prompt", "hi", "--batch", 5, timeout=60)
    refused(out, 1, "5 users exceed tiny's bound on batch, 4", "tiny.arch:2:")


def test_ttnn_generate_past_one_tile_of_users_is_refused(tmp_path, run_cli, unbounded):
    """The TT-NN decode step holds its users on the 32 rows of one tile (allocate_cache takes 1 to 32)."""
    out = run_cli("generate", unbounded, "--mode", "golden", "--prompt", "hi", "--batch", 33, timeout=60)
    refused(out, 2, "33 users", "at most 32", "rows of one tile")
    tokens = save_npy(tmp_path / "t.npy", np.ones((33, 4), dtype=np.int64))
    out = run_cli("generate", unbounded, "--mode", "golden", "--tokens", tokens, timeout=60)
    refused(out, 1, "33 users", "at most 32")


def test_ttnn_generate_with_data_parallel_replicas_is_refused(run_cli):
    """The TT-NN programs' decode does not split the batch over --dp replicas (their allocate_cache raises
    NotImplementedError): refused before the weights are made, not an internal error."""
    pytest.importorskip("ttnn")
    out = run_cli("generate", "specs/nano-trickster.arch", "--mode", "golden", "--target", "galaxy", "--dp",
                  "--prompt", "ab", "--max-new-tokens", 2, timeout=300)
    refused(out, 2, "generate --dp", "data-parallel replicas")


def test_context_without_a_seq_bound_is_bounded_by_host_memory(tmp_path, run_cli, unbounded, monkeypatch):
    """No seq bound: the KV cache, users x positions x 256 bytes (closed form from the spec), beside the fp32
    weights, must fit the host's memory (TTSPEC_HOST_MEMORY caps it here), checked before it is allocated."""
    out = run_cli("generate", unbounded, "--prompt", "hi", "--max-new-tokens", 2 ** 40, timeout=60)
    refused(out, 1, f"KV cache of {(2 + 2 ** 40) * TINY_KV_PER_POSITION:,} bytes",
            f"{TINY_KV_PER_POSITION} per user and position")
    budget = 3 * 4 * TINY_PARAMS  # what random weights need on the host (runner.HOST_BYTES_PER_PARAM)
    longest = (budget - 4 * TINY_PARAMS) // TINY_KV_PER_POSITION  # the context that fits beside the fp32 weights
    monkeypatch.setenv("TTSPEC_HOST_MEMORY", str(budget))
    out = run_cli("generate", unbounded, "--prompt", "hi", "--max-new-tokens", longest - 1, timeout=60)
    refused(out, 1, f"at most about {longest:,} positions fit")
    out = run_cli("generate", unbounded, "--tokens", save_npy(tmp_path / "p.npy", [[1, 2]]),
                  "--max-new-tokens", longest - 2, timeout=300)
    assert out.returncode == 0, out.stderr
    out = run_cli("generate", unbounded, "--prompt", "hi", "--batch", 2, "--max-new-tokens", longest // 2 - 1,
                  timeout=60)
    refused(out, 1, f"at most about {longest // 2:,} positions fit")


# ---------------------------------------------------------------- 4. run: token shapes against the spec
@pytest.mark.parametrize("mode", ["torch", "golden"])
def test_run_tokens_past_the_spec_bounds_are_refused(tmp_path, run_cli, bounded, mode):
    if mode == "golden":
        pytest.importorskip("ttnn")
    out = run_cli("run", bounded, "--mode", mode, "--tokens", save_npy(tmp_path / "t.npy", np.ones((1, 65), int)),
                  timeout=120)
    refused(out, 1, "seq = 65, past the spec's bound seq <= 64", "tiny.arch:2:")
    out = run_cli("run", bounded, "--mode", mode, "--random-tokens", "5,8", timeout=120)
    refused(out, 1, "batch = 5, past the spec's bound batch <= 4", "tiny.arch:2:")
    out = run_cli("run", bounded, "--mode", mode, "--random-tokens", f"1,{2 ** 40}", timeout=120)
    refused(out, 1, f"seq = {2 ** 40:,}")


def test_run_random_tokens_without_bounds_are_bounded_by_host_memory(run_cli, unbounded, monkeypatch):
    """No batch or seq bound: the logits [batch, seq, vocab] fp32 must fit the host's memory, checked before the
    random tokens themselves (8 bytes each) are drawn; 2**40 rows once asked torch for 8.8 TB."""
    out = run_cli("run", unbounded, "--mode", "torch", "--random-tokens", f"{2 ** 40},1", timeout=60)
    refused(out, 1, f"[{2 ** 40}, 1]", "host memory")
    monkeypatch.setenv("TTSPEC_HOST_MEMORY", str(10 ** 6))
    out = run_cli("run", unbounded, "--mode", "torch", "--random-tokens", "4000,1", timeout=60)
    refused(out, 1, "1,000,000 are available")


@pytest.mark.parametrize("shape", [(1, 0), (0, 5)])
def test_run_tokens_with_a_zero_dimension_are_refused(tmp_path, run_cli, bounded, shape):
    out = run_cli("run", bounded, "--mode", "torch", "--tokens", save_npy(tmp_path / "t.npy", np.zeros(shape, int)),
                  timeout=60)
    refused(out, 1, f"tokens {list(shape)} hold no token")


def test_run_token_ids_out_of_range_are_refused(tmp_path, run_cli, bounded):
    """uint64 ids past int64 are shown as they are in the file, not wrapped to negative numbers."""
    huge = save_npy(tmp_path / "u.npy", np.array([[1, 2 ** 64 - 1]], dtype=np.uint64))
    out = run_cli("run", bounded, "--mode", "torch", "--tokens", huge, timeout=60)
    refused(out, 1, f"token ids must be in [0, 256), got [1, {2 ** 64 - 1}]")
    out = run_cli("generate", bounded, "--tokens", save_npy(tmp_path / "n.npy", [[3, -1]]), timeout=60)
    refused(out, 1, "token ids must be in [0, 256), got [-1, 3]")


def test_run_tokens_file_with_a_lying_header_is_refused(tmp_path, run_cli, bounded):
    """A .npy header declaring [1, 2^40] int64 in a file of a few bytes: numpy would allocate 8 TiB first."""
    path = tmp_path / "t.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<i8", "fortran_order": False, "shape": (1, 2 ** 40)})
        f.write(bytes(32))
    out = run_cli("run", bounded, "--mode", "torch", "--tokens", path, timeout=60)
    refused(out, 1, "cannot read tokens from", "header declares")
    out = run_cli("run", bounded, "--mode", "torch", "--tokens", "/dev/zero", timeout=60)
    refused(out, 1, "tokens file", "a character device")


# ---------------------------------------------------------------- 5. sampling options at the edge of floating point
@pytest.mark.parametrize("options", [["--temperature", "1e-40"], ["--temperature", "5e-324"],
                                     ["--temperature", "1", "--top-p", "1e-300"],
                                     ["--temperature", "1e-40", "--top-k", "3", "--top-p", "1e-300"]],
                         ids=["tiny-temperature", "subnormal-temperature", "tiny-top-p", "all"])
def test_extreme_sampling_options_are_greedy(tmp_path, run_cli, bounded, options):
    """A temperature -> 0 leaves the argmax; a top-p -> 0 keeps only the most likely token: both are greedy."""
    prompts = save_npy(tmp_path / "p.npy", [[72, 105], [1, 2]])
    greedy = greedy_ids(run_cli, tmp_path, bounded, "--tokens", prompts, "--max-new-tokens", 8, "--seed", 5)
    out = run_cli("generate", bounded, "--tokens", prompts, "--max-new-tokens", 8, "--seed", 5, *options,
                  "--out", tmp_path / "ids.npy", timeout=120)
    assert out.returncode == 0, out.stderr
    assert np.load(tmp_path / "ids.npy").tolist() == greedy.tolist()


@pytest.mark.parametrize("seed, status", [(2 ** 63, 2), (2 ** 64, 2), (-1, 2), (2 ** 63 - 1, 0)])
def test_seed_range(run_cli, bounded, seed, status):
    """Seeds are 0 to 2^63-1 (torch's generators take a signed 64-bit seed); past that, a usage error."""
    for command in (["generate", bounded, "--prompt", "hi", "--temperature", 1, "--max-new-tokens", 2],
                    ["run", bounded, "--mode", "torch", "--random-tokens", "1,4"]):
        out = run_cli(*command, f"--seed={seed}", timeout=60)
        assert out.returncode == status, (command, out.stderr)
        assert "internal error" not in out.stderr
        if status:
            assert "--seed: expected an integer from 0 to 2**63-1" in out.stderr


# ---------------------------------------------------------------- 6. programs that give NaN or infinite logits
def _overflowing(state):
    """Finite weights whose logits overflow fp32: the final norm's scale and the head at 3e38."""
    state["norm.weight"].fill_(3e38)
    state["head.weight"].fill_(3e38)


def test_run_refuses_non_finite_logits(tmp_path, run_cli, bounded):
    weights = save_weights(tmp_path / "w.safetensors", bounded, _overflowing)
    out = run_cli("run", bounded, "--mode", "torch", "--weights", weights, "--random-tokens", "1,4",
                  "--out", tmp_path / "logits.npy", timeout=60)
    refused(out, 1, "logits are not finite: row 0, position 0")
    assert "argmax" not in out.stdout and not (tmp_path / "logits.npy").exists()


@pytest.mark.parametrize("sampling", [[], ["--temperature", "0.8", "--top-k", "5"]], ids=["greedy", "sampled"])
def test_generate_refuses_non_finite_logits(tmp_path, run_cli, bounded, sampling):
    weights = save_weights(tmp_path / "w.safetensors", bounded, _overflowing)
    out = run_cli("generate", bounded, "--weights", weights, "--prompt", "hi", *sampling, timeout=60)
    refused(out, 1, "logits are not finite in the prefill: the logits of user 0 at position 1")
    assert out.stdout.strip() == ""  # no token was sampled from them
    out = run_cli("generate", bounded, "--weights", weights, "--tokens", save_npy(tmp_path / "t.npy", [[1, 2, 3]]),
                  "--score", "--out", tmp_path / "s.npy", timeout=60)
    refused(out, 1, "logits are not finite in the prefill")
    assert not (tmp_path / "s.npy").exists()


def test_generate_names_the_decode_step_of_non_finite_logits(bounded):
    """A program whose second decode step gives NaN for user 1 (at position 2: a 1-token prompt, then two steps)."""
    model = load_model(bounded)
    module, _ = build_torch(model, str(bounded), random_state_dict(model, 0))

    class NaNAtSecondStep:
        steps = 0

        def prefill(self, tokens, user):
            return torch.zeros(len(tokens), 256)

        def decode(self, tokens, positions):
            self.steps += 1
            logits = torch.zeros(len(tokens), 256)
            if self.steps == 2:
                logits[1, 7] = float("nan")
            return logits

    with pytest.raises(module.NonFiniteLogits, match="decode step 2: the logits of user 1 at position 2 are NaN"):
        module.generate(NaNAtSecondStep(), [[1, 2, 3], [4]], 5)
    for temperature in (0.0, 1.0):  # the sampler itself never chooses from NaN (an argmax over NaN is 0)
        with pytest.raises(module.NonFiniteLogits):
            module.sample(torch.tensor([[0.0, float("nan"), 1.0]]), temperature)


# ---------------------------------------------------------------- 7. temporary directories
def leftovers(scratch):
    """What runs left in $TMPDIR (lark's grammar cache, one small file shared by every run, is not theirs)."""
    return sorted(p.name for p in scratch.iterdir() if p.name.startswith("ttspec-"))


def test_run_and_generate_leave_no_temporary_directories(tmp_path, run_cli, bounded, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    commands = [["run", bounded, "--mode", "torch", "--random-tokens", "1,4"],
                ["generate", bounded, "--prompt", "hi", "--max-new-tokens", 2],
                ["generate", bounded, "--tokens", save_npy(tmp_path / "t.npy", [[1, 2]]), "--score"]]
    for command in commands:
        out = run_cli(*command, timeout=120)
        assert out.returncode == 0, out.stderr
        assert leftovers(scratch) == [], command
    weights = save_weights(tmp_path / "w.safetensors", bounded, _overflowing)  # an error after the program loaded
    out = run_cli("run", bounded, "--mode", "torch", "--weights", weights, timeout=60)
    assert out.returncode == 1 and leftovers(scratch) == []
    for command in commands[:2]:
        out = run_cli(*command, "--keep-temp", timeout=120)
        assert out.returncode == 0, out.stderr
        kept = [p for p in scratch.iterdir() if p.name.startswith("ttspec-run-")]
        assert len(kept) == 1 and f"kept temporary files in {kept[0]}" in out.stderr, (kept, out.stderr)
        assert any(kept[0].glob("*.py"))  # the generated program, to read
        for path in kept:
            shutil.rmtree(path)


def test_ctrl_c_removes_temporary_directories(tmp_path, unbounded):
    """Ctrl-C in the middle of a generation: exit 130, and the run's directory is gone."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = dict(os.environ, TMPDIR=str(scratch))
    env.pop("TTSPEC_DEBUG", None)
    prompt = save_npy(tmp_path / "p.npy", [[1, 2]])
    # Ctrl-C's default disposition in the child: a runner started in the background by a shell without job
    # control ignores SIGINT, every process it starts inherits that, and Python then never raises
    # KeyboardInterrupt (as a user's background job would not get Ctrl-C either)
    proc = subprocess.Popen([sys.executable, "-m", "ttspec.cli", "generate", str(unbounded), "--tokens", str(prompt),
                             "--max-new-tokens", "100000"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        first = proc.stdout.read(2)  # the first token id streamed: the program is loaded and decoding
        assert first, proc.stderr.read()
        assert any(p.name.startswith("ttspec-run-") for p in scratch.iterdir())
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)  # a hang guard, not a timing
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert leftovers(scratch) == []


def _mock_available() -> bool:
    try:
        from ttspec.mock.toolchain import riscv_gcc
    except ImportError:
        return False
    return riscv_gcc() is not None


@pytest.mark.skipif(not _mock_available(), reason="Debian gcc-riscv64-unknown-elf missing: "
                                                    "run .ci/install-mock-toolchain")
def test_mock_run_leaves_no_worker_directory(tmp_path, run_cli, bounded, monkeypatch):
    """A mock run's worker folder holds a full fp32 copy of the random weights: gone when the run ends."""
    pytest.importorskip("ttnn")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    out = run_cli("run", bounded, "--mode", "mock", "--random-tokens", "1,32", "--keep-temp", timeout=600)
    assert out.returncode == 0, out.stderr
    kept = [p for p in scratch.iterdir() if p.name.startswith("ttspec-mock-")]
    assert len(kept) == 1 and (kept[0] / "weights.safetensors").is_file(), list(scratch.iterdir())
    assert f"kept temporary files in {kept[0]}" in out.stderr
    shutil.rmtree(kept[0])
    out = run_cli("run", bounded, "--mode", "mock", "--random-tokens", "1,32", timeout=600)
    assert out.returncode == 0, out.stderr
    assert leftovers(scratch) == []


# ---------------------------------------------------------------- 8. the sampler against HF's logits processors
@pytest.fixture(scope="module")
def program(tmp_path_factory):
    """The generated torch program's module (sample, sampling_probabilities, generate)."""
    spec = tmp_path_factory.mktemp("sampler") / "tiny.arch"
    spec.write_text(BOUNDED)
    model = load_model(spec)
    module, _ = build_torch(model, str(spec), random_state_dict(model, 0))
    return module


def hf_probabilities(logits, temperature, top_k, top_p):
    """HF transformers' sampling distribution: its warpers in generate's order (temperature, top-k, top-p)."""
    from transformers.generation.logits_process import (
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    scores = logits.double()
    warpers = [TemperatureLogitsWarper(temperature)]
    if top_k is not None:
        warpers.append(TopKLogitsWarper(top_k))
    if top_p is not None:
        warpers.append(TopPLogitsWarper(top_p))
    for warper in warpers:
        scores = warper(None, scores)
    return scores.softmax(-1)


CASES = [(t, k, p) for t in (0.3, 0.7, 1.0, 1.6, 3.0) for k in (None, 1, 2, 5, 40) for p in (None, 0.1, 0.5, 0.7,
                                                                                             0.9, 0.99)]


@pytest.mark.parametrize("case", range(len(CASES)), ids=[f"T{t}-k{k}-p{p}" for t, k, p in CASES])
def test_sampling_distribution_equals_hf_logits_processors(program, case):
    """For 64 rows of random logits over 50 tokens (three scales: flat to peaked), the tokens `sample` can draw
    and their probabilities are HF's, for every (temperature, top-k, top-p)."""
    pytest.importorskip("transformers")
    temperature, top_k, top_p = CASES[case]
    generator = torch.Generator().manual_seed(case)
    logits = torch.randn(64, 50, generator=generator) * torch.tensor([0.5, 2.0, 6.0]).repeat(22)[:64, None]
    ours = program.sampling_probabilities(logits, temperature, top_k, top_p)
    theirs = hf_probabilities(logits, temperature, top_k, top_p)
    assert torch.equal(ours > 0, theirs > 0)  # the same tokens kept
    assert torch.allclose(ours, theirs, rtol=1e-9, atol=1e-12)


def test_top_k_then_top_p_never_draws_the_second_token(program):
    """T=1, k=2, p=0.7 on logits whose two most likely tokens hold 0.61 and 0.22 of the mass: top-k first leaves
    them at 0.73 and 0.27, so top-p keeps the first alone (HF); top-p first would keep both (0.61 < 0.7)."""
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0]])
    expected = hf_probabilities(logits, 1.0, 2, 0.7)
    assert expected[0].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert torch.equal(program.sampling_probabilities(logits, 1.0, 2, 0.7), expected)
    draws = program.sample(logits.expand(20000, -1), 1.0, 2, 0.7, torch.Generator().manual_seed(0))
    assert torch.bincount(draws, minlength=5).tolist() == [20000, 0, 0, 0, 0]


def test_top_p_sees_the_temperature(program):
    """T=2 flattens [2, 1, 0.5, 0, -1] to 0.37, 0.23, 0.18, 0.14, 0.08: top-p 0.5 keeps two tokens, where at T=1
    (0.61 first) it keeps one: temperature applies before top-p, as in HF."""
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0]])
    expected = hf_probabilities(logits, 2.0, None, 0.5)
    assert (expected > 0).sum() == 2
    assert torch.allclose(program.sampling_probabilities(logits, 2.0, None, 0.5), expected, rtol=1e-12)
    draws = program.sample(logits.expand(40000, -1), 2.0, None, 0.5, torch.Generator().manual_seed(1))
    frequencies = torch.bincount(draws, minlength=5).double() / 40000
    assert frequencies[2:].sum() == 0
    assert abs(frequencies[0] - expected[0, 0]) < 0.015  # 0.62; 4 standard deviations of 40,000 draws: 0.01


def test_extreme_values_in_process(program):
    """Any temperature > 0 and top-p > 0 a float holds gives a distribution, never NaN."""
    logits = torch.tensor([[3.0, 1.0, 3.0 - 1e-6, -2.0]])
    for temperature in (5e-324, 1e-300, 1e-40, 1e300, 1.7e308):
        probs = program.sampling_probabilities(logits, temperature, None, 1e-300)
        assert torch.isfinite(probs).all() and probs.sum().item() == pytest.approx(1.0)
        assert probs[0, 0] == 1.0  # top-p -> 0 keeps the most likely token alone
    assert program.sampling_probabilities(logits, 1e-300)[0].tolist() == [1.0, 0.0, 0.0, 0.0]
    uniform = torch.full((1, 4), 0.25, dtype=torch.float64)
    assert torch.allclose(program.sampling_probabilities(logits, 1.7e308), uniform)  # a huge temperature: uniform
