"""Generated identifiers come from one namer (ttspec/backends/common/names.py): whatever the spec calls
its model, blocks, labels, variables and inputs, every program compiles to valid, ruff-clean
Python whose torch model has exactly the parameters `ttspec params` counts, under the names it
lists, and the TT-NN program computes what the torch one does (issue 9, class 1)."""

import ast
import builtins
import keyword
import subprocess
import sys

import pytest

from ttspec.analysis.interpreters import count_params
from ttspec.backends.common.names import MODULE_MEMBERS, PROGRAM_GLOBALS, PYTHON, root_class_name
from ttspec.driver import compile_source, load_model
from ttspec.errors import ArchError
from ttspec.ir.graph import iter_params
from ttspec.targets import get_target

from .conftest import ROOT

torch = pytest.importorskip("torch")

from ttspec.runtime.runner import load_program, random_state_dict, run_golden, run_torch  # noqa: E402

from .conftest import formats_of, mesh_of, target_of  # noqa: E402

DECODER = """block {name}(x: [batch, seq, d]) -> [batch, seq, d] kind decoder {{
    x = x + attention(rmsnorm(x) as attn_norm, heads = 2, rope = rope(theta = 10000.0)) as attn
    x = x + swiglu(rmsnorm(x) as mlp_norm, hidden = 96) as mlp
    return x
}}
"""


def spec(body: str, model: str = "m", inp: str = "tokens") -> str:
    return (f"model {model}\ninput {inp}: int32[batch, seq] where seq <= 64\n"
            f"h = token_embedding({inp}, 64, 64) as embedding\n{body}\noutput logits = lm_head(h, 64)\n")


CASES = {}
for _name in ("None", "True", "False", "_", "decoder", "F", "nn", "torch", "ttnn", "math", "Rotary", "Weights",
              "TILE", "forward", "training", "eval", "to", "state_dict", "parameters", "print", "int", "LABELS"):
    CASES[f"model-{_name}"] = spec(DECODER.format(name="decoder") + "h = repeat(2) decoder(h) as layers",
                                   model=_name)
for _name in ("class", "def", "lambda", "None", "_1", "_", "F", "nn", "torch", "ttnn", "Rotary", "Weights", "TILE",
              "forward", "training", "eval", "to", "state_dict", "rotary", "device", "weight", "bias", "print",
              "LABELS", "m", "M"):
    CASES[f"block-{_name}"] = spec(DECODER.format(name=_name) + f"h = {_name}(h)\nh = repeat(2) {_name}(h)")
CASES["Decoder-beside-decoder"] = spec(DECODER.format(name="decoder") + DECODER.format(name="Decoder")
                                       + "h = repeat(2) decoder(h) as layers\nh = Decoder(h) as extra")
CASES["decoder-used-twice"] = spec(DECODER.format(name="decoder")
                                   + "h = repeat(2) decoder(h) as layers\nh = repeat(2) decoder(h) as more")
CASES["helper-variables"] = spec("split_heads = rmsnorm(h) as n1\nattend = rmsnorm(split_heads) as n2\n"
                                 "F = attend + split_heads\nlayer = F * attend\nh = layer + F")
CASES["labels-with-bias-suffix"] = spec("a = linear(h, 64, bias = true) as wq\nb = linear(h, 64) as wq_bias\n"
                                        "h = a + b")
for _name in ("TILE", "seq", "batch", "padded", "mapper", "F", "x", "layer", "self"):
    CASES[f"input-{_name}"] = spec("h = rmsnorm(h) as norm", inp=_name)
# unittest's deprecated aliases: ruff flags `self.assert_(...)` (UP005), found by the property test below
for _name in ("assert_", "failUnless", "assertEquals"):
    CASES[f"label-{_name}"] = spec(DECODER.format(name="decoder") + f"h = decoder(h) as {_name}")
CASES["unused-instance"] = spec(DECODER.format(name="decoder") + "u = decoder(h) as unused")
# helpers of 2-D mesh programs and of torch programs with block-float weights
for _name in ("STATISTICS_KERNEL", "per_axis", "shard", "logits_to_host", "block_float", "block_float_dtype",
              "BLOCK_FLOAT_WEIGHTS", "stats", "MESH_SHAPE", "Program", "check_sequence", "build", "Iterator"):
    # as model, block and label; and as a variable, except `shard`, which starts a statement of the language
    variable = "" if _name == "shard" else f"\n{_name} = rmsnorm(h) as n\nh = {_name} + h"
    CASES[f"helper-{_name}"] = spec(DECODER.format(name=_name) + f"h = {_name}(h) as {_name}{variable}", model=_name)
TWO_WIDTHS = """model m
input tokens: int32[batch, seq] where seq <= 64
block ffn(x: [batch, seq, d]) -> [batch, seq, d] {
    return x + swiglu(x, hidden = 64) as mlp
}
h = token_embedding(tokens, 256, 64) as embedding
a = ffn(h) as f1
b = linear(a, 128) as up
b = ffn(b) as f2
h = linear(b, 64) as down
output logits = lm_head(h, 256)
"""
CASES["one-block-two-widths"] = TWO_WIDTHS

