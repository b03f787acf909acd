"""The pass pipeline (ttspec/passes/pipeline.py) and the IR verifier between its passes
(ttspec/passes/verify.py): one order of passes that the driver and `plan --search` both run,
and a verifier that passes every real model after every pass and catches hand-broken graphs."""

import copy
import os
from dataclasses import replace

import pytest

from ttspec.driver import load_model, prepare, resolve_options
from ttspec.ir.graph import InputAttrs, Node, NodeKind, layer_variants
from ttspec.ir.layout import Layout, Placement
from ttspec.ir.sharding import NodeShard
from ttspec.ir.types import TensorType
from ttspec.ops.norms import RMSNormAttrs
from ttspec.passes import pipeline
from ttspec.passes.pipeline import PIPELINE, VERIFY_ENV, Lowered, Pass, Pipeline, Sharding
from ttspec.passes.verify import VerifyError, verify_ir

from .conftest import SPECS, formats_of, target_of

# The order the design needs: the planner shards a fused QKV projection as one linear, and an
# activation fuses into a linear only once sharding shows its output is complete (docs: passes/fuse.py).
ORDER = ["fuse_qkv", "shard", "fuse_activations"]
MESHES = [(None, None), ((1, 2), "1d"), ((1, 8), "1d"), ((4, 8), "1d"), ((2, 4), "2d"), ((8, 4), "2d")]


def test_the_tests_run_the_verifier():
    assert os.environ.get(VERIFY_ENV) == "1"  # tests/conftest.py: every pipeline run in the tests is verified


def test_the_order_of_passes_is_data():
    assert PIPELINE.names == ORDER
    assert [p.name for p in PIPELINE.passes if not p.per_mesh] == ORDER[:1]  # shared by every mesh


def _recording(monkeypatch) -> list[str]:
    """PIPELINE with each pass recording its name when it runs."""
    ran: list[str] = []

    def record(p: Pass) -> Pass:
        def run(ir, sharding):
            ran.append(p.name)
            return p.run(ir, sharding)
        return replace(p, run=run)

    monkeypatch.setattr(pipeline, "PIPELINE", Pipeline(tuple(record(p) for p in PIPELINE.passes)))
    return ran


def test_the_driver_runs_the_pipeline_lowering_once_for_both_strategies(monkeypatch):
    ran = _recording(monkeypatch)
    result = prepare(load_model(SPECS / "llama-3.1-8b.arch"), resolve_options(target_of("galaxy")))
    assert result.weighed  # 1-D and 2-D both built: one QKV fusion, then each strategy's passes
    assert ran == ["fuse_qkv", "shard", "fuse_activations", "shard", "fuse_activations"]


def test_plan_search_runs_the_pipeline(monkeypatch):
    from ttspec.reports.plan_search import search

    ran = _recording(monkeypatch)
    search(load_model(SPECS / "nano-trickster.arch"), target_of("n300"), weights_dtype=formats_of("bf16"), batch=1)
    meshes = ran.count("shard")
    assert ran == ["fuse_qkv"] + ["shard", "fuse_activations"] * meshes and meshes == 2  # 1x1 and 1x2


@pytest.mark.parametrize("spec", sorted(p.name for p in SPECS.glob("*.arch")))
def test_every_spec_verifies_after_every_pass(spec):
    model = load_model(SPECS / spec)
    verify_ir(model, after="elaborate")
    shared = PIPELINE.shared(model, verify=True)
    sharded = 0
    for mesh, strategy in MESHES:
        try:
            out = PIPELINE.finish(shared, Sharding(mesh, strategy) if mesh else None, verify=True)
        except VerifyError:
            raise
        except Exception:  # the planner refuses some meshes for some models (heads that do not split)
            continue
        sharded += bool(out.plan.axes)
    assert sharded or spec.startswith(("gpt2", "phi"))


# ---------------------------------------------------------------- the verifier catches broken graphs
@pytest.fixture(scope="module")
def nano():
    return load_model(SPECS / "nano-trickster.arch")


