"""The TT-NN programs' decode path (allocate_cache, prefill(tokens, user), decode(tokens, positions))
against outside truths: HF transformers' full-forward logits, and ttnn's golden functions.

The score check: each user's first tokens are prefilled into its cache, the rest of its sequence is
decoded one token per step feeding the true tokens, several users at once, each at its own
position; every step's logits must match HF's full forward pass at the same positions. Nothing
but a right KV cache (written at each user's position, read up to it, within windows) and
positions right per user (RoPE, learned positions) gives that.
"""

import gc
import re
import weakref

import pytest

from ttspec.driver import compile_source, load_model
from ttspec.targets import get_target

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("ttnn")

from ttspec.importers.hf import import_hf  # noqa: E402
from ttspec.runtime.runner import golden_program  # noqa: E402

from .conftest import formats_of, mesh_of, target_of  # noqa: E402
from .numerics import BF16_PCC  # noqa: E402
from .test_references import pcc  # noqa: E402
from .test_torch_backend import randomize  # noqa: E402

T = transformers
# The tiny model: 8 heads of 32, 2 KV heads, vocabulary 256, d 256, 2 layers.
TINY = dict(vocab_size=256, hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=8,
            num_key_value_heads=2, head_dim=32, max_position_embeddings=256)
CONFIGS = {
    "llama": lambda: T.LlamaConfig(**TINY, rms_norm_eps=1e-5, rope_parameters={"rope_type": "default",
                                                                               "rope_theta": 10000.0}),
    # a vocabulary that does not split into whole tiles over a mesh: the head is replicated (LOGITS_SPLIT off)
    "llama_vocab300": lambda: T.LlamaConfig(**dict(TINY, vocab_size=300), rms_norm_eps=1e-5,
                                            rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
    # a window shorter than the sequence (and than the prompts): decode must forget the oldest positions
    "mistral_window": lambda: T.MistralConfig(**TINY, rms_norm_eps=1e-5, sliding_window=16),
    # Gemma 2: attention logit softcap (decode composes it: ttnn's decode SDPA has none), final softcap,
    # sliding layers alternating with global ones, a query_pre_attn_scalar that is not head_dim
    "gemma2": lambda: T.Gemma2Config(**TINY, query_pre_attn_scalar=24, sliding_window=16,
                                     attn_logit_softcapping=5.0, final_logit_softcapping=5.0),
    # learned positions (per user in decode), biases everywhere
    "gpt2": lambda: T.GPT2Config(vocab_size=256, n_embd=256, n_layer=2, n_head=8, n_positions=256, n_inner=512,
                                 activation_function="gelu_new"),
    # partial rotary (half of each head), biases, parallel attention and MLP
    "phi": lambda: T.PhiConfig(**dict(TINY, num_key_value_heads=8), hidden_act="gelu_new",
                               rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                "partial_rotary_factor": 0.5}),
}
SEQ = 40  # every user's sequence; prompts of PREFILL[b] tokens, then SEQ - PREFILL[b] decode steps
PREFILL = (20, 17, 9, 24, 1)  # several users, each at its own position (one user prefills a single token)
PCC_MIN = BF16_PCC  # bf16 programs against fp32 HF (tests/numerics.py); a cache written one position off: < 0.9


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """family -> (spec path, HF state dict, tokens [users, SEQ], HF logits [users, SEQ, vocab])."""
    cache = {}

    def get(case):
        if case not in cache:
            config = CONFIGS[case]()
            config._attn_implementation = "eager"
            hf = T.AutoModelForCausalLM.from_config(config).float().eval()
            randomize(hf, seed=3)
            folder = tmp_path_factory.mktemp(case)
            hf.save_pretrained(folder)
            spec = folder / f"{case}.arch"
            spec.write_text(import_hf(folder).text)
            tokens = torch.randint(0, 256, (len(PREFILL), SEQ), generator=torch.Generator().manual_seed(7))
            with torch.no_grad():
                expected = hf(tokens).logits
            cache[case] = (spec, {k: v.clone() for k, v in hf.state_dict().items()}, tokens, expected)
        return cache[case]

    return get


