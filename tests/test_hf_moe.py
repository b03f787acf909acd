"""Mixtures of experts from Hugging Face: `import-hf` of mixtral, qwen2_moe, qwen3_moe and olmoe, their
checkpoints in both of HF's layouts, and the models ttspec refuses by the feature they need.

Truth from outside: the published totals and active counts of the issue (Mixtral-8x7B, Qwen1.5-MoE-A2.7B,
Qwen3-30B-A3B, OLMoE-1B-7B), transformers' own parameter counts on the meta device, the tensors
transformers writes with save_pretrained (one per expert) and holds in memory (fused 3-D), its logits and
its greedy `generate`."""

import json
import math

import numpy as np
import pytest

from ttspec.driver import load_model
from ttspec.importers.hf import import_hf

from .conftest import SPECS

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
T = transformers

# the published config.json of each model (specs/hf/NAME/config.json), the spec import-hf writes of it, and the
# issue's totals and active parameters per token (transformers' counts, input embedding included)
PUBLISHED = {
    "Mixtral-8x7B-v0.1": ("mixtral-8x7b.arch", 46_702_792_704, 12_879_925_248),
    "Qwen1.5-MoE-A2.7B": ("qwen1.5-moe-a2.7b.arch", 14_315_784_192, 2_689_173_504),
    "Qwen3-30B-A3B": ("qwen3-30b-a3b.arch", 30_532_122_624, 3_353_032_704),
    "OLMoE-1B-7B-0924": ("olmoe-1b-7b.arch", 6_919_161_856, 1_282_017_280),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_config_imports_to_the_shipped_spec_and_counts(run_cli, name):
    spec, total, active = PUBLISHED[name]
    text = import_hf(SPECS / "hf" / name, name=load_model(SPECS / spec).name).text
    shipped = (SPECS / spec).read_text()
    assert text.split("\n", 1)[1] == shipped.split("\n", 1)[1]  # the first line names the path imported from
    out = run_cli("params", "--json", SPECS / spec)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert (report["total"], report["active"]) == (total, active)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_transformers_counts_the_same(name):
    """transformers builds each published config on the meta device: its total, and its active count (every
    parameter but the routed experts', plus top_k / experts of theirs), equal the issue's figures."""
    spec, total, active = PUBLISHED[name]
    config = T.AutoConfig.from_pretrained(SPECS / "hf" / name)
    with torch.device("meta"):
        model = T.AutoModelForCausalLM.from_config(config)
    params = dict(model.named_parameters())
    experts = sum(p.numel() for n, p in params.items() if ".experts." in n)
    share = config.num_experts_per_tok / config.num_experts  # Mixtral's num_local_experts under transformers' alias
    assert sum(p.numel() for p in params.values()) == total
    assert sum(p.numel() for p in params.values()) - experts + round(experts * share) == active


def test_olmoe_plans_onto_one_n150_in_bfloat8_b(run_cli):
    """OLMoE-1B-7B's 6.9B parameters in bfloat8_b (~7.5 GB) and its KV cache fit one n150's 12.9 GB; the
    expert banks are 16 layers x 3 tensors of 64 experts x 1024 x 2048 values at 1,088 B per 32x32 tile, each
    tensor's 131,072 tiles booked as the allocator books interleaved pages: 12 DRAM banks x ceil(131,072 / 12)."""
    out = run_cli("plan", "--target", "n150", "--weights-dtype", "bfloat8_b", SPECS / "olmoe-1b-7b.arch", timeout=120)
    assert out.returncode == 0, out.stderr
    assert "fits: yes" in out.stdout
    tiles = 64 * 1024 * 2048 // 1024
    assert f"experts    {16 * 3 * 12 * math.ceil(tiles / 12) * 1088:,} B" in out.stdout


# ---------------------------------------------------------------- refused by the missing feature
REFUSED = {
    "deepseek_v2": ("DeepseekV2ForCausalLM", "multi-head latent attention (MLA)"),
    "deepseek_v3": ("DeepseekV3ForCausalLM", "multi-head latent attention (MLA)"),
    "gpt_oss": ("GptOssForCausalLM", "attention sinks and the clamped SwiGLU"),
    "llama4": ("Llama4ForConditionalGeneration", "Llama 4's interleaved chunked attention"),
}


@pytest.mark.parametrize("model_type", sorted(REFUSED))
def test_refused_naming_the_missing_feature(tmp_path, run_cli, model_type):
    arch, feature = REFUSED[model_type]
    folder = tmp_path / model_type
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": [arch], "model_type": model_type,
                                                    "hidden_size": 7168, "num_hidden_layers": 61}, indent=2))
    out = run_cli("import-hf", folder)
    assert out.returncode != 0 and out.stderr.count("error:") == 1 and "Traceback" not in out.stderr
    assert f"model_type {model_type} needs {feature}" in out.stderr
    assert "which ttspec cannot express yet" in out.stderr
    assert "config.json:5:3: error" in out.stderr  # at the model_type field


