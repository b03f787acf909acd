"""`ttspec compile` and `ttspec run` as a user meets them: outputs, files and every bad input."""

import pytest

pytest.importorskip("torch")
pytest.importorskip("ttnn")


def test_compile_writes_generated_file(run_cli, tmp_path):
    out = run_cli("compile", "specs/nano-trickster.arch", "--target", "n150", "-o", tmp_path / "p.py")
    assert out.returncode == 0, out.stderr
    assert "wrote" in out.stdout and "ttspec run specs/nano-trickster.arch" in out.stdout
    source = (tmp_path / "p.py").read_text()
    assert "class NanoTrickster:" in source and "class Attention:" in source
    assert "for layer in self.layers:" in source  # a loop, not unrolled layers
    assert source.count("class Decoder") == 1


def test_compile_failure_keeps_previous_file(run_cli, tmp_path):
    target = tmp_path / "llama.py"
    target.write_text("previous\n")
    out = run_cli("compile", "specs/llama-3.1-8b.arch", "--target", "n150", "-o", target)
    assert out.returncode == 1
    assert target.read_text() == "previous\n"
    assert "Traceback" not in out.stderr


def test_run_golden_and_torch_agree(run_cli, tmp_path):
    golden = run_cli("run", "specs/llama-gqa-tiny.arch", "--mode", "golden", "--random-tokens", "1,40",
                     "--out", tmp_path / "g.npy", timeout=300)
    assert golden.returncode == 0, golden.stderr
    ref = run_cli("run", "specs/llama-gqa-tiny.arch", "--mode", "torch", "--random-tokens", "1,40",
                  "--out", tmp_path / "t.npy", timeout=300)
    assert ref.returncode == 0, ref.stderr
    import numpy as np

    g, t = np.load(tmp_path / "g.npy"), np.load(tmp_path / "t.npy")
    assert g.shape == t.shape == (1, 40, 512)
    assert np.corrcoef(g.ravel(), t.ravel())[0, 1] > 0.999


def test_run_with_weights_file(run_cli, tmp_path):
    import torch
    from safetensors.torch import save_file

    from ttspec.driver import load_model
    from ttspec.runtime.runner import random_hf_state_dict

    state = random_hf_state_dict(load_model("specs/nano-trickster.arch"), seed=3)
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "w.safetensors"))
    np_tokens = torch.randint(0, 256, (1, 20)).numpy()
    import numpy as np

    np.save(tmp_path / "tokens.npy", np_tokens)
    out = run_cli("run", "specs/nano-trickster.arch", "--mode", "torch", "--weights", tmp_path / "w.safetensors",
                  "--tokens", tmp_path / "tokens.npy", timeout=300)
    assert out.returncode == 0, out.stderr
    assert "logits [1, 20, 256]" in out.stdout

    del state["model.layers.3.mlp.up_proj.weight"]
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "bad.safetensors"))
    out = run_cli("run", "specs/nano-trickster.arch", "--mode", "torch", "--weights", tmp_path / "bad.safetensors")
    assert out.returncode == 1
    assert "lacks 1 tensor(s) the spec needs: model.layers.3.mlp.up_proj.weight" in out.stderr


@pytest.mark.parametrize("args,message", [
    (["--random-tokens", "3"], "--random-tokens expects B,S such as 1,64, got '3'"),
    (["--random-tokens", "0,4"], "--random-tokens needs positive sizes"),
    (["--weights", "nope.safetensors"], "no such weights file: nope.safetensors"),
    (["--tokens", "specs/nano-trickster.arch"], "cannot read tokens from specs/nano-trickster.arch"),
    (["--target", "torch", "--mode", "golden"], "--mode golden runs a TT-NN program"),
    (["--allocate-only"], "--allocate-only is for --mode mock or --mode device"),
])
def test_run_errors(run_cli, args, message):
    argv = ["run", "specs/nano-trickster.arch"] + (args if "--mode" in args else args + ["--mode", "torch"])
    out = run_cli(*argv, timeout=300)
    assert out.returncode == 1, out.stdout
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_bad_weights_file(run_cli, tmp_path):
    bad = tmp_path / "w.safetensors"
    bad.write_bytes(b"\x00" * 64)
    out = run_cli("run", "specs/nano-trickster.arch", "--mode", "torch", "--weights", bad)
    assert out.returncode == 1
    assert "cannot read" in out.stderr and "as safetensors" in out.stderr


def test_tokens_out_of_range(run_cli, tmp_path):
    import numpy as np

    np.save(tmp_path / "t.npy", np.array([[1, 2, 999]]))
    out = run_cli("run", "specs/nano-trickster.arch", "--mode", "torch", "--tokens", tmp_path / "t.npy")
    assert out.returncode == 1
    assert "token ids must be in [0, 256), got [1, 999]" in out.stderr

