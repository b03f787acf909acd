"""The op registry is the one place that knows ops: no other module names one, fusion and the
output head are found by structure (labels are free), lowering-internal ops stay internal,
and what a pass or backend refuses is reported at the user's call site."""

import ast
import subprocess
import sys

import pytest

from ttspec.driver import compile_source, load_model, lower
from ttspec.errors import ArchError
from ttspec.ir.graph import all_nodes
from ttspec.ir.layout import Placement
from ttspec.ops import REGISTRY
from ttspec.passes.shard import plan_sharding
from ttspec.targets import COMPILE_TARGETS

from .conftest import ROOT, target_of

PACKAGE = ROOT / "ttspec"


def _knows_ops(path) -> bool:
    """ttspec/ops/ (what ops mean) and each backend's lowering table (how it computes them)."""
    return path.is_relative_to(PACKAGE / "ops") or (path.name == "lower.py"
                                                    and path.parent.parent == PACKAGE / "backends")


def _runtime(path) -> bool:
    """The programs' runtime (backends/*/rt): code that runs inside a generated program, where ops no
    longer exist; its strings are its own (a rotary scaling named "linear" is not the op)."""
    return path.parent.name == "rt" and path.parent.parent.parent == PACKAGE / "backends"


def _ttnn_api(path) -> bool:
    """The table of ttnn's own calls the program walkers price (ttnn.add, ttnn.linear...): ttnn's names, which
    some ops share, not the ops."""
    return path == PACKAGE / "backends" / "ttnn" / "program_calls.py"


def test_no_module_outside_ops_names_an_op():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if _knows_ops(path) or _runtime(path) or _ttnn_api(path):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in REGISTRY:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert not offenders, "op names outside ttspec/ops/ and backends/*/lower.py:\n" + "\n".join(offenders)
    assert sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("lower.py") if _knows_ops(p)) == [
        "backends/torch/lower.py", "backends/ttnn/lower.py"]


# A user's own attention block: labels that no template knows, rotary on q and k.
USER_ATTENTION = """
model user_attn
let vocab = 501, d = 256, heads = 8, kv = 2
input tokens: int32[batch, seq] where seq <= 128

block my_attention(x: [b, s, hidden], heads: int, kv_heads: int) -> [b, s, hidden] kind attention {
    hd = hidden / heads
    query = split_heads(linear(x, heads * hd) as q_proj, heads)
    key = split_heads(linear(x, kv_heads * hd) as k_proj, kv_heads)
    value = split_heads(linear(x, kv_heads * hd) as v_proj, kv_heads)
    y = attend(apply_rope(query, rope(theta = 500.0)), apply_rope(key, rope(theta = 500.0)), value)
    return linear(merge_heads(y), hidden) as o_proj
}

block layer(x: [batch, seq, d]) -> [batch, seq, d] kind decoder {
    x = x + my_attention(rmsnorm(x) as n1, heads, kv) as mixer
    x = x + swiglu(rmsnorm(x) as n2, hidden = 512) as ffn
    return x
}

h = token_embedding(tokens, vocab, d) as wte
h = repeat(2) layer(h) as blocks
h = rmsnorm(h) as final
output logits = lm_head(h, vocab) as proj_out
"""


def _fused(model):
    return [n for n in all_nodes(model.graph) if n.op == "linear" and n.attrs.fused]


def test_qkv_fusion_is_structural(write_spec):
    model = load_model(write_spec(USER_ATTENTION))
    fused = _fused(lower(model))
    assert len(fused) == 1  # one per attention: the repeat body holds one layer
    parts = fused[0].attrs.fused
    assert [p.label for p in parts.parts] == ["q_proj", "k_proj", "v_proj"]
    assert (parts.heads, parts.kv_heads, parts.head_dim) == (8, 2, 32)


def test_user_labels_plan_on_a_mesh(write_spec):
    model = load_model(write_spec(USER_ATTENTION))
    _, plan = plan_sharding(lower(model), (1, 2))
    assert plan.placements["blocks.*.mixer.q_proj.weight"] == Placement.COLUMN
    assert plan.placements["blocks.*.mixer.o_proj.weight"] == Placement.ROW
    # the output head is what feeds the output, whatever its label: 501 rows padded to split
    assert plan.placements["proj_out.weight"] == Placement.VOCAB
    assert plan.padded_rows["proj_out.weight"] == 512


def test_unfusable_projections_are_kept_apart(write_spec):
    # k and v read a different input than q: no fusion, yet the heads still split over devices
    text = USER_ATTENTION.replace("linear(x, kv_heads * hd) as k_proj", "linear(x * x, kv_heads * hd) as k_proj")
    model = load_model(write_spec(text))
    assert not _fused(lower(model))
    _, plan = plan_sharding(lower(model), (1, 2))
    assert plan.placements["blocks.*.mixer.k_proj.weight"] == Placement.COLUMN


def test_unfused_kv_heads_fewer_than_devices_are_refused_with_a_reason(write_spec):
    text = USER_ATTENTION.replace("linear(x, kv_heads * hd) as k_proj", "linear(x * x, kv_heads * hd) as k_proj")
    model = load_model(write_spec(text))
    with pytest.raises(ArchError) as info:
        plan_sharding(lower(model), (1, 8))
    message = info.value.render()
    assert "kv_heads=2 cannot be split over 8 devices" in message
    assert "spec.arch:" in message.splitlines()[0]