def _body(model):
    (repeat,) = model.graph.repeats()
    return layer_variants(repeat)[0][0]


def _broken(model, why: str):
    with pytest.raises(VerifyError, match=why):
        verify_ir(model, after="test")


def test_the_verifier_passes_the_model_it_is_given(nano):
    verify_ir(nano)


def test_nodes_out_of_topological_order(nano):
    model = copy.deepcopy(nano)
    body = _body(model)
    items = list(body.nodes.items())
    body.nodes = dict([items[0], items[2], items[1]] + items[3:])  # a node before the one it reads
    _broken(model, "before it is defined")


def test_an_input_that_is_not_a_node(nano):
    model = copy.deepcopy(nano)
    node = list(_body(model).nodes.values())[-1]
    node.inputs = ["nowhere"] + node.inputs[1:]
    _broken(model, "reads `nowhere`, which is not a node")


def test_users_that_do_not_match_inputs(nano):
    model = copy.deepcopy(nano)
    body = _body(model)
    body.users[body.inputs[0]] = []
    _broken(model, r"users of `layers\.\*\.x` are \[\]")


def test_a_type_its_shape_rule_does_not_give(nano):
    model = copy.deepcopy(nano)
    node = next(n for n in _body(model).topo() if n.is_op)
    node.type = TensorType(node.type.dtype, node.type.shape[:-1] + (node.type.shape[-1] + 1,))
    _broken(model, "but its shape rule gives")


def test_a_repeat_that_changes_the_type(nano):
    model = copy.deepcopy(nano)
    body = _body(model)
    out = body.nodes[body.outputs["out"]]
    body.outputs["out"] = next(n.id for n in body.topo() if n.type != out.type and not n.is_input)
    _broken(model, "hand on the type it gets")


def test_a_parameter_missing_from_the_table(nano):
    model = copy.deepcopy(nano)
    body = _body(model)
    name = next(iter(body.params))
    del body.params[name]
    _broken(model, f"reads parameter `layers.\\*.{name}`, which its graph does not have")


def test_a_parameter_of_the_wrong_shape(nano):
    model = copy.deepcopy(nano)
    body = _body(model)
    param = next(p for p in body.params.values() if len(p.shape) == 2)
    param.shape = (param.shape[0] + 1, param.shape[1])
    _broken(model, "asks for")


def test_a_parameter_tied_to_nothing(nano):
    model = copy.deepcopy(nano)
    model.graph.params["lm_head.weight"].tied_to = "gone.weight"
    _broken(model, "tied to `gone.weight`, which is not a parameter")


def test_an_unknown_op(nano):
    model = copy.deepcopy(nano)
    node = next(n for n in _body(model).topo() if n.is_op)
    node.op = "no_such_op"
    _broken(model, "neither a registered op nor a NodeKind")


def test_a_graph_input_that_is_not_an_input_node(nano):
    model = copy.deepcopy(nano)
    body = _body(model)
    x = body.nodes[body.inputs[0]]
    body.nodes[x.id] = Node(x.id, "rms_norm", [], RMSNormAttrs(eps=1e-5), x.type, "")
    _broken(model, "is not an input node")


def test_attrs_of_another_class_than_the_ops(nano):
    """Each node's attrs is an instance of its op's attrs class: not a dict of the same values, not
    another op's attrs, not another structural kind's."""
    wrong = [(lambda attrs: dict(attrs._asdict()), "has attrs of type dict, not its op's LinearAttrs"),
             (lambda attrs: RMSNormAttrs(eps=1e-5), "has attrs of type RMSNormAttrs, not its op's LinearAttrs")]
    for broken, why in wrong:
        model = copy.deepcopy(nano)
        node = next(n for n in _body(model).topo() if n.op == "linear")
        node.attrs = broken(node.attrs)
        _broken(model, why)
    model = copy.deepcopy(nano)
    model.graph.repeats()[0].attrs = InputAttrs()
    _broken(model, "has attrs of type InputAttrs, not its op's RepeatAttrs")