def test_olmoe_clip_qkv_refused(tmp_path):
    from ttspec.errors import ArchError

    config = T.OlmoeConfig(**TINY, num_experts=4, num_experts_per_tok=2, clip_qkv=8.0)
    config.save_pretrained(tmp_path)
    with pytest.raises(ArchError, match=r"clip_qkv: 8\.0.*cannot express yet"):
        import_hf(tmp_path)


def test_olmoe_head_dim_other_than_hidden_over_heads_refused(tmp_path):
    """transformers' OlmoeAttention sizes q_norm by hidden_size whatever head_dim says (found by the fuzz campaign:
    the import counted norms of the projections' width, transformers builds them hidden_size wide)."""
    from ttspec.errors import ArchError

    config = T.OlmoeConfig(**TINY, num_experts=4, num_experts_per_tok=2)
    config.save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    head_dim = data["hidden_size"] // data["num_attention_heads"] // 2
    (tmp_path / "config.json").write_text(json.dumps(dict(data, head_dim=head_dim), indent=2))
    with pytest.raises(ArchError, match=f"head_dim {head_dim} x num_attention_heads is not hidden_size") as info:
        import_hf(tmp_path)
    assert info.value.diagnostic.loc.line > 1  # at the head_dim field


def test_more_experts_per_token_than_experts_refused(tmp_path):
    from ttspec.errors import ArchError

    config = T.MixtralConfig(**TINY, num_local_experts=4, num_experts_per_tok=2)
    config.save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(dict(data, num_experts_per_tok=5), indent=2))
    with pytest.raises(ArchError, match="num_experts_per_tok = 5 is more than the 4 experts"):
        import_hf(tmp_path)


# ---------------------------------------------------------------- tiny random models of the four families
TINY = dict(vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=128, pad_token_id=0, bos_token_id=0, eos_token_id=0)
MOE = dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32)
MODELS = {
    "mixtral": lambda: T.MixtralConfig(**TINY, num_local_experts=4, num_experts_per_tok=2),
    "qwen2_moe": lambda: T.Qwen2MoeConfig(**TINY, **MOE, shared_expert_intermediate_size=48),
    "qwen3_moe": lambda: T.Qwen3MoeConfig(**TINY, **MOE, norm_topk_prob=True),
    "olmoe": lambda: T.OlmoeConfig(**TINY, num_experts=4, num_experts_per_tok=2),
    # a dense layer between two sparse ones (mlp_only_layers): structural layer variants in the repeat
    "qwen3_moe_mixed": lambda: T.Qwen3MoeConfig(**dict(TINY, num_hidden_layers=3), **MOE, mlp_only_layers=[1]),
}
_SAVED: dict = {}


def saved(tmp_path_factory, case):
    """A tiny random HF model of `case`, saved with save_pretrained (one tensor per expert), and the spec
    `import-hf` writes of its directory; made once per module."""
    from .hf_moe_models import save_tiny

    if case not in _SAVED:
        _SAVED[case] = save_tiny(MODELS[case](), tmp_path_factory.mktemp(case))
    return _SAVED[case]


