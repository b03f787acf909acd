"""Generation through the torch program's serving API (allocate_cache, prefill, decode, generate)
and `ttspec generate`, against outside truths: HF transformers' own `generate(do_sample=False)`
and full-forward logits for tiny random models saved, imported with `ttspec import-hf` and loaded
with --weights; closed forms for the sampling distributions.
"""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from ttspec.backends.torch.backend import compile_torch  # noqa: E402
from ttspec.driver import load_model  # noqa: E402
from ttspec.importers.hf import import_hf  # noqa: E402
from ttspec.runtime.generation import score  # noqa: E402
from ttspec.runtime.runner import build_torch, load_program, random_state_dict, root_class  # noqa: E402

from .conftest import ROOT, target_of  # noqa: E402
from .test_torch_backend import randomize  # noqa: E402

T = transformers
TINY = dict(vocab_size=256, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=128)
MODELS = {
    "llama": lambda: T.LlamaConfig(**TINY, num_key_value_heads=4, rms_norm_eps=1e-5),
    "llama_gqa": lambda: T.LlamaConfig(**TINY, num_key_value_heads=2, rms_norm_eps=1e-5, tie_word_embeddings=True),
    "gpt2": lambda: T.GPT2Config(vocab_size=256, n_embd=128, n_layer=2, n_head=4, n_positions=128, n_inner=384,
                                 activation_function="gelu_new"),
    # a window of 16 positions, far shorter than the prompt plus the generation (24 + 40)
    "mistral_window": lambda: T.MistralConfig(**TINY, num_key_value_heads=2, rms_norm_eps=1e-5, sliding_window=16),
}
PROMPT, NEW = 24, 40


def save_hf(tmp_path, case):
    """A tiny random HF model saved to a directory, and its spec from `ttspec import-hf`."""
    config = MODELS[case]()
    config._attn_implementation = "eager"
    hf = T.AutoModelForCausalLM.from_config(config).float().eval()
    randomize(hf, seed=1)
    folder = tmp_path / case
    hf.save_pretrained(folder)
    spec = tmp_path / f"{case}.arch"
    spec.write_text(import_hf(folder).text)
    return hf, folder, spec


def hf_greedy(hf, prompts, new):
    with torch.no_grad():
        out = hf.generate(prompts, attention_mask=torch.ones_like(prompts), do_sample=False, max_new_tokens=new,
                          eos_token_id=None, pad_token_id=0)  # no stop token: every step is compared
    return out[:, prompts.shape[1]:]


def prompts_for(batch=2, length=PROMPT, seed=3):
    return torch.randint(0, 256, (batch, length), generator=torch.Generator().manual_seed(seed))


def save_npy(path, array):
    np.save(path, np.asarray(array))
    return path


def one_message(stderr: str) -> bool:
    return stderr.count("error:") == 1 and "Traceback" not in stderr


# ---------------------------------------------------------------- greedy and --score against HF, via the CLI
@pytest.mark.parametrize("case", sorted(MODELS))
def test_greedy_and_score_equal_hf(tmp_path, run_cli, case):
    hf, folder, spec = save_hf(tmp_path, case)
    prompts = prompts_for()
    expected = hf_greedy(hf, prompts, NEW)
    out = run_cli("generate", spec, "--weights", folder, "--tokens", save_npy(tmp_path / "p.npy", prompts),
                  "--max-new-tokens", NEW, "--stop", "none", "--out", tmp_path / "ids.npy", timeout=120)
    assert out.returncode == 0, out.stderr
    ids = torch.from_numpy(np.load(tmp_path / "ids.npy"))
    assert ids.tolist() == expected.tolist()
    assert "not meaningful off hardware" in out.stderr and "time to first token" in out.stderr

    # --score: prefill 10, decode the remaining positions one at a time, every row equal to HF's full forward
    tokens = torch.cat([prompts, expected], dim=1)
    with torch.no_grad():
        full = hf(tokens).logits
    out = run_cli("generate", spec, "--weights", folder, "--tokens", save_npy(tmp_path / "t.npy", tokens),
                  "--score", "--prefill", 10, "--out", tmp_path / "logits.npy", timeout=120)
    assert out.returncode == 0, out.stderr
    logits = torch.from_numpy(np.load(tmp_path / "logits.npy"))
    assert logits.shape == full.shape
    err = (logits - full).abs().max().item()
    print(f"{case}: --score max |ours - HF| {err:.2e} over {tokens.shape[1]} positions")
    assert err < 1e-4


