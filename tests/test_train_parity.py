"""`ttspec train` against a plain PyTorch loop over HF transformers' model: the same initial weights (made by HF,
copied into ttspec's names through the family's checkpoint mapping), the same batches, the same hyper-parameters;
the losses agree within 1e-3 at every one of 20 steps, for a gpt2-family and a llama-family spec."""

import math

import pytest
import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import save_file

from ttspec.driver import load_model
from ttspec.families import from_hf_state_dict
from ttspec.training.data import read_tokens

from .train_helpers import GPT2_TINY, LLAMA_TINY, hf_config, metrics, one_thread, text, train

STEPS, BATCH, SEQ, LR, MIN_LR, WARMUP, DECAY, CLIP, SEED = 20, 4, 32, 3e-3, 3e-4, 5, 0.1, 1.0, 7


def factor(step):
    """The schedule, written out: linear warmup over WARMUP steps, then half a cosine to MIN_LR at the last step."""
    if step < WARMUP:
        return (step + 1) / WARMUP
    t = (step - WARMUP) / (STEPS - 1 - WARMUP)
    return MIN_LR / LR + (1 - MIN_LR / LR) * 0.5 * (1 + math.cos(math.pi * t))


def hf_losses(net, tokens) -> list[float]:
    """A plain PyTorch loop: AdamW (decay on 2-D tensors), LambdaLR, clip_grad_norm_."""
    params = list(net.parameters())
    opt = torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 2], "weight_decay": DECAY},
                             {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
                            lr=LR, betas=(0.9, 0.95), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    net.train()
    losses = []
    for step in range(STEPS):
        x, y = tokens.batch(SEED, step, 0, BATCH, SEQ)  # the batches ttspec's loop draws: the same data order
        opt.zero_grad()
        logits = net(input_ids=x).logits
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), CLIP)
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


single_thread = pytest.fixture(scope="module", autouse=True)(one_thread)

@pytest.mark.parametrize("family, spec_text", [("gpt2", GPT2_TINY), ("llama", LLAMA_TINY)])
def test_follows_hf_loop(tmp_path, family, spec_text):
    spec = tmp_path / "tiny.arch"
    spec.write_text(spec_text)
    data = tmp_path / "data.txt"
    data.write_bytes(text(40_000))
    torch.manual_seed(1234)
    net = {"gpt2": transformers.GPT2LMHeadModel, "llama": transformers.LlamaForCausalLM}[family](hf_config(family))
    with torch.no_grad():  # HF's init leaves norms at 1 and biases at 0: perturb them so every tensor is tested
        for p in net.parameters():
            if p.dim() == 1:
                p.add_(0.05 * torch.randn_like(p))
    model = load_model(str(spec))
    ours = from_hf_state_dict(model, {k: v.detach().clone() for k, v in net.state_dict().items()})
    save_file({k: v.contiguous() for k, v in ours.items()}, tmp_path / "init.safetensors")

    out = tmp_path / "out"
    assert train(spec, "--data", data, "--weights", tmp_path / "init.safetensors", "--steps", STEPS, "--batch", BATCH,
                 "--seq", SEQ, "--lr", LR, "--min-lr", MIN_LR, "--warmup", WARMUP, "--weight-decay", DECAY,
                 "--clip", CLIP, "--seed", SEED, "--device", "cpu", "--dtype", "fp32", "--out", out) == 0
    got = [r["loss"] for r in metrics(out)]
    expected = hf_losses(net, read_tokens([str(data)], None, 256, 0.1))
    assert len(got) == STEPS
    worst = max(abs(a - b) for a, b in zip(got, expected))
    assert worst < 1e-3, (got, expected)
    assert expected[-1] < expected[0] - 0.5  # the runs learned something: the comparison is not of flat lines