@pytest.mark.parametrize("case", sorted(MODELS))
def test_both_layouts_load_the_same_experts(tmp_path_factory, case):
    """save_pretrained writes one tensor per expert; the model holds transformers 5's fused ones
    (gate_up_proj [E, 2I, d], gate rows first; down_proj [E, d, I]). Both load into the same [E, ...]
    parameters, which are slices of HF's own, and writing ours back out gives the hub files' tensors."""
    from safetensors import safe_open

    from ttspec.families import from_hf_state_dict, to_hf_state_dict
    from ttspec.runtime.weights import WeightStream, load_weights_file

    hf, folder, spec = saved(tmp_path_factory, case)
    model = load_model(spec)
    fused = from_hf_state_dict(model, hf.state_dict())
    stream = load_weights_file(model, str(folder))
    streamed = dict(stream.items())
    assert fused.keys() == streamed.keys()
    assert all(torch.equal(fused[k], streamed[k]) for k in fused)
    again = WeightStream.from_json(json.loads(json.dumps(stream.to_json())))  # as a device worker rebuilds it
    assert all(torch.equal(again[k], fused[k]) for k in reversed(list(fused)))  # looked up, not iterated
    state = hf.state_dict()
    for layer in range(hf.config.num_hidden_layers):
        if f"layers.{layer}.moe.experts.w1" not in fused:  # a dense layer
            assert f"layers.{layer}.mlp.w1.weight" in fused and layer in hf.config.mlp_only_layers
            continue
        bank = f"model.layers.{layer}.mlp.experts."
        hidden = fused[f"layers.{layer}.moe.experts.w1"].shape[1]
        assert torch.equal(fused[f"layers.{layer}.moe.experts.w1"], state[bank + "gate_up_proj"][:, :hidden])
        assert torch.equal(fused[f"layers.{layer}.moe.experts.w3"], state[bank + "gate_up_proj"][:, hidden:])
        assert torch.equal(fused[f"layers.{layer}.moe.experts.w2"], state[bank + "down_proj"])
        assert torch.equal(fused[f"layers.{layer}.moe.router.weight"], state[f"model.layers.{layer}.mlp.gate.weight"])
    hub = to_hf_state_dict(model, fused)
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        assert set(f.keys()) == set(hub)
        assert all(torch.equal(f.get_tensor(k), hub[k]) for k in hub)


def test_missing_or_misshapen_expert_named(tmp_path_factory, tmp_path):
    """A hub checkpoint without one expert's tensor, or with one of the wrong shape: one error naming it."""
    from safetensors.torch import load_file, save_file

    from ttspec.errors import ArchError
    from ttspec.runtime.weights import load_weights_file

    hf, folder, spec = saved(tmp_path_factory, "mixtral")
    model = load_model(spec)
    tensors = load_file(folder / "model.safetensors")
    (tmp_path / "config.json").write_text((folder / "config.json").read_text())
    name = "model.layers.1.block_sparse_moe.experts.3.w3.weight"
    save_file({k: v for k, v in tensors.items() if k != name}, tmp_path / "model.safetensors")
    with pytest.raises(ArchError, match=rf"lacks 1 tensor\(s\) the spec needs: {name}"):
        load_weights_file(model, str(tmp_path))
    save_file(dict(tensors, **{name: tensors[name][:, :-1].contiguous()}), tmp_path / "model.safetensors")
    with pytest.raises(ArchError, match=rf"{name} has shape \[96, 63\], the spec needs \[96, 64\]"):
        load_weights_file(model, str(tmp_path))


