"""The device ops of a generated TT-NN program's prefill (one user's prompt: time to first token), read from the
program this backend wrote as decode_facts.py reads its decode step, for the cost model (analysis/program.py's
records): from the root class's `prefill`, through `forward`, each layer's forward (`layer(h)`), the attention's and
MLP's (`self.attn(h)`), `chunked_linear`'s 2-D programs per chunk of rows (the configs it is passed, and the chunk
sizes it has them for), RoPE's tables (kept per prompt length: host uploads, no device op once made), the KV cache's
fill, and the LM head on the tile of rows holding the last position where the program slices it (`head_rows`).

The run state's mode is the prefill's: `if state.decoding:` takes its else branch, `self.mode != "prefill"` is
False. A model that cannot decode (non-causal attention: CANNOT_DECODE) has neither a prefill nor a decode step;
forward_program reads its forward pass (`model(tokens)`: every position's logits) the same way.
tests/test_decode_capture.py checks the counts per layer and outside the layers against the mock device's
capture of a prefill (less the ops ttnn.from_torch dispatches while uploading the RoPE tables of a new length).
"""

from __future__ import annotations

import ast

from ...analysis.program import DecodeProgram
from .decode_facts import MATMUL_CALLS, ProgramWalker, program_fabric

TILE = 32


def prefill_program(source: str) -> DecodeProgram:
    """The prefill of the TT-NN program `source` (what compile_ttnn wrote), as the cost model reads it: the ops
    per layer and outside the layers, and `head_rows` (32: the head runs on the last position's tile; 0: on every
    position)."""
    tree, walker = _walked(source, "prefill", "prefill", "decode_step", "no prefill")
    b = walker.buckets
    after = b["after"]
    # the head: the first matmul after the layers (named by its weight member, or inside head_chunks_prefill)
    head = next((i for i, op in enumerate(after) if op.weight or op.op.rsplit(".", 1)[-1] in MATMUL_CALLS),
                None)
    sliced = head is not None and any(op.op.endswith(".slice") for op in after[:head])
    return DecodeProgram(tuple(b["layer"]), tuple(b["before"] + b["step"] + after), walker.layers, program_fabric(tree),
                         len(walker.step_inputs), False, walker.cycle, head_rows=TILE if sliced else 0,
                         dense_experts=walker.dense_experts)


def forward_program(source: str) -> DecodeProgram:
    """The forward pass of the TT-NN program `source` of a model that cannot decode (an encoder: `model(tokens)`,
    the root class's `forward`, every position through the head), as prefill_program reads a prefill: the run
    state's mode is neither decode's nor a prefill's, so the head runs on every row."""
    tree, walker = _walked(source, "full", "forward", "prefill", "no forward pass")
    b = walker.buckets
    return DecodeProgram(tuple(b["layer"]), tuple(b["before"] + b["step"] + b["after"]), walker.layers,
                         program_fabric(tree), len(walker.step_inputs), False, walker.cycle, head_rows=0,
                         dense_experts=walker.dense_experts)


def _walked(source: str, mode: str, method: str, beside: str, missing: str) -> tuple[ast.Module, ProgramWalker]:
    """The program's root class (the one with `method` and `beside`) walked through `method` in the run state's
    `mode`; a program without layers has its ops all before the head."""
    tree = ast.parse(source)
    walker = ProgramWalker(tree)
    walker.modes = {"decoding": False, "mode": mode}
    root = next((c for c in walker.classes.values() if method in c.methods and beside in c.methods), None)
    if root is None:
        raise ValueError(f"the program has {missing}: not a TT-NN program ttspec wrote")
    walker.enter(root.methods[method], root, (root.name, method))
    b = walker.buckets
    if not walker.layers:
        b["before"] += b.pop("layer")
        b["layer"] = []
    return tree, walker
