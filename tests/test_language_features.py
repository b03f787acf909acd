"""The language features Gemma, Gemma 2, Mistral and Qwen3 need (issue 10), each against an
outside truth: scaling a tensor by a number (`x * c`, `c * x`, `x / c`: the `scale` op), the
RMSNorm weight offset (Gemma's 1 + w), `softcap(x, cap)`, sliding-window and softcapped
attention (`attend` / `attention` `window`, `softcap`), and per-head q/k norms (`qk_norm`).

Truths: closed forms written here in plain torch (fp64), HF transformers' tiny Mistral, Qwen3,
Gemma and Gemma 2 (random weights renamed by hand), and HF's own sliding-window mask function.
Programs: the torch reference (fp32, elementwise), the n150 TT-NN program in golden mode (bf16:
PCC and relative error) and the n300 program, elementwise against the n150 one.
"""

import math
import re

import pytest

from ttspec.driver import compile_source, load_model
from ttspec.errors import ArchError
from ttspec.targets import get_target

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("ttnn")

from ttspec.analysis.interpreters import count_params, forward_flops  # noqa: E402
from ttspec.runtime.runner import random_state_dict, run_golden, run_torch, stored_shapes  # noqa: E402

from .conftest import formats_of, mesh_of, target_of  # noqa: E402
from .numerics import assert_same_up_to_rounding  # noqa: E402
from .test_references import PCC_MIN, REL_MAX, pcc, rel_err, tokens_for  # noqa: E402
from .test_torch_backend import randomize  # noqa: E402

VOCAB, D = 256, 128


# ---------------------------------------------------------------- specs
def spec(name, *, embed="", norm="", attn="", final_norm="", head="lm_head(h, 256)", heads=4, kv=2, layers=2):
    """A small Llama-shaped decoder with each feature switched in by text: `embed` follows the
    embedding (`* 8.0`), `norm` the pre-attention/MLP norms' arguments, `attn` the attention's."""
    return f"""model {name}
input tokens: int32[batch, seq] where seq <= 128
block decoder(x: [batch, seq, {D}]) -> [batch, seq, {D}] kind decoder {{
    x = x + attention(rmsnorm(x, eps = 1e-6{norm}) as attn_norm, heads = {heads}, kv_heads = {kv},
                      rope = rope(theta = 10000.0){attn}) as attn
    x = x + swiglu(rmsnorm(x, eps = 1e-6{norm}) as mlp_norm, hidden = 256) as mlp
    return x
}}
h = token_embedding(tokens, {VOCAB}, {D}) as embedding{embed}
h = repeat({layers}) decoder(h) as layers
h = rmsnorm(h, eps = 1e-6{final_norm}) as norm
output logits = {head}
"""


# ---------------------------------------------------------------- closed forms (fp64)
def rms(x, w, eps=1e-6, offset=0.0):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * (offset + w)


def rotate(x, theta=10000.0):
    """Rotate-half RoPE (HF's), written out."""
    s, d = x.shape[-2], x.shape[-1]
    inv = 1.0 / theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = torch.arange(s, dtype=torch.float64)[:, None] * inv[None]
    cos, sin = torch.cat([angles.cos()] * 2, -1), torch.cat([angles.sin()] * 2, -1)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def window_mask(s, window=None):
    """True where query i may read key j: j <= i and, with a window W, j > i - W (the last W
    tokens, itself included)."""
    i, j = torch.arange(s)[:, None], torch.arange(s)[None, :]
    allowed = j <= i
    if window is not None:
        allowed &= j > i - window
    return allowed