def score(program, tokens, prefill=PREFILL, context=64):
    """Logits [users, SEQ, vocab]: prefill the first prefill[b] tokens of user b, then decode the rest
    one token per step, every user in each step at its own position (a user that has finished
    repeats its last step, as generate does)."""
    users, seq = tokens.shape
    program.allocate_cache(users, context)
    out = torch.zeros(users, seq, VOCAB)
    for b in range(users):
        out[b, : prefill[b]] = program.prefill(tokens[b, : prefill[b]], b, every_position=True)
    position = list(prefill)
    while min(position) < seq:
        at = torch.tensor([min(p, seq - 1) for p in position])
        logits = program.decode(tokens[torch.arange(users), at], at)
        for b in range(users):
            if position[b] < seq:
                out[b, position[b]] = logits[b]
        position = [p + 1 for p in position]
    return out


VOCAB = 256


def decode_pcc(got, expected, prefill=PREFILL):
    """PCC of the decode-step logits (every user's positions after its prompt) and of the prefill ones."""
    mask = torch.zeros(got.shape[:2], dtype=torch.bool)
    for b, p in enumerate(prefill):
        mask[b, p:] = True
    return pcc(got[mask], expected[mask]), pcc(got[~mask], expected[~mask])


def run_score(built, case, target="n150", mesh=None, source=None, strategy=None):
    spec, state, tokens, expected = built(case)
    model = load_model(spec)
    if source is None:
        source = compile_source(model, str(spec), target_of(target), formats_of("bf16"), mesh_of(mesh),
                                strategy=strategy)
    program, _ = golden_program(model, str(spec), get_target(target), state, source=source)
    got = score(program, tokens)
    return decode_pcc(got, expected)


@pytest.mark.parametrize("target,mesh,strategy", [("n150", None, None), ("n300", "1x2", None), ("t3k", "1x8", None),
                                                  ("galaxy", "8x4", "1d"), ("galaxy", "8x4", "2d")])
def test_score_llama_gqa(built, target, mesh, strategy):
    """8 heads over 2 KV heads: split 1 per chip on n300, each KV head copied to 4 chips on T3K (and on
    each of Galaxy's 4 replicas of the tensor-parallel group of 8, 1-D; and on the 8 rows of the 2-D
    plan, whose 4 columns split hidden and hold copies of the cache)."""
    decode, prefill = run_score(built, "llama", target, mesh, strategy=strategy)
    print(f"llama {target} {strategy}: decode pcc {decode:.6f}, prefill pcc {prefill:.6f}")
    assert decode >= PCC_MIN and prefill >= PCC_MIN


@pytest.mark.parametrize("case", ["mistral_window", "gemma2", "gpt2", "phi"])
def test_score_features(built, case):
    decode, prefill = run_score(built, case)
    print(f"{case} n150: decode pcc {decode:.6f}, prefill pcc {prefill:.6f}")
    assert decode >= PCC_MIN and prefill >= PCC_MIN


@pytest.mark.parametrize("shift", [1, -1])
def test_a_cache_write_one_position_off_fails_the_score(built, shift):
    """The generated cache updates (every paged_update_cache of the program: the decode chain's K and V
    writes, and the other attention's) patched to write each user's K and V one position off."""
    spec, _, _, _ = built("llama")
    source = compile_source(load_model(spec), str(spec), target_of("n150"), formats_of("bf16"))
    write = re.compile(r"ttnn\.experimental\.paged_update_cache\((\w+(?:\.\w+)?), (\w+), "
                       r"update_idxs_tensor=positions\)")
    assert len(write.findall(source)) >= 2
    off = (r'ttnn.experimental.paged_update_cache(\1, \2, update_idxs_tensor=self.state.step_input('
           f'"off", lambda: (self.state.positions + ({shift})).clamp(min=0).to(torch.int32), ttnn.int32, '
           'ttnn.ROW_MAJOR_LAYOUT))')
    decode, _ = run_score(built, "llama", source=write.sub(off, source))
    print(f"cache written {shift:+d} position off: decode pcc {decode:.4f}")
    assert decode < 0.9


