"""`ttspec train`: train the spec's generated torch program on text; checkpoints, metrics and a loss curve."""

from __future__ import annotations

import sys

from ..options import BATCH, OUT, SEQ, WEIGHTS, positive_float, positive_int, seed, spec_parent


def add_parser(sub) -> None:
    t = sub.add_parser("train", help="train the spec's torch program on text (bytes or a tokenizer.json)",
                       description="Train the spec's generated PyTorch program from scratch (or from --weights) on "
                                   "text files: AdamW with linear warmup and cosine decay, gradient clipping and "
                                   "accumulation, a held-out split evaluated every --eval-every steps. --out gets "
                                   "model.safetensors (ttspec's names: `ttspec generate SPEC --weights OUT`), "
                                   "train_state.pt (for --resume), metrics.jsonl and loss.svg. A resumed run keeps "
                                   "its checkpoint's hyper-parameters and continues bit-for-bit.",
                       parents=[spec_parent()])
    t.add_argument("--data", nargs="+", metavar="PATH", help="text files, concatenated (required unless --resume)")
    t.add_argument("--tokenizer", metavar="tokenizer.json",
                   help="an HF `tokenizers` tokenizer.json (default: UTF-8 bytes, for a vocabulary of 256 or more)")
    t.add_argument("--steps", type=positive_int, help="optimizer steps (default 200)")
    BATCH.add(t, "windows per micro-batch (default 16)")
    SEQ.add(t, "tokens per window (default 128; at most the spec's bound)")
    t.add_argument("--accum", type=positive_int, help="micro-batches per optimizer step (default 1)")
    t.add_argument("--lr", type=positive_float, help="peak learning rate (default 1e-3)")
    t.add_argument("--warmup", type=non_negative_int, help="linear warmup steps (default a tenth of --steps, "
                                                            "at most 100)")
    t.add_argument("--min-lr", type=non_negative_float, help="where the cosine decay ends (default --lr / 10)")
    t.add_argument("--weight-decay", type=non_negative_float, help="AdamW's, on weight matrices and embeddings "
                                                                   "(default 0.1)")
    t.add_argument("--clip", type=positive_float, help="gradient norm clipping (default 1.0)")
    t.add_argument("--eval-every", type=positive_int, help="held-out evaluation every N steps and at the last "
                                                           "(default a tenth of --steps)")
    t.add_argument("--eval-batches", type=positive_int, help="held-out batches per evaluation (default 4)")
    t.add_argument("--val-fraction", type=positive_float, help="the last fraction of the text held out "
                                                               "(default 0.1)")
    t.add_argument("--save-every", type=positive_int, help="checkpoint every N steps and at the last "
                                                           "(default --eval-every)")
    t.add_argument("--seed", type=seed, help="seed of the initial weights and the batches (default 0)")
    WEIGHTS.add(t, "initial weights, as `ttspec run --weights` takes them (default: the program's initialisation)")
    t.add_argument("--resume", metavar="DIR", help="continue the run whose --out is DIR")
    OUT.add(t, f"the output directory (default {'train-out'}; with --resume, DIR)", metavar="DIR")
    t.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default auto: CUDA if "
                                                                                     "torch has it")
    t.add_argument("--dtype", choices=("fp32", "bf16"), help="bf16: autocast the forward pass to bfloat16 "
                                                             "(default on a CUDA device that has it; else fp32)")


def non_negative_int(text: str) -> int:
    return 0 if text.strip() in ("0", "+0") else positive_int(text)


def non_negative_float(text: str) -> float:
    try:
        if float(text) == 0:
            return 0.0
    except ValueError:
        pass
    return positive_float(text)


def run(args) -> int:
    from ...driver import load_model
    from ...runtime import tempdirs
    from ...runtime.runner import require
    from ...training import loop, setup
    from ...training.summary import summary

    require("torch", "training", "train")
    require("safetensors", "checkpoints", "train")
    model = load_model(args.spec)
    job = setup.job(args, model)
    with tempdirs.session():
        try:
            result = loop.run(job)
        except loop.Interrupted as e:
            sys.stderr.write(f"interrupted after step {e.step}: its checkpoint is in {job.out}; continue with "
                             f"`ttspec train {args.spec} --resume {job.out}`\n")
            return 130
    print(summary(job, result))
    return 0
