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
        measured_peak_line(job.device),
        f"wrote {job.out / checkpoint.WEIGHTS_FILE} (ttspec names: `ttspec generate {job.spec} --weights "
        f"{job.out}`), {job.out / curve.METRICS_FILE}, {job.out / curve.CURVE_FILE}, "
        f"{job.out / checkpoint.STATE_FILE} (--resume {job.out})",
    ]
    return "\n".join(lines)


def _vocab(job: Job) -> int:
    from ..runtime.runner import vocab_of_input

    return vocab_of_input(job.model)


def measured_peak_line(device: str) -> str:
    """MEASURED-PEAK CALL SITE: the peak memory the run used. Helper `init`'s ttspec/training/memory.py measures it
    (CUDA allocator or host); until it is merged, the CUDA allocator's peak or the process's maximum resident set."""
    import torch

    if device == "cuda":
        return f"measured peak: {torch.cuda.max_memory_allocated() / 2**20:,.1f} MiB (CUDA allocator)"
    import resource

    return f"measured peak: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.1f} MiB (host, max RSS)"