def test_paged_update_cache_reference_equals_golden_composition():
    """golden.py's reference for ttnn.experimental.paged_update_cache (no golden in ttnn 0.81.1) against
    ttnn's own golden of kv_cache.update_cache_for_token_ applied user by user."""
    import ttnn

    from ttspec.runtime.golden import paged_update_cache_reference

    gen = torch.Generator().manual_seed(0)
    users, kv, context, head_dim = 5, 2, 64, 32
    cache = torch.randn(users, kv, context, head_dim, generator=gen)
    new = torch.randn(1, users, kv, head_dim, generator=gen)  # [1, users, kv heads, head_dim]
    positions = torch.tensor([3, 0, 63, -1, 17], dtype=torch.int32)  # -1: that user is skipped
    got = paged_update_cache_reference(cache.clone(), new, update_idxs_tensor=positions)
    update_for_token = ttnn.get_golden_function(ttnn.kv_cache.update_cache_for_token_)
    expected = cache.clone()
    for b, p in enumerate(positions.tolist()):
        if p >= 0:  # that golden writes every user of its cache at one index: give it user b alone
            update_for_token(expected[b : b + 1], new[:, b : b + 1].permute(0, 2, 1, 3), p)
    assert torch.equal(got, expected)
    assert not torch.equal(got, cache)


def test_decode_refuses_misuse(built):
    spec, state, tokens, _ = built("llama")
    model = load_model(spec)
    program, _ = golden_program(model, str(spec), get_target("n150"), state)
    with pytest.raises(RuntimeError, match="allocate_cache"):
        program.decode(torch.tensor([1]), torch.tensor([0]))
    with pytest.raises(ValueError, match="1 to 32 users"):
        program.allocate_cache(33, 64)
    program.allocate_cache(2, 40)  # padded to 64 positions
    with pytest.raises(ValueError, match="positions must lie in"):
        program.decode(torch.tensor([1, 2]), torch.tensor([0, 64]))
    with pytest.raises(ValueError, match="one token and one position"):
        program.decode(torch.tensor([1, 2, 3]), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="outside the cache's 2 users"):
        program.prefill(tokens[0, :4], 2)


@pytest.mark.parametrize("target,mesh", [("n150", None), ("t3k", "1x8")])
def test_prefill_returns_the_last_positions_logits(built, target, mesh):
    """prefill(tokens, user) returns [1, vocab]: the logits of the prompt's last position (its head runs on the
    tile holding it: 37 tokens are 2 tiles, the last holding positions 32..63), equal to HF's there and to the
    last row of every_position=True's [T, vocab]."""
    spec, state, tokens, expected = built("llama")
    model = load_model(spec)
    source = compile_source(model, str(spec), target_of(target), formats_of("bf16"), mesh_of(mesh))
    program, _ = golden_program(model, str(spec), get_target(target), state, source=source)
    program.allocate_cache(2, 64)
    for length in (37, 5):
        last = program.prefill(tokens[0, :length], 0)
        every = program.prefill(tokens[0, :length], 1, every_position=True)
        assert last.shape == (1, VOCAB) and every.shape == (length, VOCAB)
        assert torch.equal(last[0], every[-1])
        assert pcc(last[0], expected[0, length - 1]) >= PCC_MIN


@pytest.mark.parametrize("case,target,mesh,strategy", [("llama", "n150", None, None), ("llama", "t3k", "1x8", None),
                                                       ("llama", "galaxy", "8x4", "2d"),
                                                       ("llama_vocab300", "n300", "1x2", None)])
