"""`ttspec generate`: text from a spec through its generated program's serving API.

Every generated program (torch and TT-NN) has the same API: `model.allocate_cache(batch,
context)`, `model.prefill(tokens, user)`, `model.decode(tokens, positions)` and the module-level
`generate(model, prompts, max_new_tokens, ...)`. This module only drives that API, so each mode
is the same code once its program is built: torch (the PyTorch reference, in this process),
golden (the TT-NN program on ttnn's golden functions, in this process), mock and device (the
TT-NN program in a worker process, see device.py; tokens stream back line by line).

`--score` runs given tokens through the serving path instead of sampling: the first P of each
row by prefill, the rest one decode step at a time, and returns the logits of every position,
which must equal one full forward pass (the strongest check of a KV cache).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import ArchError, UsageError, printable
from ..ir.graph import Model

TOKEN_LINE = "TTSPEC-TOKEN "  # how a worker process streams a token to its parent: TOKEN_LINE + json [user, id]


@dataclass
class Job:
    """What to run through a program's serving API (JSON-able: it travels to worker processes)."""

    prompts: list[list[int]] = field(default_factory=list)
    max_new_tokens: int = 32
    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int = 0
    stop: list[int] = field(default_factory=list)
    score: list[list[int]] | None = None  # --score: token ids [batch, T]
    prefill: int = 1  # --score: how many tokens of each row are prefilled

    @property
    def batch(self) -> int:
        return len(self.score if self.score is not None else self.prompts)

    @property
    def context(self) -> int:
        """Positions the KV cache needs: the longest prompt plus the new tokens (--score: T)."""
        if self.score is not None:
            return len(self.score[0])
        return max(len(p) for p in self.prompts) + self.max_new_tokens


def serve(module, program, job: Job, on_token=None) -> dict:
    """Run `job` on a built program (module: the generated program's module, program: its model with
    weights loaded). Returns {"ids": new ids per user, "ttft": seconds to the first token, "decode":
    seconds of the decode steps, "steps": how many} or, for --score, {"logits": [batch, T, vocab]}."""
    import torch

    for method in ("allocate_cache", "prefill", "decode"):
        if not callable(getattr(program, method, None)) or not callable(getattr(module, "generate", None)):
            raise ArchError(f"this generated program has no `{method}` (no decode path)",
                            hint="the TT-NN programs get their KV cache and decode step with issue 11; "
                                 "`--mode torch` generates with the PyTorch reference meanwhile")
    program.allocate_cache(job.batch, job.context)
    if job.score is not None:
        return {"logits": score(program, torch.tensor(job.score), job.prefill)}
    times: list[float] = []

    def token(user: int, token_id: int) -> None:
        times.append(time.perf_counter())
        if on_token is not None:
            on_token(user, token_id)

    start = time.perf_counter()
    ids = module.generate(program, job.prompts, job.max_new_tokens, temperature=job.temperature, top_k=job.top_k,
                          top_p=job.top_p, seed=job.seed, stop_tokens=tuple(job.stop), on_token=token)
    end = time.perf_counter()
    steps = max((len(i) for i in ids), default=0)
    first = times[0] if times else end
    return {"ids": ids, "ttft": first - start, "decode": end - first, "steps": steps}


def score(program, tokens, prefill: int):
    """Logits [batch, T, vocab] of token ids [batch, T] through the serving path: each row's first
    `prefill` tokens by prefill, then one decode step per position for every row together."""
    import torch

    batch, length = tokens.shape
    rows = [program.prefill(tokens[user, :prefill], user).float().cpu() for user in range(batch)]
    logits = torch.empty(batch, length, rows[0].shape[-1])
    logits[:, :prefill] = torch.stack(rows)
    for position in range(prefill, length):
        step = program.decode(tokens[:, position], torch.full((batch,), position, dtype=torch.long))
        logits[:, position] = step.float().cpu()
    return logits


# ---------------------------------------------------------------- tokenizers
class ByteTokenizer:
    """UTF-8 bytes as token ids (a character-level model's 256-entry vocabulary)."""

    name = "bytes (UTF-8)"

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: list[int]) -> str:
        return bytes(i for i in ids if 0 <= i < 256).decode("utf-8", errors="replace")


