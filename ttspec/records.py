"""Records: classes declared by their annotations alone, with what @dataclass gives them (an `__init__`,
field-wise `==`, a repr, hashing and immutability when frozen, `replace`) at a fraction of its cost at import.
Python 3.12 compiles each dataclass's methods when the class is created, ~0.3 ms a class (~0.5 ms frozen):
the ~100 record classes that `ttspec` commands import would cost start-up (budget 0.2 s, issue 19) ~30 ms.

    class Diagnostic(Record):
        severity: str
        message: str
        loc: Loc | None = None           # a default, as in a dataclass
        notes: list[Note] = fresh(list)  # omitted or None: a new list per record

Fields are the annotations, a base class's first (a field declared again keeps its place), ClassVar ones
left out; defaults are class attributes, and a field with a default may only be followed by others with one.
All records share one set of methods but `__init__`, which is written per class (positional or keyword
parameters, as a dataclass's) and compiled the first time the class is instantiated: classes a run never
instantiates cost nothing (a cold command compiles ~35, ~1.8 ms), and later instances are made as fast as
by a written `__init__`. A class's
`__post_init__`, if it has one, runs after the fields are set. A class may still write its own `__init__`.

Fields live in the instance's dict, not in slots: slots can only be derived from annotations by a metaclass,
and a class whose type is a metaclass makes every `isinstance` test against it that fails, or that matches
a base, ~2x slower (C's fast path is for plain `type`); the compiler's walks are chains of such tests. A
cold command creates ~2,000 records, where slots would save ~0.2 MB.
"""

from __future__ import annotations

from operator import attrgetter
from typing import ClassVar


class fresh:  # noqa: N801 -- used as a value in declarations, like dataclasses.field
    """The default of a field that holds a new mutable value per record: `fresh(list)`. None passed for
    it, as the records' hand-written initialisers took, also makes a new one."""

    __slots__ = ("make",)

    def __init__(self, make) -> None:
        self.make = make


def _is_classvar(annotation: object) -> bool:
    return str(annotation).replace("typing.", "").startswith("ClassVar")


def _declare(cls: type) -> None:
    """Derives a record class's FIELDS and DEFAULTS from its annotations, as the class is made, and gives it
    the first-call `__init__`."""
    fields: dict[str, None] = {}
    defaults: dict[str, object] = {}
    for base in reversed(cls.__mro__[1:]):
        if "FIELDS" in vars(base):  # a record class, its fields already derived
            for field in base.FIELDS:
                fields[field] = None
                if field in base.DEFAULTS:
                    defaults[field] = base.DEFAULTS[field]
                else:
                    defaults.pop(field, None)
    namespace = vars(cls)
    for field, annotation in namespace.get("__annotations__", {}).items():
        if _is_classvar(annotation):
            continue
        fields[field] = None
        if field in namespace:
            defaults[field] = namespace[field]
        else:
            defaults.pop(field, None)  # declared again without one, as a dataclass field
    cls.FIELDS = fields = tuple(fields)
    cls.DEFAULTS = {field: defaults[field] for field in fields if field in defaults}
    _check_default_order(cls)
    # the fields as a tuple, read in C (records are compared and hashed in the compiler's inner loops)
    cls._field_values = staticmethod(attrgetter(*fields) if len(fields) > 1
                                     else (lambda record: (getattr(record, fields[0]),)) if fields
                                     else (lambda record: ()))
    if "__init__" not in namespace:
        cls.__init__ = _first_init(cls)


def _check_default_order(cls: type) -> None:
    """A dataclass's rule: a positional parameter cannot follow one with a default."""
    seen_default = None
    for field in cls.FIELDS:
        if field in cls.DEFAULTS:
            seen_default = field
        elif seen_default is not None:
            raise TypeError(f"non-default argument {field!r} follows default argument {seen_default!r} "
                            f"in record {cls.__qualname__}")


def _first_init(cls: type):
    """An `__init__` that compiles the class's own on its first call, installs it and runs it."""

    def __init__(self, *args, **kwargs) -> None:
        init = _compile_init(cls)
        cls.__init__ = init
        init(self, *args, **kwargs)

    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    return __init__


def _compile_init(cls: type):
    """The class's `__init__`, as a dataclass's: `def __init__(self, a, b=<default>): self.a = a ...`; a frozen
    record's fields are set with object.__setattr__, past its `__setattr__`; a fresh() field takes a new value
    when omitted or None. Compiled once per class, on its first instance."""
    params, body = [], []
    helpers: dict[str, object] = {"__setattr": object.__setattr__}
    for i, field in enumerate(cls.FIELDS):
        default = cls.DEFAULTS.get(field, _NO_DEFAULT)
        params.append(field if default is _NO_DEFAULT else f"{field}=__default{i}")
        if default is not _NO_DEFAULT:
            helpers[f"__default{i}"] = None if isinstance(default, fresh) else default
        value = field
        if isinstance(default, fresh):
            helpers[f"__make{i}"] = default.make
            value = f"__make{i}() if {field} is None else {field}"
        body.append(f"__setattr(self, {field!r}, {value})" if issubclass(cls, FrozenRecord)
                    else f"self.{field} = {value}")
    if hasattr(cls, "__post_init__"):
        body.append("self.__post_init__()")
    source = f"def __init__(self{''.join(', ' + p for p in params)}):\n    " + "\n    ".join(body or ["pass"]) + "\n"
    namespace: dict[str, object] = {}
    exec(compile(source, f"<record {cls.__module__}.{cls.__qualname__}>", "exec"), helpers, namespace)
    init = namespace["__init__"]
    init.__qualname__, init.__module__ = f"{cls.__qualname__}.__init__", cls.__module__
    return init


_NO_DEFAULT = object()


class Record:
    """A mutable record: equal when the same class holds equal fields; unhashable, like a dataclass with eq."""

    FIELDS: ClassVar[tuple[str, ...]] = ()
    DEFAULTS: ClassVar[dict[str, object]] = {}

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        _declare(cls)

    def _values(self) -> tuple:
        return self._field_values(self)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._field_values(self) == self._field_values(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}({', '.join(f'{name}={getattr(self, name)!r}' for name in self.FIELDS)})"

    def replace(self, **changes: object):
        """A copy with some fields changed (dataclasses.replace), made through `__init__`."""
        unknown = changes.keys() - set(self.FIELDS)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {', '.join(sorted(unknown))}")
        return type(self)(**dict(zip(self.FIELDS, self._field_values(self)), **changes))


class FrozenRecord(Record):
    """An immutable, hashable record (a frozen dataclass). Copies and pickles are made through `__init__`."""

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
