"""The TT-NN decode path at its edges, against outside truths: a decode step for fewer users than the
cache holds and a context that is not whole tiles, each checked against HF transformers' full
forward pass of every user's sequence; and allocate_cache's DRAM check against the closed form of a
KV cache's bytes (K and V of every layer, [users, KV heads, context padded to a tile, head_dim], bf16)."""

import re

import pytest

from ttspec.driver import compile_source, load_model
from ttspec.targets import get_target

from .conftest import SPECS

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("ttnn")

from ttspec.importers.hf import import_hf  # noqa: E402
from ttspec.runtime.runner import golden_program, load_program, root_class  # noqa: E402

from .conftest import formats_of, target_of  # noqa: E402
from .test_decode import CONFIGS, PCC_MIN  # noqa: E402
from .test_references import pcc  # noqa: E402
from .test_torch_backend import randomize  # noqa: E402

USERS, SEQ = 4, 40


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    """(program factory, tokens [USERS, SEQ], HF logits [USERS, SEQ, vocab]) for the tiny GQA Llama of
    tests/test_decode.py. No sequence starts with token 0, the token a row without a user carries,
    so a K/V written for such a row at position 0 cannot coincide with a user's own."""
    config = CONFIGS["llama"]()
    config._attn_implementation = "eager"
    hf = transformers.AutoModelForCausalLM.from_config(config).float().eval()
    randomize(hf, seed=5)
    folder = tmp_path_factory.mktemp("llama")
    hf.save_pretrained(folder)
    spec = folder / "llama.arch"
    spec.write_text(import_hf(folder).text)
    tokens = torch.randint(1, config.vocab_size, (USERS, SEQ), generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        expected = hf(tokens).logits
    state = {k: v.clone() for k, v in hf.state_dict().items()}
    model = load_model(spec)

    def program():
        return golden_program(model, str(spec), get_target("n150"), state)[0]

    return program, tokens, expected


def test_a_step_for_fewer_users_leaves_the_others_caches_alone(llama):
    """Users 0..3 prefilled; then steps for users 0 and 1 only (decode(tokens[:2], positions[:2])),
    then steps for all four. Every step's logits of every stepped user equal HF's full forward pass at
    that position, and so do users 2 and 3's later steps: the rows without a user in the partial
    steps wrote nothing into their caches (a row that wrote its K and V at position 0 would replace
    users 2 and 3's first position)."""
    new_program, tokens, expected = llama
    program = new_program()
    program.allocate_cache(USERS, 64)
    prompts = [10, 10, 12, 12]
    for user, length in enumerate(prompts):
        program.prefill(tokens[user, :length], user)
    got = {user: [] for user in range(USERS)}
    want = {user: [] for user in range(USERS)}
    position = list(prompts)

    def step(users):
        at = torch.tensor(position[:users])
        logits = program.decode(tokens[torch.arange(users), at], at)
        assert logits.shape == (users, expected.shape[-1])
        for user in range(users):
            got[user].append(logits[user])
            want[user].append(expected[user, position[user]])
            position[user] += 1

    for _ in range(4):
        step(2)  # users 2 and 3 wait
    for _ in range(4):
        step(USERS)
    assert position == [18, 18, 16, 16]
    for user in range(USERS):
        p = pcc(torch.stack(got[user]), torch.stack(want[user]))
        print(f"user {user}: {len(got[user])} decode steps, pcc {p:.6f} against HF's full forward pass")
        assert p >= PCC_MIN, (user, p)


def test_a_context_that_is_not_whole_tiles_is_padded_to_one(llama):
    """allocate_cache(1, 40) holds 64 positions (40 padded to a tile), so a 33-token prompt (64 once
    padded) fits, and decode continues it to position 39; every logit row matches HF's."""
    new_program, tokens, expected = llama
    program = new_program()
    program.allocate_cache(1, 40)
    prompt = 33
    prefill = program.prefill(tokens[0, :prompt], 0, every_position=True)
    steps = [program.decode(tokens[0, p : p + 1], torch.tensor([p]))[0] for p in range(prompt, SEQ)]
    p_prefill, p_decode = pcc(prefill, expected[0, :prompt]), pcc(torch.stack(steps), expected[0, prompt:])
    print(f"33-token prompt in a 40-position cache: prefill pcc {p_prefill:.6f}, decode pcc {p_decode:.6f}")
    assert p_prefill >= PCC_MIN and p_decode >= PCC_MIN


# Llama 3.1 8B (published: 32 layers, 8 KV heads of 128, 8,030,261,248 parameters) on an n150 (12 GB of
# DRAM, targets.WORMHOLE_DRAM) with bfloat8_b weights: at least one byte per parameter (8 bits per value
# and a shared exponent), so at most 12 GB - 8.03 GB is left for the KV cache and a prompt's activations.
LAYERS, KV_HEADS, HEAD_DIM, PARAMETERS = 32, 8, 128, 8_030_261_248


def kv_cache_bytes(users, context):
    padded = -(-context // 32) * 32
    return 2 * LAYERS * users * KV_HEADS * padded * HEAD_DIM * 2


def test_allocate_cache_counts_every_users_cache():
    """The program's context bound (17,888 on n150 with bfloat8_b weights) is for one user: its cache
    is 2.45 GB. Five users at that context need 5 x that, more than is left beside the weights (12 GB
    less at least 8.03 GB), and 32 need 78 GB, more than the whole chip: allocate_cache refuses both,
    quoting the closed-form bytes, and accepts one user. The weights are not loaded: the check runs
    before any tensor is allocated. The bound: whole tiles of (DRAM beside the weights - the last tile's
    logits, 32 x 128,256 x 2 B) / (KV 2 x 32 layers x 8 x 128 x 2 B + the prefill's activations 2 x (4,096
    hidden + 4,096 residual + 2 x 14,336 MLP) B per position); a prefill computes only its last tile's logits
    (it was 8,288 when every position's 256,512 B of logits counted too, and 18,656 before the DRAM-sharded layer
    matrices' padding to whole shards per bank, 151 MB, and the head's 3 column chunks', counted)."""
    from ttspec.runtime.golden import GoldenTTNN
    from ttspec.targets import WORMHOLE_DRAM

    model = load_model(SPECS / "llama-3.1-8b.arch")
    source = compile_source(model, "specs/llama-3.1-8b.arch", target_of("n150"), formats_of("bfloat8_b"))
    free = int(re.search(r"^DRAM_BESIDE_WEIGHTS = (\d+)", source, re.M).group(1))
    assert free <= WORMHOLE_DRAM - PARAMETERS
    context = (free - 32 * 128256 * 2) // ((kv_cache_bytes(1, 32) // 32 + 2 * (4096 + 4096 + 2 * 14336)) * 32) * 32
    assert context == 17888 and f"Context: up to {context:,} tokens" in source
    module = load_program(source, "llama_8b_cache_check")
    module.ttnn = GoldenTTNN()
    program = root_class(module, model)(module.open_device(), trace=False)
    program.allocate_cache(1, context)
    assert kv_cache_bytes(1, context) < WORMHOLE_DRAM - PARAMETERS
    for users in (5, 32):
        needed = kv_cache_bytes(users, context)
        assert needed > WORMHOLE_DRAM - PARAMETERS
        with pytest.raises(ValueError, match=f"a KV cache for {users} users x {context} positions needs {needed:,} "
                                             "bytes"):
            program.allocate_cache(users, context)
    assert kv_cache_bytes(32, 8288) == 34_762_391_552 > WORMHOLE_DRAM  # the 34.8 GB of issue 18