def test_sharding_facts_missing_after_the_sharding_pass(nano):
    ir = PIPELINE.run(nano, Sharding((1, 2)), verify=True)
    verify_ir(ir.model, ir.plan)
    plan = copy.deepcopy(ir.plan)
    key = next(k for k in plan.primary.layouts if k.startswith("layers.*.") and "all_gather" not in k)
    del plan.primary.layouts[key]
    with pytest.raises(VerifyError, match="no layout on mesh axis"):
        verify_ir(ir.model, plan, after="shard")
    plan = copy.deepcopy(ir.plan)
    plan.primary.placements["layers.*.nothing.weight"] = Placement.COLUMN
    with pytest.raises(VerifyError, match="which is not a parameter"):
        verify_ir(ir.model, plan, after="shard")


def _sharded_body_node(ir, op):
    model = copy.deepcopy(ir.model)
    return model, next(n for n in _body(model).topo() if n.op == op)


def test_sharding_annotations_are_checked_against_the_plan(nano):
    """Node.shard is the sharding pass's alone: none before it or on one chip, and after it placements
    on the plan's axes only, whole heads per device."""
    model = copy.deepcopy(nano)
    next(n for n in _body(model).topo() if n.op == "linear").shard = NodeShard(((1, Placement.COLUMN),))
    _broken(model, "carries a sharding annotation before the sharding pass")
    one = PIPELINE.run(nano, None, verify=True)
    model, node = _sharded_body_node(one, "linear")
    node.shard = NodeShard(((1, Placement.COLUMN),))
    with pytest.raises(VerifyError, match="carries a sharding annotation on one chip"):
        verify_ir(model, one.plan, after="shard")
    ir = PIPELINE.run(nano, Sharding((1, 2)), verify=True)  # tensor parallel over axis 1
    model, node = _sharded_body_node(ir, "linear")
    node.shard = node.shard.replace(placements=((0, Placement.COLUMN),))
    with pytest.raises(VerifyError, match="which the plan does not split"):
        verify_ir(model, ir.plan, after="shard")
    model, node = _sharded_body_node(ir, "linear")
    wrong = Placement.ROW if node.shard.on(1) == Placement.COLUMN else Placement.COLUMN
    node.shard = node.shard.replace(placements=((1, wrong),))
    with pytest.raises(VerifyError, match="but the plan places"):
        verify_ir(model, ir.plan, after="shard")
    model, node = _sharded_body_node(ir, "split_qkv_heads")
    node.shard = node.shard.replace(local_heads=node.attrs.heads + 1)
    with pytest.raises(VerifyError, match="not a whole share"):
        verify_ir(model, ir.plan, after="shard")


def test_a_broken_pass_is_caught_at_the_pass_that_broke_it(nano, monkeypatch):
    def mistype(ir: Lowered, sharding) -> Lowered:  # a pass that widens a value without changing its op
        model = copy.deepcopy(ir.model)
        node = next(n for n in _body(model).topo() if n.is_op)
        node.type = TensorType(node.type.dtype, node.type.shape[:-1] + (node.type.shape[-1] * 2,))
        return replace(ir, model=model)

    broken = Pipeline(PIPELINE.passes[:1] + (Pass("mistype", mistype),) + PIPELINE.passes[1:])
    with pytest.raises(VerifyError, match="after pass `mistype`"):
        broken.run(nano, None)  # verified: the tests set TTSPEC_VERIFY_PASSES=1
    monkeypatch.delenv(VERIFY_ENV)
    broken.run(nano, None)  # off by default: a compile does not pay for the checks


def test_structural_kinds_are_not_ops(nano):
    kinds = {n.op for n in nano.graph.topo() if not n.is_op}
    assert kinds == {NodeKind.INPUT, NodeKind.REPEAT}
    assert all(n.is_input for n in nano.graph.topo() if n.id in nano.graph.inputs)


