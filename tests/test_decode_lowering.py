"""The decode step the TT-NN lowering writes (each class's `decode` beside its prefill `forward`), read as
Python: every weight matmul states its program and compute kernel, with the fidelity tt-metal's LLM guide
gives its weight format (LoFi for bfloat4_b, HiFi2 for bfloat8_b) and a 1-D multicast program whose cores
cover the output's tiles exactly once (closed form); SiLU moves into the multiply; a value is freed only
after its last read; attention with a fused QKV projection runs tt_transformers' decode chain; widths that
are not whole tiles fall back to ttnn's own program with a stated kernel, and that program validates on the
mock device. Numerics of the decode step against HF are tests/test_decode.py's."""

import ast
import math
import re
from pathlib import Path

import pytest

from ttspec.driver import compile_source, load_model

from .conftest import SPECS, formats_of, target_of

FORMATS = "attention=bfloat8_b,mlp=bfloat4_b"


def _program(text: str | None = None, formats: str = FORMATS, tmp_path: Path | None = None,
             target: str = "n150") -> str:
    path = SPECS / "llama-gqa-tiny.arch"
    if text is not None:
        path = tmp_path / "spec.arch"
        path.write_text(text, encoding="utf-8")
    return compile_source(load_model(path), str(path), target_of(target), formats_of(formats))


def _methods(source: str, name: str) -> dict[str, ast.FunctionDef]:
    """class name -> its method `name`."""
    out = {}
    for cls in ast.parse(source).body:
        if isinstance(cls, ast.ClassDef):
            for f in cls.body:
                if isinstance(f, ast.FunctionDef) and f.name == name:
                    out[cls.name] = f
    return out


def _decode_methods(source: str) -> dict[str, ast.FunctionDef]:
    """Each class's decode step: `decode`, the model class's `decode_step` (its `decode` is the serving API)."""
    steps = _methods(source, "decode_step")
    return {**{c: f for c, f in _methods(source, "decode").items() if c not in steps}, **steps}


def _calls(tree: ast.AST, dotted: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and ast.unparse(n.func) == dotted]


def _members(source: str) -> dict[str, tuple[str, ast.expr]]:
    """`self.<attr> = <value>` in the __init__s (and the model's build): attr -> (the comment above it, the value)."""
    lines = source.splitlines()
    out = {}
    for init in [*_methods(source, "__init__").values(), *_methods(source, "build").values()]:
        for stmt in init.body:
            if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Attribute):
                first = stmt.lineno - 1
                while lines[first - 1].strip().startswith("#"):
                    first -= 1
                comment = " ".join(line.strip().lstrip("#").strip() for line in lines[first:stmt.lineno - 1])
                out[stmt.targets[0].attr] = (comment, stmt.value)
    return out


def _keywords(call: ast.Call) -> dict[str, str]:
    return {k.arg: ast.unparse(k.value) for k in call.keywords}


# (formats, each decode matmul's fidelity): per kind, and tt_transformers' performance preset per matrix
# (model_config.py ModelOptimizations.performance: FF1/FF3 bfloat4_b at LoFi, the rest bfloat8_b at HiFi2)
FIDELITIES = [(FORMATS, {"wqkv": "HiFi2", "wo": "HiFi2", "w1": "LoFi", "w3": "LoFi", "w2": "LoFi",
                         "lm_head_0": "HiFi4"}),  # bf16 head: HiFi4
              ("performance", {"wqkv": "HiFi2", "wo": "HiFi2", "w1": "LoFi", "w3": "LoFi", "w2": "HiFi2",
                               "lm_head_0": "HiFi2"}),
              ("performance,ff2=bfloat4_b,wo=bf16", {"wqkv": "HiFi2", "wo": "HiFi4", "w1": "LoFi", "w3": "LoFi",
                                                     "w2": "LoFi", "lm_head_0": "HiFi2"})]


@pytest.mark.parametrize("formats,expected", FIDELITIES)
def test_decode_matmuls_state_program_and_kernel_by_format(formats, expected):
    source = _program(formats=formats)
    members = _members(source)
    decode_linears = [c for f in _decode_methods(source).values() for c in _calls(f, "ttnn.linear")]
    prefill_linears = [c for f in _methods(source, "forward").values() for c in _calls(f, "ttnn.linear")]
    chunked = [c for f in _methods(source, "forward").values() for c in _calls(f, "chunked_linear")]
    assert len(decode_linears) == 6  # wqkv, wo, w1, w3, w2, and the LM head's one DRAM-sharded column chunk
    # prefill: the layer matmuls read their DRAM-sharded weights with 2-D programs per chunk, the head's chunks too
    head_prefill = [c for f in _methods(source, "forward").values() for c in _calls(f, "head_chunks_prefill")]
    assert len(chunked) == 5 and len(head_prefill) == 1 and not prefill_linears
    chunks = _calls(ast.parse(source), "weights.linear_chunks")
    assert len(chunks) == 1 and "WIDTH_SHARDED" in ast.unparse(chunks[0]) and "DRAM" in ast.unparse(chunks[0])
    fidelities = {}
    for call in decode_linears:
        options = _keywords(call)
        assert {"program_config", "compute_kernel_config", "memory_config"} <= set(options), ast.unparse(call)
        weight = ast.unparse(call.args[1]).removeprefix("self.")
        kernel = members[options["compute_kernel_config"].removeprefix("self.")][1]
        fidelities[weight] = _keywords(kernel)["math_fidelity"].rsplit(".", 1)[-1]
    assert fidelities == expected
    head = [c for c in decode_linears if ast.unparse(c.args[1]) == "self.lm_head_0"]
    program = members[_keywords(head[0])["program_config"].removeprefix("self.")][1]
    assert ast.unparse(program.func) == "ttnn.MatmulMultiCoreReuseMultiCastDRAMShardedProgramConfig"


