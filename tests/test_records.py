"""ttspec.records against what they stand in for: a record behaves as the dataclass with the same fields
(its `__init__`'s signature, equality, hashing, repr, immutability, replace, copies and pickles), and the
classes converted from dataclasses kept their fields."""

import copy
import dataclasses
import inspect
import pickle
from typing import ClassVar

import pytest

from ttspec.backends.common import pyast
from ttspec.checkpoints import HFTensor, Rule
from ttspec.driver import Build, Options
from ttspec.errors import Diagnostic, Loc, Note
from ttspec.frontend import ast
from ttspec.ir.layout import Placement
from ttspec.ir.sharding import NO_SHARD, NodeShard
from ttspec.ir.types import TensorType
from ttspec.records import FrozenRecord, Record, fresh
from ttspec.targets import BLACKHOLE, BLACKHOLE_P100, TARGETS, Source
from ttspec.weight_formats import WeightFormats


class Point(FrozenRecord):
    x: int
    y: float
    label: str = ""


class Cell(Record):
    value: object


class Base(Record):
    loc: int


class Derived(Base):
    name: str


@dataclasses.dataclass(frozen=True)
class PointDC:
    x: int
    y: float
    label: str = ""


@dataclasses.dataclass
class CellDC:
    value: object


VALUES = [(1, 2.0, ""), (1, 2.0, "a"), (2, float("nan"), "b"), (0, -0.0, "")]


@pytest.mark.parametrize("values", VALUES)
def test_a_frozen_record_is_equal_and_hashes_as_the_frozen_dataclass(values):
    record, dc = Point(*values), PointDC(*values)
    assert hash(record) == hash(dc)
    assert repr(record) == repr(dc).replace("PointDC", "Point")
    for other in VALUES:
        assert (record == Point(*other)) == (dc == PointDC(*other))
    assert record == record and (record != record) is False  # a NaN field: identity first, as in a tuple
    assert (record == values) is False and record != dc  # never equal to another class
    assert Point.FIELDS == tuple(f.name for f in dataclasses.fields(PointDC))


