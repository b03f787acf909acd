"""HF checkpoints in, per family: tiny random HF transformers models (no hub) saved with
save_pretrained (one of them sharded with an index), read through ttspec's loader.

The truth is outside ttspec: the tensors HF saved (every one read exactly once, and rebuilt
bit for bit by the inverse mapping), the HF names written out by hand here from the family
label conventions, and HF's own logits. Refusals go through the real CLI.
"""

import json

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
safetensors = pytest.importorskip("safetensors")

from safetensors.torch import load_file, save_file  # noqa: E402

from ttspec.driver import load_model  # noqa: E402
from ttspec.errors import ArchError  # noqa: E402
from ttspec.families import FAMILIES, checkpoint_plan, from_hf_state_dict, to_hf_state_dict  # noqa: E402
from ttspec.runtime.runner import run_torch  # noqa: E402
from ttspec.runtime.weights import WeightStream, load_weights_file  # noqa: E402

from .test_torch_backend import randomize  # noqa: E402

VOCAB, D, LAYERS, HEADS, KV, HEAD_DIM, HIDDEN = 128, 64, 2, 4, 2, 16, 96

LLAMA_LIKE_SPEC = """model {name}
family {family}
input tokens: int32[batch, seq] where seq <= 128
block decoder(x: [batch, seq, 64]) -> [batch, seq, 64] kind decoder {{
    x = x + attention(rmsnorm(x, eps = 1e-6) as attn_norm, heads = 4, kv_heads = 2,{bias}
                      rope = rope(theta = 10000.0)) as attn
    x = x + swiglu(rmsnorm(x, eps = 1e-6) as mlp_norm, hidden = 96) as mlp
    return x
}}
h = token_embedding(tokens, 128, 64) as embedding
h = repeat(2) decoder(h) as layers
h = rmsnorm(h, eps = 1e-6) as norm
output logits = lm_head(h, 128)
"""

PHI_SPEC = """model phi_ckpt
family phi
input tokens: int32[batch, seq] where seq <= 128
block decoder(x: [batch, seq, 64]) -> [batch, seq, 64] kind decoder {
    n = layernorm(x) as input_layernorm
    return x + attention(n, heads = 4, qkv_bias = true, rope = rope(theta = 10000.0, fraction = 0.5)) as attn
             + mlp(n, hidden = 256, act = "gelu_tanh") as mlp
}
h = token_embedding(tokens, 128, 64) as embedding
h = repeat(2) decoder(h) as layers
h = layernorm(h) as final_layernorm
output logits = lm_head(h, 128, bias = true)
"""

GPT2_SPEC = """model gpt2_ckpt
family gpt2
input tokens: int32[batch, seq] where seq <= 128
block decoder(x: [batch, seq, 64]) -> [batch, seq, 64] kind decoder {
    x = x + attention(layernorm(x) as ln_1, heads = 4, qkv_bias = true) as attn
    x = x + mlp(layernorm(x) as ln_2, hidden = 256, act = "gelu_tanh") as mlp
    return x
}
h = token_embedding(tokens, 128, 64) as wte
h = learned_positions(h, 128) as wpe
h = repeat(2) decoder(h) as layers
h = layernorm(h) as ln_f
output logits = lm_head(h, 128, tied = wte)
"""

COMMON = dict(vocab_size=VOCAB, hidden_size=D, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
              num_key_value_heads=KV, intermediate_size=HIDDEN, max_position_embeddings=128, rms_norm_eps=1e-6,
              tie_word_embeddings=False)
ROPE = {"rope_type": "default", "rope_theta": 10000.0}


