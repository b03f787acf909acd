"""`ttspec import-hf` on hostile input (issue 18): config.json and the files beside it as an attacker
or a broken tool might write them, every value at and past the edge of what ttspec compiles, outside
text in the spec header, and the import rules that tests once let planted bugs through.

Where a value matters, transformers is the reference: a config made by transformers' own classes,
its count of parameters and its logits. Where a value is refused, the reference is the compiler:
the refusal must come from import-hf at the config field (`config.json:LINE:COL`), exit 1, nothing
written, while the value just inside the edge imports to a spec that `ttspec check` accepts.
"""

import importlib.util
import json
import os

import pytest

MISSING = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
needs_hf = pytest.mark.skipif(bool(MISSING), reason=f"needs {', '.join(MISSING)}: bash .ci/setup test")

# Small configs of each family as their hub configs spell them (no torch needed to write them)
SIZES = {"vocab_size": 256, "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2,
         "num_attention_heads": 8, "num_key_value_heads": 2, "max_position_embeddings": 128}
BASE = {
    "llama": dict(SIZES, model_type="llama", rms_norm_eps=1e-5, rope_theta=10000.0),
    "mistral": dict(SIZES, model_type="mistral", sliding_window=32),
    "qwen2": dict(SIZES, model_type="qwen2"),
    "qwen3": dict(SIZES, model_type="qwen3", head_dim=64),
    "gemma": dict(SIZES, model_type="gemma", head_dim=64),
    "gemma2": dict(SIZES, model_type="gemma2", head_dim=32, query_pre_attn_scalar=24, sliding_window=32),
    "phi": dict(SIZES, model_type="phi", num_key_value_heads=8),
    "phi3": dict(SIZES, model_type="phi3", sliding_window=48),
    "gpt2": {"model_type": "gpt2", "vocab_size": 256, "n_embd": 256, "n_layer": 2, "n_head": 8, "n_positions": 128},
}
LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 64}


def write_config(folder, config, text=None):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.json"
    path.write_text(text if text is not None else json.dumps(config, indent=2) + "\n")
    return path


def position(text: str, *keys: str) -> tuple[int, int]:
    """Line and column (1-based) of a key of a JSON text, nested keys found one after the other:
    where a located error must point, found here from the text itself."""
    at = 0
    for key in keys:
        at = text.index(json.dumps(key), at)
    line = text.count("\n", 0, at) + 1
    return line, at - (text.rfind("\n", 0, at) + 1) + 1


def refused(run_cli, path, out, located_at=None):
    """exit 1, one located error with a hint, no traceback, nothing written; the stderr."""
    result = run_cli("import-hf", path.parent, "-o", out)
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not out.exists()
    if located_at:
        line, col = located_at
        assert result.stderr.startswith(f"{path}:{line}:{col}: error: "), result.stderr
    assert "\n  hint: " in result.stderr, result.stderr
    return result.stderr


# ---------------------------------------------------------------- 1. JSON that the json module cannot take
def test_config_nested_100000_deep_is_refused_located(tmp_path, run_cli):
    text = '{"model_type": "llama",\n "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n"
    path = write_config(tmp_path / "m", None, text)
    err = refused(run_cli, path, tmp_path / "x.arch")
    assert err.startswith(f"{path}:2:") and "config.json nests deeper than 64 levels" in err


def test_config_with_a_5000_digit_integer_is_refused_located(tmp_path, run_cli):
    digits = "9" * 5000
    text = json.dumps(BASE["llama"], indent=2).replace('"num_hidden_layers": 2', f'"num_hidden_layers": {digits}')
    path = write_config(tmp_path / "m", None, text)
    line, col = position(text, "num_hidden_layers")
    err = refused(run_cli, path, tmp_path / "x.arch", (line, col + len('"num_hidden_layers": ')))
    assert "config.json has an integer of 5,000 digits" in err


