"""`ttspec train`'s command line as a loop.Job: the hyper-parameters (given, a resumed checkpoint's, or the
defaults), the device and dtype, the data checked against the spec, the output directory."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..errors import ArchError, UsageError
from ..inputs import quote
from ..ir.graph import Model
from . import checkpoint
from .data import read_tokens
from .loop import Hyper, Job

# the defaults of options whose default does not depend on others
DEFAULTS = {"steps": 200, "batch": 16, "seq": 128, "lr": 1e-3, "weight_decay": 0.1, "clip": 1.0, "accum": 1,
            "eval_batches": 4, "val_fraction": 0.1, "seed": 0}
DEFAULT_OUT = "train-out"


def hyper(args, model: Model, saved: dict | None, device: str) -> Hyper:
    """The run's hyper-parameters: a resumed run's are its checkpoint's (an option given with a different value
    is refused); else those given, the rest defaulted (warmup: a tenth of the steps, at most 100; min-lr: lr/10;
    seq: 128 or the spec's bound if less; eval-every: a tenth of the steps; dtype: bf16 on a CUDA device that has
    it, else fp32)."""
    if saved is not None:
        for name, value in saved.items():
            given = getattr(args, name, None)
            if given is not None and given != value:
                flag = "--" + name.replace("_", "-")
                raise UsageError(f"{flag} {given} differs from the resumed run's {value}",
                                 hint=f"leave out {flag}: a resumed run keeps its hyper-parameters, so that it "
                                      "continues as the run would have")
        return Hyper(**saved)
    values = {name: getattr(args, name) if getattr(args, name) is not None else default
              for name, default in DEFAULTS.items()}
    steps, lr = values["steps"], values["lr"]
    if args.seq is None:
        values["seq"] = min(DEFAULTS["seq"], _seq_bound(model) or DEFAULTS["seq"])
    values["warmup"] = args.warmup if args.warmup is not None else min(100, steps // 10)
    values["min_lr"] = args.min_lr if args.min_lr is not None else lr / 10
    values["eval_every"] = args.eval_every or max(1, steps // 10)
    values["dtype"] = args.dtype or _default_dtype(device)
    if values["min_lr"] > lr:
        raise UsageError(f"--min-lr {values['min_lr']:g} is above --lr {lr:g}",
                         hint="the cosine decays from --lr down to --min-lr")
    if values["warmup"] >= steps:
        raise UsageError(f"--warmup {values['warmup']} leaves no step of the {steps} for the decay",
                         hint="give fewer warmup steps than --steps")
    if not 0 < values["val_fraction"] < 1:
        raise UsageError(f"--val-fraction must be between 0 and 1, got {values['val_fraction']:g}",
                         hint="e.g. --val-fraction 0.1 holds out the last tenth of the text")
    _check_seq(model, values["seq"])
    if values["dtype"] == "bf16" and device == "cuda":
        import torch

        if not torch.cuda.is_bf16_supported():
            raise UsageError("--dtype bf16: this CUDA device has no bfloat16", hint="use --dtype fp32")
    return Hyper(**values)


def _default_dtype(device: str) -> str:
    if device == "cuda":
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "fp32"


def _seq_bound(model: Model) -> int | None:
    """The bound the spec's `where` puts on its input's last (sequence) dim, if any."""
    dims = model.graph.node(model.graph.inputs[0]).type.shape
    return model.bounds.get(dims[-1]) if dims and isinstance(dims[-1], str) else None


def _check_seq(model: Model, seq: int) -> None:
    from ..runtime.runner import check_token_shape

    check_token_shape(model, (1, seq), f"--seq {seq}: the windows")


def device(choice: str) -> str:
    import torch

    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available to torch", hint="use --device cpu (or auto)")
    return choice


def job(args, model: Model) -> Job:
    from ..runtime.runner import vocab_of_input

    dev = device(args.device)
    saved = checkpoint.load(args.resume) if args.resume else None
    h = hyper(args, model, saved["hyper"] if saved else None, dev)
    paths = args.data or (saved["data"]["paths"] if saved else None)
    if not paths:
        raise UsageError("--data is required (text files to train on)", hint="e.g. --data corpus.txt")
    tokenizer = args.tokenizer or (saved["data"]["tokenizer"] if saved and saved["data"]["tokenizer"] !=
                                   "bytes (UTF-8)" else None)
    tokens = read_tokens(paths, tokenizer, vocab_of_input(model), h.val_fraction)
    tokens.check_fits(h.seq, h.batch)
    if saved:
        _check_resumed(model, saved, tokens, args.resume)
        if args.weights:
            raise UsageError("--weights and --resume exclude each other",
                             hint="--resume continues from its checkpoint's weights")
    out = _out_dir(args.out or args.resume or DEFAULT_OUT, resumed=bool(args.resume and not args.out))
    if args.resume and args.out and Path(args.resume).resolve() != out.resolve():
        from .curve import METRICS_FILE

        if (Path(args.resume) / METRICS_FILE).exists():
            shutil.copyfile(Path(args.resume) / METRICS_FILE, out / METRICS_FILE)
    if tokenizer and Path(tokenizer).resolve() != (out / "tokenizer.json").resolve():
        shutil.copyfile(tokenizer, out / "tokenizer.json")  # `ttspec generate --weights OUT` tokenises with it
    save_every = args.save_every or h.eval_every
    return Job(model, args.spec, h, tokens, out, dev, save_every, weights=args.weights, resume=saved)


def _check_resumed(model: Model, saved: dict, tokens, folder: str) -> None:
    from ..runtime.weights import stored_shapes

    shapes = {name: tuple(t.shape) for name, t in saved["model"].items()}
    if shapes != stored_shapes(model):
        raise ArchError(f"the resumed checkpoint's weights are not {model.name}'s: its parameters differ from the "
                        "spec's", model.loc, hint="resume with the spec the run was started with")
    if tokens.sha256 != saved["data"]["sha256"]:
        raise UsageError("--data differs from the resumed run's (its tokens' digest differs)",
                         hint="resume on the same files and tokenizer: "
                              + ", ".join(map(quote, saved["data"]["paths"])))
    if int(saved["step"]) >= saved["hyper"]["steps"]:
        raise UsageError(f"the run in {quote(folder)} is complete "
                         f"({saved['step']} of {saved['hyper']['steps']} steps)",
                         hint="start a new run with --weights DIR/model.safetensors to train further")


def _out_dir(path: str, resumed: bool) -> Path:
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ArchError(f"--out {quote(path)} is a file, not a directory", hint="give a directory to write into")
    if not resumed and (out / checkpoint.STATE_FILE).exists():
        raise UsageError(f"--out {quote(path)} already holds a training run ({checkpoint.STATE_FILE})",
                         hint=f"continue it with --resume {quote(path)}, or give another --out")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise ArchError(f"cannot create --out {quote(path)}: {e.strerror or e}") from None
    return out
