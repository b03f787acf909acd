"""`ttspec generate` stops at the checkpoint's end-of-text token by default, as HF's `generate` does
(issue 22); `--stop` replaces it and `--stop none` runs to --max-new-tokens. The truth is HF's own
`generate` on the same tiny random checkpoint."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from .test_generate import hf_greedy, prompts_for, save_hf, save_npy  # noqa: E402

NEW = 12


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """The tiny llama, with eos_token_id set to a token greedy decoding reaches mid-way for user 0 only."""
    tmp = tmp_path_factory.mktemp("eos")
    hf, folder, spec = save_hf(tmp, "llama_gqa")
    prompts = prompts_for()
    plain = hf_greedy(hf, prompts, NEW).tolist()
    eos = next(t for t in plain[0][2:NEW - 2] if t not in plain[0][:2] and t not in plain[1])
    for name in ("config.json", "generation_config.json"):
        data = json.loads((folder / name).read_text())
        data["eos_token_id"] = eos
        (folder / name).write_text(json.dumps(data))
    return hf, folder, spec, prompts, plain, eos


def generated(run_cli, tmp_path, checkpoint, *extra):
    hf, folder, spec, prompts, plain, eos = checkpoint
    out = run_cli("generate", spec, "--weights", folder, "--tokens", save_npy(tmp_path / "p.npy", prompts),
                  "--max-new-tokens", NEW, "--out", tmp_path / "ids.npy", *extra, timeout=120)
    assert out.returncode == 0, out.stderr
    return np.load(tmp_path / "ids.npy").tolist()


def test_stops_at_the_checkpoints_end_of_text_token(run_cli, tmp_path, checkpoint):
    hf, folder, spec, prompts, plain, eos = checkpoint
    with torch.no_grad():  # HF stops a user at eos_token_id and pads it (with 0 here) while the others run on
        reference = hf.generate(prompts, attention_mask=torch.ones_like(prompts), do_sample=False,
                                max_new_tokens=NEW, eos_token_id=eos, pad_token_id=0)[:, prompts.shape[1]:].tolist()
    reference = [row[:row.index(eos) + 1] if eos in row else row for row in reference]
    ids = generated(run_cli, tmp_path, checkpoint)
    stop = plain[0].index(eos)
    assert ids[0] == plain[0][:stop + 1] + [-1] * (NEW - stop - 1)  # user 0 stops at it, kept; -1 after
    assert ids[1] == plain[1]  # user 1 never produces it
    assert ids == [row + [-1] * (NEW - len(row)) for row in reference]


def test_stop_replaces_it_and_none_runs_on(run_cli, tmp_path, checkpoint):
    hf, folder, spec, prompts, plain, eos = checkpoint
    assert generated(run_cli, tmp_path, checkpoint, "--stop", "none") == plain
    other = next(t for t in plain[1][1:] if t not in plain[0] and t not in plain[1][:1])
    ids = generated(run_cli, tmp_path, checkpoint, "--stop", other)
    assert ids[0] == plain[0]  # the checkpoint's token no longer stops user 0
    assert ids[1] == plain[1][:plain[1].index(other) + 1] + [-1] * (NEW - plain[1].index(other) - 1)


def test_generation_config_comes_first(tmp_path):
    from ttspec.runtime.eos import checkpoint_stop_tokens

    (tmp_path / "config.json").write_text(json.dumps({"eos_token_id": 2}))
    assert checkpoint_stop_tokens(str(tmp_path), 256) == [2]
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [7, 300, "x", 7]}))
    assert checkpoint_stop_tokens(str(tmp_path / "model.safetensors"), 256) == [7]  # in the vocabulary, once
    assert checkpoint_stop_tokens(None, 256) == []
