"""Weight formats per parameter kind: `--weights-dtype bfloat8_b` (every weight matrix) or
`--weights-dtype attention=bfloat8_b,mlp=bfloat4_b` (per kind, the kinds of `ttspec params`'
breakdown; the other kinds keep bf16, or the one plain value given with them:
`bfloat8_b,mlp=bfloat4_b`). Only weight matrices take these formats; lookup tables, norms and
biases stay bf16 (see analysis/memory.py)."""

from __future__ import annotations

from .errors import UsageError, did_you_mean
from .records import FrozenRecord, fresh

DTYPES = ("bf16", "bfloat8_b", "bfloat4_b")


class WeightFormats(FrozenRecord):
    """The weight dtype of each kind of matrix (`--weights-dtype`), with a default."""

    default: str = "bf16"
    by_kind: dict[str, str] = fresh(dict)

    def __hash__(self) -> int:  # by value, as == compares (by_kind is a dict)
        return hash((self.default, tuple(sorted(self.by_kind.items()))))

    def dtype(self, kind: str) -> str:
        return self.by_kind.get(kind, self.default)

    @property
    def plain(self) -> bool:
        return not self.by_kind

    def __str__(self) -> str:
        if self.plain:
            return self.default
        parts = [self.default] if self.default != "bf16" else []
        parts += [f"{k}={v}" for k, v in sorted(self.by_kind.items())]
        return ",".join(parts)

    def check_kinds(self, kinds, matrix_kinds=None) -> None:
        """A clear error for a kind the model does not have, or (given `matrix_kinds`, the kinds with
        weight matrices) for one whose parameters no format changes: naming it would change nothing."""
        known = sorted(kinds)
        for kind in self.by_kind:
            if kind not in known:
                raise UsageError(f"--weights-dtype names kind `{kind}`, which this model has no parameters of",
                                 hint=" ".join(filter(None, (did_you_mean(kind, known),
                                                             "kinds (from `ttspec params`): " + ", ".join(known)))))
            if matrix_kinds is not None and kind not in matrix_kinds:
                takes = ", ".join(sorted(matrix_kinds)) or "none in this model"
                raise UsageError(f"--weights-dtype {kind}={self.by_kind[kind]}: kind `{kind}` has no weight matrices; "
                                 "its lookup tables, norms and biases stay bf16 on every target",
                                 hint=f"leave `{kind}` out; the kinds a weight format applies to: {takes}")


BF16 = WeightFormats()  # every weight matrix bf16: the default


def _dtype(text: str, what: str) -> str:
    if text not in DTYPES:
        raise UsageError(f"--weights-dtype: unknown dtype `{text[:40]}`{what}",
                         hint=" ".join(filter(None, (did_you_mean(text, DTYPES), "dtypes: " + ", ".join(DTYPES)))))
    return text


def parse(text) -> WeightFormats:
    """`bfloat8_b`, `attention=bfloat8_b,mlp=bfloat4_b` or `bfloat8_b,mlp=bfloat4_b`; a
    WeightFormats passes through."""
    if isinstance(text, WeightFormats):
        return text
    default, by_kind, plain = "bf16", {}, 0
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            raise UsageError(f"--weights-dtype: empty entry in {text[:60]!r}",
                             hint="e.g. bfloat8_b, or attention=bfloat8_b,mlp=bfloat4_b")
        if "=" in part:
            kind, _, dtype = (s.strip() for s in part.partition("="))
            if not kind:
                raise UsageError(f"--weights-dtype: `{part[:40]}` has no kind before `=`")
            if kind in by_kind:
                raise UsageError(f"--weights-dtype gives kind `{kind}` twice")
            by_kind[kind] = _dtype(dtype, f" for kind `{kind}`")
        else:
            plain += 1
            if plain > 1:
                raise UsageError(f"--weights-dtype: at most one plain dtype, got {text[:60]!r}",
                                 hint="the plain value is the default for the kinds not named")
            default = _dtype(part, "")
    return WeightFormats(default, by_kind)


# Bytes per value for each weight format; block-float formats store 1024 values (one 32x32
# tile) as 1024 (bfloat8_b) or 512 (bfloat4_b) mantissa bytes plus 64 bytes of exponents.
DTYPE_BYTES = {"fp32": (4, 1), "bf16": (2, 1), "bfloat8_b": (1088, 1024), "bfloat4_b": (576, 1024)}


def tensor_bytes(numel: int, dtype: str) -> int:
    num, per = DTYPE_BYTES[dtype]
    if per == 1:
        return numel * num
    return -(-numel // per) * num  # whole blocks of 1024 values