def configs():
    return {
        "llama": lambda: transformers.LlamaConfig(**COMMON, rope_parameters=ROPE),
        "mistral": lambda: transformers.MistralConfig(**COMMON, rope_parameters=ROPE, sliding_window=64),
        "qwen2": lambda: transformers.Qwen2Config(**COMMON, rope_parameters=ROPE, use_sliding_window=False),
        "phi3": lambda: transformers.Phi3Config(**COMMON, rope_parameters=ROPE, pad_token_id=0,
                                                partial_rotary_factor=1.0),
        "qwen3": lambda: transformers.Qwen3Config(**COMMON, rope_parameters=ROPE, head_dim=HEAD_DIM),
        "gemma": lambda: transformers.GemmaConfig(**dict(COMMON, tie_word_embeddings=True), head_dim=HEAD_DIM,
                                                  rope_parameters=ROPE),
        "gemma2": lambda: transformers.Gemma2Config(**dict(COMMON, tie_word_embeddings=True), head_dim=HEAD_DIM,
                                                    rope_parameters=ROPE, sliding_window=64),
        "phi": lambda: transformers.PhiConfig(
            vocab_size=VOCAB, hidden_size=D, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
            intermediate_size=256, partial_rotary_factor=0.5, layer_norm_eps=1e-5, hidden_act="gelu_new",
            max_position_embeddings=128, tie_word_embeddings=False),
        "gpt2": lambda: transformers.GPT2Config(
            vocab_size=VOCAB, n_embd=D, n_layer=LAYERS, n_head=HEADS, n_positions=128, n_inner=256,
            tie_word_embeddings=True, activation_function="gelu_new", layer_norm_epsilon=1e-5),
    }


def spec_text(family: str) -> str | None:
    if family in ("llama", "phi3"):
        return LLAMA_LIKE_SPEC.format(name=f"{family}_ckpt", family=family, bias="")
    if family == "mistral":  # the config's window: a checkpoint is checked against the spec field by field
        return LLAMA_LIKE_SPEC.format(name="mistral_ckpt", family="mistral", bias=" window = 64,")
    if family == "qwen2":
        return LLAMA_LIKE_SPEC.format(name="qwen2_ckpt", family="qwen2", bias=" qkv_bias = true, out_bias = false,")
    return {"phi": PHI_SPEC, "gpt2": GPT2_SPEC}.get(family)


def save_hf(family, folder, seed=1, shard=None, dtype=None):
    """A tiny random HF model of `family` saved to `folder`; the model (fp32, eval) is returned."""
    config = configs()[family]()
    config._attn_implementation = "eager"
    hf = transformers.AutoModelForCausalLM.from_config(config).float().eval()
    randomize(hf, seed=seed)
    saved = hf.to(dtype) if dtype is not None else hf
    saved.save_pretrained(folder, **({"max_shard_size": shard} if shard else {}))
    return hf.float()


def saved_tensors(folder):
    """Every tensor HF wrote, from the files themselves."""
    out = {}
    for file in sorted(folder.glob("*.safetensors")):
        out.update(load_file(str(file)))
    return out


class CountingReads:
    """Counts safetensors' get_tensor calls per tensor name (the loader's only way to read data)."""

    def __init__(self, monkeypatch):
        import safetensors as st

        self.counts: dict[str, int] = {}
        real = st.safe_open
        counts = self.counts

        class Counting:
            def __init__(self, *args, **kwargs):
                self.inner = real(*args, **kwargs)

            def __enter__(self):
                self.inner.__enter__()
                return self

            def __exit__(self, *exc):
                return self.inner.__exit__(*exc)

            def get_tensor(self, name):
                counts[name] = counts.get(name, 0) + 1
                return self.inner.get_tensor(name)

            def __getattr__(self, name):
                return getattr(self.inner, name)

        monkeypatch.setattr(st, "safe_open", Counting)


SPEC_FAMILIES = ["llama", "mistral", "qwen2", "phi3", "gpt2", "phi"]


@pytest.mark.parametrize("family", SPEC_FAMILIES)
def test_every_hf_tensor_read_once_and_rebuilt_exactly(tmp_path, write_spec, monkeypatch, family):
    folder = tmp_path / "hf"
    save_hf(family, folder, shard="40KB" if family in ("llama", "phi3") else None)
    if family in ("llama", "phi3"):
        assert (folder / "model.safetensors.index.json").is_file()  # sharded, with an index
        assert len(list(folder.glob("*.safetensors"))) > 2
    hf = saved_tensors(folder)
    model = load_model(write_spec(spec_text(family), f"{family}.arch"))
    stream = load_weights_file(model, str(folder))
    reads = CountingReads(monkeypatch)
    ours = dict(stream.items())
    assert reads.counts == {name: 1 for name in hf}, "every HF tensor read once, nothing else"
    back = to_hf_state_dict(model, ours)
    assert set(back) == set(hf)
    for name, tensor in hf.items():
        assert back[name].dtype == tensor.dtype and torch.equal(back[name], tensor), name
    # and the other way: from_hf_state_dict(to_hf_state_dict(x)) == x
    again = from_hf_state_dict(model, back)
    assert set(again) == set(ours) and all(torch.equal(again[n], ours[n]) for n in ours)


