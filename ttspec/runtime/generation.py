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
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import ArchError, UsageError, printable
from ..inputs import MAX_TOKENIZER_BYTES, MiB, parse_json, quote, read_text
from ..ir.graph import Model
from ..targets import DEVICE_TARGETS, TILE, TORCH, listing
from .requests import GenerateRequest, Program

TOKEN_LINE = "TTSPEC-TOKEN "  # how a worker process streams a token to its parent: TOKEN_LINE + json [user, id]
MAX_PROMPTS_BYTES = 16 * MiB  # --prompts: far more text than any batch of prompts a run can hold
# Users a program's decode step holds: a TT-NN program keeps them on the rows of one tile (its allocate_cache
# takes 1 to 32); the torch reference has no such limit, so it has a fixed one, far past any TT-NN program's
# batch (a Galaxy's 4 data-parallel replicas hold 128), that keeps a run to a few minutes on a host.
MAX_TTNN_USERS = TILE
MAX_TORCH_USERS = 256
TORCH_BYTES = 4  # the torch reference holds its weights and KV cache in fp32


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

    program.allocate_cache(job.batch, job.context)
    if job.score is not None:
        return {"logits": score(program, torch.tensor(job.score), job.prefill)}
    times: list[float] = []

    def token(user: int, token_id: int) -> None:
        times.append(time.perf_counter())
        if on_token is not None:
            on_token(user, token_id)

    start = time.perf_counter()
    try:
        ids = module.generate(program, job.prompts, job.max_new_tokens, temperature=job.temperature, top_k=job.top_k,
                              top_p=job.top_p, seed=job.seed, stop_tokens=tuple(job.stop), on_token=token)
    except module.NonFiniteLogits as e:  # the program's output, not a bug in ttspec: nothing was sampled from it
        raise ArchError(f"the program's logits are not finite in {e}", hint=NON_FINITE_HINT) from None
    end = time.perf_counter()
    steps = max((len(i) for i in ids), default=0)
    first = times[0] if times else end
    return {"ids": ids, "ttft": first - start, "decode": end - first, "steps": steps}


NON_FINITE_HINT = "check the weights (NaN, infinities, or values so large that the computation overflows)"


def score(program, tokens, prefill: int):
    """Logits [batch, T, vocab] of token ids [batch, T] through the serving path: each row's first
    `prefill` tokens by prefill, then one decode step per position for every row together."""
    import torch

    batch, length = tokens.shape
    rows = [program.prefill(tokens[user, :prefill], user, every_position=True).float().cpu() for user in range(batch)]
    logits = torch.empty(batch, length, rows[0].shape[-1])
    logits[:, :prefill] = torch.stack(rows)
    _check_finite(logits[:, :prefill], "the prefill")
    for position in range(prefill, length):
        step = program.decode(tokens[:, position], torch.full((batch,), position, dtype=torch.long))
        logits[:, position] = step.float().cpu()
        _check_finite(logits[:, position:position + 1], f"decode step {position - prefill + 1}", position)
    return logits


def _check_finite(logits, step: str, first: int = 0) -> None:
    """--score's logits [batch, positions, vocab] (the first at position `first`): NaN or an infinity is an error."""
    import torch

    bad = ~torch.isfinite(logits)
    if bad.any():
        user, position = (int(i) for i in bad.any(-1).nonzero()[0])
        kind = "NaN" if logits[user, position].isnan().any() else "infinite"
        raise ArchError(f"the program's logits are not finite in {step}: the logits of user {user} at position "
                        f"{first + position} are {kind}", hint=NON_FINITE_HINT)


# ---------------------------------------------------------------- tokenizers
class ByteTokenizer:
    """UTF-8 bytes as token ids (a character-level model's 256-entry vocabulary)."""

    name = "bytes (UTF-8)"

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: list[int]) -> str:
        return bytes(i for i in ids if 0 <= i < 256).decode("utf-8", errors="replace")


