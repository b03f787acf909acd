"""Tensor-parallel mesh programs in golden mode: every device computes only its own shard,
ttnn's collective goldens combine them, and the logits equal the single-chip golden run.
Taking out any collective breaks it. On ttnn's mock mesh the same programs validate."""

import re

import pytest

from ttspec.driver import compile_source, load_model
from ttspec.errors import ArchError
from ttspec.runtime.runner import random_hf_state_dict, run_golden
from ttspec.targets import get_target

from .conftest import SPECS

torch = pytest.importorskip("torch")
pytest.importorskip("ttnn")

COLLECTIVE = re.compile(r"ttnn\.(all_gather|reduce_scatter|all_reduce)\((\w+)(, dim=-?\d+)?, cluster_axis=\d\)")


def pcc(a, b) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    return float((a @ b) / (a.norm() * b.norm()))


@pytest.fixture(scope="module")
def single_chip():
    cache = {}

    def get(spec):
        if spec not in cache:
            model = load_model(SPECS / spec)
            state = random_hf_state_dict(model, seed=1)
            tokens = torch.randint(0, 256, (4, 40), generator=torch.Generator().manual_seed(3))
            logits, _ = run_golden(model, f"specs/{spec}", get_target("n150"), state, tokens)
            cache[spec] = model, state, tokens, logits
        return cache[spec]

    return get


@pytest.mark.parametrize("spec", ["nano-trickster.arch", "llama-gqa-tiny.arch"])
@pytest.mark.parametrize("target,mesh,dp", [("n300", "1x2", False), ("t3k", "1x8", False), ("t3k", "2x4", False),
                                            ("t3k", "2x4", True), ("galaxy", "8x4", False), ("galaxy", "8x4", True)])
def test_mesh_golden_equals_single_chip(single_chip, spec, target, mesh, dp):
    model, state, tokens, expected = single_chip(spec)
    source = compile_source(model, f"specs/{spec}", target, "bf16", mesh, dp)
    logits, calls = run_golden(model, f"specs/{spec}", get_target(target), state, tokens, source=source)
    assert pcc(logits, expected) >= 0.999
    layers = model.graph.repeats()[0].attrs["count"]
    assert calls["reduce_scatter"] == 2 * layers  # after each row-parallel projection
    assert calls["all_gather"] == 2 * layers + 1  # before each norm


def test_each_device_holds_only_its_shard():
    from ttspec.runtime.golden import GoldenTTNN
    from ttspec.runtime.runner import load_program, root_class

    model = load_model(SPECS / "llama-gqa-tiny.arch")
    module = load_program(compile_source(model, "specs/llama-gqa-tiny.arch", "t3k", "bf16"), "gqa_t3k_shards")
    module.ttnn = GoldenTTNN()
    program = root_class(module, model)(module.open_device())
    program.load_weights(random_hf_state_dict(model))
    attn = program.layers[0].attn
    assert len(attn.wqkv.shards) == 8
    # 1 query head and 1 (replicated) KV head of 32 features per device: 256 x 96
    assert [tuple(s.shape) for s in attn.wqkv.shards] == [(256, 96)] * 8
    assert [tuple(s.shape) for s in attn.wo.shards] == [(32, 256)] * 8  # row-parallel
    assert tuple(program.embedding.shards[0].shape) == (512, 32)  # embedding split on hidden
    # devices 0-3 share KV head 0, devices 4-7 KV head 1
    k_cols = [s[:, 32:64] for s in attn.wqkv.shards]
    assert torch.equal(k_cols[0], k_cols[3]) and not torch.equal(k_cols[3], k_cols[4])


def test_removing_any_collective_breaks_the_result(single_chip):
    spec = "nano-trickster.arch"
    model, state, tokens, expected = single_chip(spec)
    source = compile_source(model, f"specs/{spec}", "t3k", "bf16", "1x2")
    sites = list(COLLECTIVE.finditer(source))
    assert len(sites) >= 3
    for site in sites:
        broken = source[: site.start()] + site.group(2) + source[site.end():]
        try:
            logits, _ = run_golden(model, f"specs/{spec}", get_target("t3k"), state, tokens, source=broken)
        except Exception:
            continue  # shapes no longer fit: the collective was needed
        assert pcc(logits, expected) < 0.99, f"removing {site.group(0)} went unnoticed"


@pytest.mark.parametrize("spec,mesh,message", [
    ("gpt2.arch", "1x8", "heads=12 cannot be split over 8 devices"),
    ("phi-tiny.arch", "1x2", "head_dim 80 is not a multiple of 32"),
])
def test_invalid_mesh_pairs(spec, mesh, message):
    with pytest.raises(ArchError) as info:
        compile_source(load_model(SPECS / spec), f"specs/{spec}", "t3k", "bf16", mesh)
    assert message in info.value.render()


