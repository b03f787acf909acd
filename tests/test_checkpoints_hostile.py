"""`--weights` against hostile and disagreeing checkpoints (issue 18).

The references are outside ttspec: tiny HF transformers models saved with save_pretrained here,
HF's own logits (a disagreement refused is one HF computes differently; a buffer ignored is one HF
ignores), and config.json's text (where a field is, found by searching the file).
- A checkpoint whose config.json disagrees with the spec on any field the spec encodes is refused
  at that field, config.json:LINE:COL, with the spec's value and where the spec says it.
- NaN and infinity in a tensor are refused by the tensor's name, as it streams.
- Every file of a checkpoint is a regular file (a FIFO never blocks), JSON is bounded.
- Old checkpoints' rotary `inv_freq` buffers (and GPT-2's attention masks) are ignored, as HF does.
"""

import json
import os
import re

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")

from safetensors.torch import load_file, save_file  # noqa: E402

from ttspec.driver import load_model  # noqa: E402
from ttspec.errors import ArchError  # noqa: E402
from ttspec.importers.hf import import_hf  # noqa: E402
from ttspec.runtime.runner import run_torch  # noqa: E402
from ttspec.runtime.weights import load_weights_file  # noqa: E402

from .test_checkpoints import COMMON, HEAD_DIM, LLAMA_LIKE_SPEC, ROPE, VOCAB, CountingReads, D  # noqa: E402
from .test_torch_backend import randomize  # noqa: E402

BASE = {
    "llama": dict(COMMON, rope_parameters=ROPE),
    "mistral": dict(COMMON, rope_parameters=ROPE, sliding_window=64),
    "gemma2": dict(COMMON, tie_word_embeddings=True, head_dim=HEAD_DIM, rope_parameters=ROPE, sliding_window=64),
    "phi": dict(vocab_size=VOCAB, hidden_size=D, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256,
                partial_rotary_factor=0.5, layer_norm_eps=1e-5, hidden_act="gelu_new", max_position_embeddings=128,
                tie_word_embeddings=False),
    "gpt2": dict(vocab_size=VOCAB, n_embd=D, n_layer=2, n_head=4, n_positions=128, n_inner=256,
                 tie_word_embeddings=True, activation_function="gelu_new", layer_norm_epsilon=1e-5),
}
LLAMA3 = {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
          "high_freq_factor": 4.0, "original_max_position_embeddings": 32}
