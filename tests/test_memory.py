"""The one memory model: `plan`, `compile` and `check --target` agree on what fits, the KV cache
matches its closed form, and the largest context / batch are the edges of what fits.

Expected values are written here from published configs and closed forms (2 x layers x KV
heads x head_dim x batch x context x 2 bytes for a bf16 KV cache), never taken from ttspec;
the weight bytes themselves are held to ttnn's allocator by tests/test_mock_programs.py and
tests/test_mesh.py."""

import json
import re

import pytest

from ttspec.driver import compile_source, load_model
from ttspec.errors import ArchError
from ttspec.reports.plan_report import plan_report
from ttspec.targets import TARGETS

from .conftest import SPECS, formats_of, mesh_of, target_of

TILE = 32
GB = 10**9

# (spec, target, weights dtype, fits). The verdicts follow from published sizes: Llama-3.1-8B's
# 8.03e9 parameters are 16.06 GB in bf16, more than an n150's 12.87 GB but well within a p150's
# 34.2 GB, and about 8.5 GB in bfloat8_b; Llama-3.1-70B's 70.6e9 are 141 GB in bf16, 17.6 GB
# per chip over 8 chips (T3K; Galaxy splits over 8 and replicates 4 times), about 9.4 GB per
# chip in bfloat8_b.
VERDICTS = [
    ("llama-3.1-8b.arch", "n150", "bf16", False),
    ("llama-3.1-8b.arch", "n150", "bfloat8_b", True),
    ("llama-3.1-8b.arch", "p150", "bf16", True),
    ("tinyllama-1.1b.arch", "n150", "bf16", True),
    ("llama-3.1-70b.arch", "t3k", "bf16", False),
    ("llama-3.1-70b.arch", "t3k", "bfloat8_b", True),
    ("llama-3.1-70b.arch", "galaxy", "bfloat8_b", True),
]


@pytest.fixture(scope="module")
def models():
    cache = {}

    def get(spec):
        if spec not in cache:
            cache[spec] = load_model(SPECS / spec)
        return cache[spec]

    return get


@pytest.mark.parametrize("spec,target,dtype,fits", VERDICTS)
def test_plan_fits_equals_compile_accepts(run_cli, models, spec, target, dtype, fits):
    out = run_cli("plan", f"specs/{spec}", "--target", target, "--weights-dtype", dtype, "--json")
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["fits"] is fits
    try:
        source = compile_source(models(spec), f"specs/{spec}", target_of(target), formats_of(dtype))
    except ArchError as e:
        assert not plan["fits"], e.render()
        assert "hint" in plan and plan["hint"] in e.diagnostic.hint
        return
    assert plan["fits"]
    m = plan["memory_per_chip"]
    # the program accepts exactly the context plan names for batch 1, never more than the spec's bound
    assert m["max_context"] == m["compile_context"] <= m["seq_bound"]
    assert f"\nMAX_CONTEXT = {m['max_context']}  #" in source and "check_sequence(seq)" in source


@pytest.mark.parametrize("spec,target,dtype,fits", VERDICTS)
def test_check_target_warns_exactly_when_compile_refuses(run_cli, spec, target, dtype, fits):
    out = run_cli("check", f"specs/{spec}", "--target", target, "--weights-dtype", dtype, "--strict")
    assert (out.returncode == 0) is fits, out.stderr
    assert "Traceback" not in out.stderr
    if not fits:
        assert "warning:" in out.stderr and "bytes of DRAM" in out.stderr and "hint:" in out.stderr


def test_70b_on_t3k_compiles_with_the_context_that_fits(run_cli, tmp_path):
    out = run_cli("compile", "specs/llama-3.1-70b.arch", "--target", "t3k", "--weights-dtype", "bfloat8_b",
                  "-o", tmp_path / "out.py")
    assert out.returncode == 0, out.stderr
    plan = plan_report(load_model(SPECS / "llama-3.1-70b.arch"), target_of("t3k"), None, formats_of("bfloat8_b"), 1,
                       None)
    context = plan["memory_per_chip"]["max_context"]
    assert 0 < context < 131072 and context % TILE == 0
    assert f"context: up to {context:,} tokens" in out.stdout and "the spec allows 131,072" in out.stdout
    source = compile_source(load_model(SPECS / "llama-3.1-70b.arch"), "x", target_of("t3k"), formats_of("bfloat8_b"))
    assert f"Context: up to {context:,} tokens" in source
    # at its full 128K bound it does not fit: plan says so, and what does
    text = run_cli("plan", "specs/llama-3.1-70b.arch", "--target", "t3k", "--weights-dtype", "bfloat8_b").stdout
    assert "does not fit at seq 131,072" in text
    assert f"largest context at batch 1: {context:,} tokens (the spec allows 131,072)" in text
    assert "largest batch at seq 131,072: none" in text
    # one verdict: not "does not fit at seq 131,072" followed by a bare "fits: yes" (issue 22)
    assert "fits: yes" not in text
    assert f"fits: only with a shorter context: up to {context:,} tokens at batch 1, not at seq 131,072" in text


