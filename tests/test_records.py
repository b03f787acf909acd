"""ttspec.records against what they stand in for: a record behaves as the dataclass with the same fields
(equality, hashing, repr, immutability, copies and pickles), and the classes converted from dataclasses
kept their fields."""

import copy
import dataclasses
import pickle

import pytest

from ttspec.errors import Diagnostic, Loc, Note
from ttspec.frontend import ast
from ttspec.ir.types import TensorType
from ttspec.records import FrozenRecord, Record
from ttspec.targets import BLACKHOLE, BLACKHOLE_P100, TARGETS, Source
from ttspec.weight_formats import WeightFormats


class Point(FrozenRecord):
    __slots__ = ("x", "y", "label")
    x: int
    y: float
    label: str

    def __init__(self, x: int, y: float, label: str = "") -> None:
        self._assign(x, y, label)


class Cell(Record):
    __slots__ = ("value",)
    value: object

    def __init__(self, value: object) -> None:
        self.value = value


class Base(Record):
    __slots__ = ("loc",)
    loc: int


class Derived(Base):
    __slots__ = ("name",)
    name: str

    def __init__(self, loc: int, name: str) -> None:
        self.loc, self.name = loc, name


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
    assert Diagnostic.FIELDS == ("severity", "message", "loc", "hint", "notes")
    assert ast.Call.FIELDS == ("loc", "func", "args", "label", "func_loc")
    assert ast.BlockDef.FIELDS == ("loc", "name", "params", "returns", "kind", "body", "file")
    assert ast.Module("m", None).items == [] and ast.Module("m", None).items is not ast.Module("m", None).items
    assert TensorType.FIELDS == ("dtype", "shape") and hash(TensorType("bf16", (1, 2))) == hash(("bf16", (1, 2)))
    assert WeightFormats() == WeightFormats("bf16", {}) and hash(WeightFormats()) == hash(("bf16", ()))
    assert TARGETS["galaxy"].FIELDS[:5] == ("name", "arch", "mesh", "dram_per_chip", "description")
    assert BLACKHOLE_P100.cores == Source(110, "cores", BLACKHOLE_P100.cores.source)
    assert BLACKHOLE_P100.clock_hz == BLACKHOLE.clock_hz and BLACKHOLE_P100 != BLACKHOLE
    with pytest.raises(TypeError):
        BLACKHOLE.replace(speed=Source(1, "x", "y"))