def test_generate_greedy_equals_hf(built, case, target, mesh, strategy):
    """The program's module-level generate (greedy) continues two prompts as HF generate does, each decode
    step's tokens chosen on the device (ttnn.argmax; on a mesh each device's best of its vocabulary slice,
    combined on the host from their largest logits; a head replicated over the mesh, vocabulary 300 on n300:
    one device's ids): the host reads ids, never a decode step's logits."""
    spec, state, tokens, _ = built(case)
    model = load_model(spec)
    source = compile_source(model, str(spec), target_of(target), formats_of("bf16"), mesh_of(mesh),
                            strategy=strategy)
    program, module = golden_program(model, str(spec), get_target(target), state, source=source)
    config = CONFIGS[case]()
    hf = T.AutoModelForCausalLM.from_config(config).float().eval()
    hf.load_state_dict(state)
    prompts = [tokens[0, :12].tolist(), tokens[1, :5].tolist()]
    program.allocate_cache(2, 64)
    reads = []
    program.decode = lambda *args: reads.append(args)  # a greedy step that read logits would land here
    got = module.generate(program, prompts, 8)
    for prompt, ids in zip(prompts, got):
        with torch.no_grad():
            want = hf.generate(torch.tensor([prompt]), max_new_tokens=8, do_sample=False, min_new_tokens=8,
                               pad_token_id=0)[0, len(prompt):].tolist()
        assert ids == want
    assert reads == [] and module.ttnn.calls["argmax"] == 7  # 8 new tokens: 1 from the prefill, 7 steps


# ---------------------------------------------------------------- trace capture (device mode)
class TracingGolden:
    """Golden mode with ttnn's trace calls emulated as a device runs them: ops issued between
    begin_trace_capture and end_trace_capture are recorded; execute_trace runs the recorded ops
    again on the same tensors (each result written in place into the tensor the capture produced),
    and copy_host_to_device_tensor overwrites a device tensor in place. A decode step that read
    anything but its refreshed input tensors would replay stale data."""

    def __new__(cls):
        from ttspec.runtime.golden import DATA_MOVEMENT, GoldenTTNN, MeshTensor

        class Tracing(GoldenTTNN):
            def __init__(self):
                super().__init__()
                self.recording, self.traces, self.replays = None, {}, 0
                self.made = []  # weak references to the device tensors made while a trace is held, outside its capture
                self.unsafe = []  # those still alive at a replay: "op shape"

            def _wrap(self, run):
                def recorded(*args, **kwargs):
                    out = run(*args, **kwargs)
                    if self.recording is not None:
                        self.recording.append((run, args, kwargs, out))
                    else:
                        self._made(run.__name__, out, args, kwargs)
                    return out

                return recorded

            def _made(self, what, out, args=(), kwargs=None):
                """Note a new device tensor made while a trace is held (an in-place op's own input is not new)."""
                if not self.traces or out is None:
                    return
                for value in out if isinstance(out, tuple) else (out,):
                    known = list(args) + list((kwargs or {}).values())
                    if isinstance(value, (torch.Tensor, MeshTensor)) and not any(value is a for a in known):
                        self.made.append((what, weakref.ref(value)))

            def from_torch(self, tensor, *args, device=None, **kwargs):
                out = DATA_MOVEMENT["from_torch"](self, tensor, *args, device=device, **kwargs)
                if device is not None:
                    self._made("from_torch", out)
                return out

            def _golden(self, qualified, op):
                return self._wrap(super()._golden(qualified, op))

            def _reference(self, qualified, reference):
                return self._wrap(super()._reference(qualified, reference))

            def begin_trace_capture(self, device, cq_id=0):
                self.recording = []
                return len(self.traces)

            def end_trace_capture(self, device, trace_id, cq_id=0):
                self.traces[trace_id], self.recording = self.recording, None

            def execute_trace(self, device, trace_id, cq_id=0, blocking=True):
                self.replays += 1
                gc.collect()
                self.unsafe += [f"{what} {list(ref().shape)}" for what, ref in self.made if ref() is not None]
                for run, args, kwargs, out in self.traces[trace_id]:
                    copy_into(out, run(*args, **kwargs))

            def release_trace(self, device, trace_id):
                del self.traces[trace_id]

            def copy_host_to_device_tensor(self, host, device_tensor, cq_id=0):
                copy_into(device_tensor, host)

        def copy_into(dst, src):
            if isinstance(dst, MeshTensor):
                for d, s in zip(dst.shards, src.shards, strict=True):
                    d.copy_(s)
            elif isinstance(dst, tuple):
                for d, s in zip(dst, src, strict=True):
                    copy_into(d, s)
            elif dst is not src:
                dst.copy_(src)

        return Tracing()


