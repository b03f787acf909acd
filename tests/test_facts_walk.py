"""What the program walkers (backends/ttnn/decode_facts.py, prefill_facts.py) do with a program's control flow and
with calls they do not know, on hand-written programs whose device ops are known by construction."""

import pytest

from ttspec.backends.ttnn.decode_facts import decode_program
from ttspec.backends.ttnn.prefill_facts import prefill_program

RETURNS = '''
import ttnn


def head(x, chunks):
    outputs = [ttnn.linear(x, w) for w in chunks]
    if len(outputs) == 1:
        return outputs[0]
    return ttnn.concat(outputs, dim=-1)


def rows(state, x):
    if state.mode != "prefill" or state.last is None:
        return x
    return ttnn.slice(x, (0, 0), (32, 64))


class Layer:
    def decode(self, x):
        return ttnn.add(x, x)

    def forward(self, x):
        return ttnn.add(x, x)


class Model:
    def build(self):
        self.layers = [Layer() for i in range(2)]

    def decode_step(self, tokens):
        h = ttnn.embedding(tokens, self.table)
        for layer in self.layers:
            h = layer.decode(h)
        return head(rows(self.state, h), [self.head_0])

    def prefill(self, tokens, user):
        h = ttnn.embedding(tokens, self.table)
        for layer in self.layers:
            h = layer(h)
        return head(rows(self.state, h), CHUNKS)
'''


def _ops(program):
    return [op.op.removeprefix("ttnn.") for op in program.step_ops]


@pytest.mark.parametrize(("chunks", "concat"), [("[self.head_0]", []), ("[self.head_0, self.head_1]", ["concat"])])
def test_a_taken_branch_that_returns_leaves_the_function(chunks, concat):
    """By construction: one chunk returns before the concat, two reach it. In decode `state.mode != "prefill"` is
    true, so `rows` returns x (no slice); in prefill the `or`'s truth is unknown (`state.last`), so its return may
    not be taken: the walk goes on to the slice, and the head runs on the last tile."""
    source = RETURNS.replace("CHUNKS", chunks)
    assert _ops(decode_program(source)) == ["embedding", "linear"]
    prefill = prefill_program(source)
    assert _ops(prefill) == ["embedding", "slice", *["linear"] * chunks.count("self."), *concat]
    assert prefill.head_rows == 32
