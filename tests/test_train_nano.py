"""The lesson's model learns: nano-trickster (5.2M parameters, as the spec ships), freshly initialised, trained
by `ttspec train` on 300 KB of text (Python source, in 1 KB pieces shuffled so that the held-out tenth is like the
rest) for 300 steps of 4 x 64 bytes on the CPU, ends with a held-out loss well below the unigram baseline: the
entropy of the held-out bytes' own distribution, the loss of the best model that ignores context (computed here
from the bytes). Its weights then greedy-decode through `ttspec generate` on the TT-NN program's golden functions
the torch program's choices, up to near-ties (exact equality, on a model sure of its tokens:
tests/test_train_generate.py). About a minute of one core; docs/training.md states the figures."""

import math
import random
from collections import Counter

import numpy as np
import pytest

from ttspec.cli.main import main

from .conftest import SPECS
from .train_helpers import metrics, one_thread, text, train

single_thread = pytest.fixture(scope="module", autouse=True)(one_thread)
SIZE, VAL_FRACTION, PIECE = 300_000, 0.1, 1024
SPEC = str(SPECS / "nano-trickster.arch")
PROMPT, NEW = "def load_model(", 16
NEAR_TIE = 0.25  # logits: bfloat16 keeps 8 significant bits, ~0.03 at the logits' size (~8), over a few roundings


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nano")
    source = text(4 * SIZE)
    pieces = [source[i:i + PIECE] for i in range(0, len(source), PIECE)]
    random.Random(0).shuffle(pieces)
    data = b"".join(pieces)[:SIZE]
    (folder / "data.txt").write_bytes(data)
    assert train(SPEC, "--data", folder / "data.txt", "--steps", 300, "--batch", 4, "--seq", 64, "--lr", 5e-3,
                 "--eval-every", 100, "--val-fraction", VAL_FRACTION, "--device", "cpu", "--dtype", "fp32",
                 "--out", folder / "out") == 0
    return folder, data


def test_nano_trickster_beats_the_unigram_baseline(trained):
    folder, data = trained
    held_out = data[SIZE - int(SIZE * VAL_FRACTION):]
    counts = Counter(held_out)
    baseline = -sum(c / len(held_out) * math.log(c / len(held_out)) for c in counts.values())
    records = metrics(folder / "out")
    first, last = records[0]["loss"], [r["val_loss"] for r in records if "val_loss" in r][-1]
    assert abs(first - math.log(256)) < 0.1 * math.log(256)  # a fresh init guesses near uniformly
    assert last < baseline - 0.4, (first, last, baseline)  # perplexity 1.5x lower


def test_trained_weights_generate_alike_in_torch_and_golden(trained):
    """`ttspec generate` greedy on the TT-NN program's golden functions (bfloat16) picks, at every step, the token
    the torch program (fp32) ranks first given the same prefix, or, where the torch program's two best candidates
    are within NEAR_TIE (a flip bfloat16's rounding can cause), its second."""
    folder, _ = trained
    ids = {}
    for mode in ("torch", "golden"):
        path = folder / f"ids-{mode}.npy"
        assert main(["generate", SPEC, "--weights", str(folder / "out"), "--mode", mode, "--prompt", PROMPT,
                     "--max-new-tokens", str(NEW), "--out", str(path)]) == 0
        ids[mode] = np.load(path)[0]
    np.save(folder / "path.npy", np.array([list(PROMPT.encode()) + ids["golden"].tolist()]))
    assert main(["generate", SPEC, "--weights", str(folder / "out"), "--score", "--tokens", str(folder / "path.npy"),
                 "--prefill", str(len(PROMPT)), "--out", str(folder / "logits.npy")]) == 0
    logits = np.load(folder / "logits.npy")[0, len(PROMPT) - 1:-1]  # torch's logits for each of golden's choices
    order = np.argsort(-logits, axis=-1)
    gap = np.take_along_axis(logits, order[:, :1], -1)[:, 0] - np.take_along_axis(logits, order[:, 1:2], -1)[:, 0]
    clear = gap >= NEAR_TIE
    assert (ids["golden"][clear] == order[clear, 0]).all(), (ids, gap)
    assert np.isin(ids["golden"], order[:, :2]).all() and (ids["golden"] == order[:, 0]).sum() >= NEW // 2
    assert clear.sum() >= 4, gap  # enough steps are decided beyond doubt
    first_tie = int(np.argmax(~clear)) if (~clear).any() else NEW
    assert (ids["torch"][:first_tie] == ids["golden"][:first_tie]).all()
