"""A fresh PyTorch program initialises as its family does (issue 23): every parameter's distribution against
the one HF transformers' `_init_weights` gives the same model (built from the same config), the residual
projections of GPT-2 and of a spec without a family at 0.02 / sqrt(2 * layers) (a closed form), and the
first loss on random tokens near ln(vocab), the loss of a uniform guess.

Sampling bounds: the mean square of n draws from normal(0, s^2) has relative standard deviation
sqrt(2 / n), so a variance is checked within 6 of those; two independent samples' variances (ours, HF's)
within 6 * sqrt(2 / n1 + 2 / n2) of each other."""

import math
import re

import pytest

from ttspec.driver import load_model
from ttspec.ops.queries import input_vocabulary

from .conftest import SPECS
from .test_torch_backend import HF, load_generated

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
F = torch.nn.functional

SIGMAS = 6.0


def fresh(spec, tmp_path, seed=0):
    """The spec's generated module and a fresh model of it, initialised under torch.manual_seed(seed)."""
    model = load_model(SPECS / spec)
    generated = load_generated(model, SPECS / spec, tmp_path)
    cls = getattr(generated, next(n for n in dir(generated) if n.lower() == model.name.replace("_", "")))
    torch.manual_seed(seed)
    return generated, cls()


def mean_square(t) -> float:
    return t.double().pow(2).mean().item()


def constant(t):
    """The one value every element of `t` holds, else None."""
    flat = t.flatten()
    return flat[0].item() if bool((flat == flat[0]).all()) else None


@pytest.mark.parametrize("spec", sorted(HF))
def test_every_parameter_starts_as_hf_starts_it(spec, tmp_path):
    """Each of our parameters against the HF tensor it loads from (the family's names): a constant where
    HF's is one (biases 0, norms 1), else the same normal distribution (mean 0, variance within sampling
    error) — GPT-2's c_proj at 0.02 / sqrt(2 * n_layer) through HF's own code path."""
    generated, ours = fresh(spec, tmp_path)
    torch.manual_seed(1)
    hf = transformers.AutoModelForCausalLM.from_config(HF[spec]()).float()
    hf_state = hf.state_dict()
    compared = 0
    for name, param in ours.named_parameters():
        name = generated.ttspec_name(ours, name)
        theirs = generated.from_hf(name, hf_state).detach()
        assert theirs.shape == param.shape, name
        value = constant(theirs)
        if value is not None:
            assert constant(param.detach()) == value, name
            continue
        n1, n2 = param.numel(), theirs.numel()
        ratio = mean_square(param.detach()) / mean_square(theirs)
        assert abs(ratio - 1) <= SIGMAS * math.sqrt(2 / n1 + 2 / n2), (name, ratio)
        assert abs(param.detach().double().mean().item()) <= SIGMAS * math.sqrt(mean_square(theirs) / n1), name
        compared += 1
    assert compared >= 5


def expected_std(config, hf_name: str) -> float:
    """HF GPT-2's rule written out: c_proj (attention's and the MLP's) at 0.02 / sqrt(2 * n_layer)."""
    return 0.02 / math.sqrt(2 * config.n_layer) if hf_name.endswith("c_proj.weight") else 0.02


def test_gpt2_residual_projections_scaled_as_hf_scales_them(tmp_path):
    """The closed form against both HF's tensors and ours: wo and mlp.down at 0.02 / sqrt(12) in a 6-layer
    GPT-2, every other matrix at 0.02 (a rule that scaled nothing, or everything, fails on one side)."""
    spec = "nano-trickster-gpt2.arch"
    config = HF[spec]()
    generated, ours = fresh(spec, tmp_path)
    hf_state = transformers.AutoModelForCausalLM.from_config(config).state_dict()
    scaled = 0
    for name, param in ours.named_parameters():
        name = generated.ttspec_name(ours, name)
        if param.dim() < 2:
            continue
        hf_name = next(h.format(*m.groups()) for pattern, h, _ in generated.HF_NAMES
                       for m in [re.fullmatch(pattern, name)] if m)
        std = expected_std(config, hf_name)
        scaled += std < 0.02
        for tensor in (param.detach(), hf_state[hf_name]):
            assert abs(mean_square(tensor) / std**2 - 1) <= SIGMAS * math.sqrt(2 / tensor.numel()), (name, hf_name)
    assert scaled == 2 * config.n_layer


def test_a_spec_without_a_family_gets_gpt2_rule(tmp_path):
    """moe-tiny names no family: normal(0, 0.02) for the embedding, the head, the router and the experts,
    its 2 layers' residual projections (attention's wo, the experts' down projection w2) at 0.02 / sqrt(4),
    norms 1."""
    generated, ours = fresh("moe-tiny.arch", tmp_path)
    residual = ("attn.wo.weight", "experts.w2")
    seen = set()
    for name, param in ours.named_parameters():
        tensor = param.detach()
        if name.endswith("norm.weight"):
            assert constant(tensor) == 1.0, name
            continue
        std = 0.02 / math.sqrt(2 * 2) if name.endswith(residual) else 0.02
        seen.add(std)
        assert abs(mean_square(tensor) / std**2 - 1) <= SIGMAS * math.sqrt(2 / tensor.numel()), name
    assert seen == {0.02, 0.01}


@pytest.mark.parametrize("spec", ["nano-trickster.arch", "nano-trickster-gpt2.arch", "llama-gqa-tiny.arch",
                                  "moe-tiny.arch"])
def test_first_loss_is_near_a_uniform_guess(spec, tmp_path):
    """Step 0 on random tokens: cross-entropy within 10% of ln(vocab) (PyTorch's default init gave 258 on
    nano-trickster, whose uniform guess is ln 256 = 5.55)."""
    _, ours = fresh(spec, tmp_path)
    vocab = input_vocabulary(load_model(SPECS / spec).graph)
    tokens = torch.randint(0, vocab, (4, 65), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        logits = ours(tokens[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, vocab), tokens[:, 1:].reshape(-1)).item()
    assert logits.shape[-1] == vocab
    assert abs(loss / math.log(vocab) - 1) <= 0.10, (loss, math.log(vocab))


def test_init_is_deterministic_and_loading_replaces_it(tmp_path):
    """The same seed gives the same weights; loading weights by ttspec name replaces every one of them."""
    _, first = fresh("nano-trickster.arch", tmp_path, seed=3)
    generated, second = fresh("nano-trickster.arch", tmp_path, seed=3)
    _, other = fresh("nano-trickster.arch", tmp_path, seed=4)
    for (name, a), b, c in zip(first.state_dict().items(), second.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b), name
        assert name.endswith("norm.weight") or not torch.equal(a, c), name
    state = {generated.ttspec_name(other, n): t for n, t in other.state_dict().items()}
    first.load_ttspec_weights({n: t for n, t in state.items() if n not in generated.TIED})
    for (name, a), b in zip(first.state_dict().items(), other.state_dict().values()):
        assert torch.equal(a, b), name