def attention_reference(x, w, p, heads, kv, *, window=None, softcap=None, qk_norm=False, scale=None):
    b, s, d = x.shape
    hd = w[f"{p}.wq.weight"].shape[0] // heads

    def proj(name, n):
        return (x @ w[f"{p}.{name}.weight"].T).reshape(b, s, n, hd).transpose(1, 2)

    q, k, v = proj("wq", heads), proj("wk", kv), proj("wv", kv)
    if qk_norm:
        q, k = rms(q, w[f"{p}.q_norm.weight"]), rms(k, w[f"{p}.k_norm.weight"])
    q, k = rotate(q), rotate(k)
    k, v = k.repeat_interleave(heads // kv, 1), v.repeat_interleave(heads // kv, 1)
    logits = q @ k.transpose(-1, -2) * (hd ** -0.5 if scale is None else scale)
    if softcap is not None:
        logits = softcap * torch.tanh(logits / softcap)
    logits = logits.masked_fill(~window_mask(s, window), float("-inf"))
    y = (logits.softmax(-1) @ v).transpose(1, 2).reshape(b, s, heads * hd)
    return y @ w[f"{p}.wo.weight"].T


def reference(w, tokens, *, embed_scale=1.0, offset=0.0, final_softcap=None, heads=4, kv=2, layers=2, **attn):
    w = {k: v.double() for k, v in w.items()}
    x = w["embedding.weight"][tokens] * embed_scale
    for i in range(layers):
        p = f"layers.{i}"
        x = x + attention_reference(rms(x, w[f"{p}.attn_norm.weight"], offset=offset), w, f"{p}.attn", heads, kv,
                                    **attn)
        n = rms(x, w[f"{p}.mlp_norm.weight"], offset=offset)
        gate = torch.nn.functional.silu(n @ w[f"{p}.mlp.w1.weight"].T)
        x = x + (gate * (n @ w[f"{p}.mlp.w3.weight"].T)) @ w[f"{p}.mlp.w2.weight"].T
    logits = rms(x, w["norm.weight"], offset=offset) @ w["lm_head.weight"].T
    if final_softcap is not None:
        logits = final_softcap * torch.tanh(logits / final_softcap)
    return logits.float()


# name: (spec keyword texts, closed-form options). Each feature alone, then all together.
FEATURES = {
    "scale_mul": (dict(embed=" * 2.5"), dict(embed_scale=2.5)),
    "scale_rmul": (dict(embed=" * 0.0 + 3.0 * token_embedding(tokens, 256, 128) as embedding2"), None),
    "scale_div": (dict(embed=" / 0.4"), dict(embed_scale=2.5)),
    "scale_expression": (dict(embed=" * 128 ** 0.5"), dict(embed_scale=128 ** 0.5)),
    "norm_offset": (dict(norm=", offset = 1.0", final_norm=", offset = 1.0"), dict(offset=1.0)),
    "final_softcap": (dict(head="softcap(lm_head(h, 256), 2.0)"), dict(final_softcap=2.0)),
    "window": (dict(attn=", window = 16"), dict(window=16)),
    "window_1": (dict(attn=", window = 1"), dict(window=1)),
    "attn_softcap": (dict(attn=", softcap = 0.5"), dict(softcap=0.5)),
    "attn_softcap_window": (dict(attn=", softcap = 0.5, window = 16, scale = 256 ** -0.5"),
                            dict(softcap=0.5, window=16, scale=256 ** -0.5)),
    "qk_norm": (dict(attn=", qk_norm = true"), dict(qk_norm=True)),
    "mqa_all": (dict(embed=" * 128 ** 0.5", norm=", offset = 1.0", final_norm=", offset = 1.0",
                     attn=", qk_norm = true, softcap = 0.5, window = 16, scale = 64 ** -0.5",
                     head="softcap(lm_head(h, 256), 2.0)", kv=1),
                dict(embed_scale=128 ** 0.5, offset=1.0, qk_norm=True, softcap=0.5, window=16, scale=64 ** -0.5,
                     final_softcap=2.0, kv=1)),
}
CLOSED = sorted(name for name, (_, ref) in FEATURES.items() if ref is not None)


def feature_model(write_spec, name):
    text_args, _ = FEATURES[name]
    path = write_spec(spec(name, **text_args), f"{name}.arch")
    return path, load_model(path)


def feature_state(model, name, seed=3):
    """Random weights, with the embedding at a scale where the features matter (logits of a few
    units: the softcaps bend them) and Gemma-style norm weights near zero for offset 1.0."""
    state = random_state_dict(model, seed)
    out = {}
    for key, value in state.items():
        if key.startswith("embedding"):
            value = value * 3
        elif "norm" in key and FEATURES[name][1] and FEATURES[name][1].get("offset"):
            value = value - 1.0
        out[key] = value
    return out


@pytest.mark.parametrize("name", CLOSED)
def test_torch_reference_is_the_closed_form(write_spec, name):
    path, model = feature_model(write_spec, name)
    state = feature_state(model, name)
    tokens = tokens_for(VOCAB, seq=80)
    _, options = FEATURES[name]
    expected = reference(state, tokens, **options)
    got = run_torch(model, str(path), state, tokens).float()
    err = (got - expected).abs().max().item()
    print(f"{name}: torch vs closed form max abs error {err:.2e}, max |logit| {expected.abs().max():.2f}")
    assert expected.abs().max() > 1.0
    assert err <= 1e-4, err


def test_scalar_on_the_left_is_the_same_op(write_spec):
    """`3.0 * x` is x scaled by 3; `x * 0.0` zeroes a tensor (the `scale_rmul` spec adds the two)."""
    path, model = feature_model(write_spec, "scale_rmul")
    state = feature_state(model, "scale_rmul")
    tokens = tokens_for(VOCAB, seq=64)
    # the first embedding is multiplied by 0, the second by 3: the closed form with the second table
    renamed = dict(state, **{"embedding.weight": state["embedding2.weight"]})
    expected = reference(renamed, tokens, embed_scale=3.0)
    got = run_torch(model, str(path), state, tokens).float()
    assert (got - expected).abs().max().item() <= 1e-4


def test_each_feature_changes_the_result(write_spec):
    """The features are not no-ops at these sizes: leaving one out moves the closed form far."""
    model = load_model(write_spec(spec("plain"), "plain.arch"))
    tokens = tokens_for(VOCAB, seq=80)
    for name in CLOSED:
        options = FEATURES[name][1]
        if "qk_norm" in options:
            continue  # different parameters; see test_qk_norm_matches_qwen3
        state = feature_state(model, name)
        change = rel_err(reference(state, tokens, **options), reference(state, tokens))
        print(f"{name}: relative change {change:.3f}")
        assert change > 0.02, name


# ---------------------------------------------------------------- TT-NN: golden n150 == torch, n300 == n150
def golden_checks(model, path, state, tokens, reference_logits, targets=(("n150", None), ("n300", None))):
    results = {}
    for target, mesh in targets:
        source = compile_source(model, str(path), target_of(target), formats_of("bf16"), mesh_of(mesh))
        got, _ = run_golden(model, str(path), get_target(target), state, tokens, source=source)
        got = got.float()
        p, r = pcc(got, reference_logits), rel_err(got, reference_logits)
        print(f"{path.stem} {target} {mesh or ''}: pcc {p:.6f} rel {r:.4f}")
        assert p >= PCC_MIN and r <= REL_MAX, (target, mesh, p, r)
        results[(target, mesh)] = got
    return results


def assert_mesh_equals_single(single, mesh, reference_logits):
    """The same weights on two chips differ from one chip only in the order of bf16 sums: both within
    the bf16 budget of the fp32 reference, the mesh as accurate as the single chip and within the
    budget of it (tests/numerics.py: robust statistics relative to mean |logit|, so these models'
    larger activations, e.g. Gemma's embedding * sqrt(hidden), are measured at their own scale)."""
    assert_same_up_to_rounding(mesh, single, reference_logits, "mesh")


@pytest.mark.parametrize("name", CLOSED)
def test_golden_programs_match_the_torch_reference(write_spec, name):
    path, model = feature_model(write_spec, name)
    state = feature_state(model, name)
    tokens = tokens_for(VOCAB, seq=80)  # padded to 96 in the TT-NN programs
    ref = run_torch(model, str(path), state, tokens).float()
    results = golden_checks(model, path, state, tokens, ref)
    assert_mesh_equals_single(results[("n150", None)], results[("n300", None)], ref)


def test_generated_code_uses_the_ttnn_ops(write_spec):
    unwrapped = lambda code: "".join(code.split()).replace(",)", ")")  # its tokens, however the lines break
    path, model = feature_model(write_spec, "mqa_all")
    n150 = compile_source(model, str(path), target_of("n150"))
    assert "ttnn.multiply(ttnn.embedding(tokens,self.embedding,layout=ttnn.TILE_LAYOUT),11.313708498984761)" in \
        unwrapped(n150)  # the embedding scale
    assert 'weights.norm(prefix + "attn_norm", offset=1.0)' in n150  # 1 + w folded into the weight
    assert "ttnn.transformer.split_query_key_value_and_split_heads" in n150  # fused QKV despite the q/k norms
    assert "q = ttnn.rms_norm(q, epsilon=1e-06, weight=self.q_norm)" in n150
    assert "softcapped_attention(q,k,v,self.device,scale=0.125,softcap=0.5,window=16)" in unwrapped(n150)
    assert "self.kv_cache.decode_softcapped(q, k, v, scale=0.125, softcap=0.5, window=16)" in n150  # decode steps
    assert "ttnn.multiply(ttnn.tanh(ttnn.multiply(" in n150
    path, model = feature_model(write_spec, "window")
    n150 = unwrapped(compile_source(model, str(path), target_of("n150")))
    assert "chunked_sdpa(q,k,v,self.sdpa_prefill,self.sdpa_prefill_kernel,is_causal=True,scale=0.17677669529663687," \
        "sliding_window_size=16)" in n150  # the SDPA with its prefill configs (lower_sdpa.py)
    assert "softcapped_attention" not in n150


# ---------------------------------------------------------------- sharding
def test_per_head_norms_keep_heads_split(write_spec):
    from ttspec.driver import lower
    from ttspec.ir.layout import Layout, Placement
    from ttspec.passes.shard import plan_sharding

    _, model = feature_model(write_spec, "qk_norm")
    _, plan = plan_sharding(lower(model), (1, 2))
    assert plan.placements["layers.*.attn.q_norm.weight"] == Placement.REPLICATE
    norms = [k for k in plan.layouts if k.startswith("layers.*.attn.") and "rms_norm" in k]
    assert len(norms) == 2 and all(plan.layouts[k] == Layout.SPLIT for k in norms), norms
    # no collective is spent on the q/k norms: the four of a Llama layer, no more
    layer = [c for c in plan.collectives if c.node.startswith("layers.*.")]
    assert len(layer) == 4, [(c.op, c.reason) for c in layer]


def test_scale_keeps_partial_sums_and_softcap_keeps_the_vocab_split(write_spec):
    from ttspec.driver import lower
    from ttspec.ir.layout import Layout
    from ttspec.passes.shard import plan_sharding

    text = spec("partial", head="softcap(lm_head(h, 256), 2.0)").replace(
        "x = x + swiglu(rmsnorm(x, eps = 1e-6) as mlp_norm, hidden = 256) as mlp",
        "x = x + swiglu(rmsnorm(x, eps = 1e-6) as mlp_norm, hidden = 256) as mlp * 0.5")
    _, plan = plan_sharding(lower(load_model(write_spec(text))), (1, 2))
    scaled = [k for k in plan.layouts if k.startswith("layers.*.") and k.endswith("scale")]
    assert [plan.layouts[k] for k in scaled] == [Layout.PARTIAL]  # the row-parallel w2's partial sums, scaled
    capped = [k for k in plan.layouts if not k.startswith("layers") and k.endswith("softcap")]
    assert [plan.layouts[k] for k in capped] == [Layout.SPLIT]  # the vocabulary split: no gather before it


def test_per_head_norm_over_padded_heads_is_refused_for_ttnn(run_cli, write_spec):
    """head_dim 16 is zero-padded to 32 per head in TT-NN programs, which would change an RMS over
    head_dim: refused with the reason (the torch target runs it)."""
    path = write_spec(spec("hd16", attn=", qk_norm = true, head_dim = 16"))
    result = run_cli("check", path, "--target", "n150")
    assert result.returncode == 1
    assert "a per-head rms_norm over head_dim 16 is not lowered to TT-NN" in result.stderr, result.stderr
    assert "multiple of 32" in result.stderr
    assert run_cli("compile", path, "--target", "torch", "-o", path.with_suffix(".py")).returncode == 0


# ---------------------------------------------------------------- counts and FLOPs
def test_params_and_flops(write_spec):
    _, plain = feature_model(write_spec, "window")
    _, qk = feature_model(write_spec, "qk_norm")
    hd = D // 4
    assert count_params(qk.graph) - count_params(plain.graph) == 2 * 2 * hd  # q_norm, k_norm: [head_dim] each
    _, offset = feature_model(write_spec, "norm_offset")
    assert count_params(offset.graph) == count_params(plain.graph)  # the offset is not a parameter
    # attention FLOPs: each query reads min(window, seq) keys with a window, every key without
    full = load_model(write_spec(spec("full"), "full.arch"))
    seq, heads = 96, 4
    per_key = 2 * heads * (hd + hd) * seq * 2  # q k^T and the sum over v, 2 layers, batch 1
    assert forward_flops(full, seq=seq).by_op["attend"] == per_key * seq
    assert forward_flops(plain, seq=seq).by_op["attend"] == per_key * 16
    assert forward_flops(plain, seq=8).by_op["attend"] == 2 * heads * (hd + hd) * 8 * 2 * 8  # window > seq


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("attn,message,hint", [
    (", window = 0", "window must be a positive number of tokens, got 0", "the last W tokens"),
    (", window = -4", "window must be a positive number of tokens, got -4", "sliding_window"),
    (", window = 16, causal = false", "a sliding window needs causal attention", "drop `causal = false`"),
    (", softcap = 0.0", "softcap must be a positive finite number, got 0.0", "softcap * tanh"),
    (", softcap = -50.0", "softcap must be a positive finite number, got -50.0", "Gemma 2 uses 50.0"),
    (", window = 2.5", "expects int, got float", None),
    (", qk_norm = 1", "expects bool, got int", None),
])
def test_bad_attention_options(write_spec, attn, message, hint):
    path = write_spec(spec("bad", attn=attn))
    with pytest.raises(ArchError) as info:
        load_model(path)
    text = info.value.render()
    assert message in text and re.search(r"spec\.arch:[45]:", text), text  # the user's attention call
    if hint:
        assert hint in text, text


@pytest.mark.parametrize("expr,message,hint", [
    ('h * "two"', "cannot scale a tensor by string", "x * 2.0"),
    ("h * true", "cannot scale a tensor by bool", "x * 2.0"),
    ("h / 0.0", "division by zero in `h / 0.0`", None),
    ("h / 0", "division by zero", None),
    ("2.0 / h", "cannot apply `/` to float and tensor float[batch, seq, 64]", "`*` or `/` by a number"),
    ("h + 1.0", "cannot apply `+` to tensor float[batch, seq, 64] and float", "`*` or `/` by a number"),
    ("h * seq", "`seq` is a symbolic dim", "scale by a constant"),
    ("softcap(h, 0.0)", "softcap needs a positive finite cap, got 0.0", "30.0"),
    ("softcap(h, -1.0)", "softcap needs a positive finite cap, got -1.0", None),
    ("softcap(h, 1)", None, None),  # an int cap is a float
    ("rmsnorm(h, offset = 1)", None, None),
    ('rmsnorm(h, offset = "one")', "expects float, got string", None),
])
def test_bad_scalars(write_spec, expr, message, hint):
    text = ("model m\ninput tokens: int32[batch, seq] where seq <= 64\n"
            f"h = token_embedding(tokens, 64, 64) as e\ng = {expr}\noutput logits = lm_head(g, 64)\n")
    path = write_spec(text)
    if message is None:
        load_model(path)
        return
    with pytest.raises(ArchError) as info:
        load_model(path)
    rendered = info.value.render()
    assert message in rendered and "spec.arch:4:" in rendered, rendered
    if hint:
        assert hint in rendered, rendered


def test_scale_parenthesises_inlined_sums(write_spec):
    """(a + b) * 2.0 and (a + b) * c keep their parentheses in the generated torch code."""
    text = ("model m\ninput tokens: int32[batch, seq] where seq <= 64\n"
            "h = token_embedding(tokens, 64, 64) as e\ng = (h + h) * 2.0 + (h + h) * (h + h)\n"
            "output logits = lm_head(g, 64)\n")
    path = write_spec(text)
    model = load_model(path)
    source = compile_source(model, str(path), target_of("torch"))
    assert "(h + h) * 2.0 + (h + h) * (h + h)" in source
    state = random_state_dict(model, 1)
    tokens = tokens_for(64, seq=8)
    h = state["e.weight"].double()[tokens]
    expected = (((h + h) * 2.0 + (h + h) * (h + h)) @ state["lm_head.weight"].double().T).float()
    torch.testing.assert_close(run_torch(model, str(path), state, tokens).float(), expected, atol=1e-4, rtol=1e-5)


# ---------------------------------------------------------------- the sliding-window boundary: HF's own mask code
def test_window_boundary_is_hfs():
    """transformers' sliding_window_causal_mask_function (masking_utils) and ttnn's SDPA golden
    mask agree with `window_mask` above: query i sees keys i - W < j <= i (W keys, itself included)."""
    import ttnn
    from transformers import masking_utils

    s = 40
    for window in (1, 2, 5, 16, 39, 40, 64):
        fn = masking_utils.sliding_window_causal_mask_function(window)
        i, j = torch.arange(s)[:, None], torch.arange(s)[None, :]
        hf = fn(torch.tensor(0), torch.tensor(0), i, j)  # HF's mask functions take index tensors
        ours = window_mask(s, window)
        assert torch.equal(hf, ours), window
        assert int(ours[-1].sum()) == min(window, s)
        golden = ttnn.get_golden_function(ttnn.transformer.scaled_dot_product_attention)
        q, k = torch.randn(1, 1, s, 32), torch.randn(1, 1, s, 32)
        v = torch.eye(s).reshape(1, 1, s, s)  # the output is the attention weights themselves
        probs = golden(q, k, v, is_causal=True, sliding_window_size=window)[0, 0]
        assert torch.equal(probs > 0, ours), window


def test_generated_attention_mask_is_hfs(write_spec):
    """The softcapped-attention helper of a TT-NN program builds HF's sliding-window mask."""
    from transformers import masking_utils

    from ttspec.runtime.golden import GoldenTTNN
    from ttspec.runtime.runner import load_program

    path, model = feature_model(write_spec, "attn_softcap_window")
    module = load_program(compile_source(model, str(path), target_of("n150")), "mask_n150")
    module.ttnn = GoldenTTNN()
    s = 64
    i, j = torch.arange(s)[:, None], torch.arange(s)[None, :]
    for window in (None, 1, 16, 63, 64, 100):
        mask = module.ttnn.get_device_tensors(module.attention_mask(s, window, module.open_device()))[0]  # 1x1 mesh
        assert mask.shape == (1, 1, s, s)
        fn = masking_utils.causal_mask_function if window is None else \
            masking_utils.sliding_window_causal_mask_function(window)
        hf = fn(torch.tensor(0), torch.tensor(0), i, j).expand(s, s)
        assert torch.equal(mask[0, 0] == 0, hf), window
        assert torch.equal(mask[0, 0] == float("-inf"), ~hf), window


def test_features_on_t3k_with_copied_kv_heads(write_spec):
    """8 heads, 2 KV heads over 8 devices (each KV head copied to 4): q/k norms, window and softcap
    per device, as on one chip."""
    text = spec("t3k", heads=8, attn=", head_dim = 32, qk_norm = true, softcap = 0.5, window = 16", embed=" * 2.0",
                head="softcap(lm_head(h, 256), 2.0)")
    path = write_spec(text, "t3k.arch")
    model = load_model(path)
    state = feature_state(model, "window")
    tokens = tokens_for(VOCAB, seq=80)
    ref = run_torch(model, str(path), state, tokens).float()
    results = golden_checks(model, path, state, tokens, ref, targets=(("n150", None), ("t3k", "1x8")))
    assert_mesh_equals_single(results[("n150", None)], results[("t3k", "1x8")], ref)


# ---------------------------------------------------------------- HF tiny models
def llama_like_weights(hf, layers, prefix=lambda i: f"layers.{i}", gemma2=False, tied=False):
    """HF Llama-family names -> this test's labels."""
    s = hf.state_dict()
    out = {"embedding.weight": s["model.embed_tokens.weight"], "norm.weight": s["model.norm.weight"]}
    if not tied:
        out["lm_head.weight"] = s["lm_head.weight"]
    for i in range(layers):
        hf_layer, ours = f"model.layers.{i}.", prefix(i) + "."
        for name, hf_name in (("wq", "q_proj"), ("wk", "k_proj"), ("wv", "v_proj"), ("wo", "o_proj"),
                              ("q_norm", "q_norm"), ("k_norm", "k_norm")):
            if f"{hf_layer}self_attn.{hf_name}.weight" in s:
                out[f"{ours}attn.{name}.weight"] = s[f"{hf_layer}self_attn.{hf_name}.weight"]
        for name, hf_name in (("w1", "gate_proj"), ("w3", "up_proj"), ("w2", "down_proj")):
            out[f"{ours}mlp.{name}.weight"] = s[f"{hf_layer}mlp.{hf_name}.weight"]
        out[f"{ours}attn_norm.weight"] = s[f"{hf_layer}input_layernorm.weight"]
        if gemma2:
            out[f"{ours}post_attn_norm.weight"] = s[f"{hf_layer}post_attention_layernorm.weight"]
            out[f"{ours}mlp_norm.weight"] = s[f"{hf_layer}pre_feedforward_layernorm.weight"]
            out[f"{ours}post_mlp_norm.weight"] = s[f"{hf_layer}post_feedforward_layernorm.weight"]
        else:
            out[f"{ours}mlp_norm.weight"] = s[f"{hf_layer}post_attention_layernorm.weight"]
    return out


def hf_run(config, tokens, seed=1):
    config._attn_implementation = "eager"
    hf = transformers.AutoModelForCausalLM.from_config(config).float().eval()
    randomize(hf, seed=seed)
    with torch.no_grad():
        return hf, hf(tokens).logits


def compare_with_hf(write_spec, name, text, state, tokens, expected, meshes=(("n300", None),)):
    path = write_spec(text, f"{name}.arch")
    model = load_model(path)
    assert set(state) == set(stored_shapes(model))
    ref = run_torch(model, str(path), state, tokens).float()
    err = (ref - expected).abs().max().item()
    print(f"{name}: torch vs HF max abs error {err:.2e}; max |logit| {expected.abs().max():.2f}")
    assert expected.abs().max() > 1.0
    assert err <= 1e-4, err
    results = golden_checks(model, path, state, tokens, expected, targets=(("n150", None), *meshes))
    for key in results:
        if key != ("n150", None):
            assert_mesh_equals_single(results[("n150", None)], results[key], ref)
    return model, ref


MISTRAL = """model mistral_tiny
input tokens: int32[batch, seq] where seq <= 128
block decoder(x: [batch, seq, 128]) -> [batch, seq, 128] kind decoder {
    x = x + attention(rmsnorm(x, eps = 1e-5) as attn_norm, heads = 4, kv_heads = 2,
                      rope = rope(theta = 10000.0), window = 24) as attn
    x = x + swiglu(rmsnorm(x, eps = 1e-5) as mlp_norm, hidden = 256) as mlp
    return x
}
h = token_embedding(tokens, 256, 128) as embedding
h = repeat(2) decoder(h) as layers
h = rmsnorm(h, eps = 1e-5) as norm
output logits = lm_head(h, 256)
"""


def test_sliding_window_matches_hf_mistral(write_spec):
    config = transformers.MistralConfig(
        vocab_size=256, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, max_position_embeddings=128, rms_norm_eps=1e-5, sliding_window=24,
        tie_word_embeddings=False, rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    tokens = tokens_for(256, seq=96)  # four windows long
    hf, expected = hf_run(config, tokens)
    state = llama_like_weights(hf, 2)
    model, _ = compare_with_hf(write_spec, "mistral", MISTRAL, state, tokens, expected)
    # the window matters here, and one token more or less is already visible
    for window in ("none", "23", "25"):
        path = write_spec(MISTRAL.replace("window = 24", f"window = {window}"), f"mistral_{window}.arch")
        other = run_torch(load_model(path), str(path), state, tokens).float()
        print(f"window {window}: rel err against HF {rel_err(other, expected):.4f}")
        assert (other - expected).abs().max().item() > 1e-2, window


QWEN3 = """model qwen3_tiny
input tokens: int32[batch, seq] where seq <= 128
block decoder(x: [batch, seq, 128]) -> [batch, seq, 128] kind decoder {
    x = x + attention(rmsnorm(x, eps = 1e-6) as attn_norm, heads = 4, kv_heads = 2, head_dim = 64,
                      rope = rope(theta = 10000.0), qk_norm = true, qk_norm_eps = 1e-6) as attn
    x = x + swiglu(rmsnorm(x, eps = 1e-6) as mlp_norm, hidden = 256) as mlp
    return x
}
h = token_embedding(tokens, 256, 128) as embedding
h = repeat(2) decoder(h) as layers
h = rmsnorm(h, eps = 1e-6) as norm
output logits = lm_head(h, 256)
"""


def test_qk_norm_matches_qwen3(write_spec):
    # head_dim 64 with hidden 128 and 4 heads: heads * head_dim (256) differs from hidden, as in Qwen3
    config = transformers.Qwen3Config(
        vocab_size=256, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=64, max_position_embeddings=128, rms_norm_eps=1e-6,
        tie_word_embeddings=False, rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    tokens = tokens_for(256, seq=96)
    hf, expected = hf_run(config, tokens)
    state = llama_like_weights(hf, 2)
    assert "layers.0.attn.q_norm.weight" in state and state["layers.0.attn.q_norm.weight"].shape == (64,)
    model, _ = compare_with_hf(write_spec, "qwen3", QWEN3, state, tokens, expected)
    assert count_params(model.graph) == sum(p.numel() for p in hf.parameters())


GEMMA = """model gemma_tiny
input tokens: int32[batch, seq] where seq <= 128
block decoder(x: [batch, seq, 128]) -> [batch, seq, 128] kind decoder {
    x = x + attention(rmsnorm(x, eps = 1e-6, offset = 1.0) as attn_norm, heads = 4, kv_heads = 1, head_dim = 64,
                      rope = rope(theta = 10000.0), scale = 64 ** -0.5) as attn
    x = x + geglu(rmsnorm(x, eps = 1e-6, offset = 1.0) as mlp_norm, hidden = 256, approximate = true) as mlp
    return x
}
h = token_embedding(tokens, 256, 128) as embedding * 128 ** 0.5
h = repeat(2) decoder(h) as layers
h = rmsnorm(h, eps = 1e-6, offset = 1.0) as norm
output logits = lm_head(h, 256, tied = embedding)
"""


def test_scale_and_norm_offset_match_gemma(write_spec):
    config = transformers.GemmaConfig(
        vocab_size=256, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=1, head_dim=64, max_position_embeddings=128, rms_norm_eps=1e-6,
        hidden_activation="gelu_pytorch_tanh", rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    tokens = tokens_for(256, seq=80)
    hf, expected = hf_run(config, tokens)
    state = llama_like_weights(hf, 2, tied=True)
    model, _ = compare_with_hf(write_spec, "gemma", GEMMA, state, tokens, expected)
    assert count_params(model.graph) == sum(p.numel() for p in hf.parameters())


GEMMA2 = """model gemma2_tiny
input tokens: int32[batch, seq] where seq <= 128
block decoder(x: [batch, seq, 128], window: int = none) -> [batch, seq, 128] kind decoder {
    a = attention(rmsnorm(x, eps = 1e-6, offset = 1.0) as attn_norm, heads = 4, kv_heads = 2, head_dim = 32,
                  rope = rope(theta = 10000.0), scale = 64 ** -0.5, softcap = 5.0, window = window) as attn
    x = x + rmsnorm(a, eps = 1e-6, offset = 1.0) as post_attn_norm
    m = geglu(rmsnorm(x, eps = 1e-6, offset = 1.0) as mlp_norm, hidden = 256, approximate = true) as mlp
    return x + rmsnorm(m, eps = 1e-6, offset = 1.0) as post_mlp_norm
}
h = token_embedding(tokens, 256, 128) as embedding * 128 ** 0.5
h = decoder(h, window = 16) as layer0
h = decoder(h) as layer1
h = rmsnorm(h, eps = 1e-6, offset = 1.0) as norm
output logits = softcap(lm_head(h, 256, tied = embedding), 3.0)
"""


def test_softcaps_and_alternating_windows_match_gemma2(write_spec):
    # softcaps small enough to bend these logits (Gemma 2's own, 50 and 30, would barely touch them)
    config = transformers.Gemma2Config(
        vocab_size=256, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, max_position_embeddings=128, rms_norm_eps=1e-6,
        hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=64, attn_logit_softcapping=5.0,
        final_logit_softcapping=3.0, sliding_window=16, layer_types=["sliding_attention", "full_attention"],
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    tokens = tokens_for(256, seq=80)
    hf, expected = hf_run(config, tokens)
    state = llama_like_weights(hf, 2, prefix=lambda i: f"layer{i}", gemma2=True, tied=True)
    model, ref = compare_with_hf(write_spec, "gemma2", GEMMA2, state, tokens, expected)
    assert count_params(model.graph) == sum(p.numel() for p in hf.parameters())
    assert expected.abs().max() < 3.0  # the final softcap bounds them
    for change in ("softcap = 5.0, ", "window = window"):
        path = write_spec(GEMMA2.replace(change, "" if change.startswith("softcap") else "window = none"),
                          "gemma2_changed.arch")
        other = run_torch(load_model(path), str(path), state, tokens).float()
        assert rel_err(other, expected) > 0.01, change


def test_window_longer_than_the_sequence_is_full_attention(write_spec):
    path, model = feature_model(write_spec, "window")
    state = feature_state(model, "window")
    tokens = tokens_for(VOCAB, seq=16)  # exactly the window: every key is visible
    got = run_torch(model, str(path), state, tokens).float()
    torch.testing.assert_close(got, reference(state, tokens), atol=1e-4, rtol=0)
    assert math.isfinite(got.abs().max().item())
