"""A mixture-of-experts spec compiled for TT-NN (backends/ttnn/lower_moe.py over the runtime's rt/moe.py) against
the generated torch program (whose MoE helper module is checked against HF's blocks elsewhere): specs/moe-tiny.arch
(Mixtral-shaped: 8 experts, top 2 renormalised, GQA attention) with seeded random weights, golden on n150 and on
T3K (a variant with 8 heads of 32, one expert per chip), scored as `generate --score` scores: each user's prompt
prefilled (every position's logits), the rest of its sequence decoded one token per step with 4 users at their own
positions; every logit against the torch program's full forward pass. bf16 against fp32 may flip a near-tied
top-k choice (tests/test_moe_runtime.py counts them per block); the whole score holds PCC >= 0.99, as the issue
asks, and the measured PCCs are stated here.
"""

from pathlib import Path

import pytest

from ttspec.driver import compile_source, load_model
from ttspec.targets import get_target

torch = pytest.importorskip("torch")
pytest.importorskip("ttnn")

from ttspec.runtime.runner import build_torch, golden_program  # noqa: E402
from ttspec.runtime.weights import random_state_dict  # noqa: E402

from .conftest import formats_of, mesh_of, target_of  # noqa: E402
from .numerics import pcc  # noqa: E402

SPEC = "specs/moe-tiny.arch"
SEQ, PREFILL = 24, (12, 9, 16, 1)  # users' prompt lengths; the rest of each sequence decoded


def score(program, tokens, vocab, prefill=PREFILL, context=64):
    users, seq = tokens.shape
    program.allocate_cache(users, context)
    out = torch.zeros(users, seq, vocab)
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


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """spec -> (path, model, seeded random weights, tokens, the torch program's logits). "wide": moe-tiny with 8
    heads of 32 (d 256), which a T3K's 8 chips split."""
    cache = {}

    def get(which):
        if which not in cache:
            path = Path(SPEC)
            if which == "wide":
                path = tmp_path_factory.mktemp("moe") / "moe-wide.arch"
                text = Path(SPEC).read_text().replace("let d = 128", "let d = 256").replace("let heads = 4",
                                                                                            "let heads = 8")
                path.write_text(text)
            model = load_model(str(path))
            state = random_state_dict(model, seed=3)
            tokens = torch.randint(0, 512, (len(PREFILL), SEQ), generator=torch.Generator().manual_seed(7))
            _, net = build_torch(model, str(path), state)
            with torch.no_grad():
                expected = net(tokens).float()
            cache[which] = (str(path), model, state, tokens, expected)
        return cache[which]

    return get


# measured on this machine (torch 2.14.1): n150 (moe-tiny) decode PCC 0.9997, prefill 0.9987; T3K (8 heads, d 256;
# one expert per chip, the planner's reduce_scatter of the partial sums) decode 0.9995, prefill 0.9995 (with 5 users
# and 40 positions: n150 0.9976 / 0.9963). Dense Llama programs score >= 0.999 (tests/test_decode.py): the gap is
# near-tied routing choices flipping in bf16.
@pytest.mark.parametrize("target,mesh,spec", [("n150", None, "tiny"), ("t3k", "1x8", "wide")])
def test_golden_score_equals_the_torch_program(built, target, mesh, spec):
    path, model, state, tokens, expected = built(spec)
    source = compile_source(model, path, target_of(target), formats_of("bf16"), mesh_of(mesh))
    assert "moe_experts(" in source and "moe_routing_weights(" in source
    # on T3K each chip holds 1 of the 8 experts (the plan's placement), keeps its routing weights and returns a
    # partial sum, which the planner's reduce_scatter adds up: the lowering emits no all_reduce of its own
    assert ('split="experts"' in source and "selector=self.selector" in source) == (target == "t3k")
    assert "ttnn.all_reduce" not in source
    program, module = golden_program(model, path, get_target(target), state, source=source)
    got = score(program, tokens, expected.shape[-1])
    decoded = torch.zeros(got.shape[:2], dtype=torch.bool)
    for b, p in enumerate(PREFILL):
        decoded[b, p:] = True
    decode, prefill = pcc(got[decoded], expected[decoded]), pcc(got[~decoded], expected[~decoded])
    print(f"{target}: decode PCC {decode:.5f}, prefill PCC {prefill:.5f}; goldens run: "
          f"topk {module.ttnn.calls.get('topk', 0)}, scatter {module.ttnn.calls.get('scatter', 0)}")
    assert decode >= 0.99 and prefill >= 0.99
    assert module.ttnn.calls.get("topk", 0) > 0 and module.ttnn.calls.get("scatter", 0) > 0
    assert module.ttnn.calls.get("all_reduce", 0) == 0
    assert (module.ttnn.calls.get("reduce_scatter", 0) > 0) == (target == "t3k")


def test_what_the_tt_nn_moe_cannot_run_is_refused_at_the_users_call(run_cli, write_spec):
    """An expert activation ttnn.mul cannot apply to its input (tanh-approximated GELU) and expert widths off
    whole tiles: `check --target n150` names the spec's line and the reason; the torch target compiles both."""
    for act, hidden, reason in (('"gelu_tanh"', 64, 'an expert activation "gelu_tanh" is not lowered to TT-NN'),
                                ('"silu"', 48, "experts of width 64 -> 48 are not lowered to TT-NN")):
        path = write_spec(f"""model refused
input tokens: int32[batch, seq] where seq <= 64
h = token_embedding(tokens, 128, 64) as embedding
h = h + moe_experts(h, topk_routing(moe_router(h, 4) as router, 2), {hidden}, 2, act = {act}) as experts
output logits = lm_head(h, 128)
""")
        result = run_cli("check", path, "--target", "n150")
        assert result.returncode == 1 and f"{path}:4:" in result.stderr and reason in result.stderr, result.stderr
        assert run_cli("compile", path, "--target", "torch", "-o", path.with_suffix(".py")).returncode == 0
