"""`ttspec train` end to end on a tiny spec: what --out holds (weights in ttspec's names that `ttspec run` loads,
metrics.jsonl, the loss curve, a tokenizer.json given with --tokenizer), and one clear error, exit code and no
traceback for each kind of bad input."""

import json
import xml.etree.ElementTree as ET

import pytest
from safetensors import safe_open

from ttspec.driver import load_model
from ttspec.runtime.weights import stored_shapes

from .train_helpers import GPT2_TINY, metrics, one_thread, text, train

single_thread = pytest.fixture(scope="module", autouse=True)(one_thread)
SMALL = ("--steps", 6, "--batch", 2, "--seq", 16, "--eval-every", 3, "--device", "cpu")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("train-cli")
    (folder / "tiny.arch").write_text(GPT2_TINY)
    (folder / "data.txt").write_bytes(text(4_000))
    return folder


def test_out_holds_weights_metrics_and_curve(files, capsys):
    out = files / "out"
    assert train(files / "tiny.arch", "--data", files / "data.txt", *SMALL, "--out", out) == 0
    said = capsys.readouterr().out
    assert "trained tiny_gpt2" in said and "unigram baseline" in said and "measured peak" in said
    with safe_open(out / "model.safetensors", "pt") as f:
        shapes = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    assert shapes == stored_shapes(load_model(str(files / "tiny.arch")))  # ttspec's names, a tied weight once
    records = metrics(out)
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert [("val_loss" in r) for r in records] == [False, False, True, False, False, True]
    assert all(isinstance(r["loss"], float) for r in records)
    svg = ET.parse(out / "loss.svg").getroot()
    assert svg.tag.endswith("svg") and len(svg.findall(".//{http://www.w3.org/2000/svg}polyline")) == 2
    from ttspec.cli.main import main

    assert main(["run", str(files / "tiny.arch"), "--mode", "torch", "--weights", str(out)]) == 0


def test_tokenizer_json(files, capsys):
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = sorted(set(text(4_000).decode().split()))
    for size, code in ((200, 0), (300, 1)):
        vocab = {"[UNK]": 0} | {w: i + 1 for i, w in enumerate(words[:size - 1])}
        tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        tok.save(str(files / f"tok{size}.json"))
        out = files / f"tok-out{size}"
        assert train(files / "tiny.arch", "--data", files / "data.txt", "--tokenizer", files / f"tok{size}.json",
                     *SMALL, "--seq", 8, "--out", out) == code
        if code == 0:
            assert json.loads((out / "tokenizer.json").read_text())["model"]["type"] == "WordLevel"
    assert "has 300 tokens; the spec's vocabulary has 256" in capsys.readouterr().err


@pytest.mark.parametrize("case, args, code, message", [
    ("missing data", ("--data", "{f}/nothing.txt"), 1, "nothing.txt"),
    ("empty data", ("--data", "{f}/empty.txt"), 1, "is empty"),
    ("shorter than seq", ("--data", "{f}/short.txt", "--seq", "64"), 2, "fewer than --seq 64 + 1"),
    ("seq past the bound", ("--data", "{f}/data.txt", "--seq", "65"), 1, "past the spec's bound seq <= 64"),
    ("no data", (), 2, "--data is required"),
    ("min-lr above lr", ("--data", "{f}/data.txt", "--lr", "1e-3", "--min-lr", "1e-2"), 2, "is above --lr"),
    ("warmup too long", ("--data", "{f}/data.txt", "--steps", "5", "--warmup", "5"), 2, "leaves no step"),
    ("val fraction", ("--data", "{f}/data.txt", "--val-fraction", "1.5"), 2, "between 0 and 1"),
    ("resume nowhere", ("--resume", "{f}/nowhere"), 2, "no such directory"),
    ("resume a file", ("--resume", "{f}/data.txt"), 2, "is not a directory"),
    ("out a file", ("--data", "{f}/data.txt", "--out", "{f}/data.txt"), 1, "is a file, not a directory"),
    ("bad steps", ("--data", "{f}/data.txt", "--steps", "0"), 2, "expected a positive integer"),
])
def test_bad_input(files, capsys, case, args, code, message):
    (files / "empty.txt").write_bytes(b"")
    (files / "short.txt").write_bytes(b"x" * 40)
    try:
        got = train(files / "tiny.arch", "--out", files / "bad-out", *(a.format(f=files) for a in args))
    except SystemExit as e:  # argparse's own refusals
        got = e.code
    err = capsys.readouterr().err
    assert got == code, err
    assert message in err and "Traceback" not in err
    assert not (files / "bad-out" / "model.safetensors").exists()


def test_refuses_an_out_that_holds_a_run(files, capsys):
    out = files / "twice"
    assert train(files / "tiny.arch", "--data", files / "data.txt", *SMALL, "--out", out) == 0
    assert train(files / "tiny.arch", "--data", files / "data.txt", *SMALL, "--out", out) == 2
    assert "already holds a training run" in capsys.readouterr().err


def test_bf16_autocast_and_accumulation(files):
    out = files / "bf16"
    assert train(files / "tiny.arch", "--data", files / "data.txt", *SMALL, "--accum", 2, "--dtype", "bf16",
                 "--out", out) == 0
    records = metrics(out)
    assert len(records) == 6 and all(r["loss"] == r["loss"] for r in records)
    assert records[-1]["val_loss"] < records[2]["val_loss"]


def test_progress_bar_on_a_terminal_only():
    import io

    from ttspec.training.progress import Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    for stream, shown in ((Terminal(), True), (io.StringIO(), False)):
        bar = Progress(10, 256, 0, stream)
        for step in range(1, 11):
            bar.update(step, {"loss": 2.5, **({"val_loss": 2.25} if step == 10 else {})})
        bar.close()
        text = stream.getvalue()
        assert ("step 10/10 loss 2.500 val 2.250" in text and "tokens/s" in text and "ETA" in text) == shown
        assert bool(text) == shown