def hand_table(family: str) -> dict[str, str]:
    """ttspec name -> HF name for the llama-like families, written from the label conventions."""
    table = {"embedding.weight": "model.embed_tokens.weight", "norm.weight": "model.norm.weight"}
    if family not in ("gemma", "gemma2"):  # gemma's configs tie the head; the others here do not
        table["lm_head.weight"] = "lm_head.weight"
    mlp_norm = "pre_feedforward_layernorm" if family == "gemma2" else "post_attention_layernorm"
    for i in range(LAYERS):
        ours, hf = f"layers.{i}.", f"model.layers.{i}."
        table[ours + "attn_norm.weight"] = hf + "input_layernorm.weight"
        for w, proj in (("wq", "q"), ("wk", "k"), ("wv", "v"), ("wo", "o")):
            table[ours + f"attn.{w}.weight"] = hf + f"self_attn.{proj}_proj.weight"
        table[ours + "mlp_norm.weight"] = hf + f"{mlp_norm}.weight"
        for w, proj in (("w1", "gate"), ("w3", "up"), ("w2", "down")):
            table[ours + f"mlp.{w}.weight"] = hf + f"mlp.{proj}_proj.weight"
        if family == "qwen3":
            table[ours + "attn.q_norm.weight"] = hf + "self_attn.q_norm.weight"
            table[ours + "attn.k_norm.weight"] = hf + "self_attn.k_norm.weight"
        if family == "gemma2":
            table[ours + "post_attn_norm.weight"] = hf + "post_attention_layernorm.weight"
            table[ours + "post_mlp_norm.weight"] = hf + "post_feedforward_layernorm.weight"
    return table


@pytest.mark.parametrize("family", ["gemma", "gemma2", "qwen3", "llama"])
def test_mapping_round_trip_with_hf_shapes(tmp_path, family):
    """Families whose language features are not all in ttspec yet: the mapping alone, on the
    tensors HF saves (gemma and gemma2 tie the head, so HF saves no lm_head)."""
    folder = tmp_path / "hf"
    save_hf(family, folder)
    hf = saved_tensors(folder)
    table = hand_table(family)
    assert set(table.values()) == set(hf), "the hand table covers what HF saved"
    shapes = {ours: tuple(hf[name].shape) for ours, name in table.items()}
    plan = checkpoint_plan(family, shapes)
    assert sorted(t.name for t in plan) == sorted(hf)  # each HF tensor once
    for t in plan:
        pieces = t.split(hf[t.name])
        assert [(n, table[n]) for n, _ in pieces] == [(n, t.name) for n, _ in pieces]
        assert torch.equal(t.join([p for _, p in pieces]), hf[t.name])


def test_every_family_is_an_hf_model_type():
    assert set(FAMILIES) == {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi", "phi3", "gpt2",
                             "mixtral", "qwen2_moe", "qwen3_moe", "olmoe"}
    for family in FAMILIES:
        assert transformers.AutoConfig.for_model(family).model_type == family


def test_phi3_fused_tensors_split_by_our_shapes_under_gqa(tmp_path, write_spec):
    """q is 4 heads and k, v 2 heads each: qkv_proj splits 64 / 32 / 32 rows, not in thirds."""
    folder = tmp_path / "hf"
    hf_model = save_hf("phi3", folder)
    model = load_model(write_spec(spec_text("phi3"), "phi3.arch"))
    ours = dict(load_weights_file(model, str(folder)).items())
    attn = hf_model.model.layers[1].self_attn
    assert attn.qkv_proj.weight.shape == (HEADS * HEAD_DIM + 2 * KV * HEAD_DIM, D)
    assert torch.equal(ours["layers.1.attn.wq.weight"], attn.qkv_proj.weight[:64])
    assert torch.equal(ours["layers.1.attn.wk.weight"], attn.qkv_proj.weight[64:96])
    assert torch.equal(ours["layers.1.attn.wv.weight"], attn.qkv_proj.weight[96:])
    mlp = hf_model.model.layers[0].mlp
    assert torch.equal(ours["layers.0.mlp.w1.weight"], mlp.gate_up_proj.weight[:HIDDEN])
    assert torch.equal(ours["layers.0.mlp.w3.weight"], mlp.gate_up_proj.weight[HIDDEN:])