def test_config_numbers_that_are_not_json_are_refused_located(tmp_path, run_cli):
    text = json.dumps(BASE["llama"], indent=2).replace('"rms_norm_eps": 1e-05', '"rms_norm_eps": NaN')
    path = write_config(tmp_path / "m", None, text)
    line, col = position(text, "rms_norm_eps")
    err = refused(run_cli, path, tmp_path / "x.arch", (line, col + len('"rms_norm_eps": ')))
    assert "not finite (NaN)" in err


@pytest.mark.parametrize("hostile", ["deep", "digits"])
def test_tokenizer_beside_the_config_is_read_as_bounded_json(tmp_path, run_cli, hostile):
    path = write_config(tmp_path / "m", BASE["llama"])
    tokenizer = path.parent / "tokenizer.json"
    text = ('{"model": {"vocab": ' + "[" * 100_000 + "]" * 100_000 + "}}" if hostile == "deep" else
            '{"model": {"vocab": {"a": 0}}, "added_tokens": [{"id": ' + "7" * 5000 + "}]}")
    tokenizer.write_text(text)
    err = refused(run_cli, path, tmp_path / "x.arch")
    assert err.startswith(f"{tokenizer}:1:"), err
    assert ("nests deeper than 64" if hostile == "deep" else "integer of 5,000 digits") in err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
