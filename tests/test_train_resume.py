"""`ttspec train --resume` continues bit-for-bit: a run interrupted at step 12 (Ctrl-C, its checkpoint written
then), whose next checkpoint is then cut off mid-write, resumes from step 12 and ends with the same metrics.jsonl
and the same weights as one uninterrupted 20-step run; and the trained weights greedy-decode the same tokens on
the torch program and on the TT-NN program's golden functions."""

import pytest
from safetensors import safe_open

from ttspec.training import checkpoint, progress

from .train_helpers import GPT2_TINY, metrics, one_thread, text, train

OPTIONS = ("--steps", 20, "--batch", 4, "--seq", 32, "--lr", 3e-3, "--eval-every", 5, "--device", "cpu", "--seed", 3)


single_thread = pytest.fixture(scope="module", autouse=True)(one_thread)

@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resume")
    (folder / "tiny.arch").write_text(GPT2_TINY)
    (folder / "data.txt").write_bytes(text(30_000))
    assert train(folder / "tiny.arch", "--data", folder / "data.txt", *OPTIONS, "--out", folder / "whole") == 0
    return folder


def test_resume_is_bit_for_bit(setup, monkeypatch):
    folder, out = setup, setup / "parts"
    update = progress.Progress.update

    def ctrl_c_at_12(self, done, record):
        update(self, done, record)
        if done == 12:
            raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(progress.Progress, "update", ctrl_c_at_12)
        assert train(folder / "tiny.arch", "--data", folder / "data.txt", *OPTIONS, "--out", out) == 130
    assert checkpoint.load(str(out))["step"] == 12  # Ctrl-C wrote the last completed step's checkpoint

    import os

    replace = os.replace

    def killed_mid_write(src, dst):  # the next checkpoint's temporary file is written, the process dies
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(os, "replace", killed_mid_write)
        assert train(folder / "tiny.arch", "--resume", out) == 130
    assert os.replace is replace
    (out / ".ttspec-1-dead.tmp").write_bytes(b"\x00" * 100)  # what a SIGKILL mid-write leaves
    assert checkpoint.load(str(out))["step"] == 12  # the last complete checkpoint is still there, readable
    with safe_open(out / checkpoint.WEIGHTS_FILE, "pt") as f:
        assert f.metadata()["ttspec_train_step"] == "12"

    assert train(folder / "tiny.arch", "--resume", out) == 0
    assert metrics(out) == metrics(folder / "whole")
    assert len(metrics(out)) == 20 and sum("val_loss" in r for r in metrics(out)) == 4
    assert (out / checkpoint.WEIGHTS_FILE).read_bytes() == (folder / "whole" / checkpoint.WEIGHTS_FILE).read_bytes()


def test_resume_refuses_other_settings(setup, capsys):
    assert train(setup / "tiny.arch", "--resume", setup / "whole", "--lr", 1e-2) == 2
    assert "--lr 0.01 differs from the resumed run's 0.003" in capsys.readouterr().err
    assert train(setup / "tiny.arch", "--resume", setup / "whole") == 2
    assert "is complete (20 of 20 steps)" in capsys.readouterr().err
    assert train(setup / "tiny.arch", "--resume", setup / "nowhere") == 2
    assert "no such directory" in capsys.readouterr().err
