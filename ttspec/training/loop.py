"""The training loop over the spec's generated torch program: each optimizer step draws `accum` micro-batches
(data.Tokens.batch), runs them forward under bf16 autocast where asked, sums their gradients (each loss divided by
`accum`), clips the gradients' global norm to `clip`, steps AdamW and the schedule; every `eval_every` steps and at
the last it measures the held-out loss, and every `save_every` steps and at the last (or on Ctrl-C) it writes a
checkpoint (checkpoint.py)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from ..ir.graph import Model
from . import checkpoint, curve, schedule
from .data import Tokens
from .progress import Progress


@dataclasses.dataclass(frozen=True)
class Hyper:
    """The hyper-parameters that decide a run's losses (a resumed run keeps its checkpoint's)."""
    steps: int
    batch: int
    seq: int
    lr: float
    warmup: int
    min_lr: float
    weight_decay: float
    clip: float
    accum: int
    eval_every: int
    eval_batches: int
    val_fraction: float
    seed: int
    dtype: str

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Job:
    model: Model
    spec: str
    hyper: Hyper
    tokens: Tokens
    out: Path
    device: str  # cpu or cuda
    save_every: int
    weights: str | None = None  # initial weights (--weights)
    resume: dict | None = None  # checkpoint.load's state
    progress_stream: object = None


@dataclasses.dataclass
class Result:
    records: list
    first_step: int  # the step this process started from (0, or the resumed checkpoint's)
    seconds: float
    tokens_seen: int  # by this process
    initial_val_loss: float | None
    parameters: int
    net: object = None  # the trained model


def build_net(model: Model, spec: str, seed: int, weights: str | None, device: str):
    """The generated torch program (module) and its model: initialised as the program does under torch's seed
    `seed`, or loaded from `weights` (ttspec or HF names), in training mode on `device`."""
    import torch

    from ..backends.torch.backend import compile_torch
    from ..runtime.runner import load_program, root_class, stream_into_torch
    from ..runtime.weights import load_weights_file

    module = load_program(compile_torch(model, spec), f"{model.name}_torch_train")
    torch.manual_seed(seed)
    net = root_class(module, model)()
    if weights:
        stream_into_torch(net, module, load_weights_file(model, weights))
    return module, net.to(device).train()


def run(job: Job) -> Result:
    """Train; the metrics of every step so far (a resumed run's earlier ones included)."""
    from ..runtime.weights import stored_shapes

    h = job.hyper
    module, net = build_net(job.model, job.spec, h.seed, job.weights, job.device)
    opt = schedule.optimizer(net, h.lr, h.weight_decay)
    sched = schedule.scheduler(opt, h.steps, h.warmup, h.lr, h.min_lr)
    start, initial_val = 0, None
    if job.resume is not None:
        start, initial_val = _restore(job, net, module, opt, sched)
    val_batches = job.tokens.val_batches(h.eval_batches, h.batch, h.seq)
    if initial_val is None:
        initial_val = evaluate(net, val_batches, job.device, h.dtype)
    stored = stored_shapes(job.model)
    metrics = curve.Metrics(job.out, curve.read_metrics(job.out, start) if start else [])
    progress = Progress(h.steps, h.batch * h.seq * h.accum, start, job.progress_stream)
    done, began = start, time.perf_counter()

    def save(step: int) -> None:
        state = {"hyper": h.as_dict(), "data": _data_facts(job.tokens), "optimizer": opt.state_dict(),
                 "scheduler": {"last_epoch": sched.last_epoch}, "rng": _rng_state(),
                 "initial_val_loss": initial_val}
        checkpoint.save(job.out, state, checkpoint.ttspec_state(net, module, stored), step)
        curve.write_curve(job.out, metrics.records, f"{job.model.name}: loss per step")

    try:
        for step in range(start, h.steps):
            record = train_step(net, opt, sched, job, step)
            if (step + 1) % h.eval_every == 0 or step + 1 == h.steps:
                record["val_loss"] = evaluate(net, val_batches, job.device, h.dtype)
            metrics.add(record)
            done = step + 1
            progress.update(done, record)
            if done % job.save_every == 0 or done == h.steps:
                save(done)
    except KeyboardInterrupt:
        progress.close()
        if done > start and done % job.save_every:
            save(done)
        metrics.close()
        raise Interrupted(done) from None
    progress.close()
    metrics.close()
    seconds = time.perf_counter() - began
    parameters = sum(p.numel() for p in net.parameters())
    return Result(metrics.records, start, seconds, (done - start) * h.batch * h.seq * h.accum, initial_val,
                  parameters, net)


class Interrupted(Exception):
    """Ctrl-C: the checkpoint of the last completed step is on disk."""

    def __init__(self, step: int):
        super().__init__(step)
        self.step = step


def train_step(net, opt, sched, job: Job, step: int) -> dict:
    """One optimizer step; its record (`step` from 1, `loss` of its batch, `lr`, `grad_norm` before clipping)."""
    import torch
    import torch.nn.functional as F

    h = job.hyper
    opt.zero_grad(set_to_none=True)
    total = 0.0
    for micro in range(h.accum):
        x, y = (t.to(job.device) for t in job.tokens.batch(h.seed, step, micro, h.batch, h.seq))
        with _autocast(job.device, h.dtype):
            logits = net(x)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
        (loss / h.accum).backward()
        total += loss.item()
    norm = torch.nn.utils.clip_grad_norm_(net.parameters(), h.clip)
    lr = sched.get_last_lr()[0]
    opt.step()
    sched.step()
    return {"step": step + 1, "loss": total / h.accum, "lr": lr, "grad_norm": float(norm)}


def evaluate(net, batches, device: str, dtype: str) -> float:
    """The mean loss over the held-out batches (the model in eval mode meanwhile)."""
    import torch
    import torch.nn.functional as F

    net.eval()
    losses = []
    with torch.no_grad():
        for x, y in batches:
            with _autocast(device, dtype):
                logits = net(x.to(device))
            losses.append(F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.to(device).reshape(-1)))
    net.train()
    return float(torch.stack(losses).mean())


def _autocast(device: str, dtype: str):
    import torch

    return torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=dtype == "bf16")


def _data_facts(tokens: Tokens) -> dict:
    return {"sha256": tokens.sha256, "paths": tokens.paths, "tokenizer": tokens.tokenizer,
            "train_tokens": len(tokens.train), "val_tokens": len(tokens.val)}


def _rng_state() -> dict:
    import torch

    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore(job: Job, net, module, opt, sched) -> tuple[int, float | None]:
    """Load a checkpoint's weights, optimizer, schedule and RNG states; its step and first held-out loss."""
    import torch

    state = job.resume
    net.load_ttspec_weights(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.last_epoch = state["scheduler"]["last_epoch"]
    sched._last_lr = [group["lr"] for group in opt.param_groups]
    torch.set_rng_state(state["rng"]["torch"])
    if "cuda" in state["rng"] and job.device == "cuda":
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return int(state["step"]), state.get("initial_val_loss")
