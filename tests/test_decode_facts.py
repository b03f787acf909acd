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


def test_one_chip_opens_no_fabric():
    p = decode_program(PROGRAM.replace("MESH_SHAPE = (1, 8)", "MESH_SHAPE = (1, 1)"))
    assert p.fabric == "" and p.topology == "line"
    assert MCAST_1D != DEFAULT
