"""The lesson's model learns: nano-trickster (5.2M parameters, as the spec ships), freshly initialised, trained
by `ttspec train` on 300 KB of text (Python source) for 300 steps of 4 x 64 bytes on the CPU, ends with a held-out
loss well below the unigram baseline: the entropy of the held-out bytes' own distribution, the loss of the best
model that ignores context (computed here from the bytes). About 45 s of one core; docs/training.md states the
figures."""

import math
from collections import Counter

import pytest

from .conftest import SPECS
from .train_helpers import metrics, one_thread, text, train

single_thread = pytest.fixture(scope="module", autouse=True)(one_thread)
SIZE, VAL_FRACTION = 300_000, 0.1


def test_nano_trickster_beats_the_unigram_baseline(tmp_path):
    data = text(SIZE)
    (tmp_path / "data.txt").write_bytes(data)
    assert train(SPECS / "nano-trickster.arch", "--data", tmp_path / "data.txt", "--steps", 300, "--batch", 4,
                 "--seq", 64, "--lr", 3e-3, "--eval-every", 100, "--val-fraction", VAL_FRACTION, "--device", "cpu",
                 "--dtype", "fp32", "--out", tmp_path / "out") == 0
    held_out = data[SIZE - int(SIZE * VAL_FRACTION):]
    counts = Counter(held_out)
    baseline = -sum(c / len(held_out) * math.log(c / len(held_out)) for c in counts.values())
    records = metrics(tmp_path / "out")
    first, last = records[0]["loss"], [r["val_loss"] for r in records if "val_loss" in r][-1]
    assert abs(first - math.log(256)) < 0.1 * math.log(256)  # a fresh init guesses near uniformly
    assert last < baseline - 0.5, (first, last, baseline)