@pytest.mark.parametrize("case", ["llama_gqa", "mistral_window"])
def test_users_at_different_positions(tmp_path, case):
    """generate() with prompts of different lengths: each user decodes at its own position, in one batch."""
    hf, folder, spec = save_hf(tmp_path, case)
    model = load_model(spec)
    module, net = build_torch(model, str(spec), dict(hf.state_dict()))
    prompts = [prompts_for(1, 9, seed=4)[0], prompts_for(1, 23, seed=5)[0], prompts_for(1, 2, seed=6)[0]]
    net.allocate_cache(4, 23 + NEW)
    ours = module.generate(net, [p.tolist() for p in prompts], NEW)
    for user, prompt in enumerate(prompts):
        assert ours[user] == hf_greedy(hf, prompt[None], NEW)[0].tolist(), user


# ---------------------------------------------------------------- a broken cache is caught
def test_cache_written_one_position_off_fails_score(tmp_path):
    """A cache whose writes land one position late (each query misses its own key and reads a stale slot)
    must fail --score. In a tiny random model the residual stream carries each token's embedding straight
    to its logits, so the attention's share is made larger (4 layers, attention projections x3) for the
    break to show in the logits; the intact program still equals HF within 1e-4."""
    from .test_references import pcc

    MODELS["deep"] = lambda: T.LlamaConfig(**dict(TINY, num_hidden_layers=4), num_key_value_heads=2)
    try:
        hf, folder, spec = save_hf(tmp_path, "deep")
    finally:
        del MODELS["deep"]
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if name.split(".")[-2] in ("q_proj", "k_proj", "v_proj", "o_proj"):
                p.mul_(3.0)
    model = load_model(spec)
    tokens = prompts_for(2, 64, seed=7)
    with torch.no_grad():
        full = hf(tokens).logits
    source = compile_torch(model, str(spec))
    results = {}
    for broken in (False, True):
        text = source
        if broken:  # keys and values land one position after the token's own
            for kv in ("k", "v"):
                line = f"cache_{kv}[users, :, pos.ids] = {kv}.transpose(1, 2)"
                assert line in text
                text = text.replace(line, f"cache_{kv}[users, :, pos.ids + 1] = {kv}.transpose(1, 2)")
        module = load_program(text, f"{model.name}_broken_{broken}")
        net = root_class(module, model)()
        net.load_hf_state_dict(dict(hf.state_dict()))
        net.eval()
        net.allocate_cache(2, 65)
        results[broken] = score(net, tokens, 16)
    good, bad = results[False], results[True]
    assert (good - full).abs().max() < 1e-4
    decoded = pcc(bad[:, 16:], full[:, 16:])
    print(f"cache written one position off: PCC of the decode steps against HF {decoded:.4f} (intact: "
          f"{pcc(good[:, 16:], full[:, 16:]):.6f})")
    assert decoded < 0.9
    assert (bad[:, :16] - full[:, :16]).abs().max() < 1e-4  # prefill reads its own keys, not the cache


# ---------------------------------------------------------------- every feature of a spec in decode
def test_decode_equals_full_forward_for_every_feature():
    """The specs of test_completeness (sinusoidal and learned positions, softcaps, q/k norms, windows, MQA,
    partial and interleaved rotary, post-norms ...): decode-step logits equal the full forward pass's,
    which test_completeness and test_torch_backend anchor to HF and closed forms."""
    from .test_completeness import CASES, spec_text

    for name in CASES:
        model = load_model_text(spec_text(name, None))
        module, net = build_torch(model, f"{name}.arch", random_state_dict(model, 0))
        tokens = torch.randint(0, 128, (2, 40), generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            full = net(tokens)
        net.allocate_cache(2, 40)
        err = (score(net, tokens, 7) - full).abs().max().item()
        assert err < 1e-4, (name, err)


def load_model_text(text: str):
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp(prefix="ttspec-generate-"))
    (folder / "spec.arch").write_text(text)
    return load_model(folder / "spec.arch")


