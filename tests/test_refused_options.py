"""Options that cannot apply where they are given are refused as command-line misuse (exit 2) with
one message and a hint, before anything is written, never echoed as if they had been applied:
--weights-dtype kinds without weight matrices, an empty --html path, --dp without a second mesh
axis, mesh options for the torch reference, a device target for --mode torch."""

import pytest

from ttspec.weight_formats import EXAMPLES

from .conftest import ROOT

GQA = "specs/llama-gqa-tiny.arch"  # untied head: the kinds with weight matrices are attention, mlp and head


def assert_refused(out, *phrases, hint):
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr and "internal error" not in out.stderr
    assert out.stdout == ""  # no report, no "wrote ..." line
    assert out.stderr.count("error:") == 1
    for phrase in phrases:
        assert phrase in out.stderr, (phrase, out.stderr)
    assert f"hint: {hint}" in out.stderr, out.stderr


# ---------------------------------------------------------------- --weights-dtype kinds no format changes
NO_MATRICES = "has no weight matrices; its lookup tables, norms and biases stay bf16 on every target"
KINDS_HINT = "the kinds a weight format applies to: attention, head, mlp"


@pytest.mark.parametrize("formats,kind", [("embedding=bfloat8_b", "embedding"), ("norm=bfloat4_b", "norm"),
                                          ("attention=bfloat8_b,embedding=bfloat4_b", "embedding"),
                                          ("bfloat8_b,norm=bf16", "norm")])
@pytest.mark.parametrize("target", ["n150", "torch", "t3k"])
def test_compile_refuses_a_kind_without_weight_matrices(run_cli, tmp_path, formats, kind, target):
    out = run_cli("compile", GQA, "--target", target, "--weights-dtype", formats, "-o", tmp_path / "m.py")
    assert_refused(out, f"--weights-dtype {kind}=", f"kind `{kind}` {NO_MATRICES}", hint=f"leave `{kind}` out; "
                   + KINDS_HINT)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [("plan", GQA, "--target", "n150"), ("plan", GQA, "--target", "t3k", "--search"),
                                     ("report", GQA, "--target", "n150,n300"), ("check", GQA, "--target", "n150")])
def test_analyses_refuse_a_kind_without_weight_matrices(run_cli, tmp_path, command):
    out = run_cli(*command, "--weights-dtype", "embedding=bfloat8_b,norm=bfloat4_b", timeout=120)
    assert_refused(out, f"kind `embedding` {NO_MATRICES}", hint="leave `embedding` out; " + KINDS_HINT)


@pytest.mark.parametrize("mode", ["torch", "golden"])
def test_run_refuses_a_kind_without_weight_matrices(run_cli, tmp_path, mode):
    pytest.importorskip("torch")
    if mode == "golden":
        pytest.importorskip("ttnn")
    out = run_cli("run", GQA, "--mode", mode, "--weights-dtype", "norm=bfloat8_b", "--out", tmp_path / "logits.npy",
                  timeout=300)
    assert_refused(out, f"kind `norm` {NO_MATRICES}", hint="leave `norm` out; " + KINDS_HINT)
    assert list(tmp_path.iterdir()) == []


def test_the_kinds_with_weight_matrices_are_still_taken(run_cli):
    """Every kind the hint lists changes the weight bytes the plan reports."""
    plain = run_cli("plan", GQA, "--target", "n150", "--json")
    assert plain.returncode == 0, plain.stderr
    import json

    weights = json.loads(plain.stdout)["memory_per_chip"]["weights"]
    for kind in ("attention", "head", "mlp"):
        out = run_cli("plan", GQA, "--target", "n150", "--json", "--weights-dtype", f"{kind}=bfloat8_b")
        assert out.returncode == 0, out.stderr
        changed = json.loads(out.stdout)["memory_per_chip"]["weights"]
        assert changed[kind] < weights[kind] and {k: v for k, v in changed.items() if k != kind} == \
            {k: v for k, v in weights.items() if k != kind}


# ---------------------------------------------------------------- report --html ""
@pytest.mark.parametrize("path", ["", "  "])
def test_report_refuses_an_empty_html_path(run_cli, tmp_path, path):
    out = run_cli("report", GQA, "--target", "n150", "--html", path, cwd=tmp_path)
    assert_refused(out, "--html needs a file name, got an empty one", hint="e.g. --html report.html")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- --dp without a second mesh axis
