"""Training throughput: `ttspec train`'s step (ttspec/training/loop.train_step over the spec's generated torch
program) against a plain PyTorch loop over HF transformers' equivalent model (GPT2LMHeadModel, LlamaForCausalLM)
at the same sizes, batch and sequence, with the same optimiser (AdamW, the warmup/cosine LambdaLR,
clip_grad_norm_) and the same batches. The two alternate in rounds in one process, so both see the same machine;
each round times `--steps` steps after one untimed warm-up step (on the host by the process's CPU time, so that
other work on a shared machine counts against neither; on CUDA by wall time); the figure is the median round's
tokens/s.

Run: PYTHONPATH=. .venv/bin/python bench/train_throughput.py [--spec nano-trickster] [--batch 8] [--seq 128]
     [--steps 5] [--rounds 3] [--device auto] [--dtype fp32|bf16] [--threads N]
Prints each model's tokens/s and ttspec's as a ratio to HF's (goal >= 1.0).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402

from ttspec.driver import load_model  # noqa: E402
from ttspec.families import to_hf_state_dict  # noqa: E402
from ttspec.runtime import tempdirs  # noqa: E402
from ttspec.training import loop, schedule  # noqa: E402
from ttspec.training.data import Tokens  # noqa: E402

HF = {  # the shipped small specs' HF twins (tests/test_hf_crosscheck.py states the same sizes)
    "nano-trickster": lambda: transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=256, hidden_size=256, num_hidden_layers=6, num_attention_heads=8, num_key_value_heads=8,
        intermediate_size=768, max_position_embeddings=512, tie_word_embeddings=True, rms_norm_eps=1e-6)),
    "nano-trickster-gpt2": lambda: transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=256, n_embd=256, n_layer=6, n_head=8, n_positions=512, n_inner=768, activation_function="gelu_new",
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=True, bos_token_id=None,
        eos_token_id=None)),
}


def hf_step(net, opt, sched, x, y, dtype: str, device: str) -> float:
    opt.zero_grad(set_to_none=True)
    with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=dtype == "bf16"):
        logits = net(input_ids=x).logits
    loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()
    sched.step()
    return loss.item()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", choices=sorted(HF), default="nano-trickster")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--threads", type=int, help="torch CPU threads (default torch's)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    spec = str(ROOT / "specs" / f"{args.spec}.arch")
    model = load_model(spec)
    total = 2 + args.rounds * (args.steps + 1)
    ids = torch.randint(0, 256, (200_000,), generator=torch.Generator().manual_seed(0))
    tokens = Tokens(ids, 0.1, "random", [])
    hyper = loop.Hyper(steps=total, batch=args.batch, seq=args.seq, lr=1e-3, warmup=2, min_lr=1e-4,
                       weight_decay=0.1, clip=1.0, accum=1, eval_every=total, eval_batches=1, val_fraction=0.1,
                       seed=0, dtype=args.dtype)
    with tempdirs.session(), tempfile.TemporaryDirectory() as out:
        job = loop.Job(model, spec, hyper, tokens, Path(out), device, save_every=total)
        module, ours = loop.build_net(model, spec, 0, None, device)
        hf = HF[args.spec]().to(device).train()
        hf.load_state_dict(to_hf_state_dict(model, {k: v.cpu() for k, v in
                                                     _ttspec_weights(ours, module, model).items()}), strict=False)
        runs = {}
        for name, net in (("ttspec", ours), ("hf", hf)):
            opt = schedule.optimizer(net, hyper.lr, hyper.weight_decay)
            runs[name] = (net, opt, schedule.scheduler(opt, total, hyper.warmup, hyper.lr, hyper.min_lr), [0])
        rates = {"ttspec": [], "hf": []}
        for _ in range(args.rounds):
            for name, (net, opt, sched, step) in runs.items():
                rates[name].append(_round(name, net, opt, sched, step, job, args.steps))
    per_step = args.batch * args.seq
    print(f"{args.spec}: batch {args.batch} x seq {args.seq}, {device} {args.dtype}, {torch.get_num_threads()} "
          f"thread(s), {args.rounds} rounds of {args.steps} steps")
    median = {name: statistics.median(r) * per_step for name, r in rates.items()}
    for name, label in (("ttspec", "ttspec train loop"), ("hf", "HF transformers loop")):
        print(f"  {label:22s} {median[name]:12,.0f} tokens/s  (rounds: "
              f"{', '.join(f'{r * per_step:,.0f}' for r in rates[name])})")
    print(f"  ratio ttspec / HF: {median['ttspec'] / median['hf']:.3f}  (goal >= 1.0)")


def _ttspec_weights(net, module, model):
    from ttspec.runtime.weights import stored_shapes
    from ttspec.training.checkpoint import ttspec_state

    return ttspec_state(net, module, stored_shapes(model))


def _round(name, net, opt, sched, step, job, steps: int) -> float:
    """One untimed warm-up step, then `steps` timed: steps per second."""
    def one():
        if name == "ttspec":
            loop.train_step(net, opt, sched, job, step[0])
        else:
            x, y = (t.to(job.device) for t in job.tokens.batch(job.hyper.seed, step[0], 0, job.hyper.batch,
                                                                 job.hyper.seq))
            hf_step(net, opt, sched, x, y, job.hyper.dtype, job.device)
        step[0] += 1

    # on the host, the process's CPU time (other processes on a shared machine do not count against either loop);
    # on CUDA, wall time after a synchronisation
    clock = time.process_time if job.device == "cpu" else time.perf_counter
    one()
    if job.device == "cuda":
        torch.cuda.synchronize()
    began = clock()
    for _ in range(steps):
        one()
    if job.device == "cuda":
        torch.cuda.synchronize()
    return steps / (clock() - began)


if __name__ == "__main__":
    main()