class HFTokenizer:
    """A tokenizer.json read with HF's `tokenizers` library. The file is read here (a regular file, size-limited)
    and checked as JSON (nesting, integers, syntax: errors at file:line:col) before the library parses it; any
    error of the library, loading or encoding, is the tokenizer's, reported as such."""

    def __init__(self, path: Path):
        text = read_text(path, "tokenizer.json", MAX_TOKENIZER_BYTES)
        parse_json(text, str(path), "tokenizer.json")
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise ArchError(f"{quote(path)} needs the `tokenizers` library, which is not installed",
                            hint="pip install 'ttspec[hf]', or pass --tokens F.npy") from None
        self.name = quote(path)
        try:
            self.tokenizer = Tokenizer.from_str(text)
        except Exception as e:  # the library raises its own exception types
            raise ArchError(f"cannot read the tokenizer {self.name}: {quote(e, 300)}") from None

    def encode(self, text: str) -> list[int]:
        try:
            return self.tokenizer.encode(text).ids
        except Exception as e:  # e.g. a WordLevel model without its unknown token meeting an unknown word
            raise ArchError(f"the tokenizer {self.name} cannot encode the prompt: {quote(e, 300)}",
                            hint="fix tokenizer.json, or pass token ids with --tokens F.npy") from None

    def decode(self, ids: list[int]) -> str:
        try:
            return self.tokenizer.decode(ids)
        except Exception as e:
            raise ArchError(f"the tokenizer {self.name} cannot decode the ids {quote(ids[-8:])}: {quote(e, 300)}",
                            hint="fix tokenizer.json, or pass --tokens F.npy (the ids are then printed)") from None


def tokenizer_for(weights: str | None, vocab: int):
    """The weights directory's tokenizer.json, else bytes for a vocabulary of at least 256 entries. Only a
    tokenizer.json that is not there at all falls back: one that is there but is a dangling link, a FIFO, a
    directory or unreadable is an error (byte-encoding the prompt instead would run the model on wrong ids)."""
    if weights:
        folder = Path(weights)
        folder = folder if folder.is_dir() else folder.parent
        if os.path.lexists(folder / "tokenizer.json"):
            return HFTokenizer(folder / "tokenizer.json")
    if vocab >= 256:
        return ByteTokenizer()
    raise ArchError(f"no tokenizer for --prompt: no tokenizer.json beside --weights, and the vocabulary ({vocab}) is "
                    "too small for bytes", hint="pass token ids with --tokens F.npy")


# ---------------------------------------------------------------- the command
def check_options(request: GenerateRequest) -> None:
    """Misuse of the options, before anything is loaded (exit 2)."""
    mode, target = request.program.mode, request.program.target
    given = [name for name, value in (("--prompt", request.prompt), ("--prompts", request.prompts),
                                      ("--tokens", request.tokens)) if value is not None]
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)} exclude each other", hint="give the prompt one way")
    if request.score:
        if request.tokens is None:
            raise UsageError("--score needs --tokens F.npy (token ids [batch, T])",
                             hint="--score feeds the given tokens through prefill and decode and saves their logits")
        if request.stop or request.temperature or request.top_k is not None or request.top_p is not None:
            raise UsageError("--score feeds the given tokens: sampling options do not apply")
    elif request.prefill is not None:
        raise UsageError("--prefill is for --score")
    if not given:
        raise UsageError("nothing to generate from", hint="give --prompt TEXT, --prompts FILE or --tokens F.npy")
    if request.temperature < 0 or request.temperature != request.temperature or request.temperature == float("inf"):
        raise UsageError(f"--temperature must be a finite number >= 0, got {request.temperature}")
    if request.top_p is not None and not 0 < request.top_p <= 1:
        raise UsageError(f"--top-p must be in (0, 1], got {request.top_p}",
                         hint="top-p keeps the smallest set of tokens whose probability reaches it; 0.9 is usual")
    if request.prompts is not None and request.batch is not None:
        raise UsageError("--batch repeats --prompt; --prompts FILE already gives one prompt per line")
    if mode == "torch" and target not in (None, TORCH):
        raise UsageError(f"--mode torch runs the PyTorch reference; --target {target.name} is for the TT-NN modes")
    if mode != "torch" and target is TORCH:
        raise UsageError(f"--mode {mode} runs a TT-NN program: choose --target {listing(DEVICE_TARGETS)}")
    if request.batch is not None:
        check_users(request.batch, "--batch", mode)


def check_users(users: int, what: str, mode: str, error=UsageError) -> None:
    """Users one generation serves, checked before any prompt is encoded or anything allocated (`error`:
    UsageError for an option, ArchError for a file's rows)."""
    if mode != "torch" and users > MAX_TTNN_USERS:
        raise error(f"{what} gives {users:,} users; a TT-NN program decodes at most {MAX_TTNN_USERS} together",
                         hint=f"its decode step holds the users on the {MAX_TTNN_USERS} rows of one tile; run the "
                              f"users in groups of {MAX_TTNN_USERS}")
    if users > MAX_TORCH_USERS:
        raise error(f"{what} gives {users:,} users; --mode torch generates for at most {MAX_TORCH_USERS}",
                         hint=f"run the users in groups of at most {MAX_TORCH_USERS} (a TT-NN program decodes "
                              f"{MAX_TTNN_USERS} together)")