class HFTokenizer:
    """A tokenizer.json read with HF's `tokenizers` library."""

    def __init__(self, path: Path):
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise ArchError(f"{path} needs the `tokenizers` library, which is not installed",
                            hint="pip install tokenizers, or pass --tokens F.npy") from None
        try:
            self.tokenizer = Tokenizer.from_file(str(path))
        except Exception as e:  # the library raises its own exception types
            raise ArchError(f"cannot read the tokenizer {path}: {e}") from None
        self.name = str(path)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text).ids

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids)


def tokenizer_for(weights: str | None, vocab: int):
    """The weights directory's tokenizer.json, else bytes for a vocabulary of at least 256 entries."""
    if weights:
        folder = Path(weights)
        folder = folder if folder.is_dir() else folder.parent
        if (folder / "tokenizer.json").is_file():
            return HFTokenizer(folder / "tokenizer.json")
    if vocab >= 256:
        return ByteTokenizer()
    raise ArchError(f"no tokenizer for --prompt: no tokenizer.json beside --weights, and the vocabulary ({vocab}) is "
                    "too small for bytes", hint="pass token ids with --tokens F.npy")


# ---------------------------------------------------------------- the command
def check_options(args) -> None:
    """Misuse of the options, before anything is loaded (exit 2)."""
    given = [name for name, value in (("--prompt", args.prompt), ("--prompts", args.prompts),
                                      ("--tokens", args.tokens)) if value is not None]
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)} exclude each other", hint="give the prompt one way")
    if args.score:
        if args.tokens is None:
            raise UsageError("--score needs --tokens F.npy (token ids [batch, T])",
                             hint="--score feeds the given tokens through prefill and decode and saves their logits")
        if args.stop or args.temperature or args.top_k is not None or args.top_p is not None:
            raise UsageError("--score feeds the given tokens: sampling options do not apply")
    elif args.prefill is not None:
        raise UsageError("--prefill is for --score")
    if not given:
        raise UsageError("nothing to generate from", hint="give --prompt TEXT, --prompts FILE or --tokens F.npy")
    if args.temperature < 0 or args.temperature != args.temperature or args.temperature == float("inf"):
        raise UsageError(f"--temperature must be a finite number >= 0, got {args.temperature}")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise UsageError(f"--top-p must be in (0, 1], got {args.top_p}",
                         hint="top-p keeps the smallest set of tokens whose probability reaches it; 0.9 is usual")
    if args.prompts is not None and args.batch is not None:
        raise UsageError("--batch repeats --prompt; --prompts FILE already gives one prompt per line")
    if args.mode == "torch" and args.target not in (None, "torch"):
        raise UsageError(f"--mode torch runs the PyTorch reference; --target {args.target} is for the TT-NN modes")
    if args.mode != "torch" and args.target == "torch":
        raise UsageError(f"--mode {args.mode} runs a TT-NN program: choose --target n150, p100, p150, n300, t3k, "
                         "galaxy, p150x4 or p150x8")


def make_job(model: Model, args, vocab: int):
    """The job and the tokenizer (None for token ids from a file)."""
    job = Job(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
              seed=args.seed, stop=list(args.stop or []))
    tokenizer = None
    if args.tokens is not None:
        from .runner import load_tokens

        tokens = load_tokens(args.tokens, None, vocab)
        if args.batch is not None:
            raise UsageError("--batch repeats --prompt; --tokens F.npy gives every row")
        if args.score:
            length = tokens.shape[1]
            job.prefill = 1 if args.prefill is None else args.prefill
            if not 1 <= job.prefill <= length:
                raise UsageError(f"--prefill must be between 1 and the tokens' length {length}, got {job.prefill}")
            job.score = tokens.tolist()
        else:
            job.prompts = tokens.tolist()
    else:
        tokenizer = tokenizer_for(args.weights, vocab)
        if args.prompts is not None:
            try:
                lines = Path(args.prompts).read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as e:
                raise ArchError(f"cannot read --prompts {args.prompts}: {e}") from None
            texts = [line for line in lines if line.strip()]
            if not texts:
                raise ArchError(f"--prompts {args.prompts} has no prompt (one per line)")
        else:
            texts = [args.prompt] * (args.batch or 1)
        job.prompts = [tokenizer.encode(text) for text in texts]
        if any(not p for p in job.prompts):
            raise ArchError("a prompt encodes to no tokens", hint="give at least one character")
        bad = sorted({i for p in job.prompts for i in p if not 0 <= i < vocab})
        if bad:
            raise ArchError(f"the tokenizer ({tokenizer.name}) gives ids outside the vocabulary of {vocab}: {bad[:5]}")
    if job.batch == 0:
        raise ArchError("no prompts to generate from")
    bad_stop = [i for i in job.stop if not 0 <= i < vocab]
    if bad_stop:
        raise UsageError(f"--stop ids must be in [0, {vocab}), got {bad_stop[:5]}")
    return job, tokenizer


