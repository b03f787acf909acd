"""The optimiser and its learning rate: AdamW (betas 0.9, 0.95) with weight decay on the weight matrices and
embeddings only (parameters of two or more dims; norms' scales and biases are not decayed), the rate rising
linearly over `warmup` steps and then falling along half a cosine to `min_lr` at the last step."""

from __future__ import annotations

import math

BETAS = (0.9, 0.95)
EPS = 1e-8


def lr_factor(step: int, steps: int, warmup: int, lr: float, min_lr: float) -> float:
    """The learning rate of optimizer step `step` (0-based) as a multiple of `lr`: (step + 1) / warmup while
    step < warmup; then min_lr / lr + (1 - min_lr / lr) * (1 + cos(pi * t)) / 2 with
    t = (step - warmup) / max(1, steps - 1 - warmup), which is 1 at the last step."""
    if step < warmup:
        return (step + 1) / warmup
    floor = min_lr / lr
    t = min(1.0, (step - warmup) / max(1, steps - 1 - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))


def optimizer(net, lr: float, weight_decay: float):
    """AdamW over the model's parameters (a tied weight once), in two groups: decayed (2+ dims) and not."""
    import torch

    params = list(net.parameters())  # nn.Module.parameters() yields a shared (tied) tensor once
    decay = [p for p in params if p.dim() >= 2]
    rest = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=BETAS, eps=EPS)


def scheduler(opt, steps: int, warmup: int, lr: float, min_lr: float):
    import functools

    import torch

    return torch.optim.lr_scheduler.LambdaLR(
        opt, functools.partial(lr_factor, steps=steps, warmup=warmup, lr=lr, min_lr=min_lr))