def make_job(model: Model, request: GenerateRequest, vocab: int):
    """The job and the tokenizer (None for token ids from a file)."""
    mode = request.program.mode
    job = Job(max_new_tokens=request.max_new_tokens, temperature=request.temperature, top_k=request.top_k,
              top_p=request.top_p, seed=request.program.seed, stop=list(request.stop or []))
    tokenizer = None
    if request.tokens is not None:
        from .runner import load_tokens

        if request.batch is not None:
            raise UsageError("--batch repeats --prompt; --tokens F.npy gives every row")
        tokens = load_tokens(request.tokens, None, vocab)
        check_users(tokens.shape[0], f"--tokens {quote(request.tokens)}", mode, ArchError)
        if request.score:
            length = tokens.shape[1]
            job.prefill = 1 if request.prefill is None else request.prefill
            if not 1 <= job.prefill <= length:
                raise UsageError(f"--prefill must be between 1 and the tokens' length {length}, got {job.prefill}")
            job.score = tokens.tolist()
        else:
            job.prompts = tokens.tolist()
    else:
        tokenizer = tokenizer_for(request.program.weights, vocab)
        if request.prompts is not None:
            lines = read_text(request.prompts, "--prompts file", MAX_PROMPTS_BYTES).splitlines()
            texts = [line for line in lines if line.strip()]
            if not texts:
                raise ArchError(f"--prompts {quote(request.prompts)} has no prompt (one per line)")
            check_users(len(texts), f"--prompts {quote(request.prompts)}", mode, ArchError)
        else:
            texts = [request.prompt] * (request.batch or 1)
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
    if request.stop is None and job.score is None:  # as HF's generate: the checkpoint's end-of-text token
        from .eos import checkpoint_stop_tokens

        job.stop = checkpoint_stop_tokens(request.program.weights, vocab)
    return job, tokenizer