def tokens(seq=48, batch=2):
    return torch.randint(0, VOCAB, (batch, seq), generator=torch.Generator().manual_seed(7))


@pytest.mark.parametrize("family", ["llama", "mistral", "qwen2", "phi3", "gpt2"])
def test_torch_logits_from_a_checkpoint_match_hf(tmp_path, write_spec, family):
    folder = tmp_path / "hf"
    hf = save_hf(family, folder, shard="40KB" if family == "qwen2" else None)
    toks = tokens()
    with torch.no_grad():
        expected = hf(toks).logits
    path = write_spec(spec_text(family), f"{family}.arch")
    model = load_model(path)
    got = run_torch(model, str(path), load_weights_file(model, str(folder)), toks).float()
    err = (got - expected).abs().max().item()
    assert expected.abs().max().item() > 1.0
    assert err <= 1e-4, f"{family}: max abs error {err}"


def test_cli_run_from_a_sharded_directory_matches_hf(tmp_path, write_spec, run_cli):
    import numpy as np

    folder = tmp_path / "hf"
    hf = save_hf("llama", folder, shard="40KB")
    toks = tokens()
    np.save(tmp_path / "t.npy", toks.numpy())
    path = write_spec(spec_text("llama"), "llama.arch")
    shard = next(folder.glob("model-*.safetensors"))
    err = cli_refusal(run_cli, path, shard)
    assert f"{shard} is one shard of a sharded checkpoint: pass its directory or" in err
    for weights in (folder, folder / "model.safetensors.index.json"):
        out = run_cli("run", path, "--mode", "torch", "--weights", weights, "--tokens", tmp_path / "t.npy",
                      "--out", tmp_path / "l.npy", timeout=300)
        assert out.returncode == 0, out.stderr
        assert out.stderr == ""  # no progress output when stderr is not a terminal
        with torch.no_grad():
            expected = hf(toks).logits
        assert (torch.from_numpy(np.load(tmp_path / "l.npy")) - expected).abs().max().item() <= 1e-4


def test_bf16_checkpoint_loads_into_the_fp32_reference(tmp_path, write_spec):
    """bf16 on disk: each tensor is converted as it is copied into its fp32 parameter."""
    folder = tmp_path / "hf"
    save_hf("qwen2", folder, dtype=torch.bfloat16)
    hf = saved_tensors(folder)
    assert all(t.dtype == torch.bfloat16 for t in hf.values())
    path = write_spec(spec_text("qwen2"), "qwen2.arch")
    model = load_model(path)
    stream = load_weights_file(model, str(folder))
    assert all(t.dtype == torch.bfloat16 for _, t in stream.items())  # handed on as stored, one at a time
    config = configs()["qwen2"]()
    config._attn_implementation = "eager"
    reference = transformers.AutoModelForCausalLM.from_pretrained(folder, config=config,
                                                                  dtype=torch.float32).eval()
    toks = tokens()
    with torch.no_grad():
        expected = reference(toks).logits
    got = run_torch(model, str(path), load_weights_file(model, str(folder)), toks).float()
    assert (got - expected).abs().max().item() <= 1e-4


def test_stream_is_plain_data_for_worker_processes(tmp_path, write_spec):
    folder = tmp_path / "hf"
    save_hf("phi3", folder)
    model = load_model(write_spec(spec_text("phi3"), "phi3.arch"))
    stream = load_weights_file(model, str(folder))
    again = WeightStream.from_json(json.loads(json.dumps(stream.to_json())))
    # lookups in placement order: a fused tensor's other parts wait until they are asked for
    names = list(stream)
    first = {n: stream[n] for n in reversed(names)}
    second = dict(again.items())
    assert set(first) == set(second) and all(torch.equal(first[n], second[n]) for n in names)