# name -> compile_source's options: one chip, a 1-D mesh, a 2-D one (galaxy's 2x2 sub-mesh: heads and MLP
# over 2 rows, hidden over 2 columns) and the torch reference holding bfloat8_b weights
TARGETS = {"torch": dict(target="torch"), "n150": dict(target="n150"), "n300": dict(target="n300"),
           "galaxy-2d": dict(target="galaxy", mesh="2x2", strategy="2d"),
           "torch-bfloat8_b": dict(target="torch", weights_dtype="bfloat8_b")}
GOLDEN = ("block-class", "block-_1", "model-F", "Decoder-beside-decoder", "one-block-two-widths", "helper-variables",
          "input-seq", "labels-with-bias-suffix", "unused-instance")

# Python's builtins as a program sees them. Not `_`: the interactive interpreter and doctest (a test of
# docs/python-api.md runs one) leave their last value in builtins._, and `for _ in ...` shadows nothing.
BUILTINS = {name for name in dir(builtins) if name != "_"}


def ruff(folder) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "E,F,W,I,B,UP,A",
                           "--line-length", "120", str(folder)], capture_output=True, text=True)


def param_count(net) -> int:
    return sum(p.numel() for p in net.parameters())  # a tied tensor counts once, as `params` counts it


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("namer")
    out = {}
    for case, text in CASES.items():
        path = folder / f"{case.replace('-', '_')}.arch"
        path.write_text(text)
        model = load_model(path)
        for target, options in TARGETS.items():
            typed = dict(options, target=target_of(options["target"]), mesh=mesh_of(options.get("mesh")),
                         weights_dtype=formats_of(options.get("weights_dtype", "bf16")))
            source = compile_source(model, path.name, **typed)
            (folder / f"{path.stem}_{target}.py").write_text(source)
            out[(case, target)] = (model, path, source)
    return folder, out


def test_every_program_is_valid_and_ruff_clean(compiled):
    folder, programs = compiled
    for (case, target), (_, _, source) in programs.items():
        compile(source, f"{case}_{target}.py", "exec")
    lint = ruff(folder)
    assert lint.returncode == 0, lint.stdout


@pytest.mark.parametrize("case", CASES)
def test_torch_model_has_the_params_parameters_under_their_names(compiled, case):
    _, programs = compiled
    model, path, source = programs[(case, "torch")]
    module = load_program(source, f"namer_{case.replace('-', '_')}")
    net = getattr(module, root_class_name(model.name))()
    assert param_count(net) == count_params(model.graph)
    net.load_ttspec_weights(random_state_dict(model, seed=1))  # strict: every ttspec name has its tensor
    expected = {name for name, _ in iter_params(model.graph)}
    ttspec_name = getattr(module, "ttspec_name", lambda net, name: name)
    assert {ttspec_name(net, name) for name in net.state_dict()} == expected
    with torch.no_grad():
        assert torch.isfinite(net(torch.randint(0, 64, (1, 7)))).all()


@pytest.mark.parametrize("target,case", [("n150", case) for case in GOLDEN] + [
    ("galaxy-2d", case) for case in ("helper-STATISTICS_KERNEL", "helper-per_axis", "block-class", "helper-variables",
                                     "one-block-two-widths", "labels-with-bias-suffix")])
def test_golden_computes_what_torch_does(compiled, target, case):
    pytest.importorskip("ttnn")
    _, programs = compiled
    model, path, source = programs[(case, target)]
    state = random_state_dict(model, seed=3)
    vocab = 256 if case == "one-block-two-widths" else 64
    tokens = torch.randint(0, vocab, (2, 40), generator=torch.Generator().manual_seed(1))
    reference = run_torch(model, path.name, state, tokens).float()
    logits, _ = run_golden(model, path.name, get_target(TARGETS[target]["target"]), state, tokens, source=source)
    assert logits.shape == reference.shape
    err = ((logits.double() - reference.double()).norm() / reference.double().norm()).item()
    assert err < 0.05, err


def test_one_block_at_two_widths_gives_two_classes(compiled):
    """Torch classes hold their widths: two. TT-NN classes take theirs from the weights, so the
    two instances' classes are the same text and share one class."""
    _, programs = compiled
    for target in TARGETS:
        tree = ast.parse(programs[("one-block-two-widths", target)][2])
        classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
        assert len(classes) == len(set(classes)), classes
        assert ({"Ffn", "Ffn_1"} if target.startswith("torch") else {"Ffn"}) <= set(classes), classes


def test_one_block_used_twice_at_one_width_gives_one_class(compiled):
    _, programs = compiled
    for target in TARGETS:
        tree = ast.parse(programs[("decoder-used-twice", target)][2])
        assert [n.name for n in tree.body if isinstance(n, ast.ClassDef)].count("Decoder") == 1


