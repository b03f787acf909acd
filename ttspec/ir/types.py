"""Tensor types with symbolic dims."""

from __future__ import annotations

from ..records import FrozenRecord

# A dim is a concrete int or the name of a symbolic dim such as "batch" or "seq".
Dim = int | str

INT_DTYPES = ("int32", "int64", "uint32")
FLOAT_DTYPES = ("float", "fp32", "bf16", "bfloat16")
DTYPES = INT_DTYPES + FLOAT_DTYPES


class TensorType(FrozenRecord):
    """A tensor's dtype and shape (ints and symbolic dims)."""

    dtype: str
    shape: tuple[Dim, ...]

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_int(self) -> bool:
        return self.dtype in INT_DTYPES

    def with_shape(self, shape) -> TensorType:
        return TensorType(self.dtype, tuple(shape))

    def __str__(self) -> str:
        return f"{self.dtype}[{', '.join(str(d) for d in self.shape)}]"


def concrete(shape: tuple[Dim, ...], bindings: dict[str, int]) -> tuple[int, ...]:
    """Substitute symbolic dims; every symbol must be bound."""
    return tuple(d if isinstance(d, int) else bindings[d] for d in shape)


def numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def broadcast(a: tuple[Dim, ...], b: tuple[Dim, ...]) -> tuple[Dim, ...] | None:
    """numpy broadcasting on symbolic shapes; None when incompatible."""
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        da = a[-i] if i <= len(a) else 1
        db = b[-i] if i <= len(b) else 1
        if da == db or db == 1:
            out.append(da)
        elif da == 1:
            out.append(db)
        else:
            return None
    return tuple(reversed(out))
