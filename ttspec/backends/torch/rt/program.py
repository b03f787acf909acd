"""The model's API (Program): load weights by ttspec or HF names, allocate the KV cache, prefill a
user's prompt and decode a step for every user. The generated model class (the root) takes these
methods (inline.py copies them into it, since the runtime follows the model classes in a program)
and brings its own `forward`. What differs between programs is data they state (header.py: TIED,
BLOCK_FLOAT_WEIGHTS, CANNOT_DECODE, INIT; HF_NAMES) and the LABELS of their classes, not code."""

import torch

from ...common.rt.parameters import from_hf
from .attention import KVCache
from .block_floats import block_float, block_float_dtype
from .header import CANNOT_DECODE, TIED
from .init import init_of
from .names import ttspec_name
from .positions import Positions


class Program:
    @torch.no_grad()
    def init_weights(self):
        """Start every parameter as the spec's family starts a fresh model (INIT): normal(0, std) or a
        constant, in parameter order from torch's global generator (torch.manual_seed makes it repeatable);
        a tied parameter once, as its source. Loading weights afterwards replaces all of it."""
        for name, param in self.named_parameters():
            ours = ttspec_name(self, name)
            draw, value = init_of(TIED.get(ours, ours))
            if draw == "normal":
                param.normal_(0.0, value)
            else:
                param.fill_(value)

    def load_ttspec_weights(self, state_dict):
        """Load tensors named as ttspec names them (`ttspec params --json`); a tied parameter takes its
        source's tensor; a weight matrix the TT-NN program stores as a block float is rounded as the
        device rounds it (BLOCK_FLOAT_WEIGHTS)."""
        state = dict(state_dict)
        for name, source in TIED.items():
            state[name] = state[source]
        for name in state:
            dtype = block_float_dtype(name)
            if dtype:
                state[name] = block_float(state[name], dtype)
        names = {name: ttspec_name(self, name) for name in self.state_dict()}
        unexpected = sorted(set(state) - set(names.values()))
        if unexpected:
            raise KeyError(f"unexpected weights: {', '.join(unexpected)}")
        self.load_state_dict({name: state[ours] for name, ours in names.items()})

    def load_hf_state_dict(self, hf_state_dict):
        """Load tensors named as HF transformers names them for this model's family (HF_NAMES)."""
        names = [ttspec_name(self, name) for name in self.state_dict()]
        self.load_ttspec_weights({name: from_hf(name, hf_state_dict) for name in names if name not in TIED})

    def allocate_cache(self, batch, context):
        """A KV cache in every attention: [batch, kv_heads, context, head_dim] for `batch` users."""
        if CANNOT_DECODE:
            raise NotImplementedError(CANNOT_DECODE)
        weight = next(self.parameters())
        for module in self.modules():
            if isinstance(module, KVCache):
                module.allocate(batch, context, weight.dtype, weight.device)

    @torch.no_grad()
    def prefill(self, tokens, user, every_position=False):
        """Logits [1, vocab] of the last of one user's prompt tokens [T] (with every_position: [T, vocab], each
        position's), whose KV cache it fills at positions 0..T-1."""
        if CANNOT_DECODE:
            raise NotImplementedError(CANNOT_DECODE)
        device = next(self.parameters()).device
        pos = Positions(torch.arange(len(tokens), device=device)[None], rows=slice(user, user + 1))
        logits = self(tokens.to(device)[None], pos)[0]
        return logits if every_position else logits[-1:]

    @torch.no_grad()
    def decode(self, tokens, positions):
        """Logits [B, vocab] of one step for users 0..B-1: user b's token at positions[b], attending to its
        cache up to there."""
        if CANNOT_DECODE:
            raise NotImplementedError(CANNOT_DECODE)
        device = next(self.parameters()).device
        pos = Positions(positions.to(device)[:, None], rows=slice(0, len(tokens)), cached=True)
        return self(tokens.to(device)[:, None], pos)[:, 0]
