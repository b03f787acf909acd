"""Plain records for the classes a cold start creates at import: what @dataclass gives them (field-wise `==`,
a repr, hashing when frozen), without generating and compiling methods at import. Python 3.12 compiles each
dataclass's methods separately, ~0.3 ms a class (~0.5 ms frozen): the ~50 record classes that every `ttspec`
command imports cost its start-up (budget 0.2 s, issue 19) ~20 ms that way.

A record class lists its fields as annotations (a base class's first, as in a dataclass), names them in
`__slots__` and writes its own `__init__`; FIELDS, equality, repr and hash follow from the annotations.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import ClassVar


class Record:
    """A mutable record: equal when the same class holds equal fields; unhashable, like a dataclass with eq."""

    __slots__ = ()
    FIELDS: ClassVar[tuple[str, ...]] = ()
    _field_values: ClassVar[Callable[[Record], tuple]]

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.FIELDS = tuple(name for klass in reversed(cls.__mro__)
                           for name, annotation in vars(klass).get("__annotations__", {}).items()
                           if not str(annotation).replace("typing.", "").startswith("ClassVar"))
        # the fields as a tuple, read in C (records are compared and hashed in the compiler's inner loops)
        fields = cls.FIELDS
        cls._field_values = staticmethod(attrgetter(*fields) if len(fields) > 1
                                         else (lambda record: (getattr(record, fields[0]),)) if fields
                                         else (lambda record: ()))

    def _values(self) -> tuple:
        return self._field_values(self)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._field_values(self) == self._field_values(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}({', '.join(f'{name}={getattr(self, name)!r}' for name in self.FIELDS)})"


class FrozenRecord(Record):
    """An immutable, hashable record (a frozen dataclass). Its `__init__` sets fields with object.__setattr__
    or `_assign`; copies and pickles are made through `__init__`, which takes the fields in FIELDS order."""

    __slots__ = ()

    def _assign(self, *values: object) -> None:
        """Set every field, in FIELDS order (for a written `__init__`)."""
        for name, value in zip(self.FIELDS, values, strict=True):
            object.__setattr__(self, name, value)

    def __reduce__(self):
        return type(self), self._values()

    def __setattr__(self, name: str, value: object) -> None:
        from dataclasses import FrozenInstanceError  # the error a frozen dataclass raises, for its callers

        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        from dataclasses import FrozenInstanceError

        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __hash__(self) -> int:
        return hash(self._values())