def test_a_frozen_record_cannot_change():
    p = Point(1, 2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.x = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        del p.y
    with pytest.raises(AttributeError):
        p.z = 1  # no such field, as in a slotted class
    assert (p.x, p.y, p.label) == (1, 2.0, "")


def test_frozen_records_copy_and_pickle_through_init():
    p = Point(1, 2.5, "x")
    for twin in (copy.copy(p), copy.deepcopy(p), pickle.loads(pickle.dumps(p))):
        assert twin == p and twin is not p and hash(twin) == hash(p)


def test_a_mutable_record_is_equal_as_the_dataclass_and_unhashable():
    assert (Cell([1]) == Cell([1])) == (CellDC([1]) == CellDC([1])) is True
    assert (Cell(1) == Cell(2)) == (CellDC(1) == CellDC(2)) is False
    assert repr(Cell([1])) == "Cell(value=[1])"
    with pytest.raises(TypeError):
        hash(Cell(1))
    c = Cell(1)
    c.value = 2
    assert copy.copy(c) == Cell(2) and pickle.loads(pickle.dumps(c)) == Cell(2)


def test_fields_are_inherited_base_first():
    assert Derived.FIELDS == ("loc", "name")
    assert Derived(1, "a") == Derived(1, "a") != Derived(2, "a")
    assert repr(Derived(1, "a")) == "Derived(loc=1, name='a')"


def test_converted_classes_keep_their_dataclass_fields():
    """The field lists the dataclasses had (as the AST cache and reprs see them)."""
    assert Loc.FIELDS == ("file", "line", "col", "length") and Loc("f", 1, 2).length == 1
    assert Note.FIELDS == ("message", "loc") and Diagnostic("error", "m").notes == []
    assert Diagnostic.FIELDS == ("severity", "message", "loc", "hint", "notes", "fixes")  # fixes: added after
    assert ast.Call.FIELDS == ("loc", "func", "args", "label", "func_loc")
    assert ast.BlockDef.FIELDS == ("loc", "name", "params", "returns", "kind", "body", "file")
    assert ast.Module("m", None).items == [] and ast.Module("m", None).items is not ast.Module("m", None).items
    assert TensorType.FIELDS == ("dtype", "shape") and hash(TensorType("bf16", (1, 2))) == hash(("bf16", (1, 2)))
    assert WeightFormats() == WeightFormats("bf16", {}) and hash(WeightFormats()) == hash(("bf16", ()))
    assert TARGETS["galaxy"].FIELDS[:5] == ("name", "arch", "mesh", "dram_per_chip", "description")
    assert BLACKHOLE_P100.cores == Source(110, "cores", BLACKHOLE_P100.cores.source)
    assert BLACKHOLE_P100.clock_hz == BLACKHOLE.clock_hz and BLACKHOLE_P100 != BLACKHOLE
    with pytest.raises(TypeError, match="ChipSpec has no field speed"):
        BLACKHOLE.replace(speed=Source(1, "x", "y"))
    assert NodeShard.FIELDS == ("placements", "local_heads", "local_kv_heads", "padded_out")
    assert NO_SHARD.placed_on(1, Placement.ROW) == NodeShard(((1, Placement.ROW),))
    assert hash(NO_SHARD) == hash(((), None, None, None))  # as the frozen dataclass hashed
    assert Rule.FIELDS == ("ours", "hf", "transpose", "axis")
    assert HFTensor.FIELDS == ("name", "parts", "transpose", "axis", "expert")
    assert Options.FIELDS == ("target", "mesh", "dp", "weights_dtype", "batch", "strategy")
    assert Build.FIELDS[-2:] == ("strategy_reason", "weighed") and Build(*[None] * 5).weighed == []


# ---------------------------------------------------------------- declared by annotations alone
class Shape(Record):
    """Defaults, a fresh list per record, a ClassVar that is no field, and a check after the fields are set."""

    KINDS: ClassVar[tuple[str, ...]] = ("box", "ball")
    kind: str
    dims: list = fresh(list)
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise ValueError(f"unknown kind {self.kind!r}")


@dataclasses.dataclass
class ShapeDC:
    kind: str
    dims: list = dataclasses.field(default_factory=list)
    scale: float = 1.0


class Labelled(Point):
    """A subclass adds a field after its base's; one declared again keeps its place, with its new default."""

    y: float = 0.0
    tag: str = "t"


@dataclasses.dataclass(frozen=True)
class LabelledDC(PointDC):
    y: float = 0.0
    tag: str = "t"


def parameters(function) -> list[tuple]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


def test_init_takes_the_parameters_of_the_dataclasses_init():
    for record, dc in ((Point, PointDC), (Cell, CellDC), (Labelled, LabelledDC)):
        record(*[0] * len(record.FIELDS))  # the specialised __init__ is compiled on the first call
        assert parameters(record.__init__) == parameters(dc.__init__)
    Shape("box")
    shape_params = inspect.signature(Shape.__init__).parameters
    assert list(shape_params) == ["self", *(f.name for f in dataclasses.fields(ShapeDC))]
    assert [p.default for p in shape_params.values()][2:] == [None, 1.0]  # fresh(list): None makes a new one
    assert Labelled.FIELDS == tuple(f.name for f in dataclasses.fields(LabelledDC)) == ("x", "y", "label", "tag")
    assert Labelled(1) == Labelled(1, 0.0, "", "t") and repr(Labelled(1)) == repr(LabelledDC(1)).replace("DC", "")


def test_init_arguments_bind_as_in_the_dataclass():
    for args, kwargs in (((1, 2.0), {}), ((1,), {"y": 2.0, "label": "a"}), ((), {"x": 1, "y": 2.0})):
        assert repr(Point(*args, **kwargs)) == repr(PointDC(*args, **kwargs)).replace("PointDC", "Point")
    for args, kwargs in (((1,), {}), ((1, 2.0, "a", 4), {}), ((1, 2.0), {"x": 1}), ((1, 2.0), {"z": 0})):
        with pytest.raises(TypeError) as record_error:
            Point(*args, **kwargs)
        with pytest.raises(TypeError) as dc_error:
            PointDC(*args, **kwargs)
        assert str(record_error.value) == str(dc_error.value).replace("PointDC", "Point")


def test_fresh_defaults_are_new_per_record_and_post_init_runs_after_the_fields():
    a, b = Shape("box"), Shape("ball", scale=2.0)
    assert a.dims == ShapeDC("box").dims == [] and a.dims is not b.dims
    assert Shape("box", None).dims == []  # as the hand-written initialisers took None for a new list
    assert repr(b) == repr(ShapeDC("ball", scale=2.0)).replace("ShapeDC", "Shape")
    with pytest.raises(ValueError, match="unknown kind 'cone'"):
        Shape("cone")
    assert "KINDS" not in Shape.FIELDS and Shape.KINDS == ("box", "ball")


def test_replace_changes_fields_as_dataclasses_replace():
    p = Point(1, 2.0, "a")
    assert p.replace(y=3.5) == Point(1, 3.5, "a") and repr(dataclasses.replace(PointDC(1, 2.0, "a"), y=3.5)) == \
        repr(p.replace(y=3.5)).replace("Point", "PointDC")
    assert p.replace() == p and p.replace() is not p
    with pytest.raises(TypeError, match="Point has no field z"):
        p.replace(z=1)
    with pytest.raises(ValueError):
        Shape("box").replace(kind="cone")  # through __init__, so __post_init__ checks the copy too


def test_a_subclass_gets_its_own_init():
    Base(1)  # the base's __init__ compiled first must not serve its subclass
    assert Derived(1, "a").name == "a" and Base.__init__ is not Derived.__init__
    d = Derived(1, "a")
    d.name = "b"
    assert pickle.loads(pickle.dumps(d)) == Derived(1, "b")


def test_init_is_compiled_on_the_first_instance_only():
    class Lazy(FrozenRecord):
        a: int
        b: int = 2

    first = Lazy.__init__
    assert [p.kind for p in inspect.signature(first).parameters.values()][1:] == [inspect.Parameter.VAR_POSITIONAL,
                                                                                  inspect.Parameter.VAR_KEYWORD]
    assert Lazy(1) == Lazy(a=1, b=2) and Lazy.__init__ is not first
    compiled = Lazy.__init__
    Lazy(3)
    assert Lazy.__init__ is compiled and parameters(compiled)[1:] == parameters(lambda a, b=2: None)


def test_a_field_without_a_default_cannot_follow_one_with_a_default():
    with pytest.raises(TypeError, match="non-default argument 'y' follows default argument 'x'"):
        class Bad(Record):
            x: int = 0
            y: int


def test_code_tree_nodes_are_records():
    """pyast's nodes: frozen, positional repr (the printer's error messages show them), validated on creation."""
    call = pyast.call("f", pyast.Name("x"), k=pyast.Const(1))
    assert call == pyast.Call(pyast.Name("f"), (pyast.Name("x"),), (("k", pyast.Const(1)),))
    assert pyast.Call.FIELDS == ("func", "args", "kwargs") and pyast.Call(pyast.Name("f")).args == ()
    assert repr(pyast.Attr(pyast.Name("a"), "b")) == "Attr(Name('a'), 'b')"
    with pytest.raises(dataclasses.FrozenInstanceError):
        call.func = pyast.Name("g")
    with pytest.raises(ValueError):
        pyast.Const(float("inf"))
    assert pyast.Const(1) != pyast.Const(1.0) and hash(call) == hash(copy.deepcopy(call))
    renamed = pyast.call("f", pyast.Name("y"), k=pyast.Const(1))
    assert pyast.substitute(call, {pyast.Name("x"): pyast.Name("y")}) == renamed
