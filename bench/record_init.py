"""Instance creation of records (ttspec/records.py): the `__init__` compiled per class on first use,
against a hand-written one (what the records wrote before) and a generic one reading the fields from the
class at each call (what pyast.Node had), and the dataclass's. Four fields, one with a default; positional arguments.
Run: PYTHONPATH=. .venv/bin/python bench/record_init.py
"""

from __future__ import annotations

import dataclasses
import timeit

from ttspec.records import FrozenRecord, Record

FIELDS = ("loc", "op", "left", "right")


class Mutable(Record):
    loc: int
    op: str
    left: object
    right: object = None


class Frozen(FrozenRecord):
    loc: int
    op: str
    left: object
    right: object = None


class HandMutable(Record):
    """As the records wrote it before: slots and an `__init__`, every field three times."""

    __slots__ = FIELDS
    loc: int
    op: str
    left: object
    right: object

    def __init__(self, loc: int, op: str, left: object, right: object = None) -> None:
        self.loc = loc
        self.op = op
        self.left = left
        self.right = right


class HandFrozen(FrozenRecord):
    __slots__ = FIELDS
    loc: int
    op: str
    left: object
    right: object

    def __init__(self, loc: int, op: str, left: object, right: object = None) -> None:
        object.__setattr__(self, "loc", loc)
        object.__setattr__(self, "op", op)
        object.__setattr__(self, "left", left)
        object.__setattr__(self, "right", right)


class GenericFrozen(FrozenRecord):
    """pyast.Node's `__init__` before: fields matched to arguments at each call."""

    loc: int
    op: str
    left: object
    right: object = None

    def __init__(self, *args, **kwargs):
        if len(args) > len(self.FIELDS):
            raise TypeError(f"{type(self).__name__} takes {len(self.FIELDS)} fields")
        values = dict(zip(self.FIELDS, args), **kwargs)
        for f in self.FIELDS:
            if f in values:
                object.__setattr__(self, f, values.pop(f))
            elif not hasattr(type(self), f):
                raise TypeError(f"{type(self).__name__} needs `{f}`")
        if values:
            raise TypeError(f"{type(self).__name__} has no field {', '.join(values)}")


@dataclasses.dataclass
class DataclassMutable:
    loc: int
    op: str
    left: object
    right: object = None


@dataclasses.dataclass(frozen=True)
class DataclassFrozen:
    loc: int
    op: str
    left: object
    right: object = None


def per_call(cls: type, number: int = 200_000) -> float:
    cls(1, "+", 2, 3)  # the first call compiles a record's __init__
    return min(timeit.repeat(lambda: cls(1, "+", 2, 3), number=number, repeat=7)) / number


def main() -> None:
    for cls in (Mutable, HandMutable, DataclassMutable, Frozen, HandFrozen, DataclassFrozen, GenericFrozen):
        print(f"  {cls.__name__:<16} {per_call(cls) * 1e9:6.0f} ns per instance")


if __name__ == "__main__":
    main()