def check_context(model: Model, job: Job, build=None) -> None:
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
    users = _bound(model, 0)
    if users is not None and job.batch > users:
        raise ArchError(f"{job.batch} users exceed {model.name}'s bound on batch, {users:,}",
                        model.graph.node(model.graph.inputs[0]).loc, hint=f"give at most {users:,} prompts")
    if build is None:
        check_host_memory(model, job, what)
    if build is not None:
        memory = build.memory
        prompt = job.context if job.score is not None else job.context - job.max_new_tokens
        # prefill runs one user at a time: its activations are one sequence's (--score's prefill returns every
        # position's logits, generate's its last tile's); a decode step's are tiny
        kv, activations = memory.kv_cache(job.batch, job.context), memory.activations(1, prompt)
        if job.score is not None:
            activations += memory.logits(job.prefill)
        total = memory.weights_total + kv + activations
        if total > memory.dram:
            free = memory.dram - memory.weights_total - activations
            longest = max(0, free // max(1, memory.kv_bytes_per_token * memory.local_batch(job.batch)))
            raise ArchError(f"{what} for {job.batch} user(s) need {total:,} bytes of DRAM per chip on "
                            f"{build.options.target.name} (weights {memory.weights_total:,}, KV cache {kv:,}, "
                            f"prefill activations {activations:,}); it has {memory.dram:,}",
                            hint=f"at batch {job.batch} the KV cache holds at most about {longest:,} positions "
                                 "here; use fewer users, a shorter context or a smaller --weights-dtype")


def kv_bytes_per_position(model: Model) -> int:
    """Bytes of the torch reference's KV cache per user and position: every attention's keys and values, fp32."""
    from ..ir.graph import layer_variants
    from ..ops.queries import attentions

    def visit(graph, count: int) -> int:
        total = 0
        for att in attentions(graph):
            values = graph.node(att.node.inputs[2]).type.shape[-1]
            total += count * att.kv_heads * (att.head_dim + values) * TORCH_BYTES
        for node in graph.repeats():
            total += sum(visit(body, count * n) for body, n in layer_variants(node))
        return total

    return visit(model.graph, 1)


def check_host_memory(model: Model, job: Job, what: str) -> None:
    """--mode torch: the KV cache the reference allocates (a closed form: users x positions x every attention's
    keys and values in fp32) beside its fp32 weights, against the host's memory, before anything is allocated."""
    import math

    from .runner import host_memory_available
    from .weights import stored_shapes

    available = host_memory_available()
    if available is None:
        return
    per_position = kv_bytes_per_position(model)
    weights = TORCH_BYTES * sum(math.prod(shape) for shape in stored_shapes(model).values())
    kv = job.batch * job.context * per_position
    if weights + kv > available:
        longest = max(0, (available - weights) // max(1, job.batch * per_position))
        raise ArchError(f"{what} for {job.batch} user(s) need a KV cache of {kv:,} bytes ({per_position:,} per user "
                        f"and position, fp32) beside the weights' {weights:,}; the host has {available:,} available",
                        hint=f"at {job.batch} user(s) at most about {longest:,} positions fit here; use fewer users, "
                             "a shorter prompt or fewer --max-new-tokens")


def run_generate(model: Model, request: GenerateRequest) -> int:
    """`ttspec generate` (for the TT-NN modes the request's target is resolved)."""
    from ..backends.torch.backend import decode_blocker
    from .runner import require, vocab_of_input

    program = request.program
    check_options(request)
    blocker = decode_blocker(model)
    if blocker is not None:
        raise blocker
    require("torch", "generation", "generate")
    vocab = vocab_of_input(model)
    job, tokenizer = make_job(model, request, vocab)
    build = source = None
    if program.mode == "torch":
        check_context(model, job)
    else:
        require("ttnn", f"--mode {program.mode}", "generate")
        build, source = _compile_for_generate(model, program, job)
    where = "the PyTorch reference" if program.mode == "torch" else f"{program.target.name} ({program.mode})"
    if build is not None:
        print(f"KV cache: {job.batch} user(s) x {job.context:,} positions, "
              f"{build.memory.kv_cache(job.batch, job.context):,} bytes per chip", file=sys.stderr)
    from .runner import weights_for_run

    state = weights_for_run(model, program)
    stream = Stream(tokenizer, job, sys.stdout) if job.score is None else None
    if program.mode in ("torch", "golden"):
        module, built = _build_here(model, program, state, source)
        result = serve(module, built, job, stream.token if stream else None)
    else:
        result = _serve_in_worker(model, program, request.trace, state, source, job,
                                  stream.token if stream else None)
    if job.score is not None:
        logits = result["logits"]
        print(f"scored {job.batch} x {job.context} tokens on {where} (prefill {job.prefill}, then "
              f"{job.context - job.prefill} decode steps): logits {list(logits.shape)}")
        if request.out:
            _save(logits.numpy(), request.out)
        return 0
    stream.finish(result["ids"])
    _report_speed(result, job, program.mode)
    if request.out:
        import numpy as np

        width = max((len(i) for i in result["ids"]), default=0)
        ids = np.full((job.batch, width), -1, dtype=np.int64)
        for user, new in enumerate(result["ids"]):
            ids[user, :len(new)] = new
        _save(ids, request.out)
    return 0


def _compile_for_generate(model: Model, program: Program, job: Job):
    """The TT-NN program's Build and source, checked against the job's users and context."""
    from ..backends.ttnn.backend import compile_ttnn
    from ..driver import build as build_program
    from ..driver import resolve_options

    build = build_program(model, resolve_options(program.target, program.weights_dtype, program.mesh, program.dp,
                                                 strategy=program.strategy))
    if build.shard_plan.dp:  # the program's allocate_cache would refuse
        raise UsageError("generate --dp: the TT-NN programs do not decode with the batch split over "
                         "data-parallel replicas yet", hint="leave out --dp (each replica then holds every user)")
    check_context(model, job, build)
    return build, compile_ttnn(build, program.spec)


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


def _build_here(model: Model, program: Program, state, source: str | None):
    """The program built in this process: the torch reference, or the TT-NN program on goldens."""
    from .runner import build_torch, golden_program

    if program.mode == "torch":
        return build_torch(model, program.spec, state, weights_dtype=program.weights_dtype)
    from .device import import_ttnn

    import_ttnn()  # quietly: its import logs its whole config otherwise
    built, module = golden_program(model, program.spec, program.target, state, source=source)
    return module, built


def _serve_in_worker(model: Model, program: Program, trace: bool, state, source: str, job: Job, on_token) -> dict:
    """mock and device: the TT-NN program in a worker process (device.py), tokens streamed back."""
    from .device import run_worker

    result = run_worker(model, source, program.mode, program.target.name, state=state, job=asdict(job),
                        trace=trace, on_line=lambda line: _token_line(line, on_token))
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