def test_kv_heads_neither_dividing_nor_divided(write_spec):
    text = (SPECS / "llama-gqa-tiny.arch").read_text().replace("let kv_heads = 2", "let kv_heads = 4")
    text = text.replace("let heads = 8", "let heads = 12").replace("let d = 256", "let d = 384")
    model = load_model(write_spec(text))
    with pytest.raises(ArchError) as info:
        compile_source(model, "x.arch", "t3k", "bf16", "1x8")
    assert "heads=12 cannot be split over 8 devices" in info.value.render()
    text = text.replace("let kv_heads = 4", "let kv_heads = 3").replace("let heads = 12", "let heads = 24")
    text = text.replace("let d = 384", "let d = 768")
    model = load_model(write_spec(text, "b.arch"))
    with pytest.raises(ArchError) as info:
        compile_source(model, "b.arch", "t3k", "bf16", "1x8")
    assert "kv_heads=3 over 8 devices: neither divides the other" in info.value.render()


try:
    from ttspec.mock.toolchain import riscv_gcc
except ImportError:  # pragma: no cover
    riscv_gcc = None


@pytest.mark.skipif(riscv_gcc is None or riscv_gcc() is None, reason="Debian gcc-riscv64-unknown-elf missing")
@pytest.mark.parametrize("spec,target,dtype", [
    ("nano-trickster.arch", "n300", "bf16"),
    ("nano-trickster.arch", "t3k", "bf16"),
    ("llama-3.1-8b.arch", "t3k", "bfloat8_b"),
    ("llama-3.1-8b.arch", "galaxy", "bfloat8_b"),
    ("llama-3.1-70b.arch", "t3k", "bfloat8_b"),
    ("llama-3.1-70b.arch", "galaxy", "bfloat8_b"),
])
def test_mock_mesh(spec, target, dtype):
    from ttspec.analysis.memory import weight_plan_bytes
    from ttspec.driver import lower
    from ttspec.passes.shard import plan_sharding
    from ttspec.runtime.device import run_worker

    model = load_model(SPECS / spec)
    source = compile_source(model, f"specs/{spec}", target, dtype)
    result = run_worker(model, source, "mock", target, state=None, tokens=torch.zeros(1, 64, dtype=torch.int64))
    vocab = model.graph.node(next(iter(model.graph.outputs.values()))).type.shape[-1]
    assert tuple(result["logits"].shape) == (1, 64, vocab)
    _, plan = plan_sharding(lower(model), get_target(target).mesh)
    predicted = weight_plan_bytes(model, dtype, plan)
    assert abs(result["dram_bytes_allocated"] - predicted) <= 0.05 * predicted + 4 * 2**20


def test_plan_command(run_cli):
    out = run_cli("plan", "specs/llama-3.1-8b.arch", "--target", "t3k", "--weights-dtype", "bfloat8_b", "--json")
    assert out.returncode == 0, out.stderr
    import json

    plan = json.loads(out.stdout)
    assert plan["mesh"] == [1, 8] and plan["devices"] == 8
    assert plan["placements"]["layers.*.attn.wq.weight"] == "column"
    assert plan["placements"]["layers.*.mlp.w2.weight"] == "row"
    assert plan["placements"]["layers.*.attn_norm.weight"] == "replicate"
    assert [c["op"] for c in plan["collectives_per_layer"]] == ["all_gather", "reduce_scatter", "all_gather",
                                                               "reduce_scatter"]
    m = plan["memory_per_chip"]
    assert plan["fits"] and m["dram"] == 12 * 1_072_693_184
    # KV cache: 1 KV head of 128 per chip, k and v, bf16, 32 layers, seq 131072
    assert m["kv_cache"] == 2 * 1 * 128 * 2 * 32 * 131072
    # 4 collectives on 4096-wide bf16 activations, each device receiving 7/8 of them
    assert plan["bytes_moved_per_token_per_layer_per_device"] == 4 * 2 * 4096 * 7 // 8
    bad = run_cli("plan", "specs/gpt2.arch", "--target", "t3k")
    assert bad.returncode == 1 and "heads=12 cannot be split over 8 devices" in bad.stderr


@pytest.mark.parametrize("args,message", [
    (["--mesh", "8"], "--mesh expects ROWSxCOLS such as 1x8, got '8'"),
    (["--mesh", "0x8"], "--mesh needs positive sizes"),
    (["--mesh", "2x8"], "--mesh 2x8 needs 16 chips; t3k has 8"),
])
def test_mesh_argument_errors(run_cli, tmp_path, args, message):
    out = run_cli("compile", "specs/nano-trickster.arch", "--target", "t3k", "-o", tmp_path / "out.py", *args)
    assert out.returncode == 2  # command-line misuse
    assert message in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("cluster_axis", [0, 1])