def test_layer_variants_decode(tmp_path):
    """Per-layer windows (a repeat with layer variants, as Gemma 2's alternate): each layer's own window."""
    text = """model variants
input tokens: int32[batch, seq] where seq <= 64
block decoder(x: [batch, seq, 64], window: int = none) -> [batch, seq, 64] kind decoder {
    x = x + attention(rmsnorm(x) as attn_norm, heads = 4, kv_heads = 2, rope = rope(theta = 10000.0),
                      window = window) as attn
    x = x + swiglu(rmsnorm(x) as mlp_norm, hidden = 128) as mlp
    return x
}
h = token_embedding(tokens, 128, 64) as tok
h = repeat(4) decoder(h, window = [5, none, 9, none][layer]) as layers
output logits = lm_head(rmsnorm(h) as norm, 128)
"""
    spec = tmp_path / "variants.arch"
    spec.write_text(text)
    model = load_model(spec)
    module, net = build_torch(model, str(spec), random_state_dict(model, 0))
    assert "window=5" in compile_torch(model, str(spec)) and "window=9" in compile_torch(model, str(spec))
    tokens = torch.randint(0, 128, (3, 48), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = net(tokens)
    net.allocate_cache(3, 48)
    assert (score(net, tokens, 3) - full).abs().max() < 1e-4


# ---------------------------------------------------------------- sampling
@pytest.fixture(scope="module")
def nano():
    spec = ROOT / "specs" / "nano-trickster.arch"
    model = load_model(spec)
    module, net = build_torch(model, str(spec), random_state_dict(model, 0))
    net.allocate_cache(3, 64)
    return module, net


PROMPTS = [[72, 101, 108, 108, 111], [87, 111, 114, 108, 100, 33, 32], [65]]


def test_sampling_options(nano):
    module, net = nano
    greedy = module.generate(net, PROMPTS, 12)
    sampled = module.generate(net, PROMPTS, 12, temperature=1.0, seed=1)
    assert sampled == module.generate(net, PROMPTS, 12, temperature=1.0, seed=1)  # a seed reproduces
    assert sampled != module.generate(net, PROMPTS, 12, temperature=1.0, seed=2)
    assert sampled != greedy
    assert module.generate(net, PROMPTS, 12, temperature=1.0, top_k=1, seed=3) == greedy
    assert module.generate(net, PROMPTS, 12, temperature=1.0, top_p=1e-6, seed=3) == greedy
    streamed = []
    module.generate(net, PROMPTS, 4, on_token=lambda user, token: streamed.append((user, token)))
    assert sorted(streamed) == sorted((u, t) for u, ids in enumerate(module.generate(net, PROMPTS, 4)) for t in ids)


def test_sample_distributions_are_the_closed_forms(nano):
    """Empirical frequencies of `sample` against softmax(logits / T), restricted to the top k or the nucleus."""
    module, _ = nano
    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0])
    draws = 40000
    generator = torch.Generator().manual_seed(0)

    def frequencies(**options):
        ids = module.sample(logits.expand(draws, -1), generator=generator, **options)
        return torch.bincount(ids, minlength=5).double() / draws

    # a frequency over 40,000 draws has a standard error of at most sqrt(0.25 / 40000) = 0.0025; the
    # tolerance, 0.015, is 6 of them (a chance below 1e-8 per frequency, whatever the seed or the CPU),
    # while applying T twice moves the top frequency at T = 0.5 from 0.83 to 0.98
    for temperature in (0.5, 1.0, 2.0):
        expected = (logits / temperature).softmax(-1).double()
        assert (frequencies(temperature=temperature) - expected).abs().max() < 0.015, temperature
    cold, hot = frequencies(temperature=0.5), frequencies(temperature=2.0)
    assert cold[0] > 0.7 and hot[0] < 0.5  # temperature changes the distribution
    top2 = logits[:2].softmax(-1).double()
    assert torch.allclose(frequencies(temperature=1.0, top_k=2)[:2], top2, atol=0.015)
    assert frequencies(temperature=1.0, top_k=2)[2:].sum() == 0
    probs = logits.softmax(-1)  # 0.61, 0.22, 0.14, ...: top_p 0.7 keeps the first two (0.61 < 0.7 <= 0.83)
    nucleus = frequencies(temperature=1.0, top_p=0.7)
    assert nucleus[2:].sum() == 0 and torch.allclose(nucleus[:2], (probs[:2] / probs[:2].sum()).double(), atol=0.015)
    assert torch.equal(module.sample(logits[None] * torch.tensor([[1.0], [-1.0]])), torch.tensor([0, 4]))  # greedy


