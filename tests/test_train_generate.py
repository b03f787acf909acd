"""Weights trained by `ttspec train` greedy-decode exactly the same tokens through `ttspec generate` on the torch
program (fp32) and on the TT-NN program's golden functions (bfloat16), when the model is sure of every token.

A tiny gpt2-family and a tiny llama-family spec learn a sentence repeated over and over (a deterministic text a
small model learns completely: the next byte is fixed by the last few), so that along the generated path the best
logit leads the second by several units. The test asserts that lead exceeds what bfloat16's rounding can move it
by (the derivation is at `rounding_bound`), that the golden program's own lead (`generate --score`, its logits on
the same path) is within that reach of torch's, and then that the two programs' tokens are equal, every one, and
are the sentence's own continuation. A golden op that computes something else moves the logits by more than
rounding does: by hand, uniform attention in the decode step changed the tokens; half-temperature attention
there, or rotary embedding turning the wrong way, moved the lead by 2.3 to 3.6 against estimates of 1.9 to 2.4
(rounding alone moves it by 0.09 at most). tests/test_train_nano.py checks the weaker, near-tie-tolerant property
on nano-trickster, which after 300 steps on Python source is unsure of much.
A few seconds of one core per family."""

import math

import numpy as np
import pytest

import ttspec
from ttspec.cli.main import main

from .train_helpers import GPT2_TINY, LLAMA_TINY, one_thread, train

single_thread = pytest.fixture(scope="module", autouse=True)(one_thread)
SENTENCE = b"the quick brown fox jumps over the lazy dog. "
PROMPT, NEW = "the quick", 32  # 9 + 32 positions: within the 64 the windows train
LAYERS = 2  # both tiny specs
U = 2.0 ** -8  # bfloat16: 8 significant bits, round to nearest: relative error at most 2^-8


def rounding_bound(h, w1, w2) -> float:
    """How far bfloat16 can move the margin z_1 - z_2 of the two best logits, z_j = h . w_j (h the head's input,
    w_j the head's rows for the two tokens), by this estimate:
    - the golden program rounds every weight and every op's output to bfloat16, each a relative error of at most
      U. On its way to the head a value passes K roundings: per decoder layer about 20 (norm and its weight, q/k/v
      matmuls and their weights, scores, softmax, context, output projection and its weight, residual add; norm
      and its weight, MLP matmuls and their weights, activation or gate, residual add), plus 6 around the layers
      (embedding, positions, their sum, final norm and its weight, the head's weight). Round-to-nearest errors are
      unbiased and independent, so they add in quadrature: ||dh|| ~ sqrt(K) U ||h||.
    - the margin: d(z_1 - z_2) = dh . (w_1 - w_2) + h . (dw_1 - dw_2) + the two logits' own roundings, so
      |d(z_1 - z_2)| <= sqrt(K) U ||h|| ||w_1 - w_2|| (Cauchy-Schwarz) + U sum_i |h_i| (|w_1i| + |w_2i|)
      + U (|z_1| + |z_2|).
    - the quadrature sum is a typical size, not a worst case, and a layer can amplify an error: a factor 4 covers
      both (four standard deviations).
    While the margin exceeds this, rounding does not flip the choice."""
    k = 20 * LAYERS + 6
    z1, z2 = float(h @ w1), float(h @ w2)
    spread = math.sqrt(k) * np.linalg.norm(h) * np.linalg.norm(w1 - w2) + np.abs(h) @ (np.abs(w1) + np.abs(w2))
    return 4 * U * float(spread + abs(z1) + abs(z2))


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def trained(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"greedy-{request.param}")
    spec = folder / "tiny.arch"
    spec.write_text(GPT2_TINY if request.param == "gpt2" else LLAMA_TINY)
    (folder / "data.txt").write_bytes(SENTENCE * 200)
    assert train(spec, "--data", folder / "data.txt", "--steps", 200, "--batch", 8, "--seq", 64, "--lr", 1e-2,
                 "--eval-every", 200, "--eval-batches", 1, "--device", "cpu", "--dtype", "fp32",
                 "--out", folder / "out") == 0
    return spec, folder


def torch_path_logits(spec, weights, tokens: list[int]):
    """The torch program's logits at every position of `tokens` (through the Python API, weights loaded), and the
    head's input and weight, for the rounding bound."""
    import torch

    net = ttspec.load(str(spec)).torch_module(weights=weights)
    seen = {}
    net.lm_head.register_forward_pre_hook(lambda module, args: seen.update(h=args[0]))
    with torch.no_grad():
        logits = net(torch.tensor([tokens]))
    return logits[0].double().numpy(), seen["h"][0].double().numpy(), net.lm_head.weight.double().detach().numpy()


def test_greedy_tokens_equal_in_torch_and_golden(trained):
    spec, folder = trained
    ids = {}
    for mode in ("torch", "golden"):
        path = folder / f"ids-{mode}.npy"
        assert main(["generate", str(spec), "--weights", str(folder / "out"), "--mode", mode, "--prompt", PROMPT,
                     "--max-new-tokens", str(NEW), "--out", str(path)]) == 0
        ids[mode] = np.load(path)[0].tolist()
    prompt = list(PROMPT.encode())
    logits, h, head = torch_path_logits(spec, folder / "out", prompt + ids["torch"])
    np.save(folder / "path.npy", np.array([prompt + ids["torch"]]))
    assert main(["generate", str(spec), "--weights", str(folder / "out"), "--mode", "golden", "--score", "--tokens",
                 str(folder / "path.npy"), "--prefill", str(len(prompt)), "--out", str(folder / "golden.npy")]) == 0
    golden = np.load(folder / "golden.npy")[0].astype(np.float64)  # the golden program's logits on torch's path
    steps = range(len(prompt) - 1, len(prompt) - 1 + NEW)  # the positions whose logits chose each new token
    for step, token in zip(steps, ids["torch"]):
        first, second = np.argsort(-logits[step])[:2]
        assert first == token  # the logits are those along the path `generate --mode torch` took
        margin = logits[step, first] - logits[step, second]
        bound = rounding_bound(h[step], head[first], head[second])
        assert margin > bound, (step, margin, bound)  # bfloat16 cannot flip this choice
        moved = abs(margin - (golden[step, first] - golden[step, second]))
        assert moved < bound, (step, moved, bound)  # and the golden program's own margin is within rounding of it
    expected = (SENTENCE * 3)[len(prompt):len(prompt) + NEW]
    assert bytes(ids["torch"]) == expected  # the model learned the sentence: the path is the text's, not luck
    assert ids["golden"] == ids["torch"]  # so the golden program, if right, follows it token for token
