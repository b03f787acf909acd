"""backends/ttnn/decode_facts.py reads a program's decode step into the cost model's records: checked on a
hand-written program whose device ops are known by construction (the real programs are checked against the mock
device's capture in tests/test_decode_capture.py)."""

from ttspec.analysis.program import BFLOAT8_B_PER_BF16, DEFAULT, DRAM_SHARDED, MCAST_1D
from ttspec.backends.ttnn.decode_facts import decode_program

PROGRAM = '''
import ttnn

MESH_SHAPE = (1, 8)
FABRIC = ttnn.FabricConfig.FABRIC_1D_RING


def open_device():
    if MESH_SHAPE != (1, 1):
        ttnn.set_fabric_config(FABRIC)
    return ttnn.open_mesh_device(ttnn.MeshShape(*MESH_SHAPE))


def concat(y):
    y = ttnn.to_memory_config(y, ttnn.L1_MEMORY_CONFIG)
    return y if y.shape[1] == 32 else ttnn.slice(y, (0, 0), (1, 32))


class Rotary:
    def decode(self, x):
        cos, sin = self.state.per_step(("rope",), self._tables)
        return ttnn.experimental.rotary_embedding_llama(x, cos, sin, is_decode_mode=True)

    def _tables(self):
        return ttnn.embedding(self.ids, self.table), ttnn.embedding(self.ids, self.table)


class Layer:
    def __init__(self, weights, prefix):
        self.w = weights.linear(prefix + "w")
        self.rotary = Rotary()
        self.w_decode = ttnn.MatmulMultiCoreReuseMultiCastDRAMShardedProgramConfig(in0_block_w=1)
        self.lofi = ttnn.WormholeComputeKernelConfig(math_fidelity=ttnn.MathFidelity.LoFi)

    def decode(self, x):
        h = ttnn.linear(ttnn.unsqueeze(x, 0), self.w, program_config=self.w_decode, compute_kernel_config=self.lofi,
                        memory_config=ttnn.L1_MEMORY_CONFIG, dtype=ttnn.bfloat8_b)
        h = ttnn.reduce_scatter(self.rotary.decode(h), dim=-1)
        ttnn.deallocate(x)
        return concat(ttnn.all_reduce(h, cluster_axis=1))


class Model:
    def build(self, weights):
        self.layers = [Layer(weights, f"layers.{i}.") for i in range(3)]
        self.head = weights.linear("head")

    def decode_step(self, tokens):
        h = ttnn.embedding(tokens, self.table)
        for layer in self.layers:
            h = layer.decode(h)
        return ttnn.linear(h, self.head)

    def decode_greedy(self, tokens, positions):
        def step():
            return ttnn.argmax(self.decode_step(self.state.step_input("tokens", lambda: tokens)), dim=-1)
        return self.state.run_step(step)
'''


def test_device_ops_configs_fabric_and_reads_of_a_hand_written_program():
    p = decode_program(PROGRAM)
    assert p.layers == 3
    # per layer: linear, rotary (its tables once per step), reduce_scatter, all_reduce's two ops, to_memory_config;
    # not: unsqueeze, deallocate (no device op), the slice (32 rows: the first branch)
    assert [op.op for op in p.layer_ops] == [
        "ttnn.linear", "ttnn.experimental.rotary_embedding_llama", "ttnn.reduce_scatter",
        "ttnn.all_reduce (reduce_scatter)", "ttnn.all_reduce (all_gather)", "ttnn.to_memory_config"]
    linear = p.layer_ops[0]
    assert (linear.factory, linear.fidelity, linear.weight, linear.output) == (DRAM_SHARDED, "LoFi", "w", "L1")
    # before the layers the token embedding, the per-step tables once; after: the head, then greedy's argmax
    assert [op.op for op in p.step_ops] == ["ttnn.embedding", "ttnn.embedding", "ttnn.embedding", "ttnn.linear",
                                            "ttnn.argmax"]
    assert p.matmuls()["head"].factory == DEFAULT
    assert p.ops_per_step == 3 * 6 + 5
    assert p.fabric == "FABRIC_1D_RING" and p.topology == "ring" and p.reads_ids and p.read_bytes_per_row == 4
    # the reduce_scatter after the bfloat8_b linear's rope moves what the rope wrote (bf16): not inherited across ops
    assert p.collective_dtypes() == {"bf16": 3}
    assert p.payload_factor() == 1.0


def test_collective_payload_is_what_the_op_before_it_wrote():
    p = decode_program(PROGRAM.replace("ttnn.reduce_scatter(self.rotary.decode(h), dim=-1)",
                                       "ttnn.reduce_scatter(h, dim=-1)"))
    assert p.layer_ops[1].op == "ttnn.reduce_scatter" and p.layer_ops[1].dtype == "bfloat8_b"
    # and the all_reduce after it moves what the reduce_scatter wrote: bfloat8_b too
    assert p.collective_dtypes() == {"bfloat8_b": 3}
    assert p.payload_factor() == BFLOAT8_B_PER_BF16