LINEAR = {"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0}


def hf_config(family, **changes):
    config = transformers.AutoConfig.for_model(family, **dict(BASE[family], **changes))
    config._attn_implementation = "eager"
    return config


def save_checkpoint(folder, config, seed=1):
    hf = transformers.AutoModelForCausalLM.from_config(config).float().eval()
    randomize(hf, seed=seed)
    hf.save_pretrained(folder)
    return hf


def imported_spec(tmp_path, config, name="spec.arch"):
    """The spec `ttspec import-hf` writes for `config` (saved alone to a directory of its own)."""
    folder = tmp_path / (name + ".config")
    config.save_pretrained(folder)
    spec = tmp_path / name
    spec.write_text(import_hf(folder).text, encoding="utf-8")
    return spec


def where(text: str, *keys: str) -> tuple[int, int]:
    """(line, column) of the last of `keys` in a JSON text, each searched after the one before."""
    at = 0
    for key in keys:
        at = text.index(json.dumps(key) + ":", at)
    return text.count("\n", 0, at) + 1, at - (text.rfind("\n", 0, at) + 1) + 1


def tokens(seq=96, batch=2):
    return torch.randint(0, VOCAB, (batch, seq), generator=torch.Generator().manual_seed(7))


# ---------------------------------------------------------------- 1. config.json against the spec
# (case, family, the checkpoint's config, the spec's config, the checkpoint's key, the message)
DISAGREEMENTS = [
    ("rope_theta", "llama", dict(rope_parameters=dict(ROPE, rope_theta=1e6)), {}, ("rope_parameters", "rope_theta"),
     "rope_parameters.rope_theta is 1000000.0 but the spec says 10000.0"),
    ("eps", "llama", dict(rms_norm_eps=1e-5), {}, ("rms_norm_eps",), "rms_norm_eps is 1e-05 but the spec says 1e-06"),
    ("activation", "llama", dict(hidden_act="gelu_pytorch_tanh"), {}, ("hidden_act",),
     'hidden_act is "gelu_pytorch_tanh" (activation gelu_tanh) but the spec says silu'),
    # Mistral-7B v0.2 (theta 1e6, no window) under a spec for v0.1 (theta 1e4, a window)
    ("mistral_v02_under_v01", "mistral", dict(rope_parameters=dict(ROPE, rope_theta=1e6), sliding_window=None),
     dict(sliding_window=16), ("rope_parameters", "rope_theta"),
     "rope_parameters.rope_theta is 1000000.0 but the spec says 10000.0"),
    ("window", "mistral", dict(sliding_window=16), dict(sliding_window=32), ("sliding_window",),
     "layer 0: sliding_window is 16 but the spec says 32"),
    # the same tensor shapes: 4 heads of 16 (kv 2) and 8 heads of 8 (kv 4)
    ("heads", "llama", dict(num_attention_heads=4, num_key_value_heads=2, head_dim=16),
     dict(num_attention_heads=8, num_key_value_heads=4, head_dim=8), ("num_attention_heads",),
     "num_attention_heads is 4 but the spec says 8"),
    ("gemma2_window", "gemma2", dict(sliding_window=16), dict(sliding_window=32), ("layer_types",),
     'layer_types[0] is "sliding_attention" (attention window 16) but the spec says 32'),
    ("tie", "llama", dict(tie_word_embeddings=True), {}, ("tie_word_embeddings",),
     "tie_word_embeddings is true but the spec says untied"),
    ("attn_softcap", "gemma2", dict(attn_logit_softcapping=30.0), {}, ("attn_logit_softcapping",),
     "attn_logit_softcapping is 30.0 but the spec says 50.0"),
    ("final_softcap", "gemma2", dict(final_logit_softcapping=None), {}, ("final_logit_softcapping",),
     "final_logit_softcapping is null but the spec says 30.0"),
    ("query_pre_attn_scalar", "gemma2", dict(query_pre_attn_scalar=24), dict(query_pre_attn_scalar=16),
     ("query_pre_attn_scalar",), f"query_pre_attn_scalar is 24 (attention scale {24 ** -0.5!r}) but the spec "
                                 "says 0.25"),
    ("rope_type", "llama", dict(rope_parameters=LLAMA3), {}, ("rope_parameters", "rope_type"),
     'rope_parameters.rope_type is "llama3" but the spec says none'),
    ("llama3_factor", "llama", dict(rope_parameters=LLAMA3), dict(rope_parameters=dict(LLAMA3, factor=4.0)),
     ("rope_parameters", "factor"), "rope_parameters.factor is 8.0 but the spec says 4.0"),
    ("llama3_low_freq_factor", "llama", dict(rope_parameters=LLAMA3),
     dict(rope_parameters=dict(LLAMA3, low_freq_factor=2.0)), ("rope_parameters", "low_freq_factor"),
     "rope_parameters.low_freq_factor is 1.0 but the spec says 2.0"),
    ("llama3_high_freq_factor", "llama", dict(rope_parameters=LLAMA3),
     dict(rope_parameters=dict(LLAMA3, high_freq_factor=8.0)), ("rope_parameters", "high_freq_factor"),
     "rope_parameters.high_freq_factor is 4.0 but the spec says 8.0"),
    ("llama3_original_positions", "llama", dict(rope_parameters=LLAMA3),
     dict(rope_parameters=dict(LLAMA3, original_max_position_embeddings=64)),
     ("rope_parameters", "original_max_position_embeddings"),
     "rope_parameters.original_max_position_embeddings is 32 but the spec says 64"),
    ("linear_factor", "llama", dict(rope_parameters=LINEAR), dict(rope_parameters=dict(LINEAR, factor=4.0)),
     ("rope_parameters", "factor"), "rope_parameters.factor is 2.0 but the spec says 4.0"),
    ("partial_rotary_factor", "phi", {}, dict(partial_rotary_factor=0.25), ("partial_rotary_factor",),
     "partial_rotary_factor is 0.5 but the spec says 0.25"),
    ("gpt2_eps", "gpt2", {}, dict(layer_norm_epsilon=1e-3), ("layer_norm_epsilon",),
     "layer_norm_epsilon is 1e-05 but the spec says 0.001"),
]


@pytest.mark.parametrize("case,family,theirs,ours,keys,message", DISAGREEMENTS, ids=[c[0] for c in DISAGREEMENTS])
def test_a_config_that_disagrees_with_the_spec_is_refused_at_the_field(tmp_path, case, family, theirs, ours, keys,
                                                                       message):
    checkpoint_config, spec_config = hf_config(family, **theirs), hf_config(family, **ours)
    folder = tmp_path / "hf"
    hf = save_checkpoint(folder, checkpoint_config)
    spec = imported_spec(tmp_path, spec_config)
    model = load_model(spec)
    with pytest.raises(ArchError) as e:
        load_weights_file(model, str(folder))
    text = (folder / "config.json").read_text()
    assert message in str(e.value)
    line, col = where(text, *keys)
    assert (e.value.loc.file, e.value.loc.line, e.value.loc.col) == (str(folder / "config.json"), line, col)
    assert f"({spec}:" in str(e.value)  # and where the spec says its value
    assert "ttspec import-hf" in e.value.diagnostic.hint
    # the spec written from the checkpoint's own config loads it: the refusal is about the field alone
    load_weights_file(load_model(imported_spec(tmp_path, checkpoint_config, "own.arch")), str(folder))
    if case != "tie":  # HF computes another function with the same weights (a tied head is the embedding itself)
        other = transformers.AutoModelForCausalLM.from_config(spec_config).float().eval()
        other.load_state_dict(hf.state_dict())
        with torch.no_grad():
            apart = (hf(tokens()).logits - other(tokens()).logits).abs().max().item()
        assert apart > 1e-3, f"{case}: HF's two configs give the same logits ({apart})"


def test_mistral_v02_under_a_v01_spec_names_every_field(tmp_path):
    """Mistral-7B v0.1 -> v0.2: rope_theta and the window both changed; the message names both."""
    folder = tmp_path / "hf"
    save_checkpoint(folder, hf_config("mistral", rope_parameters=dict(ROPE, rope_theta=1e6), sliding_window=None))
    model = load_model(imported_spec(tmp_path, hf_config("mistral", sliding_window=16)))
    with pytest.raises(ArchError) as e:
        load_weights_file(model, str(folder))
    text = (folder / "config.json").read_text()
    assert "rope_parameters.rope_theta is 1000000.0 but the spec says 10000.0" in str(e.value)
    (note,) = e.value.diagnostic.notes
    assert note.message.startswith("layer 0: sliding_window is null but the spec says 16 (")
    assert (note.loc.line, note.loc.col) == where(text, "sliding_window")


def test_transformers_4_top_level_rope_theta(tmp_path):
    """A transformers 4.x config: rope_theta at the top level, rope_scaling beside it."""
    folder = tmp_path / "hf"
    save_checkpoint(folder, hf_config("llama"))
    config = json.loads((folder / "config.json").read_text())
    config.pop("rope_parameters")
    config.update(rope_theta=500000.0, rope_scaling=None)
    text = json.dumps(config, indent=2)
    (folder / "config.json").write_text(text)
    model = load_model(imported_spec(tmp_path, hf_config("llama")))
    with pytest.raises(ArchError) as e:
        load_weights_file(model, str(folder))
    assert "rope_theta is 500000.0 but the spec says 10000.0" in str(e.value)
    assert (e.value.loc.line, e.value.loc.col) == where(text, "rope_theta")


def test_a_field_the_config_leaves_out_is_the_familys_default(tmp_path):
    folder = tmp_path / "hf"
    save_checkpoint(folder, hf_config("llama"))
    config = json.loads((folder / "config.json").read_text())
    config.pop("rope_parameters")  # LlamaConfig's default theta, 10000.0, applies
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    model = load_model(imported_spec(tmp_path, hf_config("llama", rope_parameters=dict(ROPE, rope_theta=5e5))))
    with pytest.raises(ArchError) as e:
        load_weights_file(model, str(folder))
    assert "config.json has no `rope_theta`, so the checkpoint's rope theta is llama's default, 10000.0, but the " \
           "spec says 500000.0" in str(e.value)
    assert (e.value.loc.line, e.value.loc.col) == (1, 1)


# what the family computes whatever its config says; spec edits that drop it
STRUCTURE = [
    ("no_rope", "llama", [(r",\s*rope = rotary", "")], ("rope_parameters",),
     "rope_parameters means a rotary embedding but the spec says no rotary embedding"),
    ("norm_offset", "gemma2", [(r", offset = 1\.0", "")], ("model_type",),
     "a `gemma2` checkpoint's norm weight offset is 1.0 but the spec says 0.0"),
    ("embedding_scale", "gemma2", [(r" \* d \*\* 0\.5", "")], ("model_type",),
     "a `gemma2` checkpoint's embedding scale is 8.0 but the spec says unscaled"),
]


@pytest.mark.parametrize("case,family,edits,keys,message", STRUCTURE, ids=[c[0] for c in STRUCTURE])
def test_a_spec_that_drops_what_the_family_computes_is_refused(tmp_path, monkeypatch, case, family, edits, keys,
                                                               message):
    folder = tmp_path / "hf"
    hf = save_checkpoint(folder, hf_config(family))
    spec = imported_spec(tmp_path, hf_config(family))
    text = spec.read_text()
    for pattern, replacement in edits:
        text, count = re.subn(pattern, replacement, text)
        assert count >= 1, pattern
    spec.write_text(text)
    model = load_model(spec)
    with pytest.raises(ArchError) as e:
        load_weights_file(model, str(folder))
    assert message in str(e.value)
    assert (e.value.loc.line, e.value.loc.col) == where((folder / "config.json").read_text(), *keys)
    # and what it prevents: the spec's logits with these weights are not HF's
    monkeypatch.setattr("ttspec.importers.checkpoint_config.check_config", lambda *args: None)
    toks = tokens()
    got = run_torch(model, str(spec), load_weights_file(model, str(folder)), toks).float()
    with torch.no_grad():
        assert (got - hf(toks).logits).abs().max().item() > 1e-3


def test_through_the_cli_one_located_message(tmp_path, run_cli):
    folder = tmp_path / "hf"
    save_checkpoint(folder, hf_config("llama", rope_parameters=dict(ROPE, rope_theta=1e6)))
    spec = imported_spec(tmp_path, hf_config("llama"))
    out = run_cli("run", spec, "--mode", "torch", "--weights", folder, "--out", tmp_path / "l.npy", timeout=300)
    assert out.returncode == 1 and "Traceback" not in out.stderr and out.stderr.count("error:") == 1
    line, col = where((folder / "config.json").read_text(), "rope_parameters", "rope_theta")
    spec_line = spec.read_text().splitlines().index("let rotary = rope(theta = 10000.0)") + 1
    assert f"{folder / 'config.json'}:{line}:{col}: error: rope_parameters.rope_theta is 1000000.0 but the spec " \
           f"says 10000.0 ({spec}:{spec_line}:" in out.stderr
    assert "ttspec import-hf" in out.stderr
    assert not (tmp_path / "l.npy").exists()


def test_a_hand_written_spec_loads_when_it_agrees(tmp_path, write_spec):
    """The comparison is by meaning, not spelling: a hand-written spec (literal values, its own layout
    of lines) loads, and a window at least as long as the spec's context is no window at all."""
    folder = tmp_path / "hf"
    hf = save_checkpoint(folder, hf_config("mistral"))  # a window of 64
    for bound, window, loads in ((48, "", True), (64, "", True), (128, " window = 64,", True), (128, "", False)):
        text = LLAMA_LIKE_SPEC.format(name="m", family="mistral", bias=window).replace("seq <= 128",
                                                                                         f"seq <= {bound}")
        model = load_model(write_spec(text, f"m{bound}{bool(window)}.arch"))
        if not loads:
            with pytest.raises(ArchError, match="layer 0: sliding_window is 64 but the spec says none"):
                load_weights_file(model, str(folder))
            continue
        path = tmp_path / f"m{bound}{bool(window)}.arch"
        toks = tokens(seq=bound)
        got = run_torch(model, str(path), load_weights_file(model, str(folder)), toks).float()
        with torch.no_grad():
            assert (got - hf(toks).logits).abs().max().item() <= 1e-4


def test_fields_import_hf_does_not_know_are_not_disagreements(tmp_path):
    folder = tmp_path / "hf"
    save_checkpoint(folder, hf_config("llama"))
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(dict(config, some_future_field={"x": 1})))
    load_weights_file(load_model(imported_spec(tmp_path, hf_config("llama"))), str(folder))