# ---------------------------------------------------------------- what one chip holds (ir/sharding.py)
def test_local_shapes_of_a_gqa_model_over_8_chips():
    """llama-gqa-tiny (d 256, 8 heads of 32, 2 KV heads, MLP 768) over 1x8: closed forms from its sizes."""
    from ttspec.ir.sharding import local_shape, one_chip

    model = load_model(SPECS / "llama-gqa-tiny.arch")
    ir = PIPELINE.run(model, Sharding((1, 8)))
    (repeat,) = ir.model.graph.repeats()
    body = layer_variants(repeat)[0][0]

    def param(name):
        return local_shape(body.params[name].shape, ir.plan, "layers.*." + name, param=True)

    def value(node_id):
        return local_shape(body.nodes[node_id].type.shape, ir.plan, "layers.*." + node_id)

    assert param("attn.wq.weight") == (256 // 8, 256)  # column-parallel: one query head per chip
    assert param("attn.wk.weight") == (32, 256)  # 2 KV heads copied 4 times: one whole head per chip
    assert param("attn.wo.weight") == (256, 256 // 8)  # row-parallel
    assert param("mlp.w2.weight") == (256, 768 // 8)
    assert param("attn_norm.weight") == (256,)  # replicated
    assert value("attn.attend") == ("batch", 1, "seq", 32)  # heads: 8 over 8 chips
    keys = next(n.id for n in body.topo() if n.op == "qkv_part" and n.type.shape[1] == 2)
    assert value(keys) == ("batch", 1, "seq", 32)  # a copied KV head is held whole
    assert value("mlp.mul") == ("batch", "seq", 768 // 8)
    assert value("reduce_scatter") == ("batch", "seq", 256 // 8)  # the residual, split on hidden
    assert value("mlp_norm.rms_norm") == ("batch", "seq", 256)  # gathered before the norm
    assert local_shape((64, 256), one_chip(), "layers.*.attn.wk.weight", param=True) == (64, 256)  # one chip: whole


@pytest.mark.parametrize("chips,heads,kv_heads", [(8, 1, 1), (2, 4, 1)])
def test_sharding_annotations_of_a_gqa_model(chips, heads, kv_heads):
    """llama-gqa-tiny (8 heads, 2 KV heads) over 1 x chips: each chip holds 8 / chips query heads and
    2 / chips KV heads, at least one (a KV head copied where the chips outnumber them); Megatron's
    placements (fused QKV and w1 column-parallel, wo and w2 row-parallel) over mesh axis 1."""
    model = load_model(SPECS / "llama-gqa-tiny.arch")
    ir = PIPELINE.run(model, Sharding((1, chips)))
    body = layer_variants(ir.model.graph.repeats()[0])[0][0]
    split = next(n for n in body.topo() if n.op == "split_qkv_heads")
    attend = next(n for n in body.topo() if n.op == "attend")
    assert (split.shard.local_heads, split.shard.local_kv_heads, attend.shard.local_kv_heads) == (heads, kv_heads,
                                                                                                  kv_heads)
    placed = {n.module: n.shard.placements for n in body.topo() if n.op == "linear"}
    assert placed["mlp.w2"] == placed["attn.wo"] == ((1, Placement.ROW),)
    assert placed["mlp.w1"] == placed["attn.wqkv"] == ((1, Placement.COLUMN),)


def test_a_value_split_over_two_mesh_axes(nano):
    """A layout says which axis cuts a dim, not how two axes nest: the verifier refuses a value split over both
    axes of a 2-D plan (an all_gather over one would interleave the other's slices)."""
    ir = PIPELINE.run(nano, Sharding((8, 4), "2d"), verify=True)
    rows, cols = ir.plan.axes
    key = next(k for k, lay in rows.layouts.items() if lay == Layout.SPLIT and cols.layouts.get(k) == Layout.REPLICATED)
    plan = copy.deepcopy(ir.plan)
    plan.axes[1].layouts[key] = Layout.SPLIT
    with pytest.raises(VerifyError, match=r"is split over mesh axes \[0, 1\] on the same dim"):
        verify_ir(ir.model, plan, after="shard")