def test_each_decode_program_covers_the_output_tiles_once():
    """per_core_N tiles on each of grid x * grid y cores: at least N's tiles, and fewer than one more per core
    (1-D multicast: on Blackhole, where the layer matmuls keep it)."""
    members = _members(_program(target="p150"))
    programs = {attr: (comment, value) for attr, (comment, value) in members.items()
                if isinstance(value, ast.Call)
                and ast.unparse(value.func) == "ttnn.MatmulMultiCoreReuseMultiCast1DProgramConfig"}
    assert len(programs) == 6
    for attr, (comment, value) in programs.items():
        n = int(re.search(r"-> (\d+) ", comment).group(1))
        options = _keywords(value)
        x, y = map(int, re.fullmatch(r"ttnn\.CoreCoord\((\d+), (\d+)\)", options["compute_with_storage_grid_size"])
                   .groups())
        per_core = int(options["per_core_N"])
        tiles = math.ceil(n / 32)
        assert tiles <= per_core * x * y < tiles + x * y, (attr, comment)
        assert per_core % int(options["out_subblock_w"]) == 0


def test_silu_moves_into_the_multiply_in_decode():
    source = _program()
    decode = _methods(source, "decode")["SwiGLU"]
    # prefill: SiLU fused into each chunk size's 2-D program of w1
    w1_prefill = ast.unparse(_members(source)["w1_prefill"][1])
    assert "fused_activation=ttnn.UnaryWithParam(ttnn.UnaryOpType.SILU)" in w1_prefill
    assert not any("activation" in _keywords(c) for c in _calls(decode, "ttnn.linear"))
    (mul,) = _calls(decode, "ttnn.mul")
    assert _keywords(mul)["input_tensor_a_activations"] == "[ttnn.UnaryOpType.SILU]"


@pytest.mark.parametrize("spec,target", [("llama-gqa-tiny", "n150"), ("llama-gqa-tiny", "t3k"),
                                         ("nano-trickster", "galaxy"), ("nano-trickster-gpt2", "n150"),
                                         ("phi-tiny", "n150")])
