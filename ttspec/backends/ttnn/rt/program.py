"""The model's API (Program): load weights, run a whole sequence, allocate the KV cache, prefill a
user's prompt and decode a step for every user. The generated model class (the root) takes these
methods (inline.py copies them into it, since the runtime follows the model classes in a program);
it brings its own `build`, which makes its layers from the placed weights, `forward` (a whole sequence:
prefill) and `decode_step` (one token per user)."""

import torch
import ttnn

from ...common.rt.parameters import from_hf_state_dict, parameters
from .header import (
    CANNOT_DECODE,
    DRAM_BESIDE_WEIGHTS,
    KV_CACHE_BYTES_PER_POSITION,
    LOGITS_BYTES_PER_POSITION,
    MAX_CONTEXT,
    PREFILL_BYTES_PER_POSITION,
    PREFILL_BYTES_PER_POSITION_PAIR,
    SPEC_BOUND,
    TILE,
    VOCAB,
    WEIGHTS_DTYPE,
)
from .mesh import best_on_device, best_to_host, logits_to_host, tokens_to_device
from .run_state import RunState
from .weights import Weights


class Program:
    def __init__(self, device, weights_dtype=WEIGHTS_DTYPE, trace=True):
        self.device = device
        self.weights_dtype = weights_dtype
        self.state = RunState(device, trace)

    def load_weights(self, hf_state_dict):
        """Place HF transformers weights (named as the family's HF models name them) on the device."""
        self.load_ttspec_weights(from_hf_state_dict(hf_state_dict))

    def load_ttspec_weights(self, state_dict):
        """Place weights named as ttspec names them (`ttspec params --json`) on the device. Each
        tensor is taken from `state_dict` as it is placed, so a lazy mapping can stream from disk."""
        missing = [name for name in parameters() if name not in state_dict]
        if missing:
            raise KeyError(f"missing weights: {', '.join(missing[:3])}")
        self.build(Weights(state_dict, self.device, self.weights_dtype, self.state))

    def __call__(self, tokens):
        """Prefill: torch int tokens [batch, seq] -> torch float logits [batch, seq, VOCAB]."""
        seq = tokens.shape[-1]
        check_sequence(seq)
        padded = -(-seq // TILE) * TILE
        check_logits(padded, tokens.shape[0])
        tokens = torch.nn.functional.pad(tokens, (0, padded - seq))
        batch = tokens.shape[0]
        self.state.length = seq  # non-causal attention masks the padded keys
        try:
            logits = self.forward(tokens_to_device(tokens, self.device))
        finally:
            self.state.length = self.state.padding_mask = None
        return self.logits_to_host(logits)[:batch, :seq]

    def allocate_cache(self, batch, context):
        """A KV cache on the device for `batch` users (at most 32, the rows of a tile) and `context`
        positions (padded to a tile): each attention's K and V, [batch, kv heads, context, head_dim]
        TILE in KV_CACHE_DTYPE (per device on a mesh). Replaces any earlier cache."""
        check_decodes()
        if MAX_CONTEXT is not None:
            if context > MAX_CONTEXT:
                raise ValueError(f"context {context} exceeds {MAX_CONTEXT}, the longest this program allows")
            padded = -(-context // TILE) * TILE
            cache = batch * padded * KV_CACHE_BYTES_PER_POSITION
            prefill = padded * PREFILL_BYTES_PER_POSITION + padded * padded * PREFILL_BYTES_PER_POSITION_PAIR \
                + TILE * LOGITS_BYTES_PER_POSITION  # the last position's tile of logits
            if cache + prefill > DRAM_BESIDE_WEIGHTS:
                raise ValueError(f"a KV cache for {batch} users x {context} positions needs {cache:,} bytes "
                                 f"of device DRAM per chip and a prompt's prefill {prefill:,}; "
                                 f"{DRAM_BESIDE_WEIGHTS:,} are free beside the weights")
        self.state.allocate(batch, context)

    def prefill(self, tokens, user, every_position=False):
        """One user's prompt: torch int [T] -> torch float logits [1, VOCAB] of its last position (the head
        runs on the tile holding it), or [T, VOCAB] of every position with `every_position` (scoring);
        writes the user's K and V at positions 0..T-1 (and the padding to the next tile, which decode
        overwrites)."""
        check_decodes()
        tokens = torch.as_tensor(tokens).reshape(-1)
        seq = tokens.shape[0]
        padded = -(-seq // TILE) * TILE
        self.state.check_prefill(padded, user)
        if every_position:
            check_logits(padded)
        ids = torch.nn.functional.pad(tokens, (0, padded - seq))[None]
        self.state.begin("prefill", torch.arange(padded), user, last=None if every_position else seq - 1)
        try:
            logits = self.logits_to_host(self.forward(self.state.upload_tokens(ids)))
        finally:
            self.state.end()
        return logits[0, :seq] if every_position else logits[0, (seq - 1) % TILE][None]

    def decode(self, tokens, positions):
        """One step for users 0..B-1: torch int tokens [B] and positions [B] -> torch float logits
        [B, VOCAB]. User b's token sits at positions[b]: its K and V are written there and it
        attends to positions <= positions[b] (within the window where there is one)."""
        users, logits = self._step(tokens, positions, greedy=False)
        return self.logits_to_host(logits)[0, :users]

    def decode_greedy(self, tokens, positions):
        """One step as decode, each user's next token chosen on the device: (ids [B] int64, each user's
        largest logit [B] float; NaN or an infinity there: the logits are not finite). The host reads
        these, a few bytes per user, instead of the logits (mesh.best_on_device)."""
        users, best = self._step(tokens, positions, greedy=True)
        ids, peaks = best_to_host(best, self.device)
        return ids[:users], peaks[:users]

    def _step(self, tokens, positions, greedy):
        """(users, the decode step's device output: logits, or best_on_device's with `greedy`)."""
        check_decodes()
        state = self.state
        tokens = torch.as_tensor(tokens).reshape(-1)
        positions = torch.as_tensor(positions).reshape(-1)
        users = state.check_decode(tokens, positions)
        rows = torch.zeros(state.batch, dtype=torch.int64)
        rows[:users] = tokens
        at = torch.full((state.batch,), -1, dtype=torch.int64)  # -1: a row with no user this step
        at[:users] = positions
        state.begin("decode", at, tokens=rows)
        try:
            def step():
                state.prepare_step()  # what the layers share: positions, gathered RoPE cos/sin
                logits = self.decode_step(state.step_input("tokens", lambda: state.tokens[None], ttnn.uint32,
                                                           ttnn.ROW_MAJOR_LAYOUT))
                return best_on_device(logits, state) if greedy else logits

            return users, state.run_step(step, "greedy" if greedy else "logits")
        finally:
            state.end()

    def logits_to_host(self, logits):
        return logits_to_host(logits, self.device)[..., :VOCAB]


def check_decodes() -> None:
    """Refuse the KV cache, prefill and decode of a model that cannot decode (CANNOT_DECODE says why:
    non-causal attention); model(tokens) runs it whole."""
    if CANNOT_DECODE:
        raise NotImplementedError(CANNOT_DECODE)


def check_sequence(seq: int) -> None:
    """Refuse a sequence longer than the program's context (MAX_CONTEXT: what the spec bounds or the
    device's DRAM holds at batch 1, whichever is less)."""
    if MAX_CONTEXT is None or seq <= MAX_CONTEXT:
        return
    if SPEC_BOUND is not None and MAX_CONTEXT >= SPEC_BOUND:
        raise ValueError(f"sequence length {seq} exceeds the spec's bound seq <= {MAX_CONTEXT}")
    allows = f" (the spec allows {SPEC_BOUND})" if SPEC_BOUND is not None else ""
    raise ValueError(f"sequence length {seq} exceeds {MAX_CONTEXT}, the longest context that fits the device's "
                     f"DRAM at batch 1{allows}")


def check_logits(padded: int, batch: int = 1) -> None:
    """Refuse a call that returns every position's logits when they would not fit the device's DRAM beside
    the weights with the prefill's activations (LOGITS_BYTES_PER_POSITION a position; prefill() without
    every_position computes only its last tile's)."""
    if not LOGITS_BYTES_PER_POSITION:
        return
    per_sequence = padded * (PREFILL_BYTES_PER_POSITION + LOGITS_BYTES_PER_POSITION) \
        + padded * padded * PREFILL_BYTES_PER_POSITION_PAIR
    if batch * per_sequence > DRAM_BESIDE_WEIGHTS:
        raise ValueError(f"every position's logits of {batch} x {padded} positions (padded to a tile) need "
                         f"{batch * padded * LOGITS_BYTES_PER_POSITION:,} bytes of device DRAM per chip beside the "
                         f"activations' {batch * (per_sequence - padded * LOGITS_BYTES_PER_POSITION):,}; "
                         f"{DRAM_BESIDE_WEIGHTS:,} are free beside the weights (prefill(tokens, user) computes "
                         "only the last position's)")