def test_refusal_is_one_message_with_a_hint(run_cli, tmp_path):
    out = run_cli("compile", "specs/llama-3.1-70b.arch", "--target", "n150", "-o", tmp_path / "out.py")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.count("error:") == 1
    # 141.2 GB of bf16 weights: 17.7 GB per chip on 8 chips (18.9 on T3K: DRAM shards pad), which only p150 x8 holds; on
    # Galaxy's 32 chips with both mesh axes splitting every matrix (2-D), 141.2 / 32 = 4.4 GB plus the
    # embedding's quarter (2.1 GB / 4) fits 12.9 GB. T3K (1-D over 8) does not.
    assert "hint: a bigger target (p150x8, galaxy)" in out.stderr


# ---------------------------------------------------------------- KV cache closed forms
def spec_text(kv, heads=8, d=256, layers=3, head_dim=None, bound="where seq <= 2048"):
    dim = f", head_dim = {head_dim}" if head_dim else ""
    return (f"model m\nfamily llama\nlet vocab = 512, d = {d}, heads = {heads}, kv = {kv}\n"
            f"input tokens: int32[batch, seq] {bound}\n"
            "block decoder(x: [batch, seq, d]) -> [batch, seq, d] {\n"
            f"    x = x + attention(rmsnorm(x) as attn_norm, heads = heads, kv_heads = kv{dim},\n"
            "                      rope = rope()) as attn\n"
            "    x = x + swiglu(rmsnorm(x) as mlp_norm, hidden = 512) as mlp\n    return x\n}\n"
            f"h = token_embedding(tokens, vocab, d) as embedding\nh = repeat({layers}) decoder(h) as layers\n"
            "h = rmsnorm(h) as norm\noutput logits = lm_head(h, vocab)\n")


def kv_closed_form(layers, kv, head_dim, batch, context, devices):
    """Keys and values, bf16; KV heads split over the devices when they divide them, else one
    (copied) KV head per device."""
    local = kv // devices if kv % devices == 0 else 1
    return 2 * layers * local * head_dim * batch * context * 2


