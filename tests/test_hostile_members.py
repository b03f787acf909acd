"""Spec names that collide with members the TT-NN backend generates for issue 20's decode path (the LM head's
column chunks `lm_head_0` ..., its reshard, kernel and prefill-table members, the layer matmuls' `*_decode` /
`*_prefill` configs, the norms' memory configs, the run state, RoPE tables, the vocabulary mask) or with its module-
level helpers and classes: each compiles, for one chip and a 1-D mesh, to valid, ruff-clean Python in which no
member of a model class is assigned twice, whose torch model has exactly `params`' parameters, and whose decode
step and prefill the cost model's walkers price (tests/test_namer.py covers the namer's other scopes)."""

import ast
import subprocess
import sys

import pytest

from ttspec.analysis.interpreters import count_params
from ttspec.backends.common.names import root_class_name
from ttspec.driver import compile_source, load_model

from .conftest import formats_of, target_of

torch = pytest.importorskip("torch")

DECODER = """block {block}(x: [batch, seq, d]) -> [batch, seq, d] kind decoder {{
    x = x + attention(rmsnorm(x) as attn_norm, heads = 8, kv_heads = 2, rope = rope(theta = 10000.0)) as {attn}
    x = x + swiglu(rmsnorm(x) as {mlp_norm}, hidden = 768) as mlp
    return x
}}
"""


def spec(block="decoder", attn="attn", mlp_norm="mlp_norm", root="", norm="norm", head="", model="m") -> str:
    return (f"model {model}\ninput tokens: int32[batch, seq] where seq <= 64\n"
            + DECODER.format(block=block, attn=attn, mlp_norm=mlp_norm)
            + f"h = token_embedding(tokens, 512, 256) as embedding\n{root}\nh = repeat(2) {block}(h) as layers\n"
            f"h = rmsnorm(h) as {norm}\noutput logits = lm_head(h, 512){head}\n")


CASES = {
    # beside the head, in its class: its chunks, their decode programs, its prefill tables, kernel and input reshard
    **{f"root-{label}": spec(root=f"h = h + linear(h, 256) as {label}")
       for label in ("lm_head_0", "lm_head_1", "lm_head_0_decode", "lm_head_prefill", "lm_head_kernel",
                     "lm_head_input_memory", "head_chunks", "vocab_mask", "state", "residual_memory")},
    "norm-lm_head_0": spec(norm="lm_head_0"),  # the final norm's own member
    "head-out-beside-out_0": spec(head=" as out", root="h = h + linear(h, 256) as out_0"),
    "head-lm_head_0": spec(head=" as lm_head_0"),
    # in a layer: the matmuls' configs, the attention's KV cache and SDPA members, a norm's memory config
    **{f"attn-{label}": spec(attn=label) for label in ("wqkv_decode", "wo_prefill", "sdpa_decode", "kv_cache", "k")},
    **{f"mlp_norm-{label}": spec(mlp_norm=label) for label in ("w1_decode", "norm_memory", "hifi2_kernel")},
    # module scope: the runtime's classes, helpers and header constants as block and model names
    **{f"block-{name}": spec(block=name, model=name) for name in ("RunState", "KVCache", "head_chunks_prefill",
                                                                  "chunked_linear", "vocab_mask", "LOGITS_SPLIT")},
}
TARGETS = ("torch", "n150", "t3k")
HELPERS = {"RunState", "KVCache", "Weights", "Rotary", "Positions"}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile_members")
    out = {}
    for case, text in CASES.items():
        path = folder / f"{case.replace('-', '_')}.arch"
        path.write_text(text, encoding="utf-8")
        model = load_model(path)
        for target in TARGETS:
            source = compile_source(model, path.name, target_of(target), formats_of("bf16"))
            (folder / f"{path.stem}_{target}.py").write_text(source, encoding="utf-8")
            out[case, target] = (model, source)
    return folder, out


def members_assigned_twice(source: str) -> list[str]:
    """`Class.attr` for each member a model class's __init__ (or build) assigns more than once."""
    twice = []
    for cls in ast.parse(source).body:
        if not isinstance(cls, ast.ClassDef) or cls.name in HELPERS:
            continue
        for fn in (f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name in ("__init__", "build")):
            stored = [n.attr for n in ast.walk(fn) if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)
                      and isinstance(n.value, ast.Name) and n.value.id == "self"]
            twice += sorted(f"{cls.name}.{a}" for a in set(stored) if stored.count(a) > 1)
    return twice


def test_programs_are_valid_ruff_clean_and_assign_each_member_once(compiled):
    folder, programs = compiled
    for (case, target), (_, source) in programs.items():
        compile(source, f"{case}_{target}.py", "exec")
        assert members_assigned_twice(source) == [], (case, target)
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "E,F,W,I,B,UP,A",
                           "--line-length", "120", str(folder)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout


@pytest.mark.parametrize("case", ["root-lm_head_0", "head-out-beside-out_0", "block-RunState", "attn-kv_cache"])
def test_torch_model_has_the_params_parameters(compiled, case):
    from ttspec.runtime.runner import load_program

    _, programs = compiled
    model, source = programs[case, "torch"]
    net = getattr(load_program(source, f"hostile_{case.replace('-', '_')}"), root_class_name(model.name))()
    assert sum(p.numel() for p in net.parameters()) == count_params(model.graph)


def test_the_walkers_price_every_program(compiled):
    from ttspec.backends.ttnn.decode_facts import decode_program
    from ttspec.backends.ttnn.prefill_facts import prefill_program

    _, programs = compiled
    for (case, target), (_, source) in programs.items():
        if target != "torch":
            assert decode_program(source).layers == 2 and prefill_program(source).head_rows == 32, (case, target)


def test_a_label_beside_the_head_keeps_its_member_and_the_chunk_takes_another(compiled):
    """The collision this file was written for: the head's chunk member was `self.lm_head_0`, overwriting the
    spec's `lm_head_0` linear in the same class."""
    _, programs = compiled
    source = programs["root-lm_head_0", "n150"][1]
    assert 'self.lm_head_0 = weights.linear(prefix + "lm_head_0")' in source
    assert "self.lm_head_0_1, = weights.linear_chunks(" in source