def check_context(model: Model, job: Job, args, build=None) -> None:
    """The KV cache's context (prompt + new tokens) against the spec's bound and, for a TT-NN target,
    the memory model at this batch."""
    from ..analysis.memory import _bound

    what = (f"--score's {job.context} tokens" if job.score is not None else
            f"the prompt ({job.context - job.max_new_tokens} tokens) plus --max-new-tokens {job.max_new_tokens} "
            f"= {job.context} positions")
    bound = _bound(model, -1)
    if bound is not None and job.context > bound:
        raise ArchError(f"{what} exceed {model.name}'s context of {bound:,} (the spec's bound on seq)",
                        hint="use a shorter prompt or fewer --max-new-tokens")
    if build is not None:
        memory = build.memory
        prompt = job.context if job.score is not None else job.context - job.max_new_tokens
        # prefill runs one user at a time: its activations are one sequence's; a decode step's are tiny
        kv, activations = memory.kv_cache(job.batch, job.context), memory.activations(1, prompt)
        total = memory.weights_total + kv + activations
        if total > memory.dram:
            free = memory.dram - memory.weights_total - activations
            longest = max(0, free // max(1, memory.kv_bytes_per_token * memory.local_batch(job.batch)))
            raise ArchError(f"{what} for {job.batch} user(s) need {total:,} bytes of DRAM per chip on "
                            f"{build.options.target.name} (weights {memory.weights_total:,}, KV cache {kv:,}, "
                            f"prefill activations {activations:,}); it has {memory.dram:,}",
                            hint=f"at batch {job.batch} the KV cache holds at most about {longest:,} positions "
                                 "here; use fewer users, a shorter context or a smaller --weights-dtype")


def run_generate(model: Model, args) -> int:
    """`ttspec generate` (args as the CLI parses them; for the TT-NN modes args.target is resolved)."""
    from ..codegen.torch_backend import decode_blocker
    from .runner import require, vocab_of_input

    check_options(args)
    blocker = decode_blocker(model)
    if blocker is not None:
        raise blocker
    require("torch", "generation")
    vocab = vocab_of_input(model)
    job, tokenizer = make_job(model, args, vocab)
    build = source = None
    if args.mode == "torch":
        check_context(model, job, args)
    else:
        require("ttnn", f"--mode {args.mode}")
        from ..driver import build as build_program
        from ..driver import resolve_options

        build = build_program(model, resolve_options(args.target, args.weights_dtype, args.mesh, args.dp,
                                                     strategy=getattr(args, "strategy", None)))
        check_context(model, job, args, build)
        from ..codegen.ttnn_backend import compile_ttnn

        source = compile_ttnn(build, args.spec)
    where = "the PyTorch reference" if args.mode == "torch" else f"{args.target} ({args.mode})"
    if build is not None:
        print(f"KV cache: {job.batch} user(s) x {job.context:,} positions, "
              f"{build.memory.kv_cache(job.batch, job.context):,} bytes per chip", file=sys.stderr)
    state = _weights(model, args)
    stream = Stream(tokenizer, job, sys.stdout) if job.score is None else None
    if args.mode in ("torch", "golden"):
        module, program = _build_here(model, args, state, source)
        result = serve(module, program, job, stream.token if stream else None)
    else:
        result = _serve_in_worker(model, args, state, source, job, stream.token if stream else None)
    if job.score is not None:
        logits = result["logits"]
        print(f"scored {job.batch} x {job.context} tokens on {where} (prefill {job.prefill}, then "
              f"{job.context - job.prefill} decode steps): logits {list(logits.shape)}")
        if args.out:
            _save(logits.numpy(), args.out)
        return 0
    stream.finish(result["ids"])
    _report_speed(result, job, args.mode)
    if args.out:
        import numpy as np

        width = max((len(i) for i in result["ids"]), default=0)
        ids = np.full((job.batch, width), -1, dtype=np.int64)
        for user, new in enumerate(result["ids"]):
            ids[user, :len(new)] = new
        _save(ids, args.out)
    return 0


class Stream:
    """Tokens to the terminal as they come: batch 1 as text that grows; more users as one line each at
    the end (a dot per decode step meanwhile, on a terminal). Control characters a model produces are
    shown as visible symbols (errors.printable), never sent to the terminal."""

    def __init__(self, tokenizer, job: Job, out):
        self.tokenizer, self.job, self.out = tokenizer, job, out
        self.ids: list[list[int]] = [[] for _ in range(job.batch)]
        self.shown = ""
        self.tty = out.isatty()

    def token(self, user: int, token_id: int) -> None:
        self.ids[user].append(token_id)
        if self.job.batch == 1 and self.tokenizer is not None:
            text = self.tokenizer.decode(self.ids[0])
            if not text.endswith("\ufffd") and text.startswith(self.shown):  # whole characters only
                self.out.write(printable(text[len(self.shown):]))
                self.out.flush()
                self.shown = text
        elif self.job.batch == 1:
            self.out.write(f"{token_id} ")
            self.out.flush()
        elif self.tty and user == 0:
            self.out.write(".")
            self.out.flush()

    def finish(self, ids: list[list[int]]) -> None:
        if self.job.batch == 1:
            if self.tokenizer is not None:
                text = self.tokenizer.decode(ids[0])
                self.out.write(printable(text[len(self.shown):]) if text.startswith(self.shown) else "")
            self.out.write("\n")
            return
        if self.tty:
            self.out.write("\n")
        for user, new in enumerate(ids):
            shown = printable(self.tokenizer.decode(new)).replace("\n", "\u2424") if self.tokenizer is not None \
                else " ".join(map(str, new))
            self.out.write(f"[user {user}] {shown}\n")
        self.out.flush()


def _report_speed(result: dict, job: Job, mode: str) -> None:
    steps = result["steps"]
    per_token = result["decode"] / (steps - 1) if steps > 1 else None
    caveat = "" if mode == "device" else f" (--mode {mode}: not meaningful off hardware)"
    line = f"time to first token {result['ttft'] * 1000:.1f} ms"
    if per_token:
        line += f"; decode {per_token * 1000:.2f} ms per token, {1 / per_token:.1f} tokens/s/user"
    print(f"{line}; {job.batch} user(s), {steps} token(s) each at most{caveat}", file=sys.stderr)


def _save(array, path: str) -> None:
    import io

    import numpy as np

    from ..output import write_output_bytes

    buffer = io.BytesIO()
    np.save(buffer, array)
    write_output_bytes(buffer.getvalue(), path)
    print(f"wrote {path}: {array.dtype} {list(array.shape)}", file=sys.stderr)


def _weights(model: Model, args):
    from .runner import weights_for_run

    args.allocate_only = False
    args.save_weights = None
    return weights_for_run(model, args)


def _build_here(model: Model, args, state, source: str | None):
    """The program built in this process: the torch reference, or the TT-NN program on goldens."""
    from .runner import build_torch, golden_program

    if args.mode == "torch":
        return build_torch(model, args.spec, state, weights_dtype=args.weights_dtype)
    from ..targets import get_target
    from .device import import_ttnn

    import_ttnn()  # quietly: its import logs its whole config otherwise
    program, module = golden_program(model, args.spec, get_target(args.target), state, source=source)
    return module, program


def _serve_in_worker(model: Model, args, state, source: str, job: Job, on_token) -> dict:
    """mock and device: the TT-NN program in a worker process (device.py), tokens streamed back."""
    from .device import run_worker

    result = run_worker(model, source, args.mode, args.target, state=state, job=asdict(job),
                        trace=getattr(args, "trace", True), on_line=lambda line: _token_line(line, on_token))
    if job.score is not None:
        return {"logits": result["logits"]}
    return {key: result[key] for key in ("ids", "ttft", "decode", "steps")}


def _token_line(line: str, on_token) -> None:
    if line.startswith(TOKEN_LINE) and on_token is not None:
        user, token_id = json.loads(line[len(TOKEN_LINE):])
        on_token(user, token_id)


def serve_in_worker(module, program, job: dict, work: Path) -> dict:
    """The worker's side (device_worker.py): run the job, stream tokens on stdout, save score logits."""
    def emit(user: int, token_id: int) -> None:
        print(TOKEN_LINE + json.dumps([user, token_id]), flush=True)

    result = serve(module, program, Job(**job), emit)
    if "logits" in result:
        import numpy as np

        np.save(work / "logits.npy", result.pop("logits").numpy())
    return result
