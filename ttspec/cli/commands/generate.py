"""`ttspec generate`: text (or --score's logits) through the program's KV cache."""

from __future__ import annotations

import argparse

from ...errors import UsageError
from ...targets import DEFAULT_TARGET
from ..options import (
    BATCH,
    CCL_DTYPE,
    KV_DTYPE,
    MODE,
    MODES_HELP,
    OUT,
    SEED,
    STRATEGY,
    STRATEGY_HELP,
    TARGET,
    TOKENS,
    WEIGHTS,
    WEIGHTS_DTYPE,
    WEIGHTS_FORMATS_HELP,
    device_run_parent,
    positive_int,
    spec_parent,
)
from ..shared import default_target, refuse_options_that_cannot_apply


def add_parser(sub) -> None:
    ge = sub.add_parser("generate", help="generate text (or --score token ids) through the program's KV cache",
                        description="Prefill each prompt into a KV cache, then decode one token per step for every "
                                    "user, greedy or sampled; tokens stream as they come, then time to first token "
                                    "and decode speed. --score instead feeds given tokens through prefill and "
                                    "decode and saves the logits of every position.",
                        parents=[spec_parent(), device_run_parent()])
    MODE.add(ge, MODES_HELP["generate"], default="torch")
    TARGET.add(ge, f"TT-NN modes: default the spec's `target` statement, else {DEFAULT_TARGET}")
    STRATEGY.add(ge, "TT-NN modes: " + STRATEGY_HELP)
    WEIGHTS.add(ge, "a model directory (its tokenizer.json tokenises --prompt), a .safetensors file or an index, as "
                    "for `ttspec run` (default: seeded random weights)")
    WEIGHTS_DTYPE.add(ge, "TT-NN modes: " + WEIGHTS_FORMATS_HELP, default="bf16")
    KV_DTYPE.add(ge)
    CCL_DTYPE.add(ge)
    ge.add_argument("--prompt", metavar="TEXT",
                    help="tokenised by the weights directory's tokenizer.json, else as UTF-8 bytes (a vocabulary "
                         "of at least 256)")
    ge.add_argument("--prompts", metavar="FILE", help="one prompt per line, one user each")
    TOKENS.add(ge, "int token ids [batch, T]: prompts, or what --score feeds")
    BATCH.add(ge, "users: the --prompt repeated (default 1); at most 32 in the TT-NN modes (one tile row), 256 with "
                  "--mode torch")
    ge.add_argument("--max-new-tokens", type=positive_int, default=32, help="default 32")
    ge.add_argument("--temperature", type=float, default=0.0, help="0 (default): greedy")
    ge.add_argument("--top-k", type=positive_int, help="sample from the k most likely tokens")
    ge.add_argument("--top-p", type=float, help="sample from the smallest set of tokens whose probability reaches p")
    SEED.add(ge, "seed for sampling and random weights (0 to 2**63-1)")
    ge.add_argument("--stop", type=stop_id, nargs="+", metavar="ID",
                    help="token ids that end a user's generation (default: the end-of-text token of --weights' "
                         "generation_config.json or config.json, as HF's generate; `none`: run to --max-new-tokens)")
    ge.add_argument("--no-trace", dest="trace", action="store_false",
                    help="--mode device: run every decode step op by op instead of capturing it once as a trace and "
                         "replaying it (the default; golden and mock runs never trace)")
    ge.add_argument("--score", action="store_true",
                    help="feed --tokens through prefill (the first --prefill of each row) and decode (the rest, one "
                         "step each) and save the logits [batch, T, vocab] with --out")
    ge.add_argument("--prefill", type=positive_int, help="--score: tokens of each row to prefill (default 1)")
    OUT.add(ge, "save the new ids [batch, n] (-1 after a user stopped), or --score's logits", metavar="F.npy")


def run(args) -> int:
    from ...driver import load_model
    from ...runtime import tempdirs
    from ...runtime.generation import run_generate
    from ...runtime.requests import GenerateRequest
    from .run import program

    model = load_model(args.spec)
    target = args.target
    refuse_options_that_cannot_apply(args, [target or default_target(model)], on_host=args.mode == "torch")
    if args.mode != "torch" and target is None:
        target = default_target(model)
    request = GenerateRequest(program(args, target), prompt=args.prompt, prompts=args.prompts, tokens=args.tokens,
                              batch=args.batch, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                              top_k=args.top_k, top_p=args.top_p, stop=_stop(args.stop), trace=args.trace,
                              score=args.score, prefill=args.prefill, out=args.out)
    with tempdirs.session(keep=args.keep_temp):
        return run_generate(model, request)


def stop_id(text: str) -> int | None:
    """One --stop word: a token id, or `none` (no stop token at all)."""
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a token id or `none`, got {text!r}") from None


def _stop(words: list[int | None] | None) -> list[int] | None:
    """--stop as the request takes it: None when not given (the checkpoint's end-of-text tokens), [] for `none`."""
    if words is None:
        return None
    if None in words and len(words) > 1:
        raise UsageError("--stop none means no stop token: give it alone")
    return [w for w in words if w is not None]