def test_checkpoint_with_other_routing_refused(tmp_path_factory, tmp_path):
    """Renormalised or not, and how many experts a token uses, do not show in the tensors: a checkpoint
    whose config differs from the spec there is refused at the field."""
    from ttspec.errors import ArchError
    from ttspec.runtime.weights import load_weights_file

    hf, folder, spec = saved(tmp_path_factory, "qwen3_moe")
    model = load_model(spec)
    (tmp_path / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    data = json.loads((folder / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(dict(data, norm_topk_prob=False), indent=2))
    with pytest.raises(ArchError, match="norm_topk_prob is false .*but the spec says the top k renormalised"):
        load_weights_file(model, str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps(dict(data, num_experts_per_tok=1), indent=2))
    with pytest.raises(ArchError, match="num_experts_per_tok is 1 but the spec says 2"):
        load_weights_file(model, str(tmp_path))


@pytest.mark.parametrize("case", sorted(MODELS))
def test_torch_logits_equal_hf(tmp_path_factory, case):
    """The compiled torch program's logits against transformers', loaded from the hub files (one tensor per
    expert: streamed, and as a state dict the program's from_hf stacks) and from the model's own fused
    state dict: within 1e-4 (fp32 both)."""
    from safetensors.torch import load_file

    from ttspec.runtime.runner import run_torch
    from ttspec.runtime.weights import load_weights_file

    hf, folder, spec = saved(tmp_path_factory, case)
    model = load_model(spec)
    tokens = torch.randint(0, 256, (2, 24), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = hf(tokens).logits
    for state in (load_weights_file(model, str(folder)), load_file(folder / "model.safetensors"), hf.state_dict()):
        got = run_torch(model, str(spec), state, tokens).float()
        err = (got - expected).abs().max().item()
        print(f"{case}: max |ours - HF| {err:.2e}")
        assert err < 1e-4


def hf_greedy(hf, prompts, new):
    with torch.no_grad():
        out = hf.generate(prompts, attention_mask=torch.ones_like(prompts), do_sample=False, max_new_tokens=new,
                          eos_token_id=None, pad_token_id=0)  # no stop token: every step is compared
    return out[:, prompts.shape[1]:]


def test_generate_torch_cli_equals_hf_generate(tmp_path_factory, tmp_path, run_cli):
    """`ttspec generate --mode torch --weights DIR` (the hub files, streamed), greedy, equals HF's generate."""
    hf, folder, spec = saved(tmp_path_factory, "mixtral")
    prompts = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(3))
    np.save(tmp_path / "p.npy", prompts.numpy())
    out = run_cli("generate", spec, "--mode", "torch", "--weights", folder, "--tokens", tmp_path / "p.npy",
                  "--max-new-tokens", 16, "--stop", "none", "--out", tmp_path / "ids.npy", timeout=120)
    assert out.returncode == 0, out.stderr
    assert np.load(tmp_path / "ids.npy").tolist() == hf_greedy(hf, prompts, 16).tolist()


@pytest.mark.parametrize("case", sorted(set(MODELS) - {"mixtral"}))
def test_generate_equals_hf_generate(tmp_path_factory, case):
    """The torch program's generate (the serving API `ttspec generate --mode torch` drives: prefill into the
    KV cache, then one token per step), greedy, equals HF's generate: users of different prompt lengths."""
    from ttspec.runtime.runner import build_torch

    hf, folder, spec = saved(tmp_path_factory, case)
    module, net = build_torch(load_model(spec), str(spec), dict(hf.state_dict()))
    prompts = [torch.randint(0, 256, (n,), generator=torch.Generator().manual_seed(n)) for n in (12, 5)]
    net.allocate_cache(len(prompts), 12 + 16)
    ours = module.generate(net, [p.tolist() for p in prompts], 16)
    for user, prompt in enumerate(prompts):
        assert ours[user] == hf_greedy(hf, prompt[None], 16)[0].tolist(), user


# ---------------------------------------------------------------- mixed dense and MoE layers (Qwen3-MoE)
def test_mlp_only_layers_spec(tmp_path):
    """mlp_only_layers and decoder_sparse_step choose dense layers: the decoder takes a per-layer `sparse`
    argument (the contract's structural layer variants)."""
    config = T.Qwen3MoeConfig(**dict(TINY, num_hidden_layers=4), **MOE, decoder_sparse_step=1, mlp_only_layers=[2])
    config.save_pretrained(tmp_path)
    text = import_hf(tmp_path).text
    assert "block decoder(x: [batch, seq, d], sparse: bool = true)" in text
    assert "decoder(h, sparse = [true, true, false][layer % 3]) as layers" in text
    assert "x = x + swiglu(rmsnorm(x, eps = eps) as mlp_norm, hidden = mlp) as mlp" in text
    report = json.loads(_params_json(tmp_path, text))
    hf_total, hf_active = _hf_counts(config)
    assert (report["total"], report["active"]) == (hf_total, hf_active)


def _params_json(tmp_path, text):
    import subprocess
    import sys

    spec = tmp_path / "mixed.arch"
    spec.write_text(text)
    out = subprocess.run([sys.executable, "-m", "ttspec.cli", "params", "--json", str(spec)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _hf_counts(config):
    with torch.device("meta"):
        model = T.AutoModelForCausalLM.from_config(config)
    params = dict(model.named_parameters())
    total = sum(p.numel() for p in params.values())
    experts = sum(p.numel() for n, p in params.items() if ".experts." in n)
    return total, total - experts + experts * config.num_experts_per_tok // config.num_experts


def test_expert_activation_follows_hidden_act(tmp_path):
    """Every expert (and a dense layer) is gated by the config's activation, not always SiLU: the logits
    equal transformers' for a tanh-GELU Qwen3-MoE."""
    from ttspec.runtime.runner import run_torch

    from .test_torch_backend import randomize

    config = T.Qwen3MoeConfig(**dict(TINY, num_hidden_layers=2), **MOE, mlp_only_layers=[1],
                              hidden_act="gelu_pytorch_tanh")
    config.save_pretrained(tmp_path)
    text = import_hf(tmp_path).text
    assert 'act = "gelu_tanh") as moe' in text
    assert "geglu(rmsnorm(x, eps = eps) as mlp_norm, hidden = mlp, approximate = true) as mlp" in text
    config._attn_implementation = "eager"
    hf = T.AutoModelForCausalLM.from_config(config).float().eval()
    randomize(hf, seed=2)
    tokens = torch.randint(0, 256, (1, 16), generator=torch.Generator().manual_seed(4))
    spec = tmp_path / "gelu.arch"
    spec.write_text(text)
    with torch.no_grad():
        expected = hf(tokens).logits
    assert (run_torch(load_model(spec), str(spec), hf.state_dict(), tokens).float() - expected).abs().max() < 1e-4