@pytest.mark.parametrize("target,mesh", [("n150", None), ("t3k", "1x8")])
def test_traced_decode_replays_the_same_logits(built, target, mesh):
    from ttspec.runtime.runner import load_program, root_class

    spec, state, tokens, expected = built("gpt2" if target == "n150" else "llama")
    model = load_model(spec)
    source = compile_source(model, str(spec), target_of(target), formats_of("bf16"), mesh_of(mesh))
    untraced, _ = golden_program(model, str(spec), get_target(target), state, source=source)
    module = load_program(source, f"{model.name}_traced")
    module.ttnn = TracingGolden()
    traced = root_class(module, model)(module.open_device(), trace=True)
    traced.load_weights(state)
    got = score(traced, tokens)
    steps = SEQ - min(PREFILL)
    assert module.ttnn.replays == steps - 1  # captured on the first step, replayed on every other
    assert torch.equal(got, score(untraced, tokens))
    assert decode_pcc(got, expected)[0] >= PCC_MIN


def test_no_device_tensor_made_after_a_capture_outlives_it_into_a_replay(built):
    """ttnn warns that device buffers allocated once a trace is captured may be corrupted when it executes (a
    replay writes where the capture's intermediates were). The emulation notes every device tensor made while a
    trace is held, outside its capture, and at each replay lists those still alive. A prefill after the capture,
    of a new user at a prompt length not seen before, then more steps (greedy and logits): nothing it made may
    live on into a replay."""
    from ttspec.runtime.runner import load_program, root_class

    spec, state, tokens, _ = built("llama")
    model = load_model(spec)
    module = load_program(compile_source(model, str(spec), target_of("n150"), formats_of("bf16")),
                          f"{model.name}_allocations")
    module.ttnn = TracingGolden()
    program = root_class(module, model)(module.open_device(), trace=True)
    program.load_weights(state)
    program.allocate_cache(3, 64)
    for user, length in enumerate((12, 5)):
        program.prefill(tokens[user, :length], user)
    at = torch.tensor([12, 5])
    for step in range(3):  # warm, capture, replay
        program.decode_greedy(tokens[torch.arange(2), at + step], at + step)
    program.prefill(tokens[2, :37], 2)  # a new user and length after the capture (two tiles: new tables)
    at = torch.tensor([15, 8, 37])
    for step in range(3):
        program.decode_greedy(tokens[torch.arange(3), at + step], at + step)
    assert module.ttnn.replays >= 3 and module.ttnn.made  # the prefill made device tensors while the trace was held
    assert module.ttnn.unsafe == []


# ---------------------------------------------------------------- the mock device
# (spec, target, weights, layers, KV heads per chip, head_dim, context): Llama-3.1-8B on n150 and -70B over 8
# chips (T3K; Galaxy's groups of 8 on one axis, 4 replicas on the other), bfloat8_b weights allocated
# without host data. The contexts are the largest whole tiles `ttspec plan --batch 32` fits (8B: 256) or
# below (70B: 512 of 800).
# Gemma-2-2B (bf16) adds the softcapped decode composition and head_dim 256.
MOCK = [("llama-3.1-8b.arch", "n150", "bfloat8_b", 32, 8, 128, 256),
        ("llama-3.1-70b.arch", "t3k", "bfloat8_b", 80, 1, 128, 512),
        ("llama-3.1-70b.arch", "galaxy", "bfloat8_b", 80, 1, 128, 512),
        ("gemma-2-2b.arch", "n150", "bf16", 26, 4, 256, 128)]
