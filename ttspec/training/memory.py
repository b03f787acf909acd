"""The measured peak memory of training steps, the outside truth `check --training`'s estimate
(ttspec/backends/torch/training_memory.py) is calibrated against and `ttspec train` reports beside it.

What is measured is tensor memory, not the process: a copy of the model is made inside the measured
window, so its weights, gradients, optimizer state, the batch, every saved activation and every temporary
count, and nothing else (the original model, the torch libraries, Python's own objects) does.

- CUDA: `torch.cuda.max_memory_allocated` (the caching allocator's peak of live tensor bytes), less what
  was allocated before the window.
- CPU: torch's profiler with `profile_memory=True`. Every CPU tensor allocation and free then reports to it
  (c10's ProfiledCPUMemoryReporter) with the bytes allocated since profiling began and not yet freed
  (`total_allocated` of each allocation event in `prof.profiler.kineto_results.experimental_event_tree()`;
  the `[memory]` rows of `prof.events()` miss most of them on torch 2.14.1); the peak is the largest.
  Host RSS would count the torch libraries and the allocator's cached pages: too coarse for a 5M-parameter
  model. Profiling costs time (about 3 s for two steps of nano-trickster at batch 8 x 256 on one core).
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F


class MeasuredPeak(NamedTuple):
    """The peak of live tensor bytes during the measured steps, and how it was measured."""

    bytes: int
    how: str


def adamw(params) -> torch.optim.Optimizer:
    """The default optimizer of a measurement: AdamW in the parameters' dtype (its two moments per parameter)."""
    return torch.optim.AdamW(params, lr=1e-4)


def language_model_step(model, optimizer, batch_tokens) -> None:
    """One plain step: next-token cross-entropy of `batch_tokens` [batch, seq + 1], backward, optimizer step,
    gradients freed (set to None)."""
    logits = model(batch_tokens[:, :-1])
    loss = F.cross_entropy(logits.flatten(0, 1).float(), batch_tokens[:, 1:].flatten())
    del logits
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def measure_training_peak(module: torch.nn.Module, batch_tokens: torch.Tensor,
                          optimizer_factory: Callable = adamw, steps: int = 2,
                          step: Callable = language_model_step, device: torch.device | str | None = None
                          ) -> MeasuredPeak:
    """The peak tensor memory of `steps` training steps of a copy of `module` (the module itself is left as it
    was) on `batch_tokens` [batch, seq + 1] (token ids), with the optimizer `optimizer_factory(parameters)`
    (default AdamW) and `step(model, optimizer, batch_tokens)` (default: one cross-entropy step, see
    language_model_step; pass your own for autocast, clipping or accumulation). Two steps by default: AdamW
    makes its state in the first, so the second is training's steady state. `device`: where to measure
    (default: the module's); "cuda" reads the CUDA allocator, "cpu" the profiler (module docstring)."""
    if steps < 1:
        raise ValueError("measure at least one step")
    device = torch.device(device) if device is not None else next(module.parameters()).device

    def run() -> None:
        model = copy.deepcopy(module).to(device).train()
        tokens = batch_tokens.to(device)
        optimizer = optimizer_factory(model.parameters())
        for _ in range(steps):
            step(model, optimizer, tokens)

    if device.type == "cuda":
        return _cuda_peak(run, device)
    return _cpu_peak(run)


def _cuda_peak(run: Callable[[], None], device: torch.device) -> MeasuredPeak:
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    run()
    torch.cuda.synchronize(device)
    return MeasuredPeak(torch.cuda.max_memory_allocated(device) - before,
                        "torch.cuda.max_memory_allocated over the steps, less what was allocated before")


@contextlib.contextmanager
def _quiet_stderr():
    """File descriptor 2 to /dev/null (C++ logging writes there, below Python's sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(null)
        os.close(saved)


def _cpu_peak(run: Callable[[], None]) -> MeasuredPeak:
    from torch.profiler import ProfilerActivity, profile

    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _quiet_stderr():  # kineto logs "profiler_start" / "profiler_stop" lines to the process's stderr
        prof.start()
    try:
        run()
    finally:
        with _quiet_stderr():
            prof.stop()
    peak = 0
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        event = stack.pop()
        fields = event.extra_fields
        if type(fields).__name__ == "_ExtraFields_Allocation" and fields.device.type == "cpu":
            peak = max(peak, fields.total_allocated)
        stack.extend(event.children)
    if peak == 0:
        raise RuntimeError("the profiler reported no CPU allocation: this torch does not report CPU memory")
    return MeasuredPeak(peak, "torch.profiler (profile_memory=True): the CPU allocator's live tensor bytes, "
                              "the largest while the steps ran")
