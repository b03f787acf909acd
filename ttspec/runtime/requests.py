"""What `ttspec run` and `ttspec generate` ask of the runtime, as typed values: the command line
(ttspec/cli) parses its options once and builds these; the runtime never sees an argparse Namespace."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..targets import Strategy, Target
from ..weight_formats import BF16, WeightFormats

Mode = Literal["torch", "golden", "mock", "device"]
MODES: tuple[Mode, ...] = ("torch", "golden", "mock", "device")


@dataclass(frozen=True)
class Program:
    """Which program runs, and where: the spec, the mode, and for the TT-NN modes the target and its options."""

    spec: str
    mode: Mode
    target: Target | None = None  # None: --mode torch, which runs on the host
    weights_dtype: WeightFormats = BF16
    mesh: tuple[int, int] | None = None
    dp: bool = False
    strategy: Strategy | None = None
    weights: str | None = None  # a checkpoint (directory, .safetensors or index); None: seeded random weights
    seed: int = 0  # random weights, random tokens and sampling


@dataclass(frozen=True)
class RunRequest:
    """`ttspec run`: one prefill of `tokens` (a .npy file) or of random tokens of shape `random_tokens`."""

    program: Program
    tokens: str | None = None
    random_tokens: str | None = None  # `B,S` (default 1,32)
    out: str | None = None  # where the logits go (.npy)
    save_weights: str | None = None  # where the weights the run used go (.safetensors)
    allocate_only: bool = False  # mock/device: weights allocated without host data


@dataclass(frozen=True)
class GenerateRequest:
    """`ttspec generate`: text (or `score`: logits of given tokens) through the program's KV cache."""

    program: Program
    prompt: str | None = None
    prompts: str | None = None  # a file, one prompt per line
    tokens: str | None = None  # a .npy file of token ids [batch, T]
    batch: int | None = None  # users: the prompt repeated
    max_new_tokens: int = 32
    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    stop: list[int] | None = None  # None: the checkpoint's end-of-text tokens (runtime/eos.py); [] never stops
    trace: bool = True  # --mode device: capture the decode step once and replay it
    score: bool = False
    prefill: int | None = None  # --score: tokens of each row prefilled
    out: str | None = None