@pytest.mark.parametrize("which", ["config.json", "tokenizer.json"])
@pytest.mark.parametrize("kind", ["fifo", "dangling symlink", "directory"])
def test_files_that_are_not_regular_files_are_refused_without_reading(tmp_path, run_cli, which, kind):
    folder = tmp_path / "m"
    if which == "tokenizer.json":
        write_config(folder, BASE["llama"])
    folder.mkdir(exist_ok=True)
    target = folder / which
    if kind == "fifo":
        os.mkfifo(target)  # reading it would block forever: run_cli's timeout is the hang guard
    elif kind == "directory":
        target.mkdir()
    else:
        target.symlink_to(folder / "nowhere.json")
    result = run_cli("import-hf", folder, timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"cannot read {which} {target}" in result.stderr
    assert {"fifo": "FIFO", "dangling symlink": "which does not exist", "directory": "a directory"}[kind] \
        in result.stderr


def test_a_duplicate_key_is_located_where_its_value_comes_from(tmp_path, run_cli):
    """json (and so transformers) keeps the last of duplicate keys: the error points at that one."""
    text = json.dumps(BASE["llama"], indent=2)[:-2] + ',\n  "num_hidden_layers": 1000000000\n}\n'
    path = write_config(tmp_path / "m", None, text)
    line = text.count("\n", 0, text.rindex('"num_hidden_layers"')) + 1
    assert "at most 100,000" in refused(run_cli, path, tmp_path / "x.arch", (line, 3))


# ---------------------------------------------------------------- 2 and 3. every value against what ttspec compiles
def layers_key(family):
    return "n_layer" if family == "gpt2" else "num_hidden_layers"


# (family, change to its base config, the key path the error points at, what the message says)
OUTSIDE = [
    # layer counts: refused at the field before anything per layer is built (10**9 once hung or exited 70)
    *[(f, {layers_key(f): 10 ** 9}, (layers_key(f),),
       "is more layers than ttspec compiles (at most 100,000)") for f in BASE],
    ("llama", {"num_hidden_layers": 100_001}, ("num_hidden_layers",), "at most 100,000"),
    # the per-layer pattern a spec lists: a 5,000-layer Qwen2 sliding from layer 7 on
    ("qwen2", {"num_hidden_layers": 5000, "use_sliding_window": True, "sliding_window": 32, "max_window_layers": 7},
     ("max_window_layers",), "repeats only after 5,000 layers"),
    # 100,000 layers sliding from layer 7 on: the pattern's period is found in linear time (it once took 10**10 steps)
    ("qwen2", {"num_hidden_layers": 100_000, "use_sliding_window": True, "sliding_window": 32,
               "max_window_layers": 7}, ("max_window_layers",), "repeats only after 100,000 layers"),
    ("qwen3", {"num_hidden_layers": 1500, "use_sliding_window": True, "sliding_window": 32,
               "layer_types": ["full_attention"] + ["sliding_attention"] * 1499},
     ("layer_types",), "repeats only after 1,500 layers"),
    ("qwen2", {"use_sliding_window": True, "sliding_window": 32, "max_window_layers": -1}, ("max_window_layers",),
     "`max_window_layers` must be at least 0, got -1"),
    # norms' epsilon: (0, 1)
    ("llama", {"rms_norm_eps": 0.0}, ("rms_norm_eps",), "`rms_norm_eps` = 0.0: a norm's epsilon must be in (0, 1)"),
    ("mistral", {"rms_norm_eps": -1e-6}, ("rms_norm_eps",), "must be in (0, 1)"),
    ("qwen2", {"rms_norm_eps": 1.0}, ("rms_norm_eps",), "must be in (0, 1)"),
    ("gemma", {"rms_norm_eps": 2.0}, ("rms_norm_eps",), "must be in (0, 1)"),
    ("phi", {"layer_norm_eps": 0.0}, ("layer_norm_eps",), "must be in (0, 1)"),
    ("phi3", {"rms_norm_eps": 1e300}, ("rms_norm_eps",), "must be in (0, 1)"),
    ("gpt2", {"layer_norm_epsilon": 0.0}, ("layer_norm_epsilon",), "must be in (0, 1)"),
    # softcaps and Gemma 2's query scalar: positive
    ("gemma2", {"attn_logit_softcapping": 0.0}, ("attn_logit_softcapping",), "a softcap must be positive"),
    ("gemma2", {"final_logit_softcapping": -30.0}, ("final_logit_softcapping",), "a softcap must be positive"),
    ("gemma2", {"query_pre_attn_scalar": 0}, ("query_pre_attn_scalar",), "so it must be positive"),
    ("gemma2", {"query_pre_attn_scalar": -4.0}, ("query_pre_attn_scalar",), "so it must be positive"),
    # rope: positive base and factors, llama3's high > low, a whole even number of rotated features
    ("llama", {"rope_theta": 0.0}, ("rope_theta",), "RoPE's base must be positive"),
    ("qwen3", {"rope_parameters": {"rope_type": "default", "rope_theta": -1.0}}, ("rope_parameters", "rope_theta"),
     "RoPE's base must be positive"),
    ("llama", {"rope_scaling": {"rope_type": "linear", "factor": 0.0}}, ("rope_scaling", "factor"),
     "a rope scaling factor must be positive"),
    ("mistral", {"rope_parameters": {"rope_type": "linear", "factor": -2.0}}, ("rope_parameters", "factor"),
     "a rope scaling factor must be positive"),
    ("llama", {"rope_scaling": dict(LLAMA3, low_freq_factor=0.0)}, ("rope_scaling", "low_freq_factor"),
     "a rope scaling factor must be positive"),
    ("llama", {"rope_scaling": dict(LLAMA3, high_freq_factor=1.0)}, ("rope_scaling", "high_freq_factor"),
     "needs high_freq_factor > low_freq_factor, got 1.0 and 1.0"),
    ("gemma", {"rope_scaling": dict(LLAMA3, low_freq_factor=4.0, high_freq_factor=1.0)},
     ("rope_scaling", "high_freq_factor"), "needs high_freq_factor > low_freq_factor"),
    ("phi3", {"rope_scaling": dict(LLAMA3, original_max_position_embeddings=0)},
     ("rope_scaling", "original_max_position_embeddings"), "must be positive, got 0"),
    ("llama", {"head_dim": 33}, ("head_dim",), "head_dim 33 is odd: RoPE rotates each head's features in pairs"),
    ("gemma", {"head_dim": 31}, ("head_dim",), "head_dim 31 is odd"),
    ("phi3", {"num_attention_heads": 256, "num_key_value_heads": 256}, ("hidden_size",),
     "head_dim 1 (hidden_size / num_attention_heads) is odd"),
    ("phi", {"partial_rotary_factor": 0.0}, ("partial_rotary_factor",), "must be in (0, 1]"),
    ("phi", {"partial_rotary_factor": 1.5}, ("partial_rotary_factor",), "must be in (0, 1]"),
    ("phi", {"partial_rotary_factor": 0.3}, ("partial_rotary_factor",),
     "partial_rotary_factor 0.3 of head_dim 32 gives 9.6 rotary dimensions"),
    ("phi3", {"rope_parameters": {"rope_type": "default", "partial_rotary_factor": 1e-300}},
     ("rope_parameters", "partial_rotary_factor"), "ttspec needs an even whole number"),
    # heads: K/V heads divide the query heads
    ("llama", {"num_key_value_heads": 3}, ("num_key_value_heads",),
     "num_key_value_heads = 3 does not divide num_attention_heads = 8"),
    ("qwen2", {"num_key_value_heads": 16}, ("num_key_value_heads",), "num_key_value_heads = 16 does not divide"),
    ("phi", {"num_key_value_heads": 5}, ("num_key_value_heads",), "does not divide"),
    # sizes: one weight holds at most 2**48 elements (ops/registry.py)
    ("llama", {"hidden_size": 2 ** 40}, ("hidden_size",), "the query projection would have"),
    ("qwen3", {"head_dim": 2 ** 40}, ("head_dim",), "the query projection would have"),
    ("mistral", {"vocab_size": 2 ** 40, "hidden_size": 512}, ("vocab_size",), "the token embedding would have"),
    ("gemma2", {"intermediate_size": 2 ** 40, "hidden_size": 512}, ("intermediate_size",),
     "the MLP's input projection would have"),
    ("gpt2", {"n_positions": 2 ** 40, "n_embd": 512}, ("n_positions",), "the position table would have"),
    ("gpt2", {"n_embd": 2 ** 30}, ("n_embd",), "the query projection would have"),
    # types
    ("qwen2", {"num_hidden_layers": True}, ("num_hidden_layers",), "`num_hidden_layers` should be an int, got true"),
    ("gemma2", {"attn_logit_softcapping": "50"}, ("attn_logit_softcapping",), "should be a float"),
]


@pytest.mark.parametrize("family,change,keys,message", OUTSIDE,
                         ids=[f"{f}-{'-'.join(k)}-{i}" for i, (f, _, k, _) in enumerate(OUTSIDE)])
def test_values_outside_what_ttspec_compiles_are_refused_at_the_field(tmp_path, run_cli, family, change, keys,
                                                                       message):
    config = dict(BASE[family], **change)
    path = write_config(tmp_path / "m", config)
    err = refused(run_cli, path, tmp_path / "x.arch", position(path.read_text(), *keys))
    assert message in err, err


# the same values just inside the edge: imported, and `ttspec check` takes the spec (the edge is the compiler's)
INSIDE = [
    ("qwen2", {"num_hidden_layers": 100_000}),
    ("qwen2", {"num_hidden_layers": 1000, "use_sliding_window": True, "sliding_window": 32, "max_window_layers": 7}),
    ("llama", {"rms_norm_eps": 1e-300}),
    ("gpt2", {"layer_norm_epsilon": 0.9999999999999999}),
    ("gemma2", {"attn_logit_softcapping": 1e-300, "final_logit_softcapping": 1e-300, "query_pre_attn_scalar": 1e-300}),
    ("llama", {"rope_scaling": dict(LLAMA3, factor=1e-300, low_freq_factor=1.0, high_freq_factor=1.0000000000000002)}),
    ("phi", {"partial_rotary_factor": 1.0}),
    ("phi3", {"partial_rotary_factor": 0.0625}),  # 2 of head_dim 32
    ("llama", {"head_dim": 2}),
    ("qwen2", {"use_sliding_window": True, "sliding_window": 32, "max_window_layers": 0}),  # every layer slides
    ("mistral", {"vocab_size": 2 ** 40, "hidden_size": 256}),  # embedding exactly 2**48 elements
]


@pytest.mark.parametrize("family,change", INSIDE, ids=[f"{f}-{i}" for i, (f, _) in enumerate(INSIDE)])
def test_values_at_the_edge_import_to_specs_that_check(tmp_path, run_cli, family, change):
    path = write_config(tmp_path / "m", dict(BASE[family], **change))
    out = tmp_path / "x.arch"
    result = run_cli("import-hf", path.parent, "-o", out)
    assert result.returncode == 0, result.stderr
    checked = run_cli("check", out)
    assert checked.returncode == 0, checked.stderr


def test_a_rule_the_field_checks_miss_is_still_refused_against_the_config(tmp_path, monkeypatch):
    """The backstop: with the per-field checks switched off, the spec made is put through `check`'s
    steps before anything is written, and its refusal points into config.json, not a spec nobody wrote."""
    from ttspec.errors import ArchError
    from ttspec.importers import hf as hf_import

    monkeypatch.setattr(hf_import, "check_values", lambda *args: None)
    path = write_config(tmp_path / "m", dict(BASE["llama"], rms_norm_eps=0.0))
    with pytest.raises(ArchError) as refusal:
        hf_import.import_hf(path.parent)
    assert refusal.value.loc.file == str(path) and (refusal.value.loc.line, refusal.value.loc.col) == (1, 1)
    message = refusal.value.diagnostic.message
    assert message.startswith("ttspec cannot compile the spec this config makes: eps must be in (0, 1), got 0.0")
    assert "(spec line " in message and "rmsnorm(x, eps = eps)" in message  # the call that took it, from the spec


# ---------------------------------------------------------------- 5. outside text in the spec and on the terminal
HOSTILE_TEXT = "x\nmodel evil\r\x1b[31m\x1b]0;title\x07\u202eend"


def assert_no_control(text: str) -> None:
    assert not any(ord(c) < 0x20 and c != "\n" or 0x7F <= ord(c) < 0xA0 or c == "\u202e" for c in text), repr(text)


def test_paths_versions_and_shard_names_are_quoted_in_the_header(tmp_path, run_cli):
    folder = tmp_path / f"dir{HOSTILE_TEXT}"
    write_config(folder, dict(BASE["llama"], transformers_version=HOSTILE_TEXT))
    for name in (f"a{HOSTILE_TEXT}.safetensors", "b\n# c.safetensors"):
        (folder / name).write_bytes(b"")
    printed = run_cli("import-hf", folder)
    assert printed.returncode == 0, printed.stderr
    assert_no_control(printed.stdout)
    assert "model evil" not in [line.strip() for line in printed.stdout.splitlines()]
    header = [line for line in printed.stdout.splitlines() if not line.startswith("model ")][:12]
    assert "config written by transformers x\u240amodel evil" in "\n".join(header)
    assert sum(line.startswith("model ") for line in printed.stdout.splitlines()) == 1
    spec = tmp_path / f"out{HOSTILE_TEXT}.arch"  # the command's own report of where it wrote, quoted too
    written = run_cli("import-hf", folder, "-o", spec)
    assert written.returncode == 0, written.stderr
    assert_no_control(written.stdout)
    assert written.stdout.startswith("wrote ") and len(written.stdout.splitlines()) == 2
    checked = run_cli("check", spec)
    assert checked.returncode == 0, checked.stderr


def test_many_shards_are_counted_not_listed(tmp_path):
    from ttspec.importers.hf import import_hf

    folder = tmp_path / "m"
    write_config(folder, BASE["llama"])
    for i in range(5000):
        (folder / f"model-{i:05d}.safetensors").write_bytes(b"")
    text = import_hf(folder).text
    weights = [line for line in text.splitlines() if line.startswith("# weights: ")]
    assert len(weights) == 1 and weights[0].endswith("and 4,992 more") and len(weights[0]) < 400


def test_keys_and_values_from_the_config_are_quoted_in_errors(tmp_path, run_cli):
    path = write_config(tmp_path / "m", dict(BASE["llama"], **{f"k{HOSTILE_TEXT}": 1}))
    result = run_cli("import-hf", path.parent)
    assert result.returncode == 1
    assert_no_control(result.stderr)
    first = result.stderr.splitlines()[0]
    assert "unknown field `kx\u240amodel evil" in first
    path = write_config(tmp_path / "n", dict(BASE["llama"], model_type=HOSTILE_TEXT * 1000))
    result = run_cli("import-hf", path.parent)
    assert result.returncode == 1
    assert_no_control(result.stderr)
    assert len(result.stderr.splitlines()[0]) < 400  # a 24,000-character value is not printed whole


# ---------------------------------------------------------------- 4. floats written exactly (transformers as reference)
def spec_nodes(model):
    """Every node of an elaborated model, repeat bodies included."""
    from ttspec.ir.graph import layer_variants

    stack = [model.graph]
    while stack:
        graph = stack.pop()
        for node in graph.nodes.values():
            yield node
            if node.is_repeat:
                stack.extend(body for body, _ in layer_variants(node))


@needs_hf
@pytest.mark.parametrize("scalar", [24, 1_234_567, 2 ** 31 - 1, 32])
def test_gemma2_attention_scale_is_transformers(tmp_path, scalar):
    """The scale on attention scores is the one transformers' Gemma2Attention computes, to the bit
    (query_pre_attn_scalar was once written with 6 significant digits: 1234567 as 1.23457e+06), and
    so are every other number the spec carries."""
    import transformers
    from transformers.models.gemma2 import modeling_gemma2

    from ttspec.driver import load_model
    from ttspec.importers.hf import import_hf

    config = transformers.Gemma2Config(**SIZES, head_dim=32, query_pre_attn_scalar=scalar, rms_norm_eps=1 / 3 * 1e-5,
                                       attn_logit_softcapping=49.99999999999999, final_logit_softcapping=0.1 + 0.2,
                                       rope_parameters={"rope_type": "default", "rope_theta": 10000.000000000002})
    config.save_pretrained(tmp_path / "m")
    spec = tmp_path / "x.arch"
    spec.write_text(import_hf(tmp_path / "m").text)
    nodes = list(spec_nodes(load_model(spec)))
    expected = modeling_gemma2.Gemma2Attention(config, layer_idx=0).scaling
    scales = {n.attrs.scale for n in nodes if n.op == "attend"}
    assert scales == {expected if scalar != 32 else None}, (scales, expected)  # 32: head_dim's own scale
    assert {n.attrs.eps for n in nodes if n.op == "rms_norm"} == {config.rms_norm_eps}
    assert {n.attrs.softcap for n in nodes if n.op == "attend"} == {config.attn_logit_softcapping}
    assert {n.attrs.cap for n in nodes if n.op == "softcap"} == {config.final_logit_softcapping}
    assert {n.attrs.rope.get("theta") for n in nodes if n.op == "apply_rope"} == \
        {config.rope_parameters["rope_theta"]}


@pytest.mark.parametrize("scalar", [0.1 + 0.2, 123.456789123, 1e-7 / 3, 2.0 ** 60])
def test_gemma2_float_scalar_is_written_exactly(tmp_path, scalar):
    """transformers 4.x configs may write the scalar as a float: the scale is its inverse square root
    to the bit (the closed form transformers computes, `query_pre_attn_scalar ** -0.5`)."""
    from ttspec.driver import load_model
    from ttspec.importers.hf import import_hf

    write_config(tmp_path / "m", dict(BASE["gemma2"], query_pre_attn_scalar=scalar))
    spec = tmp_path / "x.arch"
    spec.write_text(import_hf(tmp_path / "m").text)
    assert {n.attrs.scale for n in spec_nodes(load_model(spec)) if n.op == "attend"} == {scalar ** -0.5}


# ---------------------------------------------------------------- 6. import rules against transformers' models
def hf_and_spec_logits(tmp_path, config, config_json=None):
    """transformers' logits for `config` (random weights drawn big enough to matter) and the torch
    reference's for the spec import-hf makes of the config.json (written by transformers, or `config_json`)."""
    import torch
    import transformers

    from ttspec.driver import load_model
    from ttspec.importers.hf import import_hf
    from ttspec.runtime.runner import run_torch

    from .test_torch_backend import randomize

    folder = tmp_path / "m"
    config.save_pretrained(folder)
    if config_json is not None:
        write_config(folder, config_json)
        config = transformers.AutoConfig.from_pretrained(folder)  # transformers' reading of that file
    config._attn_implementation = "eager"
    hf = transformers.AutoModelForCausalLM.from_config(config).float().eval()
    randomize(hf, seed=3)
    tokens = torch.randint(0, config.vocab_size, (2, 24), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = hf(tokens).logits
    spec = tmp_path / "x.arch"
    spec.write_text(import_hf(folder).text)
    model = load_model(spec)
    got = run_torch(model, str(spec), hf.state_dict(), tokens).float()
    return hf, expected, got


def count(hf) -> int:
    return sum(p.numel() for p in hf.parameters())


# fp32 against fp32: the torch reference is within 7.3e-6 of transformers on these sizes (test_references)
ATOL = 1e-4
# head_dim 64 where hidden_size / num_attention_heads is 32 (Qwen3-0.6B: 128 for 1024 / 16; Mistral-Nemo: 128
# for 5120 / 32)
EXPLICIT_HEAD_DIM = dict(SIZES, num_hidden_layers=1, head_dim=64, max_position_embeddings=64, pad_token_id=0,
                         bos_token_id=0, eos_token_id=0)  # Phi-3's default ids (32000) lie past this vocabulary


@needs_hf
@pytest.mark.parametrize("family", ["llama", "mistral", "qwen2", "qwen3", "phi3"])
def test_explicit_head_dim_is_transformers(tmp_path, family):
    import transformers

    from ttspec.analysis.params_report import params_report
    from ttspec.driver import load_model

    config = transformers.AutoConfig.for_model(family, **EXPLICIT_HEAD_DIM)
    hf, expected, got = hf_and_spec_logits(tmp_path, config)
    assert hf.model.layers[0].self_attn.head_dim == 64  # the config is the case: head_dim != hidden / heads
    assert params_report(load_model(tmp_path / "x.arch"))["total"] == count(hf)
    assert (got - expected).abs().max().item() <= ATOL
    assert expected.abs().max().item() > 1.0  # not a comparison of near-zero tensors


@needs_hf
def test_phi_partial_rotary_default_is_transformers(tmp_path):
    """A Phi config.json without partial_rotary_factor: transformers' PhiConfig rotates 0.5 of each head."""
    import transformers

    sizes = dict(SIZES, num_hidden_layers=1, num_key_value_heads=8, max_position_embeddings=64)
    written = dict(sizes, model_type="phi", architectures=["PhiForCausalLM"], rope_theta=10000.0)
    hf, expected, got = hf_and_spec_logits(tmp_path, transformers.PhiConfig(**sizes), config_json=written)
    assert "partial_rotary_factor" not in (tmp_path / "m" / "config.json").read_text()
    assert hf.model.layers[0].self_attn.rotary_ndims == 16  # transformers' default: half of head_dim 32
    assert (got - expected).abs().max().item() <= ATOL
    # the whole head rotated is far outside the bound: the test tells the two apart
    whole = dict(written, partial_rotary_factor=1.0)
    _, other, _ = hf_and_spec_logits(tmp_path / "whole", transformers.PhiConfig(**sizes), config_json=whole)
    assert (other - expected).abs().max().item() > 100 * ATOL


@needs_hf
def test_gpt2_untied_head_is_transformers(tmp_path):
    """`tie_word_embeddings: false` wins over GPT-2's default (tied): its own lm_head, as transformers builds it."""
    import transformers

    from ttspec.analysis.params_report import params_report
    from ttspec.driver import load_model

    config = transformers.GPT2Config(vocab_size=256, n_embd=256, n_layer=1, n_head=8, n_positions=64,
                                     tie_word_embeddings=False)
    hf, expected, got = hf_and_spec_logits(tmp_path, config)
    assert '"tie_word_embeddings": false' in (tmp_path / "m" / "config.json").read_text()
    assert hf.lm_head.weight.data_ptr() != hf.transformer.wte.weight.data_ptr()
    assert params_report(load_model(tmp_path / "x.arch"))["total"] == count(hf)
    assert (got - expected).abs().max().item() <= ATOL