DP_HINT = "leave out --dp, or give a mesh with two axes: --target galaxy (8x4), --target t3k --mesh 2x4 or --target " \
          "p150x4 --mesh 2x2"


@pytest.mark.parametrize("where,shape", [(("--target", "n150"), "n150 is one chip"),
                                         (("--target", "p150"), "p150 is one chip"),
                                         (("--target", "n300"), "n300 is a 1x2 mesh"),
                                         (("--target", "t3k", "--mesh", "1x4"), "t3k --mesh 1x4 is a 1x4 mesh"),
                                         (("--target", "galaxy", "--mesh", "8x1"), "galaxy --mesh 8x1 is a 8x1 mesh"),
                                         (("--target", "galaxy", "--mesh", "1x1"), "galaxy --mesh 1x1 is one chip")])
def test_compile_refuses_dp_without_a_second_axis(run_cli, tmp_path, where, shape):
    out = run_cli("compile", GQA, *where, "--dp", "-o", tmp_path / "m.py")
    assert_refused(out, f"--dp splits the batch over a second mesh axis; {shape}, which has none", hint=DP_HINT)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command,shape", [(("plan", GQA, "--target", "n150"), "n150 is one chip"),
                                           (("plan", GQA, "--target", "p150x4"), "p150x4 is a 1x4 mesh"),
                                           (("report", GQA, "--target", "n300"), "n300 is a 1x2 mesh"),
                                           (("report", GQA, "--target", "galaxy,t3k"), "t3k is a 1x8 mesh")])
def test_analyses_refuse_dp_without_a_second_axis(run_cli, command, shape):
    out = run_cli(*command, "--dp")
    assert_refused(out, f"--dp splits the batch over a second mesh axis; {shape}, which has none", hint=DP_HINT)


@pytest.mark.parametrize("target", ["n150", "n300", "p150"])
def test_plan_search_refuses_dp_on_a_target_without_a_2d_sub_mesh(run_cli, target):
    out = run_cli("plan", GQA, "--target", target, "--search", "--dp")
    assert_refused(out, f"--dp splits the batch over a second mesh axis; no mesh of {target} has one",
                   hint="leave out --dp, or search a target with a 2-D mesh: --target galaxy (8x4)")


def test_run_refuses_dp_on_one_chip(run_cli, tmp_path):
    out = run_cli("run", GQA, "--mode", "golden", "--target", "n150", "--dp", "--out", tmp_path / "l.npy")
    assert_refused(out, "--dp splits the batch over a second mesh axis; n150 is one chip", hint=DP_HINT)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [("plan", GQA, "--target", "t3k", "--mesh", "2x4", "--dp"),
                                     ("plan", GQA, "--target", "galaxy", "--dp"),
                                     ("plan", GQA, "--target", "t3k", "--search", "--dp", "--top", "1")])
def test_dp_on_a_mesh_with_two_axes_is_taken(run_cli, command):
    out = run_cli(*command)
    assert out.returncode == 0, out.stderr
    assert "data-parallel replicas" in out.stdout or "--dp" in out.stdout


# ---------------------------------------------------------------- mesh options for the torch reference
@pytest.mark.parametrize("option", [("--mesh", "1x2"), ("--dp",), ("--strategy", "1d")])
def test_compile_for_torch_refuses_mesh_options(run_cli, tmp_path, option):
    out = run_cli("compile", GQA, "--target", "torch", *option, "-o", tmp_path / "m.py")
    assert_refused(out, f"{option[0]} places a TT-NN program on a device mesh; --target torch runs the PyTorch "
                   "reference on the host, which has none",
                   hint=f"leave out {option[0]}, or use a mesh target (n300, t3k, galaxy, p150x4, p150x8)")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["run", "generate"])
@pytest.mark.parametrize("option", [("--mesh", "1x2"), ("--dp",), ("--strategy", "1d")])
def test_torch_mode_refuses_mesh_options(run_cli, tmp_path, command, option):
    what = ("--random-tokens", "1,4") if command == "run" else ("--prompt", "hi")
    out = run_cli(command, GQA, "--mode", "torch", *what, *option, "--out", tmp_path / "out.npy", timeout=120)
    assert_refused(out, f"{option[0]} places a TT-NN program on a device mesh; --mode torch runs the PyTorch "
                   "reference on the host", hint=f"leave out {option[0]}, or use a mesh target (n300, t3k, galaxy, "
                   "p150x4, p150x8) with --mode golden")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- a device target for --mode torch