def test_golden_program_streams_a_phi3_checkpoint(tmp_path, write_spec):
    """The TT-NN program in golden mode places a checkpoint's tensors as it reads them."""
    pytest.importorskip("ttnn")
    from ttspec.runtime.runner import run_golden
    from ttspec.targets import get_target

    folder = tmp_path / "hf"
    hf = save_hf("phi3", folder, shard="40KB")
    toks = tokens(seq=40, batch=1)
    with torch.no_grad():
        expected = hf(toks).logits
    path = write_spec(spec_text("phi3"), "phi3.arch")
    model = load_model(path)
    got, _ = run_golden(model, str(path), get_target("n150"), load_weights_file(model, str(folder)), toks)
    a, b = got.double().flatten(), expected.double().flatten()
    assert torch.corrcoef(torch.stack([a, b]))[0, 1].item() >= 0.999


# ---------------------------------------------------------------- refusals
def cli_refusal(run_cli, spec, weights):
    out = run_cli("run", spec, "--mode", "torch", "--weights", weights, timeout=300)
    assert out.returncode == 1, out.stdout
    assert "Traceback" not in out.stderr
    return out.stderr


def test_a_checkpoint_of_another_family_is_refused(tmp_path, write_spec, run_cli):
    folder = tmp_path / "gemma"
    save_hf("gemma", folder)
    path = write_spec(spec_text("llama"), "llama.arch")
    err = cli_refusal(run_cli, path, folder)
    assert "is a `gemma` checkpoint" in err and "`family llama`" in err
    assert "import-hf" in err  # the hint


def test_an_unknown_model_type_is_refused_under_a_family(tmp_path, write_spec):
    folder = tmp_path / "hf"
    save_hf("llama", folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(dict(config, model_type="mamba")))
    model = load_model(write_spec(spec_text("llama"), "llama.arch"))
    with pytest.raises(ArchError, match="`mamba` checkpoint") as e:
        load_weights_file(model, str(folder))
    assert "drop" not in str(e.value) and "family llama" in str(e.value)


def test_a_spec_without_family_loads_ttspec_names_beside_any_config(tmp_path, write_spec):
    folder = tmp_path / "ours"
    folder.mkdir()
    text = spec_text("llama").replace("family llama\n", "")
    model = load_model(write_spec(text, "plain.arch"))
    from ttspec.runtime.weights import random_state_dict

    state = random_state_dict(model, seed=2)
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"model_type": "mamba"}))
    loaded = dict(load_weights_file(model, str(folder)).items())
    assert all(torch.equal(loaded[n], state[n]) for n in state)


def _rewrite(folder, change):
    """The single-file checkpoint in `folder` with `change(tensors)` applied."""
    file = folder / "model.safetensors"
    tensors = load_file(str(file))
    change(tensors)
    save_file(tensors, str(file), metadata={"format": "pt"})


@pytest.mark.parametrize("case,change,message", [
    ("missing", lambda t: t.pop("model.layers.1.mlp.gate_up_proj.weight"),
     "lacks 1 tensor(s) the spec needs: model.layers.1.mlp.gate_up_proj.weight"),
    ("extra", lambda t: t.update({"model.layers.2.mlp.down_proj.weight": torch.zeros(D, HIDDEN)}),
     "has 1 tensor(s) the spec does not use: model.layers.2.mlp.down_proj.weight"),
    ("shape", lambda t: t.update({"model.layers.0.self_attn.qkv_proj.weight": torch.zeros(3 * D, D)}),
     "model.layers.0.self_attn.qkv_proj.weight has shape [192, 64], the spec needs [128, 64]"),
    ("dtype", lambda t: t.update({"model.norm.weight": torch.zeros(D, dtype=torch.int32)}),
     "model.norm.weight holds I32 values"),
])
def test_mismatched_tensors_are_refused_before_reading(tmp_path, write_spec, run_cli, monkeypatch, case, change,
                                                       message):
    folder = tmp_path / "hf"
    save_hf("phi3", folder)
    _rewrite(folder, change)
    path = write_spec(spec_text("phi3"), "phi3.arch")
    model = load_model(path)
    reads = CountingReads(monkeypatch)
    with pytest.raises(ArchError) as e:
        load_weights_file(model, str(folder))
    assert message in str(e.value)
    assert reads.counts == {}  # refused from the headers: no tensor data read
    if case in ("missing", "shape"):  # and through the CLI: exit 1, the message, no traceback
        assert message in cli_refusal(run_cli, path, folder)