def test_a_config_of_a_billion_layers_is_refused_at_once(tmp_path):
    """The layer count is compared before the config is read as a spec: no list of 10^9 layers."""
    folder = tmp_path / "hf"
    save_checkpoint(folder, hf_config("mistral"))
    config = json.loads((folder / "config.json").read_text())
    text = json.dumps(dict(config, num_hidden_layers=10**9), indent=2)
    (folder / "config.json").write_text(text)
    model = load_model(imported_spec(tmp_path, hf_config("mistral")))
    with pytest.raises(ArchError, match="num_hidden_layers is 1000000000 but the spec has 2 layer") as e:
        load_weights_file(model, str(folder))
    assert (e.value.loc.line, e.value.loc.col) == where(text, "num_hidden_layers")


# ---------------------------------------------------------------- 2. NaN and infinity, refused as they stream
def _poison(folder, name, index, value, dtype=None):
    file = folder / "model.safetensors"
    tensors = load_file(str(file))
    if dtype is not None:
        tensors = {k: v.to(dtype) for k, v in tensors.items()}
    tensors[name][index] = value
    save_file(tensors, str(file), metadata={"format": "pt"})


@pytest.mark.parametrize("family,name,index,value,shown,ours", [
    ("llama", "model.layers.1.mlp.down_proj.weight", (3, 5), float("nan"), "NaN", "layers.1.mlp.w2.weight"),
    ("llama", "model.norm.weight", (7,), float("inf"), "inf", "norm.weight"),
    ("gpt2", "transformer.h.0.attn.c_attn.weight", (2, 70), float("-inf"), "-inf",
     "layers.0.attn.wq.weight, layers.0.attn.wk.weight, layers.0.attn.wv.weight"),
])
@pytest.mark.parametrize("dtype", [None, torch.bfloat16], ids=["fp32", "bf16"])
def test_non_finite_tensors_are_refused_by_name_as_they_stream(tmp_path, monkeypatch, family, name, index, value,
                                                               shown, ours, dtype):
    folder = tmp_path / "hf"
    save_checkpoint(folder, hf_config(family))
    _poison(folder, name, index, value, dtype)
    model = load_model(imported_spec(tmp_path, hf_config(family)))
    stream = load_weights_file(model, str(folder))  # the headers are fine: refused only when the data is read
    reads = CountingReads(monkeypatch)
    handed = []
    with pytest.raises(ArchError) as e:
        for our_name, _ in stream.items():
            handed.append(our_name)
    assert f"tensor {name} holds {shown} at {list(index)} (the spec's {ours})" in str(e.value)
    assert "finite" in e.value.diagnostic.hint
    # streamed: each tensor read once, in order, and nothing after the bad one (no second pass, no pre-pass)
    order = [key for _, key, _, _ in stream.entries]
    assert list(reads.counts) == order[:order.index(name) + 1] and set(reads.counts.values()) == {1}
    assert len(handed) == sum(len(parts) for *_, parts in stream.entries[:order.index(name)])