@pytest.mark.parametrize("command", ["run", "generate"])
@pytest.mark.parametrize("target", ["n150", "galaxy"])
def test_torch_mode_refuses_a_device_target(run_cli, tmp_path, command, target):
    what = ("--random-tokens", "1,4") if command == "run" else ("--prompt", "hi")
    out = run_cli(command, GQA, "--mode", "torch", "--target", target, *what, "--out", tmp_path / "out.npy",
                  timeout=120)
    assert_refused(out, f"--mode torch runs the PyTorch reference; --target {target} names a device it does not use",
                   hint="leave out --target, or run the TT-NN program on it: --mode golden, mock or device")
    assert list(tmp_path.iterdir()) == []


def test_torch_mode_with_target_torch_runs(run_cli, tmp_path):
    pytest.importorskip("torch")
    out = run_cli("run", GQA, "--mode", "torch", "--target", "torch", "--random-tokens", "1,4",
                  "--out", tmp_path / "l.npy", timeout=300)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "l.npy").is_file()


# ---------------------------------------------------------------- --weights-dtype roles and presets, --kv-dtype
@pytest.mark.parametrize("formats,phrases,hint", [
    ("w2=bfloat8_b", ("--weights-dtype names kind `w2`, which this model has no parameters of",),
     "say `ff2=bfloat8_b`: `ff2` is the matrix role of what `w2` names in many models."),
    ("performance,lm_head=bfloat4_b", ("--weights-dtype names kind `lm_head`",),
     "say `head=bfloat4_b`: `head` is the kind of what `lm_head` names in many models."),
])
def test_a_module_name_for_a_role_or_kind_is_refused_with_the_key_it_means(run_cli, formats, phrases, hint):
    out = run_cli("plan", GQA, "--target", "n150", "--weights-dtype", formats)
    assert_refused(out, *phrases, hint=hint)


def assert_value_refused(out, flag, message, hint):
    """A bad option value: exit 2, nothing on stdout, and on stderr exactly one error naming the option, the
    offending text and what was expected, then the value's own hint (no usage text, no traceback)."""
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert out.stdout == ""
    assert out.stderr == f"ttspec: error: argument {flag}: {message}\n  hint: {hint}\n", out.stderr


DTYPES_HINT = "dtypes: bf16, bfloat8_b, bfloat4_b"


@pytest.mark.parametrize("formats,message,hint", [
    ("ff2=bfloat8_b,ff2=bfloat4_b", "gives role `ff2` twice", "give each kind and role once"),
    ("accuracy", "no `accuracy` preset: tt_transformers' accuracy settings depend on the model (model_config.py "
     "ModelOptimizations.accuracy: Llama 3 and Mistral 7B keep bfloat8_b everywhere, 70B-class models bfloat4_b MLP "
     "w1/w3, others bf16 attention)", "say the formats: bfloat8_b, or bfloat8_b,attention=bf16, or performance"),
    ("performance,bfloat8_b", "at most one plain dtype or preset, got 'performance,bfloat8_b'",
     "the plain value (a dtype, or `performance`) is the default for the matrices not named"),
    ("performance,wqkv=bfloat2_b", "unknown dtype `bfloat2_b` for role `wqkv`",
     f"did you mean `bfloat8_b` or `bfloat4_b`? {DTYPES_HINT}"),
    ("performanc", "unknown dtype `performanc` (nor a preset)",
     f"did you mean `performance`? {DTYPES_HINT}; presets: performance"),
    ("", "an empty value", EXAMPLES),
    ("performance,", "empty entry in 'performance,'", EXAMPLES),
    ("=bfloat8_b", "`=bfloat8_b` has no kind before `=` (nor a matrix role)", EXAMPLES),
    ("performance=bf16", "`performance` is a preset, not a kind or role", EXAMPLES),
])
def test_bad_formats_are_one_argument_error(run_cli, formats, message, hint):
    out = run_cli("plan", GQA, "--target", "n150", f"--weights-dtype={formats}")
    assert_value_refused(out, "--weights-dtype", message, hint)