def test_no_generated_name_shadows_another(compiled):
    """Module level: each name bound once. Classes: no attribute is a keyword, builtin or
    nn.Module member. Methods: no local is an import or module-level helper of the program."""
    _, programs = compiled
    for (case, target), (_, _, source) in programs.items():
        tree = ast.parse(source)
        top = []
        for node in tree.body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                top.append(node.name)
            elif isinstance(node, ast.Assign):
                top += [t.id for t in node.targets if isinstance(t, ast.Name)]
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                top += [(a.asname or a.name).split(".")[0] for a in node.names]
        dupes = {n for n in top if top.count(n) > 1} - {"torch"}  # `import torch` and `import torch.nn.functional`
        assert not dupes, (case, target, dupes)
        assert not set(top) & (BUILTINS | set(keyword.kwlist) | set(keyword.softkwlist)), (case, target)
        helpers = ("Rotary", "Weights", "RunState", "KVCache", "Positions")  # the programs' own helper classes
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name not in helpers):
            for node in ast.walk(cls):
                if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                    assert node.attr not in PYTHON, (case, target, node.attr)
                    if isinstance(node.value, ast.Name) and node.value.id == "self" and node.attr not in (
                            "device", "weights_dtype", "weight", "bias", "state"):
                        assert node.attr not in MODULE_MEMBERS and not node.attr.startswith("_"), (case, node.attr)
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    assert node.id not in PROGRAM_GLOBALS | BUILTINS, (case, target, node.id)


def test_program_globals_cover_the_templates():
    """The namer's list of module-level names is what the shipped programs define."""
    for path in sorted((ROOT / "generated").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.Assign)):
                names = [node.name] if isinstance(node, ast.FunctionDef) else [t.id for t in node.targets]
                assert set(names) <= PROGRAM_GLOBALS, (path.name, names)


def test_ttnn_refuses_two_outputs_at_the_second(write_spec, run_cli):
    path = write_spec(spec("output hidden = rmsnorm(h) as norm"))
    for target in ("n150", "n300"):
        result = run_cli("compile", path, "--target", target, "-o", path.parent / f"out_{target}.py")
        assert result.returncode == 1, result.stderr
        assert "return one output" in result.stderr and "spec.arch:5:" in result.stderr, result.stderr
    model = load_model(path)
    module = load_program(compile_source(model, path.name, target_of("torch")), "namer_two_outputs")
    net = getattr(module, root_class_name(model.name))()
    hidden, logits = net(torch.randint(0, 64, (1, 5)))
    assert hidden.shape[-1] == 64 and logits.shape[-1] == 64


def test_top_level_tensor_inside_a_repeated_block_is_a_located_error(write_spec):
    path = write_spec(spec("e = h\nblock dec(x: [batch, seq, 64]) -> [batch, seq, 64] {\n    return x + e\n}\n"
                           "h = repeat(2) dec(h) as layers"))
    with pytest.raises(ArchError, match="outside this repeated block") as info:
        load_model(path)
    assert info.value.loc is not None and info.value.loc.line == 6


hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies
POOL = sorted((set(keyword.kwlist) | set(keyword.softkwlist) | PROGRAM_GLOBALS | MODULE_MEMBERS
               | {"print", "int", "list", "type", "id", "input", "layer", "self", "x", "h", "_", "_1", "Decoder"})
              - {"__debug__"})
NAME = st.sampled_from(POOL)


@hypothesis.settings(max_examples=30, deadline=None, derandomize=True,
                     suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])
@hypothesis.given(model=NAME, block=NAME, label=NAME, var=NAME)
def test_any_names_give_a_correct_program(tmp_path, model, block, label, var):
    """Hostile names as the model, a block (called bare and repeated), a label and a variable:
    the spec is refused with a diagnostic, or every program is valid, ruff-clean and counts right."""
    text = spec(DECODER.format(name=block) + f"{var} = {block}(h)\nh = repeat(2) {block}({var}) as {label}\n"
                f"h = h + {var}", model=model)
    path = tmp_path / f"{abs(hash((model, block, label, var)))}.arch"
    path.write_text(text)
    try:
        model_ir = load_model(path)
    except ArchError:
        return  # refused with a diagnostic (a spec keyword, a primitive's name, a reserved label ...)
    for target in ("torch", "n150"):
        source = compile_source(model_ir, path.name, target_of(target))
        compile(source, target, "exec")
        path.with_name(f"{path.stem}_{target}.py").write_text(source)
        if target == "torch":
            module = load_program(source, f"namer_prop_{path.stem}")
            net = getattr(module, root_class_name(model_ir.name))()
            assert param_count(net) == count_params(model_ir.graph)
            net.load_ttspec_weights(random_state_dict(model_ir, seed=0))
    lint = ruff(tmp_path)
    assert lint.returncode == 0, lint.stdout