DRAM_BANKS, PAGE = 12, 2048  # a Wormhole's DRAM banks; one bf16 32x32 tile


@pytest.mark.parametrize("spec,target,dtype,layers,kv_heads,head_dim,context", MOCK)
def test_32_user_decode_step_on_the_mock(spec, target, dtype, layers, kv_heads, head_dim, context):
    """A 32-user decode step with its KV cache allocated passes ttnn's validation of every op and
    allocation (values are not meaningful on the mock), and the cache's bytes are what the plan says:
    the plan's figure is the closed form (K and V, per layer, [32, KV heads, context, head_dim] bf16 per
    chip), and ttnn's allocator books exactly that, each tensor's pages spread over the DRAM banks in
    whole pages per bank. The mock cannot replay traces, so the step runs untraced."""
    from ttspec.reports.plan_report import plan_report
    from ttspec.runtime.device import run_worker

    from .conftest import SPECS

    users = 32
    model = load_model(SPECS / spec)
    source = compile_source(model, f"specs/{spec}", target_of(target), formats_of(dtype))
    vocab = model.graph.node(next(iter(model.graph.outputs.values()))).type.shape[-1]
    calls = [("allocate_cache", users, context),
             ("decode", list(range(users)), [(7 * b) % context for b in range(users)]),
             ("prefill", list(range(40)), 3)]  # fill_cache into one user's rows
    result = run_worker(model, source, "mock", target, state=None, calls=calls, timeout=900)
    assert tuple(result["outputs"][1].shape) == (users, vocab)
    planned = plan_report(model, target_of(target), None, formats_of(dtype), users,
                          context)["memory_per_chip"]["kv_cache"]
    assert planned == 2 * layers * users * kv_heads * context * head_dim * 2
    per_tensor_pages = users * kv_heads * context * head_dim * 2 // PAGE
    booked = 2 * layers * -(-per_tensor_pages // DRAM_BANKS) * DRAM_BANKS * PAGE
    allocated = result["dram_bytes_after"][0] - result["dram_bytes_allocated"]
    print(f"{spec} {target}: KV cache planned {planned:,} B per chip, allocated {allocated:,} B "
          f"(whole pages per bank: {booked:,}); decode step {result['call_seconds'][1]:.1f} s")
    assert allocated == booked
    assert tuple(result["outputs"][2].shape) == (1, vocab)  # the last position's (its head ran on rows 32..63)


def test_run_worker_generates_on_the_mock():
    """The worker runs the program's generate on the mock device (ids are not meaningful there: kernels
    never run), one prompt per user, through run_worker, the entry point for mock and device modes."""
    from ttspec.runtime.device import run_worker
    from ttspec.runtime.runner import random_hf_state_dict

    from .conftest import SPECS

    model = load_model(SPECS / "nano-trickster.arch")
    source = compile_source(model, "specs/nano-trickster.arch", target_of("n150"))
    calls = [("allocate_cache", 2, 64), ("generate", [[1, 2, 3], [4, 5]], {"max_new_tokens": 3})]
    result = run_worker(model, source, "mock", "n150", state=random_hf_state_dict(model), calls=calls, timeout=600)
    ids = result["outputs"][1]
    assert [len(user) for user in ids] == [3, 3] and all(0 <= t < 256 for user in ids for t in user)


def test_data_parallel_decode_is_refused_with_the_reason(built):
    spec, state, _, _ = built("llama")
    model = load_model(spec)
    source = compile_source(model, str(spec), target_of("galaxy"), formats_of("bf16"), mesh_of("8x4"), dp=True)
    program, _ = golden_program(model, str(spec), get_target("galaxy"), state, source=source)
    with pytest.raises(NotImplementedError, match="compile without --dp"):
        program.allocate_cache(4, 64)