@pytest.mark.parametrize("mode", ["torch", "golden"])
def test_nan_weights_through_the_cli(tmp_path, run_cli, mode):
    """`run` printed argmax 0s over NaN logits; now one message, exit 1, nothing written."""
    if mode == "golden":
        pytest.importorskip("ttnn")
    folder = tmp_path / "hf"
    save_checkpoint(folder, hf_config("llama"))
    _poison(folder, "model.embed_tokens.weight", (0, 0), float("nan"))
    spec = imported_spec(tmp_path, hf_config("llama"))
    out = run_cli("run", spec, "--mode", mode, "--weights", folder, "--random-tokens", "1,32",
                  "--out", tmp_path / "l.npy", timeout=300)
    assert out.returncode == 1 and "Traceback" not in out.stderr and out.stderr.count("error:") == 1, out.stderr
    assert "tensor model.embed_tokens.weight holds NaN at [0, 0] (the spec's embedding.weight)" in out.stderr
    assert not (tmp_path / "l.npy").exists()


# ---------------------------------------------------------------- 3. every file a regular file, JSON bounded
def _fifo(path):
    if path.exists() or path.is_symlink():
        path.unlink()
    os.mkfifo(path)


@pytest.mark.parametrize("which", ["model.safetensors", "config.json", "model.safetensors.index.json", "shard",
                                   "the weights path itself"])