@pytest.mark.parametrize("kv", [2, 1], ids=["gqa", "mqa"])
@pytest.mark.parametrize("target,devices", [("n150", 1), ("p150", 1), ("n300", 2), ("t3k", 8)])
@pytest.mark.parametrize("batch,seq", [(1, 32), (3, 640), (8, 2048)])
def test_kv_cache_closed_form(write_spec, kv, target, devices, batch, seq):
    model = load_model(write_spec(spec_text(kv)))
    m = plan_report(model, target_of(target), None, formats_of("bf16"), batch, seq)["memory_per_chip"]
    assert m["kv_cache"] == kv_closed_form(3, kv, 256 // 8, batch, seq, devices)


def test_kv_cache_of_llama_3_1_8b(run_cli):
    # HF config: 32 layers, 8 KV heads of 128
    for target, devices in (("n150", 1), ("n300", 2), ("t3k", 8)):
        out = run_cli("plan", "specs/llama-3.1-8b.arch", "--target", target, "--weights-dtype", "bfloat8_b",
                      "--batch", "2", "--seq", "4096", "--json")
        m = json.loads(out.stdout)["memory_per_chip"]
        assert m["kv_cache"] == kv_closed_form(32, 8, 128, 2, 4096, devices)


def test_kv_cache_pads_head_dim_and_context_to_tiles(write_spec):
    # head_dim 40 is held as 64 on the device; a 33-token context takes two tiles
    model = load_model(write_spec(spec_text(2, heads=4, d=160, head_dim=40)))
    m = plan_report(model, target_of("n150"), None, formats_of("bf16"), 1, 33)["memory_per_chip"]
    assert m["kv_cache"] == 2 * 3 * 2 * 64 * 1 * 64 * 2


# ---------------------------------------------------------------- largest context and batch
def _at(model, target, dtype, batch, seq):
    return plan_report(model, target_of(target), None, formats_of(dtype), batch, seq)["memory_per_chip"]


@pytest.mark.parametrize("spec,target,dtype", [("llama-3.1-70b.arch", "t3k", "bfloat8_b"),
                                               ("llama-3.1-8b.arch", "n150", "bfloat8_b"),
                                               ("llama-3.1-8b.arch", "p150", "bf16")])
def test_largest_context_is_the_edge_and_monotone_in_batch(models, spec, target, dtype):
    model = models(spec)
    previous = None
    for batch in (1, 2, 3, 5, 8, 13):
        context = _at(model, target, dtype, batch, None)["max_context"]
        if previous is not None:
            assert context <= previous
        previous = context
        if context == 0:
            assert not _at(model, target, dtype, batch, TILE)["fits_at_seq"]
            continue
        assert context % TILE == 0
        at = _at(model, target, dtype, batch, context)
        assert at["fits_at_seq"] and at["total"] <= at["dram"] == TARGETS[target].dram_per_chip
        if context < at["seq_bound"]:
            more = _at(model, target, dtype, batch, context + TILE)
            assert not more["fits_at_seq"] and more["total"] > more["dram"]
        # the largest batch at that context is at least this batch, and is itself an edge
        largest = at["max_batch"]
        assert largest >= batch
        assert _at(model, target, dtype, largest, context)["fits_at_seq"]
        assert not _at(model, target, dtype, largest + 1, context)["fits_at_seq"]


def test_fits_at_a_batch(write_spec):
    model = load_model(write_spec(spec_text(2)))
    plan = plan_report(model, target_of("n150"), None, formats_of("bf16"), 1, TILE)
    largest = plan["memory_per_chip"]["max_batch"]
    assert plan_report(model, target_of("n150"), None, formats_of("bf16"), largest, None)["fits"]
    assert not plan_report(model, target_of("n150"), None, formats_of("bf16"), largest + 1, None)["fits"]


def test_context_is_capped_at_the_spec_bound_and_baked_without_one(write_spec):
    bounded = load_model(write_spec(spec_text(2), "a.arch"))
    assert _at(bounded, "n150", "bf16", 1, None)["max_context"] == 2048
    source = compile_source(bounded, "a.arch", target_of("n150"))
    assert "\nMAX_CONTEXT = 2048  #" in source and "\nSPEC_BOUND = 2048  #" in source
    assert "the spec's bound seq <= {MAX_CONTEXT}" in source
    unbounded = load_model(write_spec(spec_text(2, bound=""), "b.arch"))
    m = _at(unbounded, "n150", "bf16", 1, None)
    assert m["seq_bound"] is None and m["max_context"] > 2048
    source = compile_source(unbounded, "b.arch", target_of("n150"))
    assert f"\nMAX_CONTEXT = {m['max_context']}  #" in source and "\nSPEC_BOUND = None  #" in source
    assert "the longest context that fits" in source


# ---------------------------------------------------------------- single chips, KV copies
@pytest.mark.parametrize("target", ["n150", "p100", "p150"])
def test_plan_on_one_chip(run_cli, target):
    out = run_cli("plan", "specs/tinyllama-1.1b.arch", "--target", target, "--json")
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["devices"] == 1 and plan["mesh"] == [1, 1] and plan["fits"]
    assert plan["collectives_per_layer"] == [] and plan["collectives_outside_layers"] == []
    m = plan["memory_per_chip"]
    assert m["dram"] == TARGETS[target].dram_per_chip
    assert set(m["weights"]) == {"attention", "mlp", "embedding", "head", "norm"}
    assert m["total"] == sum(m["weights"].values()) + m["kv_cache"] + m["activations"]
    text = run_cli("plan", "specs/tinyllama-1.1b.arch", "--target", target).stdout
    assert "one chip, no tensor parallelism and no collectives" in text
    assert "collectives in each layer" not in text and "fits: yes" in text


def test_weights_by_kind_match_closed_forms_on_one_chip(write_spec):
    # every matrix here is whole tiles: attention 4 x d x d (kv = heads), mlp 3 x d x 512; bf16; the program
    # DRAM-shards the fused QKV [256, 768] and wo [256, 256] over 12 banks, each a whole shard of 32-column tiles:
    # wo occupies 384 columns (likewise the MLP's)
    model = load_model(write_spec(spec_text(8)))
    w = plan_report(model, target_of("n150"), None, formats_of("bf16"), 1, None)["memory_per_chip"]["weights"]
    assert w["attention"] == 3 * (256 * 768 + 256 * 384) * 2
    assert w["mlp"] == 3 * (2 * 256 * 768 + 512 * 384) * 2  # w1/w3 [256, 512] occupy 768 columns, w2 [512, 256] 384
    # the head [256, 512] is one DRAM-sharded column chunk over the 12 banks: shards of 64 columns, 768 in all;
    # the embedding table is interleaved row-major, a page per row: 512 rows booked as 12 banks x 43
    assert w["embedding"] == 12 * 43 * 256 * 2 and w["head"] == 256 * 768 * 2
    # norm vectors are TILE tensors: one row padded to 32, 8 tiles booked as 12 (a tile in every bank)
    assert w["norm"] == (2 * 3 + 1) * 12 * 32 * 32 * 2


@pytest.mark.parametrize("kv,role", [(1, "replicate"), (2, "kv_copies")])
def test_replicated_kv_heads_on_t3k(run_cli, write_spec, kv, role):
    path = write_spec(spec_text(kv))
    plan = json.loads(run_cli("plan", path, "--target", "t3k", "--json").stdout)
    for name in ("layers.*.attn.wk.weight", "layers.*.attn.wv.weight"):
        assert plan["placements"][name] == role
        assert plan["kv_copies"][name] == 8 // kv
    assert plan["placements"]["layers.*.attn.wq.weight"] == "column"
    # per chip and layer: 1 query head (32 x 256), one whole KV head each for k and v (32 x 256),
    # wo's 32 input rows; the KV copies count in full on every chip holding one. The program DRAM-shards both
    # matrices over the 12 banks, each bank a whole shard of 32 columns: the fused QKV [256, 96] and wo [32, 256]
    # occupy 384 columns each
    head_dim, d, banked = 32, 256, 12 * 32
    assert plan["memory_per_chip"]["weights"]["attention"] == 3 * (d * banked + head_dim * banked) * 2
    text = run_cli("plan", path, "--target", "t3k").stdout
    wk = re.search(r"layers\.\*\.attn\.wk\.weight +(.*)", text).group(1)
    assert "column-parallel" not in wk and ("replicated" in wk or "copied" in wk)


@pytest.mark.parametrize("target,mesh,dp", [("galaxy", "1x32", False), ("galaxy", "8x4", True), ("t3k", "1x4", False),
                                            ("t3k", "1x2", False)])
def test_plan_and_compile_agree_on_meshes_and_dp(models, target, mesh, dp):
    model = models("llama-3.1-70b.arch")
    for dtype in ("bf16", "bfloat8_b"):
        plan = plan_report(model, target_of(target), mesh_of(mesh), formats_of(dtype), 1, None, dp)
        try:
            compile_source(model, "x", target_of(target), formats_of(dtype), mesh_of(mesh), dp)
            accepted = True
        except ArchError:
            accepted = False
        assert plan["fits"] is accepted, (mesh, dtype)


def test_data_parallel_replicas_split_the_batch(models):
    model = models("llama-3.1-8b.arch")
    alone = plan_report(model, target_of("galaxy"), None, formats_of("bfloat8_b"), 8, 4096)["memory_per_chip"]
    split = plan_report(model, target_of("galaxy"), None, formats_of("bfloat8_b"), 8, 4096, dp=True)["memory_per_chip"]
    assert split["kv_cache"] * 4 == alone["kv_cache"] == kv_closed_form(32, 8, 128, 8, 4096, 8)
    assert split["max_batch"] >= 4 * alone["max_batch"] - 3


def _mock_available() -> bool:
    try:
        import torch  # noqa: F401
        import ttnn  # noqa: F401

        from ttspec.mock.toolchain import riscv_gcc
    except ImportError:
        return False
    return riscv_gcc() is not None


@pytest.mark.skipif(not _mock_available(), reason="needs torch, ttnn and the mock device's toolchain")
def test_copied_kv_heads_match_ttnn_allocator_on_mock_t3k(models):
    """TinyLlama's 4 KV heads over 8 chips: each chip holds one whole 64-wide KV head (copied on 2
    chips), not an eighth of the projection. ttnn's allocator on the mock T3K holds the weights
    plus a little more (rope tables); counting an eighth would fall 5.8 MB short of it."""
    import torch

    from ttspec.runtime.device import run_worker

    model = models("tinyllama-1.1b.arch")
    source = compile_source(model, "specs/tinyllama-1.1b.arch", target_of("t3k"), formats_of("bf16"))
    result = run_worker(model, source, "mock", "t3k", state=None, tokens=torch.zeros(1, 64, dtype=torch.int64))
    predicted = plan_report(model, target_of("t3k"), None, formats_of("bf16"), 1,
                            None)["memory_per_chip"]["weights_total"]
    assert predicted <= result["dram_bytes_allocated"] <= predicted + 4 * 2**20


# ---------------------------------------------------------------- softcapped attention's logits
def test_softcapped_attention_holds_its_logits(write_spec):
    """Softcapped attention is composed from matmul, tanh and softmax, so each chip holds the
    [heads, seq, seq] logits twice (an op's input and output) plus the [seq, seq] mask: the
    activation estimate grows by (2 x local heads + 1) x seq^2 x 2 bytes per sequence, and the
    largest context is still the edge of what fits."""
    plain = load_model(write_spec(spec_text(2, bound=""), "plain.arch"))
    capped = load_model(write_spec(spec_text(2, bound="").replace("rope = rope())", "rope = rope(), softcap = 50.0)"),
                                   "capped.arch"))
    for target, devices in (("n150", 1), ("n300", 2)):
        for batch, seq in ((1, 64), (3, 1000)):
            a, b = _at(plain, target, "bf16", batch, seq), _at(capped, target, "bf16", batch, seq)
            padded = -(-seq // TILE) * TILE
            assert b["activations"] - a["activations"] == (2 * 8 // devices + 1) * padded ** 2 * 2 * batch
        for batch in (1, 4):
            context = _at(capped, target, "bf16", batch, None)["max_context"]
            assert 0 < context < _at(plain, target, "bf16", batch, None)["max_context"]
            assert _at(capped, target, "bf16", batch, context)["fits_at_seq"]
            assert not _at(capped, target, "bf16", batch, context + TILE)["fits_at_seq"]
            largest = _at(capped, target, "bf16", 1, context)["max_batch"]
            assert _at(capped, target, "bf16", largest, context)["fits_at_seq"]
            assert not _at(capped, target, "bf16", largest + 1, context)["fits_at_seq"]


# ---------------------------------------------------------------- compile --batch: the KV cache it is sized for
def test_compile_sizes_the_kv_cache_for_its_batch(run_cli, tmp_path):
    """`compile --batch B` bakes the longest context that fits B users' KV cache and says so; the
    program's per-position cache bytes are the closed form (K and V of 32 layers x 8 KV heads x 128, bf16)."""
    contexts = {}
    for batch in (1, 8, 32):
        out_file = tmp_path / f"b{batch}.py"
        out = run_cli("compile", "specs/llama-3.1-8b.arch", "--target", "n150", "--weights-dtype", "bfloat8_b",
                      "--batch", str(batch), "-o", out_file)
        assert out.returncode == 0, out.stderr
        source = out_file.read_text()
        per_position = 2 * 32 * 8 * 128 * 2
        assert f"KV_CACHE_BYTES_PER_POSITION = {per_position}  #" in source
        context = int(re.search(r"^MAX_CONTEXT = (\d+)", source, re.M).group(1))
        plan = json.loads(run_cli("plan", "specs/llama-3.1-8b.arch", "--target", "n150", "--weights-dtype",
                                  "bfloat8_b", "--batch", str(batch), "--json").stdout)
        assert context == plan["memory_per_chip"]["max_context"]
        kv = kv_closed_form(32, 8, 128, batch, context, 1)
        assert f"KV cache: {batch} user(s) x {context:,} positions, {kv:,} bytes" in out.stdout
        assert f"sized for {batch} user{'s' if batch > 1 else ''} at that context, {kv:,} bytes" in source
        free = int(re.search(r"DRAM_BESIDE_WEIGHTS = (\d+)", source).group(1))
        prefill = int(re.search(r"PREFILL_BYTES_PER_POSITION = (\d+)", source).group(1))
        # the batch's cache and one prompt's prefill fit beside the weights (the plan's activations are
        # the whole batch's prefill, so at least one prompt's)
        weights = plan["memory_per_chip"]["weights_total"]
        assert kv + context * prefill <= free == TARGETS["n150"].dram_per_chip - weights
        contexts[batch] = context
    assert contexts[1] > contexts[8] > contexts[32] > 0
    out = run_cli("compile", "specs/llama-3.1-8b.arch", "--target", "n150", "--batch", "33")
    assert out.returncode == 2 and "a decode step holds 1 to 32" in out.stderr
