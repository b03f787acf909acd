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
    # each chunk's matmul named by the weight it reads (the cost model finds the head's matmuls by it)
    assert [op.weight for op in prefill.step_ops if op.op == "ttnn.linear"] == ["head_0", "head_1"][:len(concat) + 1]


REFUSED = '''
import ttnn
from helpers import fused


class Layer:
    def __init__(self, weights):
        self.w = weights.linear("w")
        self.w_program = ttnn.MatmulMultiCoreReuseMultiCastDRAMShardedProgramConfig(in0_block_w=1)

    def decode(self, x):
        return ttnn.linear(x, self.w, program_config=self.w_program)

    def forward(self, x):
        return self.decode(x)


class Model:
    def build(self, weights):
        self.layers = [Layer(weights) for i in range(LAYERS)]

    def decode_step(self, tokens):
        h = ttnn.embedding(tokens, self.table)
        for layer in self.layers:
            h = layer.decode(h)
        return ttnn.argmax(h, dim=-1)

    def prefill(self, tokens, user):
        return self.decode_step(tokens)

    def forward(self, tokens):
        return self.decode_step(tokens)
'''


@pytest.mark.parametrize(("edit", "named"), [
    (("ttnn.argmax(h", "ttnn.fancy_sample(h"), "`ttnn.fancy_sample(...)`: a ttnn call the walker does not know"),
    (("ttnn.embedding(tokens", "ttnn.experimental.embedding(tokens"), "`ttnn.experimental.embedding(...)`"),
    (("ttnn.argmax(h", "fused(h"), "`fused(...)`: a call of a name that is neither"),
    (("h = layer.decode(h)", "h = self.mystery(h)"), "`self.mystery(...)`: a call of `self.mystery`"),
    (("h = layer.decode(h)", "h = tokens.forward(h)"), "`tokens.forward(...)`: a call of `forward`, a method of the "
                                                       "program's Layer, Model"),
    (("program_config=self.w_program", "program_config=self.w_programs"), "`ttnn.linear(...)`: a matmul of `self.w` "
                                                                          "whose program_config"),
    (("range(3)", "range(LAYERS)"), "`self.layers`: a loop over program layers whose count"),
    (("DRAMShardedProgramConfig(in0", "DRAMShardedProgramConfigV2(in0"), "a matmul program config the walker does"),
])
@pytest.mark.parametrize("walk", [decode_program, prefill_program])
def test_a_call_the_walker_does_not_know_is_refused_not_priced(edit, named, walk):
    """Each edit makes a program whose device ops the walker cannot know (an unknown ttnn call, a function it
    cannot see, a member or object it cannot tell the class of, a config it cannot find, a layer count the text does
    not state): the walker names the call and its line rather than price a guess."""
    from ttspec.backends.ttnn.program_calls import UnknownProgramCall

    program = REFUSED.replace("range(LAYERS)", "range(3)")
    assert walk(program).layers == 3  # as written, the program is priced
    old, new = edit
    assert old in program
    edited = program.replace(old, new)
    at = "for layer in self.layers" if "self.layers" in named else new  # (a loop: refused where it runs)
    line = edited[:edited.index(at)].count("\n") + 1
    with pytest.raises(UnknownProgramCall) as refused:
        walk(edited)
    message = str(refused.value)
    assert message.startswith(f"line {line}: ") and named in message and "cannot price" in message, message


def test_the_prefill_head_chunks_are_priced_by_their_own_members():
    """The 8B n150 program's prefill runs its LM head in three DRAM-sharded column chunks through
    head_chunks_prefill and chunked_linear: each matmul is named by the chunk it reads, with the 2-D program family
    and chunk sizes of the head's prefill programs and its kernel's fidelity (so the cost model prices the head on the
    last tile, not an anonymous matmul over every row)."""
    from pathlib import Path

    source = (Path(__file__).parent.parent / "generated" / "llama_3_1_8b_n150.py").read_text(encoding="utf-8")
    head = [op for op in prefill_program(source).step_ops if op.op == "ttnn.linear"]
    assert [op.weight for op in head] == ["lm_head_0", "lm_head_1", "lm_head_2"]
    assert {(op.factory, op.fidelity) for op in head} == {("mcast_2d", "HiFi2")}
    assert all(op.chunks and op.chunks[0][0] == 256 for op in head)


def test_a_linear_is_priced_by_its_own_member_or_its_column_chunks_only():
    """The cost model finds a linear's device matmul by the member named as its module, or that name's column
    chunks (`lm_head_0`); a member that merely starts with the name (`upper` for `up`) is another linear's."""
    from types import SimpleNamespace

    from ttspec.analysis.program import FIDELITY_PASSES, UNCONFIGURED_FIDELITY, DecodeProgram, DeviceOp, ProgramTerms

    ops = (DeviceOp("ttnn.linear", fidelity="LoFi", weight="upper"), DeviceOp("ttnn.linear", fidelity="HiFi4",
                                                                             weight="lm_head_0"))
    terms = ProgramTerms(DecodeProgram(ops, (), 1, "", 0, False), None)
    up, head = (SimpleNamespace(module=m, op="linear") for m in ("layers.mlp.up", "lm_head"))
    assert terms.passes(up) == FIDELITY_PASSES[UNCONFIGURED_FIDELITY] != FIDELITY_PASSES["LoFi"]
    assert terms.passes(head) == FIDELITY_PASSES["HiFi4"]


def test_the_prefill_head_is_priced_on_the_last_tile():
    """The 8B n150 prefill's head computes only the tile of rows holding the last position (head_rows): the cost
    model finds the head's chunk matmuls and prices 32 rows of a 1024-token prompt, not 1024."""
    from pathlib import Path

    from ttspec.analysis.program import ProgramTerms
    from ttspec.driver import load_model

    root = Path(__file__).parent.parent
    source = (root / "generated" / "llama_3_1_8b_n150.py").read_text(encoding="utf-8")
    model = load_model(root / "specs" / "llama-3.1-8b.arch")
    head = next(n for n in model.graph.topo() if n.module == "lm_head" and n.params)
    terms = ProgramTerms(prefill_program(source), None)
    assert terms.rows(head, 1024) == 32 and terms.weight_reads(head, 1024) == 1
