"""How much memory training the PyTorch program takes: `ttspec check --training`'s estimate, calibrated
against the peak ttspec/training/memory.py measures (docs/training-memory.md has the agreement table).

Training with AdamW holds, per parameter, its weight, its gradient and AdamW's two moments (fp32: 4 + 4 +
8 = 16 bytes; mixed precision as the lesson counts it, bf16 weights and gradients with fp32 master weights
and moments, is 16 too), and, for a batch, the activations autograd keeps from the forward pass for the
backward: each op's kept values (its torch lowering's `saved`: a linear's input, an activation's input,
both factors of a product, a norm's input and statistics, attention's q, k, v, output and log-sum-exp),
each value counted once however many ops keep it (the norm's output that wq, wk and wv read), views
(split heads) counted as the value they view; plus the loss's log-probabilities [tokens, vocab] fp32.

The peak comes at the start of the backward pass, before any gradient exists: weights, AdamW's moments, the
activations and the loss's gradient with respect to the log-probabilities and the logits (two more [tokens,
vocab] fp32 tensors). The gradients take the activations' place as the backward frees them, so the peak is
the larger of that and weights + gradients + moments (the optimizer step, when the activations are small).
Summing all four terms (the lesson's form) overcounts the gradients whenever activations dominate."""

from __future__ import annotations

from typing import NamedTuple

from ...analysis.interpreters import count_params
from ...ir.graph import Graph, Model, layer_variants
from ...ir.types import concrete, numel
from ...ops.queries import input_vocabulary
from .lower import LOWERINGS

OPTIMIZER_STATES = 2  # AdamW: exp_avg and exp_avg_sq per parameter
INDEX_BYTES = 8  # token ids as torch holds them (int64)


class TrainingMemory(NamedTuple):
    """Bytes of one training step at `batch` x `seq`, by term, and the estimated peak."""

    batch: int
    seq: int
    parameters: int
    weights: int
    gradients: int
    optimizer: int  # AdamW's moments
    activations: int  # what autograd keeps from the forward pass, the loss's log-probabilities included
    loss_gradients: int  # the gradient of the log-probabilities and of the logits at the start of the backward
    peak: int

    def summary(self) -> str:
        unit, scale = ("GB", 1e9) if self.peak >= 1e9 else ("MB", 1e6)

        def size(n: int) -> str:
            return f"{n / scale:,.1f}"

        return (f"training at batch {self.batch} x seq {self.seq} (fp32 AdamW) needs about {size(self.peak)} {unit}: "
                f"weights {size(self.weights)} + AdamW moments {size(self.optimizer)} + the larger of (activations "
                f"{size(self.activations)} + loss gradients {size(self.loss_gradients)}) and gradients "
                f"{size(self.gradients)} {unit}")


def training_memory(model: Model, batch: int, seq: int, dtype_bytes: int = 4) -> TrainingMemory:
    """The estimate for one training step of `batch` sequences of `seq` tokens (next-token cross-entropy
    over the logits), weights, gradients, moments and activations in `dtype_bytes` (4: fp32)."""
    bindings = token_bindings(model, batch, seq)
    params = count_params(model.graph)
    weights = params * dtype_bytes
    kept = kept_bytes(model.graph, bindings, dtype_bytes)
    vocab = input_vocabulary(model.graph) or _output_width(model.graph, bindings)
    log_probs = batch * seq * vocab * 4  # cross-entropy in fp32
    activations = kept + log_probs
    loss_gradients = 2 * log_probs
    optimizer = OPTIMIZER_STATES * weights
    peak = weights + optimizer + max(activations + loss_gradients, weights)
    return TrainingMemory(batch, seq, params, weights, weights, optimizer, activations, loss_gradients, peak)


def token_bindings(model: Model, batch: int, seq: int) -> dict[str, int]:
    """Every symbolic dim bound: the token input's [batch, seq] to these, any other to 1."""
    bindings = {s: 1 for s in model.symbols}
    graph = model.graph
    if graph.inputs:
        for dim, value in zip(graph.node(graph.inputs[0]).type.shape, (batch, seq)):
            if not isinstance(dim, int):
                bindings[dim] = value
    return bindings


def seq_bound(model: Model) -> int | None:
    """The spec's bound on its token input's sequence dim (`where seq <= N`), or its fixed length."""
    graph = model.graph
    if not graph.inputs or graph.node(graph.inputs[0]).type.rank < 2:
        return None
    dim = graph.node(graph.inputs[0]).type.shape[1]
    return dim if isinstance(dim, int) else model.bounds.get(dim)


def _output_width(graph: Graph, bindings: dict[str, int]) -> int:
    out = graph.node(next(iter(graph.outputs.values())))
    return concrete(out.type.shape, bindings)[-1]


def kept_bytes(graph: Graph, bindings: dict[str, int], dtype_bytes: int = 4) -> int:
    """Bytes autograd keeps from a forward pass of `graph` (its repeats' layers each counted)."""
    shapes = {nid: concrete(node.type.shape, bindings) for nid, node in graph.nodes.items() if not node.is_repeat}
    for node in graph.repeats():
        shapes[node.id] = shapes[node.inputs[0]]

    def storage(nid: str) -> str:  # the value a view views
        node = graph.node(nid)
        row = LOWERINGS.get(node.op)
        return storage(node.inputs[0]) if row is not None and row.view else nid

    kept: set[str] = set()
    extra = 0
    total = 0
    for node in graph.topo():
        if node.is_repeat:
            total += sum(n * kept_bytes(body, bindings, dtype_bytes) for body, n in layer_variants(node))
            continue
        row = LOWERINGS.get(node.op)
        if row is None:
            continue
        saved = row.saved
        kept.update(storage(node.inputs[i]) for i in saved.inputs)
        if saved.output:
            kept.add(storage(node.id))
        if saved.extra is not None:
            extra += saved.extra(node, [shapes[i] for i in node.inputs], shapes[node.id]) * dtype_bytes
    values = sum(numel(shapes[nid]) * (INDEX_BYTES if graph.node(nid).type.is_int else dtype_bytes) for nid in kept)
    return total + values + extra