@pytest.mark.parametrize("op", sorted(name for name, opdef in REGISTRY.items() if not opdef.in_spec))
def test_lowering_internal_ops_are_not_callable(write_spec, op):
    text = ("model m\ninput tokens: int32[batch, seq] where seq <= 64\n"
            f"h = token_embedding(tokens, 64, 64) as e\nh = {op}(h)\noutput logits = lm_head(h, 64)\n")
    with pytest.raises(ArchError) as info:
        load_model(write_spec(text))
    assert f"`{op}`" in info.value.render() and "spec.arch:4:" in info.value.render()


SINUSOIDAL = """
model sinus
family llama
input tokens: int32[batch, seq] where seq <= 128
block decoder(x: [batch, seq, 256]) -> [batch, seq, 256] kind decoder {
    x = x + attention(rmsnorm(x, eps = 1e-6) as attn_norm, heads = 8) as attn
    x = x + swiglu(rmsnorm(x, eps = 1e-6) as mlp_norm, hidden = 512) as mlp
    return x
}
h = token_embedding(tokens, 256, 256) as embedding
h = sinusoidal(h)
h = repeat(2) decoder(h) as layers
h = rmsnorm(h, eps = 1e-6) as norm
output logits = lm_head(h, 256)
"""


@pytest.mark.parametrize("target", COMPILE_TARGETS)  # every target the CLI offers
def test_parameter_free_block_is_valid_python_on_every_target(write_spec, tmp_path, target):
    model = load_model(write_spec(SINUSOIDAL))
    source = compile_source(model, "sinus.arch", target_of(target))
    compile(source, f"sinus_{target}.py", "exec")
    path = tmp_path / f"sinus_{target}.py"
    path.write_text(source)
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "E,F,W,I,B,UP",
                           "--line-length", "120", str(path)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout


def test_planner_errors_point_at_the_spec(write_spec):
    path = write_spec("""model h9
let heads = 9
input tokens: int32[batch, seq] where seq <= 64
block decoder(x: [batch, seq, 288]) -> [batch, seq, 288] {
    x = x + attention(rmsnorm(x) as n1, heads = heads) as attn
    return x
}
h = token_embedding(tokens, 256, 288) as embedding
h = repeat(2) decoder(h) as layers
output logits = lm_head(h, 256)
""")
    with pytest.raises(ArchError) as info:
        plan_sharding(lower(load_model(path)), (1, 8))
    d = info.value.diagnostic
    assert d.message == "heads=9 cannot be split over 8 devices"
    assert (d.loc.file, d.loc.line) == (str(path), 5)  # the user's call, not the standard library
    assert any(n.loc and (n.loc.file, n.loc.line) == (str(path), 2) and "`heads` = 9" in n.message
               for n in d.notes)
    assert "--mesh 1x3 would work" in d.hint


def test_mesh_hint_respects_kv_heads(write_spec):
    """6 heads and 2 KV heads over 4 devices: 1x3 splits the heads but neither splits nor copies the 2 KV heads
    (the planner refuses it), so the hint names only 1x2 (issue 22)."""
    path = write_spec("""model h6
input tokens: int32[batch, seq] where seq <= 64
block decoder(x: [batch, seq, 384]) -> [batch, seq, 384] {
    x = x + attention(rmsnorm(x) as n1, heads = 6, kv_heads = 2) as attn
    return x
}
h = token_embedding(tokens, 256, 384) as embedding
h = repeat(2) decoder(h) as layers
output logits = lm_head(h, 256)
""")
    with pytest.raises(ArchError) as info:
        plan_sharding(lower(load_model(path)), (1, 4))
    d = info.value.diagnostic
    assert d.message == "heads=6 cannot be split over 4 devices"
    assert "--mesh 1x3" not in d.hint and "--mesh 1x2 would work" in d.hint
    with pytest.raises(ArchError, match="neither divides the other"):  # what 1x3 would have said
        plan_sharding(lower(load_model(path)), (1, 3))
    plan_sharding(lower(load_model(path)), (1, 2))  # and 1x2 plans


def test_kv_heads_that_neither_split_nor_copy(write_spec):
    path = write_spec(USER_ATTENTION.replace("kv = 2", "kv = 3").replace("heads = 8", "heads = 6")
                      .replace("d = 256", "d = 192"))
    with pytest.raises(ArchError) as info:
        plan_sharding(lower(load_model(path)), (1, 2))
    assert "kv_heads=3 over 2 devices: neither divides the other" in info.value.render()


def test_backend_refusal_points_at_the_spec(run_cli, write_spec, tmp_path):
    path = write_spec(SINUSOIDAL.replace("heads = 8)", "heads = 16, qk_norm = true)"))
    out = tmp_path / "never.py"
    result = run_cli("compile", path, "--target", "n150", "-o", out)
    assert result.returncode == 1 and not out.exists()
    assert f"{path}:6:" in result.stderr
    assert "a per-head rms_norm over head_dim 16 is not lowered to TT-NN" in result.stderr
    assert "Traceback" not in result.stderr