def test_stop_tokens_stop_per_user(nano):
    module, net = nano
    plain = module.generate(net, PROMPTS, 12)
    # a token some user produces and another does not: one user stops early, another runs on
    stop = next(t for t in plain[0] + plain[1] + plain[2] if any(t not in ids for ids in plain))
    stopped = module.generate(net, PROMPTS, 12, stop_tokens=(stop,))
    for user, ids in enumerate(plain):
        expected = ids[: ids.index(stop) + 1] if stop in ids else ids  # up to its first stop token, kept
        assert stopped[user] == expected, user
    assert any(len(ids) < 12 for ids in stopped) and any(len(ids) == 12 for ids in stopped), (plain, stop)


# ---------------------------------------------------------------- programs that cannot decode
NON_CAUSAL = """model encoder
input tokens: int32[batch, seq] where seq <= 64
h = token_embedding(tokens, 128, 64) as tok
h = h + attention(h, heads = 4, causal = false) as attn
output logits = lm_head(h, 128)
"""


def test_non_causal_cannot_decode(tmp_path, run_cli):
    spec = tmp_path / "encoder.arch"
    spec.write_text(NON_CAUSAL)
    model = load_model(spec)
    module, net = build_torch(model, str(spec), random_state_dict(model, 0))
    assert "non-causal attention cannot decode" in module.CANNOT_DECODE
    with torch.no_grad():
        assert net(torch.zeros(1, 8, dtype=torch.long)).shape == (1, 8, 128)  # the full forward still runs
    for call in (lambda: net.allocate_cache(1, 8), lambda: net.decode(torch.zeros(1, dtype=torch.long),
                                                                          torch.zeros(1, dtype=torch.long)),
                 lambda: module.generate(net, [[1, 2]], 4)):
        with pytest.raises(NotImplementedError, match="non-causal attention cannot decode"):
            call()
    out = run_cli("generate", spec, "--prompt", "hi")
    assert out.returncode == 1 and one_message(out.stderr), out.stderr
    assert "non-causal attention cannot decode" in out.stderr and "encoder.arch:4:" in out.stderr