@pytest.mark.parametrize("value,message,hint", [
    ("bfloat4_b", "unknown KV cache dtype `bfloat4_b` (a bfloat4_b cache is not offered: 3 mantissa bits per key)",
     "did you mean `bfloat8_b`? KV cache dtypes: bf16, bfloat8_b"),
    ("fp8", "unknown KV cache dtype `fp8`", "KV cache dtypes: bf16, bfloat8_b"),
    ("", "an empty value", "KV cache dtypes: bf16, bfloat8_b"),
])
@pytest.mark.parametrize("command", [("plan", "--target", "n150"), ("compile", "--target", "t3k", "-o", "m.py"),
                                     ("report", "--target", "n150")])
def test_bad_kv_dtypes_are_one_argument_error(run_cli, tmp_path, command, value, message, hint):
    out = run_cli(command[0], ROOT / GQA, *command[1:], f"--kv-dtype={value}", cwd=tmp_path)
    assert_value_refused(out, "--kv-dtype", message, hint)
    assert list(tmp_path.iterdir()) == []  # compile wrote nothing


@pytest.mark.parametrize("command", ["run", "generate"])
def test_torch_mode_refuses_a_kv_dtype(run_cli, tmp_path, command):
    what = ("--random-tokens", "1,4") if command == "run" else ("--prompt", "hi")
    out = run_cli(command, GQA, "--mode", "torch", *what, "--kv-dtype", "bfloat8_b", "--out", tmp_path / "out.npy",
                  timeout=120)
    assert_refused(out, "--kv-dtype bfloat8_b stores a TT-NN program's KV cache on the device; --mode torch runs the "
                   "PyTorch reference", hint="leave out --kv-dtype, or run the TT-NN program: --mode golden rounds "
                   "the cache as the device stores it")
    assert list(tmp_path.iterdir()) == []


def test_plan_and_compile_take_the_preset_and_a_kv_dtype(run_cli, tmp_path):
    out = run_cli("plan", GQA, "--target", "n150", "--json", "--weights-dtype", "performance", "--kv-dtype",
                  "bfloat8_b")
    assert out.returncode == 0, out.stderr
    assert '"weights_dtype": "performance"' in out.stdout and '"kv_dtype": "bfloat8_b"' in out.stdout
    out = run_cli("compile", GQA, "--target", "n150", "--kv-dtype", "bfloat8_b", "-o", tmp_path / "m.py")
    assert out.returncode == 0, out.stderr
    assert "--kv-dtype bfloat8_b --mode golden" in out.stdout  # the run line carries it
    assert "KV_CACHE_DTYPE = ttnn.bfloat8_b" in (tmp_path / "m.py").read_text()


def _site(text: str, spec: str = GQA) -> str:
    """`file:line:col` of the first `text` in the spec (1-based, as diagnostics give it)."""
    source = (ROOT / spec).read_text(encoding="utf-8")
    before = source[:source.index(text)]
    return f"{spec}:{before.count(chr(10)) + 1}:{len(before) - before.rfind(chr(10))}"


@pytest.mark.parametrize("formats,site,message", [
    ("norm=bfloat8_b", "rmsnorm(x, eps = eps) as attn_norm", "--weights-dtype norm=bfloat8_b: kind `norm` has no "
     "weight matrices"),
    ("attention=bf16,embedding=bfloat4_b", "token_embedding(tokens, vocab, d) as embedding",
     "--weights-dtype embedding=bfloat4_b: kind `embedding` has no weight matrices"),
    ("atention=bfloat8_b", "llama_gqa_tiny", "--weights-dtype names kind `atention`, which this model has no "
     "parameters of"),
])
def test_a_format_the_spec_cannot_take_points_at_the_spec(run_cli, tmp_path, formats, site, message):
    """A --weights-dtype refusal about the spec carries its file:line:col: the first parameter of a kind that has
    no weight matrices (the user's call, not the standard block's), or the model where the kind is none of its."""
    out = run_cli("compile", GQA, "--target", "n150", f"--weights-dtype={formats}", "-o", tmp_path / "m.py")
    assert out.returncode == 2 and out.stdout == "" and list(tmp_path.iterdir()) == []
    assert out.stderr.startswith(f"{_site(site)}: error: {message}"), out.stderr
    assert out.stderr.count("error:") == 1 and "\n  hint: " in out.stderr and "Traceback" not in out.stderr