def test_base_model_checkpoints_without_the_prefix_load(tmp_path, write_spec):
    """GPT-2 checkpoints saved from GPT2Model (as the hub's gpt2 is) lack `transformer.`."""
    folder = tmp_path / "hf"
    save_hf("gpt2", folder)
    tensors = load_file(str(folder / "model.safetensors"))
    save_file({k.removeprefix("transformer."): v for k, v in tensors.items()}, str(folder / "model.safetensors"))
    model = load_model(write_spec(spec_text("gpt2"), "gpt2.arch"))
    ours = dict(load_weights_file(model, str(folder)).items())
    assert torch.equal(ours["layers.1.attn.wk.weight"], tensors["transformer.h.1.attn.c_attn.weight"][:, 64:128].T)


def test_an_hf_checkpoint_under_a_spec_without_family_says_which_family(tmp_path, write_spec):
    folder = tmp_path / "hf"
    save_hf("llama", folder)
    model = load_model(write_spec(spec_text("llama").replace("family llama\n", ""), "plain.arch"))
    with pytest.raises(ArchError, match="lacks 20 tensor") as e:
        load_weights_file(model, str(folder / "config.json"))  # a config.json stands for its directory
    assert "add `family llama` to the spec" in e.value.diagnostic.hint


def test_progress_shows_on_a_terminal_only_once_loading_is_long():
    import io

    from ttspec.runtime.weights import Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    quick, slow, piped = Terminal(), Terminal(), io.StringIO()
    for out, elapsed in ((quick, 0.0), (slow, 2.0), (piped, 2.0)):
        progress = Progress("loading ckpt", 3 * 10**9, stream=out)
        progress.start -= elapsed
        progress.last -= elapsed
        for done in (1, 2, 3):
            progress(done, 3, done * 10**9)
    assert quick.getvalue() == "" and piped.getvalue() == ""  # a short load, or not a terminal: quiet
    assert slow.getvalue().startswith("\rloading ckpt: 1/3 tensors, 1.0 of 3.0 GB")
    assert slow.getvalue().endswith("\rloading ckpt: 3/3 tensors, 3.0 of 3.0 GB\n")


def test_a_fused_tensor_needs_all_its_parts(write_spec):
    from ttspec.families import check_family_labels

    path = write_spec("""model partial
family phi3
input tokens: int32[batch, seq] where seq <= 64
block attnish(x: [b, s, 64]) -> [b, s, 64] {
    return linear(x, 64, bias = false) as wq
}
block decoder(x: [batch, seq, 64]) -> [batch, seq, 64] {
    return x + attnish(x) as attn
}
h = token_embedding(tokens, 128, 64) as embedding
h = repeat(2) decoder(h) as layers
h = rmsnorm(h) as norm
output logits = lm_head(h, 128)
""")
    with pytest.raises(ArchError) as e:
        check_family_labels(load_model(path))
    assert "qkv_proj.weight" in str(e.value) and "not `layers.N.attn.wk.weight`, `layers.N.attn.wv.weight`" \
        in str(e.value)
    assert e.value.loc.line == 5  # the user's `linear(...) as wq`


@pytest.mark.parametrize("family", sorted(configs()))
def test_import_hf_then_load_the_directory_matches_hf(tmp_path, family):
    """Every family end to end: `import-hf DIR` writes the spec, `--weights DIR` loads the checkpoint
    (sharded for two families) into the torch reference, which equals HF at a sequence longer than
    the sliding windows (64) of mistral and gemma2."""
    from ttspec.importers.hf import import_hf

    folder = tmp_path / "hf"
    hf = save_hf(family, folder, shard="40KB" if family in ("gemma2", "phi3") else None)
    spec = tmp_path / f"{family}.arch"
    spec.write_text(import_hf(folder).text, encoding="utf-8")
    model = load_model(spec)
    assert model.family == family
    toks = tokens(seq=96)
    with torch.no_grad():
        expected = hf(toks).logits
    got = run_torch(model, str(spec), load_weights_file(model, str(folder)), toks).float()
    err = (got - expected).abs().max().item()
    assert expected.abs().max().item() > 1.0
    assert err <= 1e-4, f"{family}: max abs error {err}"