# ---------------------------------------------------------------- the command
def test_nano_trickster_prints_text(run_cli):
    out = run_cli("generate", "specs/nano-trickster.arch", "--mode", "torch", "--prompt", "Hello",
                  "--max-new-tokens", 16, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()  # the bytes of 16 tokens as text (random weights)
    assert not any(ord(c) < 32 and c not in "\n" for c in out.stdout)  # control characters made visible
    assert "time to first token" in out.stderr and "tokens/s/user" in out.stderr
    assert "not meaningful off hardware" in out.stderr


def test_batch_prompts_and_out(tmp_path, run_cli):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Hello\nWorld, again\n")
    out = run_cli("generate", "specs/nano-trickster.arch", "--prompts", prompts, "--max-new-tokens", 6,
                  "--temperature", 0.7, "--top-p", 0.9, "--seed", 4, "--out", tmp_path / "ids.npy", timeout=120)
    assert out.returncode == 0, out.stderr
    assert "[user 0] " in out.stdout and "[user 1] " in out.stdout
    assert np.load(tmp_path / "ids.npy").shape == (2, 6)


def test_tokenizer_json_is_used(tmp_path, run_cli):
    """--prompt goes through the weights directory's tokenizer.json (HF `tokenizers`)."""
    tokenizers = pytest.importorskip("tokenizers")
    hf, folder, spec = save_hf(tmp_path, "llama_gqa")
    vocab = {chr(ord("a") + i): i for i in range(26)} | {"[UNK]": 26}
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Split("", "isolated")
    tokenizer.save(str(folder / "tokenizer.json"))
    ids = tokenizer.encode("hello").ids
    assert ids == [7, 4, 11, 11, 14]
    out = run_cli("generate", spec, "--weights", folder, "--prompt", "hello", "--max-new-tokens", 5, "--stop", "none",
                  "--out", tmp_path / "ids.npy", timeout=120)
    assert out.returncode == 0, out.stderr
    assert np.load(tmp_path / "ids.npy")[0].tolist() == hf_greedy(hf, torch.tensor([ids]), 5)[0].tolist()


@pytest.mark.parametrize("args, message, status", [
    (["--prompt", "x" * 600], "exceed nano_trickster's context of 512", 1),
    (["--prompt", "hi", "--max-new-tokens", 600], "exceed nano_trickster's context of 512", 1),
    (["--score"], "--score needs --tokens", 2),
    (["--prompt", "hi", "--top-p", "1.5"], "--top-p must be in (0, 1]", 2),
    (["--prompt", "hi", "--top-p", "0"], "--top-p must be in (0, 1]", 2),
    (["--prompt", "hi", "--temperature", "-1"], "--temperature must be", 2),
    (["--prompt", "hi", "--prefill", "3"], "--prefill is for --score", 2),
    ([], "nothing to generate from", 2),
    (["--prompt", "hi", "--stop", "300"], "--stop ids must be in [0, 256)", 2),
])
def test_cli_errors(run_cli, args, message, status):
    out = run_cli("generate", "specs/nano-trickster.arch", *args)
    assert out.returncode == status, out.stderr
    assert message in out.stderr and one_message(out.stderr), out.stderr


def test_score_prefill_out_of_range(tmp_path, run_cli):
    tokens = save_npy(tmp_path / "t.npy", np.zeros((1, 8), dtype=np.int64))
    out = run_cli("generate", "specs/nano-trickster.arch", "--tokens", tokens, "--score", "--prefill", 9)
    assert out.returncode == 2 and "--prefill must be between 1 and the tokens' length 8" in out.stderr


def test_job_travels_as_json():
    """The job a worker process gets (mock, device) survives JSON as it is."""
    from dataclasses import asdict

    from ttspec.runtime.generation import Job

    job = Job(prompts=[[1, 2], [3]], max_new_tokens=5, temperature=0.5, top_k=3, top_p=0.9, seed=2, stop=[7])
    assert Job(**json.loads(json.dumps(asdict(job)))) == job


# ---------------------------------------------------------------- TT-NN modes: the same API, the same command
def test_tt_target_context_refused_by_the_memory_model(run_cli):
    """For a TT-NN target the KV cache (batch x context) is checked against the chip before anything runs."""
    out = run_cli("generate", "specs/llama-3.1-8b.arch", "--mode", "golden", "--weights-dtype", "bfloat8_b",
                  "--prompt", "hi", "--batch", 32, "--max-new-tokens", 8000)
    assert out.returncode == 1 and one_message(out.stderr), out.stderr
    # 42,896,023,552 = the KV cache below + the bfloat8_b weights as the allocator books them (test_mock_programs:
    # bf16 norms at whole pages per bank)
    assert "8002 positions for 32 user(s) need 42,896,023,552 bytes of DRAM per chip on n150" in out.stderr
    assert "KV cache 33,688,649,728" in out.stderr and "it has 12,872,318,208" in out.stderr


def test_golden_score_through_the_tt_program(tmp_path, run_cli):
    """`--mode golden` drives the TT-NN program through the same API. Until that program has its decode
    path, the command says so (one message); once it has, its --score logits follow the torch reference's
    (PCC >= 0.999, bf16)."""
    from ttspec.driver import compile_source

    from .test_references import pcc

    tokens = save_npy(tmp_path / "t.npy", prompts_for(2, 40, seed=8).numpy() % 256)
    args = ["--tokens", tokens, "--score", "--prefill", 8]
    golden = run_cli("generate", "specs/nano-trickster.arch", "--mode", "golden", *args, "--out", tmp_path / "g.npy",
                     timeout=600)
    spec = ROOT / "specs" / "nano-trickster.arch"
    if "def decode" not in compile_source(load_model(spec), str(spec), target_of("n150")):
        assert golden.returncode == 1 and one_message(golden.stderr), golden.stderr
        assert "has no `allocate_cache` (no decode path)" in golden.stderr
        return
    assert golden.returncode == 0, golden.stderr
    reference = run_cli("generate", "specs/nano-trickster.arch", *args, "--out", tmp_path / "r.npy", timeout=120)
    assert reference.returncode == 0, reference.stderr
    ours, theirs = (torch.from_numpy(np.load(tmp_path / f)) for f in ("g.npy", "r.npy"))
    assert pcc(ours[:, 8:], theirs[:, 8:]) >= 0.999


def test_worker_streams_tokens_and_returns_ids():
    """The mock/device path: a job runs in the worker process (device_worker.py) through the program's API
    and its tokens stream back line by line as they come. A stand-in TT-NN program (the torch program with
    open_device/close_device and a device argument) keeps this independent of the TT-NN decode path."""
    from dataclasses import asdict

    from ttspec.runtime.device import run_worker
    from ttspec.runtime.generation import TOKEN_LINE, Job

    spec = ROOT / "specs" / "nano-trickster.arch"
    model = load_model(spec)
    source = compile_torch(model, str(spec)) + '''

def open_device():
    return None


def close_device(device):
    pass


class NanoTrickster(NanoTrickster):  # noqa: F811 - the stand-in takes a device, as TT-NN programs do
    def __init__(self, device=None, trace=True):
        assert trace, "device mode traces the decode step unless told not to"
        super().__init__()
'''
    state = random_state_dict(model, 0)
    job = Job(prompts=PROMPTS, max_new_tokens=6, temperature=0.9, top_k=40, seed=5, stop=[])
    lines = []
    result = run_worker(model, source, "device", "n150", state=state, job=asdict(job), trace=True,
                        on_line=lines.append)
    module, net = build_torch(model, str(spec), state)
    net.allocate_cache(len(PROMPTS), job.context)
    expected = module.generate(net, PROMPTS, 6, temperature=0.9, top_k=40, seed=5)
    assert result["ids"] == expected and result["steps"] == 6 and result["ttft"] > 0
    streamed = [json.loads(line[len(TOKEN_LINE):]) for line in lines if line.startswith(TOKEN_LINE)]
    assert sorted(map(tuple, streamed)) == sorted((u, t) for u, ids in enumerate(expected) for t in ids)


HOSTILE = """model generate
input pos: int32[batch, seq] where seq <= 64
block KVCache(x: [batch, seq, 64]) -> [batch, seq, 64] kind decoder {
    cache = attention(rmsnorm(x) as decode, heads = 4, kv_heads = 2, rope = rope(theta = 10000.0)) as prefill
    x = x + cache
    x = x + swiglu(rmsnorm(x) as Positions, hidden = 128) as allocate_cache
    return x
}
h = token_embedding(pos, 128, 64) as sample
h = repeat(2) KVCache(h) as cache
output logits = lm_head(rmsnorm(h) as position_ids, 128)
"""


def test_spec_names_never_clash_with_the_serving_api(tmp_path):
    """Labels, blocks, inputs and the model named like the program's serving API and helpers (pos, cache,
    prefill, decode, allocate_cache, generate, KVCache, Positions, sample, position_ids) are renamed by the
    namer, and the program still decodes."""
    spec = tmp_path / "hostile.arch"
    spec.write_text(HOSTILE)
    model = load_model(spec)
    module, net = build_torch(model, str(spec), random_state_dict(model, 0))
    assert callable(module.generate) and isinstance(module.KVCache, type) and callable(net.prefill)
    tokens = torch.randint(0, 128, (2, 30), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = net(tokens)
    net.allocate_cache(2, 30)
    assert (score(net, tokens, 5) - full).abs().max() < 1e-4