def test_a_dtype_given_by_a_header_constant_reads_as_its_value_and_payloads_are_priced_by_kind():
    """`dtype=CCL_DTYPE` (the header's `CCL_DTYPE = ttnn.bfloat8_b`, --ccl-dtype) is bfloat8_b; the reduce-scatter
    after it carries it and the all-reduce after that what the reduce-scatter wrote (bfloat8_b); a kind's factor
    averages that kind's collectives only, so a bf16 all-gather is not priced as bfloat8_b."""
    named = PROGRAM.replace("FABRIC = ttnn", "CCL_DTYPE = ttnn.bfloat8_b\nFABRIC = ttnn").replace(
        "dtype=ttnn.bfloat8_b)", "dtype=CCL_DTYPE)").replace("ttnn.reduce_scatter(self.rotary.decode(h), dim=-1)",
                                                           "ttnn.reduce_scatter(h, dim=-1)")
    p = decode_program(named)
    assert p.layer_ops[0].dtype == "bfloat8_b" and p.layer_ops[1].dtype == "bfloat8_b"
    assert p.collective_dtypes() == {"bfloat8_b": 3}
    gathered = decode_program(named.replace("concat(ttnn.all_reduce(h, cluster_axis=1))",
                                            "ttnn.all_gather(ttnn.to_memory_config(h, ttnn.L1_MEMORY_CONFIG), dim=-1)"))
    assert gathered.collective_dtypes() == {"bfloat8_b": 1, "bf16": 1}
    assert gathered.payload_factor("reduce_scatter") == BFLOAT8_B_PER_BF16
    assert gathered.payload_factor("all_gather") == 1.0
    assert gathered.payload_factor() == (1 + BFLOAT8_B_PER_BF16) / 2


def test_one_chip_opens_no_fabric():
    p = decode_program(PROGRAM.replace("MESH_SHAPE = (1, 8)", "MESH_SHAPE = (1, 1)"))
    assert p.fabric == "" and p.topology == "line"
    assert MCAST_1D != DEFAULT


BRANCHES = '''
import ttnn


def concat(y, heads, sharded=False):
    y = ttnn.experimental.nlp_concat_heads_decode(y, num_heads=heads)
    if not sharded:
        y = ttnn.to_memory_config(y, ttnn.L1_MEMORY_CONFIG)
    return ttnn.reshape(y, (1, y.shape[2], y.shape[3]))


def chunked(x, weight, programs, kernel):
    chunk = next(c for c in programs if x.shape[-2] % c == 0)
    return ttnn.linear(ttnn.reshape(x, (1, chunk, 64)), weight, program_config=programs[chunk],
                       compute_kernel_config=kernel)


class Layer:
    def __init__(self, weights):
        self.w = weights.linear("w")
        self.w_prefill = {64: ttnn.MatmulMultiCoreReuseMultiCastProgramConfig(
            compute_with_storage_grid_size=ttnn.CoreCoord(8, 2)), 32: ttnn.MatmulMultiCoreReuseMultiCastProgramConfig(
            compute_with_storage_grid_size=ttnn.CoreCoord(8, 1))}
        self.lofi = ttnn.WormholeComputeKernelConfig(math_fidelity=ttnn.MathFidelity.LoFi)

    def forward(self, x):
        return chunked(x, self.w, self.w_prefill, self.lofi)

    def decode(self, x):
        return concat(concat(x, 8, sharded=True), 8)

    def tables(self):
        kept = self.state.keep("t", lambda: tuple(ttnn.from_torch(t) for t in ("cos", "sin")))
        rows = (ttnn.reshape(ttnn.embedding(self.ids, t), (1, 32, 1, 64)) for t in kept)
        return (*(ttnn.to_memory_config(r, ttnn.L1_MEMORY_CONFIG) for r in rows),)


class Model:
    def build(self, weights):
        self.layers = [Layer(weights) for i in range(2)]
        self.head = weights.linear("head")

    def decode_step(self, tokens):
        h = tokens
        for layer in self.layers:
            h = layer.decode(h)
            layer.tables()
        return ttnn.linear(h, self.head)

    def prefill(self, tokens, user):
        h = ttnn.embedding(tokens, self.table)
        for layer in self.layers:
            h = layer(h)
        if self.state.mode != "prefill":
            h = ttnn.typecast(h, ttnn.bfloat16)
        return ttnn.linear(ttnn.slice(h, (0, 0), (32, 64)), self.head)
'''


def test_branches_bound_by_the_call_comprehensions_and_the_prefill():
    """By construction: a layer's decode runs concat twice, the second without `sharded` (its to_memory_config),
    and gathers two tables (an embedding, a row-moving reshape and a reshard each; the from_torch uploads and the
    view reshapes dispatch nothing): 2 + 1 + 6 = 9 per layer. Its prefill runs one chunked 2-D matmul per layer,
    the mode's branch not taken, the head on a slice."""
    from ttspec.backends.ttnn.prefill_facts import prefill_program

    p = decode_program(BRANCHES)
    ops = [op.op.removeprefix("ttnn.") for op in p.layer_ops]
    assert ops.count("experimental.nlp_concat_heads_decode") == 2 and ops.count("to_memory_config") == 3
    assert ops.count("embedding") == 2 and ops.count("reshape") == 2 and len(ops) == 9
    pre = prefill_program(BRANCHES)
    assert [op.op for op in pre.layer_ops] == ["ttnn.linear"] and pre.layers == 2
    layer = pre.layer_ops[0]
    assert (layer.weight, layer.factory, layer.fidelity, layer.chunks) == ("w", "mcast_2d", "LoFi", ((64, 16), (32, 8)))
    assert [op.op for op in pre.step_ops] == ["ttnn.embedding", "ttnn.slice", "ttnn.linear"] and pre.head_rows == 32