def test_a_fifo_anywhere_in_a_checkpoint_is_refused_not_waited_on(tmp_path, run_cli, which):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    folder = tmp_path / "hf"
    hf = save_checkpoint(folder, hf_config("llama"))
    weights = folder
    if which in ("model.safetensors.index.json", "shard"):
        (folder / "model.safetensors").unlink()
        hf.save_pretrained(folder, max_shard_size="40KB")
        shard = sorted(folder.glob("model-*.safetensors"))[1]
        _fifo(folder / "model.safetensors.index.json" if which != "shard" else shard)
        shown = "model.safetensors.index.json" if which != "shard" else shard.name
    elif which == "the weights path itself":
        weights = tmp_path / "w.safetensors"
        _fifo(weights)
        shown = "w.safetensors"
    else:
        _fifo(folder / which)
        shown = which
    spec = imported_spec(tmp_path, hf_config("llama"))
    out = run_cli("run", spec, "--mode", "torch", "--weights", weights, timeout=120)  # the old code blocked here
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert f"{shown}: it is a FIFO (named pipe)" in out.stderr


def test_a_dangling_model_safetensors_is_refused_not_passed_over(tmp_path, run_cli):
    folder = tmp_path / "hf"
    save_checkpoint(folder, hf_config("llama"))
    (folder / "model.safetensors").rename(folder / "other.safetensors")
    (folder / "model.safetensors").symlink_to(folder / "gone.safetensors")
    spec = imported_spec(tmp_path, hf_config("llama"))
    out = run_cli("run", spec, "--mode", "torch", "--weights", folder, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "model.safetensors: it is a symlink to" in out.stderr and "which does not exist" in out.stderr


def _deep(depth):
    return '{"model_type": "llama", "x": ' + "[" * depth + "]" * depth + "}"


@pytest.mark.parametrize("which", ["config.json", "model.safetensors.index.json"])
@pytest.mark.parametrize("text,message,column", [
    (_deep(100_000), "nests deeper than 64 levels", 30 + 63),  # the object is level 1, the 64th `[` level 65
    ('{"model_type": "llama", "vocab_size": ' + "7" * 5000 + "}", "has an integer of 5,000 digits", 39),
], ids=["deep", "long_integer"])
def test_hostile_json_beside_the_weights_is_located(tmp_path, run_cli, which, text, message, column):
    """Nested 100,000 deep or a 5,000-digit integer: RecursionError and int-limit ValueError were exit 70."""
    folder = tmp_path / "hf"
    hf = save_checkpoint(folder, hf_config("llama"))
    if which != "config.json":
        (folder / "model.safetensors").unlink()
        hf.save_pretrained(folder, max_shard_size="40KB")
    (folder / which).write_text(text)
    spec = imported_spec(tmp_path, hf_config("llama"))
    out = run_cli("run", spec, "--mode", "torch", "--weights", folder, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert f"{folder / which}:1:{column}: error:" in out.stderr and message in out.stderr


def test_an_index_naming_a_shard_that_is_not_a_file_name_is_located(tmp_path):
    folder = tmp_path / "hf"
    hf = save_checkpoint(folder, hf_config("llama"))
    (folder / "model.safetensors").unlink()
    hf.save_pretrained(folder, max_shard_size="40KB")
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    index["weight_map"]["model.norm.weight"] = "../elsewhere.safetensors"
    text = json.dumps(index, indent=2)
    (folder / "model.safetensors.index.json").write_text(text)
    with pytest.raises(ArchError, match="is not a file name beside the index") as e:
        load_weights_file(load_model(imported_spec(tmp_path, hf_config("llama"))), str(folder))
    assert (e.value.loc.line, e.value.loc.col) == where(text, "weight_map", "model.norm.weight")


def test_an_oversized_config_is_refused_unread(tmp_path):
    folder = tmp_path / "hf"
    save_checkpoint(folder, hf_config("llama"))
    with open(folder / "config.json", "r+b") as f:
        f.truncate(17 << 20)  # sparse: 17 MiB of nothing
    with pytest.raises(ArchError, match="config.json .* is 17,825,792 bytes; ttspec reads at most 16,777,216"):
        load_weights_file(load_model(imported_spec(tmp_path, hf_config("llama"))), str(folder))


# ---------------------------------------------------------------- 4. buffers HF ignores are ignored
def _old_buffers(family, config):
    """The buffers older transformers saved beside the weights, with values that would matter if read:
    Llama's per-layer rotary frequencies (another theta's), GPT-2's causal mask (all ones) and mask value."""
    if family == "llama":
        wrong = 1.0 / (123.0 ** (torch.arange(0, HEAD_DIM, 2).float() / HEAD_DIM))
        return {f"model.layers.{i}.self_attn.rotary_emb.inv_freq": wrong.clone()
                for i in range(config.num_hidden_layers)}
    n = config.n_positions
    return {name: tensor for i in range(config.n_layer) for name, tensor in (
        (f"transformer.h.{i}.attn.bias", torch.ones(1, 1, n, n, dtype=torch.bool)),
        (f"transformer.h.{i}.attn.masked_bias", torch.tensor(-1e4)))}


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_rotary_inv_freq_buffers_are_ignored_as_hf_ignores_them(tmp_path, family):
    """Checkpoints saved by older transformers carry each layer's `rotary_emb.inv_freq` (and GPT-2
    its attention masks); HF drops them on load, so ttspec must neither refuse nor map them. The
    buffers written here hold values that would change the logits: HF's do not depend on them."""
    folder = tmp_path / "hf"
    config = hf_config(family)
    save_checkpoint(folder, config)
    tensors = load_file(str(folder / "model.safetensors"))
    buffers = _old_buffers(family, config)
    assert not set(buffers) & set(tensors)
    save_file(tensors | buffers, str(folder / "model.safetensors"), metadata={"format": "pt"})
    hf = transformers.AutoModelForCausalLM.from_pretrained(folder, config=config, dtype=torch.float32).eval()
    spec = imported_spec(tmp_path, config)
    model = load_model(spec)
    toks = tokens()
    got = run_torch(model, str(spec), load_weights_file(model, str(folder)), toks).float()
    with torch.no_grad():
        expected = hf(toks).logits
    assert expected.abs().max().item() > 1.0
    assert (got - expected).abs().max().item() <= 1e-4
