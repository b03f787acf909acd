"""What `ttspec train` prints when it ends: the run in figures, the losses, the measured peak memory and the
files written."""

from __future__ import annotations

from . import checkpoint, curve
from .data import unigram_entropy
from .loop import Job, Result


def summary(job: Job, result: Result) -> str:
    h = job.hyper
    rate = result.tokens_seen / result.seconds if result.seconds > 0 else 0.0
    last = result.records[-1]
    vals = [r for r in result.records if "val_loss" in r]
    resumed = f", resumed at step {result.first_step}" if result.first_step else ""
    lines = [
        f"trained {job.model.name} ({result.parameters:,} parameters) for {last['step']} steps{resumed}: batch "
        f"{h.batch} x seq {h.seq}" + (f" x {h.accum} accumulated" if h.accum > 1 else "")
        + f", {job.device} {h.dtype}, {result.seconds:.1f} s, {rate:,.0f} tokens/s",
        f"loss {result.records[0]['loss']:.4f} (step {result.records[0]['step']}) -> {last['loss']:.4f} "
        f"(step {last['step']}); held-out loss {result.initial_val_loss:.4f} (step 0)"
        + (f" -> {vals[-1]['val_loss']:.4f} (step {vals[-1]['step']})" if vals else "")
        + f"; unigram baseline {unigram_entropy(job.tokens.val, _vocab(job)):.4f} (the held-out text's own "
        "token entropy)",
        measured_peak_line(job, result.net),
        f"wrote {job.out / checkpoint.WEIGHTS_FILE} (ttspec names: `ttspec generate {job.spec} --weights "
        f"{job.out}`), {job.out / curve.METRICS_FILE}, {job.out / curve.CURVE_FILE}, "
        f"{job.out / checkpoint.STATE_FILE} (--resume {job.out})",
    ]
    return "\n".join(lines)


def _vocab(job: Job) -> int:
    from ..runtime.runner import vocab_of_input

    return vocab_of_input(job.model)


def measured_peak_line(job: Job, net) -> str:
    """The peak tensor memory of two training steps of the run's model at its batch, as ttspec/training/memory.py
    measures it (the CUDA allocator or torch's CPU profiler), beside `check --training`'s estimate
    (ttspec/backends/torch/training_memory.py)."""
    import torch

    from ..backends.torch.training_memory import training_memory
    from .memory import measure_training_peak

    h = job.hyper
    x, y = job.tokens.batch(h.seed, 0, 0, h.batch, h.seq)
    peak = measure_training_peak(net, torch.cat([x, y[:, -1:]], 1), optimizer_factory=_adamw(h),
                                 step=_step(job), device=job.device)
    estimate = training_memory(job.model, h.batch, h.seq).peak
    how = peak.how.split(" (")[0].split(" over ")[0]
    return (f"memory: measured peak {peak.bytes / 1e6:,.1f} MB of tensors over two steps at batch {h.batch} x seq "
            f"{h.seq} ({how}); `ttspec check --training` estimates {estimate / 1e6:,.1f} MB")


def _adamw(h):
    from .schedule import BETAS, EPS

    def make(params):
        import torch

        params = list(params)
        return torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 2], "weight_decay": h.weight_decay},
                                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
                                 lr=h.lr, betas=BETAS, eps=EPS)
    return make


def _step(job: Job):
    """One step as the loop takes it (autocast, clipping), on [batch, seq + 1] tokens."""
    from .loop import _autocast

    def step(model, optimizer, tokens) -> None:
        import torch
        import torch.nn.functional as F

        with _autocast(job.device, job.hyper.dtype):
            logits = model(tokens[:, :-1])
        loss = F.cross_entropy(logits.float().flatten(0, 1), tokens[:, 1:].flatten())
        del logits
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), job.hyper.clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step