def test_golden_collectives_on_a_2d_mesh(cluster_axis):
    """The stand-in's use of ttnn's collective goldens on a 2x4 mesh, against plain torch."""
    from ttspec.runtime.golden import GoldenTTNN, HostMesh, MeshTensor

    ttnn = GoldenTTNN()
    mesh = HostMesh((2, 4))
    gen = torch.Generator().manual_seed(0)
    shards = [torch.randn(1, 3, 8, generator=gen) for _ in range(8)]
    x = MeshTensor(shards, mesh)

    def group(r, c):  # row-major device indices sharing a collective with device (r, c)
        return [r * 4 + j for j in range(4)] if cluster_axis == 1 else [i * 4 + c for i in range(2)]

    gathered = ttnn.all_gather(x, -1, cluster_axis=cluster_axis)
    reduced = ttnn.all_reduce(x, cluster_axis=cluster_axis)
    scattered = ttnn.reduce_scatter(x, -1, cluster_axis=cluster_axis)
    for r in range(2):
        for c in range(4):
            i, members = r * 4 + c, group(r, c)
            assert torch.equal(gathered.shards[i], torch.cat([shards[j] for j in members], dim=-1))
            total = torch.stack([shards[j] for j in members]).sum(0)
            assert torch.allclose(reduced.shards[i], total)
            position = members.index(i)
            assert torch.allclose(scattered.shards[i], total.chunk(len(members), dim=-1)[position])


def test_70b_bf16_on_t3k_refused_before_ttnn(run_cli, tmp_path):
    out = run_cli("compile", "specs/llama-3.1-70b.arch", "--target", "t3k", "-o", tmp_path / "out.py")
    assert out.returncode == 1
    assert ("llama_3_1_70b needs 17,722,507,264 bytes of DRAM per chip for bf16 weights; t3k has 12,872,318,208 "
            "per chip") in out.stderr


def override_spec(write_spec, lines, name="spec.arch"):
    text = (SPECS / "nano-trickster.arch").read_text().replace("target n150", "target n150\n" + lines)
    return load_model(write_spec(text, name))


def test_plan_overrides_from_the_spec(write_spec, single_chip):
    _, state, tokens, expected = single_chip("nano-trickster.arch")
    model = override_spec(write_spec, 'shard "lm_head" replicate\nshard "layers.*.mlp.w*" replicate')
    source = compile_source(model, "spec.arch", "t3k", "bf16")
    assert 'self.w1 = weights.linear(prefix + "w1")\n' in source  # replicated: no split
    assert "ttnn.mesh_partition(" in source  # the replicated MLP output is sliced back into the split residual
    logits, calls = run_golden(model, "spec.arch", get_target("t3k"), state, tokens, source=source)
    assert pcc(logits, expected) >= 0.999
    assert calls["reduce_scatter"] == 6  # only after attention now


@pytest.mark.parametrize("lines,message,hint", [
    ('shard "layers.*.mlp.w2" sideways', "unknown placement `sideways`", "placements: replicate, column, row"),
    ('shard "layers.*.ffn" replicate', 'shard "layers.*.ffn" matches no linear or embedding', "patterns name"),
    ('shard "layers.*.mlp.w1" row', "a row-parallel linear needs split input features", "after a column-parallel"),
    ('shard "embedding" column', "an embedding table is split on hidden or replicated, not `column`", "replicate"),
])
def test_plan_override_errors(write_spec, lines, message, hint):
    model = override_spec(write_spec, lines) if "sideways" not in lines else None
    with pytest.raises(ArchError) as info:
        if model is None:
            override_spec(write_spec, lines)
        else:
            compile_source(model, "spec.arch", "t3k", "bf16")
    d = info.value.diagnostic
    assert message in d.message and hint in (d.hint or "")
    assert d.loc is not None and d.loc.line == 7  # the `shard` line in the spec


def test_replicated_residual_when_hidden_does_not_split_into_tiles(write_spec):
    """hidden 96 over 2 devices is 48 per device, not whole tiles: the residual stays replicated and
    row-parallel partial sums are combined with all_reduce."""
    text = (SPECS / "llama-gqa-tiny.arch").read_text().replace("let d = 256", "let d = 96")
    text = text.replace("heads = heads, kv_heads = kv_heads,", "heads = heads, kv_heads = kv_heads, head_dim = 32,")
    text = text.replace("let heads = 8", "let heads = 4")
    model = load_model(write_spec(text))
    state = random_hf_state_dict(model, seed=2)
    tokens = torch.randint(0, 512, (2, 40), generator=torch.Generator().manual_seed(4))
    expected, _ = run_golden(model, "x.arch", get_target("n150"), state, tokens)
    source = compile_source(model, "x.arch", "n300", "bf16")
    assert "ttnn.all_reduce(" in source and "ttnn.reduce_scatter(" not in source
    logits, calls = run_golden(model, "x.arch", get_target("n300"), state, tokens, source=source)
    assert pcc(logits, expected) >= 0.999
    assert calls["all_reduce"] == 2 * 4