def test_a_value_is_freed_only_after_its_last_read(spec, target):
    """In a program's decode methods (the decode chain, meshes of both strategies, GPT-2's and Phi's layers):
    after `ttnn.deallocate(v)` no statement reads v until one assigns it again."""
    path = SPECS / f"{spec}.arch"
    source = compile_source(load_model(path), str(path), target_of(target), formats_of("bf16"))
    assert "ttnn.deallocate(" in source
    for method in _decode_methods(source).values():
        freed: set[str] = set()
        for stmt in method.body:
            if _calls(stmt, "ttnn.deallocate") and isinstance(stmt, ast.Expr):
                freed.add(stmt.value.args[0].id)
                continue
            read = {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
            assert not read & freed, f"{spec} {target}: {ast.unparse(stmt)} reads freed {read & freed}"
            freed -= {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


def test_decode_attention_runs_the_tt_transformers_chain():
    source = _program()
    decode = _methods(source, "decode")["Attention"]
    names = [ast.unparse(c.func) for c in ast.walk(decode) if isinstance(c, ast.Call)]
    for op in ("ttnn.experimental.nlp_create_qkv_heads_decode", "self.rotary.decode", "self.kv_cache.decode_heads",
               "concat_heads_decode"):
        assert op in names, op
    # rotate-half RoPE runs on adjacent pairs: q and k rows permuted at load, the prefill Rotary likewise
    assert 'rope_pairs=(8, 2)' in source and 'style="interleaved"' in source


def test_widths_off_tiles_fall_back_to_a_stated_kernel_that_validates(tmp_path):
    """d 80 (not whole tiles): the weight matmuls reading it run ttnn's own program with a stated kernel,
    and one decode step of 32 users validates on the mock n150."""
    text = (SPECS / "llama-gqa-tiny.arch").read_text(encoding="utf-8")
    for name, value in (("d", 80), ("heads", 2), ("kv_heads", 1), ("layers", 1)):
        text = re.sub(rf"(?m)^let {name} = \d+", f"let {name} = {value}", text)
    source = _program(text, "bf16", tmp_path)
    fallbacks = [c for f in _decode_methods(source).values() for c in _calls(f, "ttnn.linear")
                 if "program_config" not in _keywords(c)]
    assert {ast.unparse(c.args[1]) for c in fallbacks} == {"self.wqkv", "self.w1", "self.w3", "self.lm_head"}
    members = _members(source)
    for call in fallbacks:
        comment, _ = members[_keywords(call)["compute_kernel_config"].removeprefix("self.")]
        assert "runs ttnn's own matmul program: decode matmul K 80 is not a positive multiple of 32" in comment
    pytest.importorskip("ttnn")
    from ttspec.runtime.decode_capture import capture_decode

    from .test_decode_capture import _needs_mock

    _needs_mock()
    result = capture_decode(load_model(tmp_path / "spec.arch"), source, "n150", users=32, context=64, timeout=600)
    assert result["decode"]["device_ops_per_layer"][0] > 0


@pytest.mark.parametrize("target,strategy,devices", [("n300", None, 2), ("t3k", None, 8), ("galaxy", "2d", 8)])
def test_a_fused_qkv_is_configured_for_the_columns_each_chip_holds(target, strategy, devices):
    """llama-gqa-tiny (8 query heads of 32, 2 KV heads): the decode QKV's configured N is the rows the runtime's
    reorder gives each device (rt/mesh.py by_device: KV heads repeated where there are fewer than devices; T3K: 1 q
    + 1 k + 1 v head, 96 columns, not 384 / 8). Configured for 48, the 1-D program of a 3-tile output on 2 cores
    was refused by ttnn (num_blocks_total <= num_cores)."""
    torch = pytest.importorskip("torch")
    from ttspec.backends.ttnn.rt.mesh import by_device

    from .conftest import mesh_of

    heads, kv, head_dim = 8, 2, 32
    per_device = by_device(torch.zeros((heads + 2 * kv) * head_dim, 1), (heads, kv, kv), head_dim, devices)
    assert per_device.shape[0] % devices == 0
    path = SPECS / "llama-gqa-tiny.arch"
    mesh = mesh_of("8x4") if strategy else None
    source = compile_source(load_model(path), str(path), target_of(target), formats_of(FORMATS), mesh,
                            strategy=strategy)
    comment, _ = _members(source)["wqkv_decode"]
    k, n = map(int, re.search(r"decode: (\d+) -> (\d+)", comment).groups())
    assert (k, n) == (256 // (4 if strategy else 1), per_device.shape[0] // devices)


@pytest.mark.parametrize("target", ["n150", "t3k", "galaxy"])
def test_layer_matmuls_are_dram_sharded_where_the_plan_serves(target):
    """Llama-3.1-70B's layer matmuls: DRAM-sharded programs on a 1-D mesh (T3K, measured on the mock: docs/
    design-decode.md), where each all-gather writes the sharded grid of the norm after it and each reduce-scatter
    of a sharded matmul output writes L1 (both validated on the mock 1x8); Galaxy's 2-D mesh keeps the 1-D
    programs with the reason in their comments. tiny on n150: every program's per_core_N tiles on its cores
    cover N exactly (the residual's grid: 8 cores) and in0_block_w divides each core's K tiles."""
    spec = "llama-gqa-tiny" if target == "n150" else "llama-3.1-70b"
    path = SPECS / f"{spec}.arch"
    source = compile_source(load_model(path), str(path), target_of(target), formats_of(FORMATS))
    members = _members(source)
    sharded = {attr: (comment, value) for attr, (comment, value) in members.items() if isinstance(value, ast.Call)
               and ast.unparse(value.func) == "ttnn.MatmulMultiCoreReuseMultiCastDRAMShardedProgramConfig"}
    if target == "galaxy":
        assert not sharded and "not DRAM-sharded: a 2-D mesh (Galaxy)" in source
        return
    head = [attr for attr in sharded if attr.startswith("lm_head_")]  # the LM head's chunks (lower_head.py)
    assert head and sorted(set(sharded) - set(head)) == ["w1_decode", "w2_decode", "w3_decode", "wo_decode",
                                                          "wqkv_decode"]
    for attr, (comment, value) in sharded.items():
        if attr in head:
            continue
        k, n, cores = map(int, re.search(r"(\d+) -> (\d+), DRAM-sharded over (\d+) cores", comment).groups())
        options = {key: int(v) for key, v in _keywords(value).items() if v.isdigit()}
        tiles = -(-n // 32)
        assert options["per_core_N"] == -(-tiles // cores) and (attr == "wqkv_decode" or tiles % cores == 0)
        assert (k // 32 // cores) % options["in0_block_w"] == 0
        if target == "n150":
            assert cores == 8
    if target == "t3k":
        decoder = _methods(source, "decode")["Decoder"]
        gathers, scatters = _calls(decoder, "ttnn.all_gather"), _calls(decoder, "ttnn.reduce_scatter")
        assert len(gathers) == len(scatters) == 2
        assert all(_keywords(c)["memory_config"].startswith("self.norm_memory") for c in gathers)
        assert all(_keywords(c)["memory_config"] == "ttnn.L1_MEMORY_CONFIG" for c in scatters)
