"""The prefill SDPA's program and compute-kernel configs in the TT-NN program (issue 20): the class states the
programs by chunk and the program's own chunked_sdpa picks one by the prompt's length at run time.

Expected values from tt_transformers (models/tt_transformers/tt/model_config.py): SDPA_PROGCFG's Q and K chunks
of 256 rows from 2048 tokens on, 64 below, exact exp; compute_kernel_config_sdpa HiFi4 with fp32 accumulation,
no packer L1 accumulation. A padded prompt that 256 (or 64) does not divide runs the largest chunk dividing it,
whole tiles (the literal table below). The mock device resolving these (SDPAProgramFactory with the chunks
asked, HiFi4, fp32 accumulation, at 32 to 2048 tokens, causal and not) was captured by hand: the helper's report."""

from __future__ import annotations

import ast
from types import SimpleNamespace

import pytest

from ttspec.backends.ttnn.configs.prefill import prefill_sdpa
from ttspec.driver import compile_source, load_model
from ttspec.targets import TARGETS

from .conftest import SPECS, formats_of, target_of

# padded prompt length -> tt_transformers' chunk (256 from 2048, 64 below), else the largest dividing it
CHUNKS = {32: 32, 64: 64, 96: 32, 128: 64, 1024: 64, 1056: 32, 2048: 256, 2080: 32, 2176: 128, 4096: 256}


def _source(spec: str, target: str = "n150") -> str:
    path = SPECS / spec
    return compile_source(load_model(path), str(path), target_of(target), formats_of("bf16"))


def _member(tree: ast.Module, attr: str) -> ast.expr:
    return next(n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                and isinstance(n.targets[0], ast.Attribute) and n.targets[0].attr == attr)


def _fake_ttnn(sdpa_calls: list) -> SimpleNamespace:
    record = lambda **kw: kw  # noqa: E731 (a config constructor: its arguments)
    attend = lambda *args, **kw: sdpa_calls.append(kw)  # noqa: E731
    return SimpleNamespace(SDPAProgramConfig=record, WormholeComputeKernelConfig=record, CoreCoord=lambda x, y: (x, y),
                           MathFidelity=SimpleNamespace(HiFi4="HiFi4"),
                           transformer=SimpleNamespace(scaled_dot_product_attention=attend))


def test_the_rule_is_tt_transformers():
    for seq, chunk in CHUNKS.items():
        op = prefill_sdpa(seq, TARGETS["n150"])
        assert (op.program.q_chunk, op.program.k_chunk, op.program.exp_approx) == (chunk, chunk, False), seq
        assert (op.compute.fidelity, op.compute.fp32_dest_acc, op.compute.packer_l1_acc) == ("HiFi4", True, False)


@pytest.mark.parametrize("spec, target", [("llama-gqa-tiny.arch", "n150"), ("llama-gqa-tiny.arch", "t3k"),
                                          ("encoder-tiny.arch", "n150")])
def test_the_program_states_the_configs_and_picks_by_length(spec, target):
    """The generated program's own chunked_sdpa, run on stand-in tensors with its class's members, asks
    ttnn's SDPA for tt_transformers' chunk at each prompt length, with the HiFi4 fp32 kernel."""
    source = _source(spec, target)
    tree = ast.parse(source)
    calls: list = []
    ttnn = _fake_ttnn(calls)
    programs = eval(compile(ast.Expression(_member(tree, "sdpa_prefill")), "<member>", "eval"), {"ttnn": ttnn})
    kernel = eval(compile(ast.Expression(_member(tree, "sdpa_prefill_kernel")), "<member>", "eval"), {"ttnn": ttnn})
    helper = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "chunked_sdpa")
    scope = {"ttnn": ttnn}
    exec(compile(ast.Module([helper], []), "<chunked_sdpa>", "exec"), scope)
    for seq in CHUNKS:
        q = SimpleNamespace(shape=(1, 8, seq, 32))
        scope["chunked_sdpa"](q, q, q, programs, kernel, is_causal=spec.startswith("llama"), scale=0.5)
    assert [(c["program_config"]["q_chunk_size"], c["program_config"]["k_chunk_size"]) for c in calls] == \
        [(c, c) for c in CHUNKS.values()]
    assert all(c["program_config"]["exp_approx_mode"] is False for c in calls)
    assert {(c["compute_kernel_config"]["math_fidelity"], c["compute_kernel_config"]["fp32_dest_acc_en"])
            for c in calls} == {("HiFi4", True)}
    # the prefill's attention reaches ttnn's SDPA only through chunked_sdpa, naming this class's members
    direct = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and ast.unparse(n.func).endswith(
        "scaled_dot_product_attention")]
    assert len(direct) == 1, [ast.unparse(n) for n in direct]
    uses = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and ast.unparse(n.func) in (
        "chunked_sdpa", "bidirectional_attention") and any("sdpa_prefill" in ast.unparse(a) for a in
                                                          [*n.args, *(k.value for k in n.keywords)])]
    assert uses


def test_softcapped_attention_states_no_sdpa_program():
    """Gemma 2's logit softcap runs the composition, not ttnn's SDPA: nothing to configure."""
    source = _source("gemma-2-2b.arch")
    assert "sdpa_prefill" not in source and "softcapped_attention(" in source
