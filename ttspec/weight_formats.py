"""The storage formats of a TT-NN program: its weight matrices (`--weights-dtype`), its KV cache
(`--kv-dtype`) and the partial sums its collectives carry (`--ccl-dtype`).

`--weights-dtype` takes one dtype for every weight matrix (`bfloat8_b`), tt_transformers' performance
preset (`performance`), or entries KEY=DTYPE that override it, where KEY is
- a parameter kind (the kinds of `ttspec params`' breakdown: attention, mlp, head, ...): every matrix of
  that kind, e.g. `attention=bfloat8_b,mlp=bfloat4_b`; or
- a matrix role, one of tt_transformers' tensor groups inside a kind (model_config.py TensorGroup):
  `wqkv` (attention's q, k and v projections: the matrices that read the attention's input), `wo` (its
  output projection), `ff1_ff3` (the MLP's matrices that read its input: w1 and w3, or an MLP's up),
  `ff2` (the MLP's other matrices: w2, the down projection). The head is one matrix: its kind, `head`.
The most specific entry wins: a role over its kind, a kind over the plain dtype or preset (which sets
the default for everything not named). A kind named with the preset replaces what the preset says of
its roles: `performance,mlp=bfloat8_b` keeps the whole MLP in bfloat8_b. Examples:
`bfloat8_b,ff1_ff3=bfloat4_b` (= `performance`), `performance,ff2=bfloat4_b`, `attention=bf16,mlp=bfloat8_b`.

Only weight matrices take these formats; lookup tables, norms and biases stay bf16 (see
analysis/memory.py). The KV cache is bf16 or bfloat8_b (`kv_cache`), for every attention layer.

The collective payloads (`ccl`) are bf16 or bfloat8_b: with bfloat8_b, each decode matmul whose partial sums a
reduce-scatter or all-reduce carries back to the residual stream writes them in bfloat8_b (tt_transformers'
`ccl_dtype`, which it uses on Galaxy only: models/tt_transformers/tt/attention.py, mlp.py, ccl.py). Opt-in on
every mesh: no preset sets it (tt_transformers' performance preset is a choice of weight formats; its bfloat8_b
payloads follow the machine, not the preset), and it costs decode accuracy (docs/design-decode.md).
"""

from __future__ import annotations

from typing import NamedTuple

from .errors import UsageError, did_you_mean
from .records import FrozenRecord, fresh

DTYPES = ("bf16", "bfloat8_b", "bfloat4_b")
KV_DTYPES = ("bf16", "bfloat8_b")  # the KV cache's formats: ttnn's paged_update_cache and SDPA decode take both
CCL_DTYPES = ("bf16", "bfloat8_b")  # the collectives' payloads: ttnn.linear(..., dtype=) writes both, ccl sends both

# The matrix roles of the kinds that have more than one (tt_transformers' TensorGroup names): the first role of
# a kind is its matrices that read the component's input, the second the others (ops/queries.py: matrix_of).
KIND_ROLES = {"attention": ("wqkv", "wo"), "mlp": ("ff1_ff3", "ff2")}
ROLES = {role: kind for kind, roles in KIND_ROLES.items() for role in roles}
# Names a reader may reach for, and the key that says it (hints only: module names differ between families).
ROLE_ALIASES = {**dict.fromkeys(("wq", "wk", "wv", "q_proj", "k_proj", "v_proj", "c_attn", "qkv"), "wqkv"),
                **dict.fromkeys(("o_proj", "out_proj", "dense"), "wo"),
                **dict.fromkeys(("w1", "w3", "gate", "up", "gate_proj", "up_proj", "c_fc", "fc1", "ff1", "ff3"),
                                "ff1_ff3"),
                **dict.fromkeys(("w2", "down", "down_proj", "fc2"), "ff2"),
                **dict.fromkeys(("lm_head", "output", "unembed"), "head")}

# tt_transformers' performance preset (model_config.py ModelOptimizations.performance over its default
# settings, "BFP8 everywhere"): FF1/FF3 bfloat4_b, every other weight matrix (wqkv, wo, ff2, the LM head)
# bfloat8_b; PERF.md's "performance" rows. Its KV cache is bfloat8_b too: that is `--kv-dtype bfloat8_b`.
# (Its accuracy preset depends on the model's name, see docs/performance-model.md: no preset here.)
PRESETS = {"performance": ("bfloat8_b", {"ff1_ff3": "bfloat4_b"})}
EXAMPLES = "e.g. bfloat8_b, performance, attention=bfloat8_b,mlp=bfloat4_b or performance,ff2=bfloat4_b"


class Matrix(NamedTuple):
    """Which format a weight matrix takes: its parameter kind and, in a kind with roles, its role."""

    kind: str
    role: str | None = None


class WeightFormats(FrozenRecord):
    """The dtype of each kind (and matrix role) of weight matrix (`--weights-dtype`), with a default, the
    KV cache's format (`--kv-dtype`) and the collectives' payload format (`--ccl-dtype`)."""

    default: str = "bf16"
    by_kind: dict[str, str] = fresh(dict)
    by_role: dict[str, str] = fresh(dict)
    kv_cache: str = "bf16"
    ccl: str = "bf16"
    # roles a preset set (not checked against the model: a preset names roles a model may not have); not compared
    from_preset: tuple[str, ...] = ()

    def _key(self) -> tuple:
        return (self.default, tuple(sorted(self.by_kind.items())), tuple(sorted(self.by_role.items())), self.kv_cache,
                self.ccl)

    def __hash__(self) -> int:  # by value, consistent with == (by_kind and by_role are dicts); roles rarely differ
        return hash((self.default, tuple(sorted(self.by_kind.items()))))

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and self._key() == other._key()

    def dtype(self, key: str | Matrix) -> str:
        """The format of a matrix (a Matrix), or of a kind's matrices that no role names (a kind)."""
        if isinstance(key, Matrix):
            if key.role is not None and key.role in self.by_role:
                return self.by_role[key.role]
            key = key.kind
        return self.by_kind.get(key, self.default)

    @property
    def plain(self) -> bool:
        """One format for every weight matrix."""
        return not self.by_kind and not self.by_role

    def with_kind(self, kind: str, dtype: str) -> WeightFormats:
        """These formats with every matrix of `kind` in `dtype` (its roles' entries dropped)."""
        roles = KIND_ROLES.get(kind, ())
        return WeightFormats(self.default, {**self.by_kind, kind: dtype},
                             {r: d for r, d in self.by_role.items() if r not in roles}, self.kv_cache, self.ccl)

    def with_kv_cache(self, dtype: str) -> WeightFormats:
        return WeightFormats(self.default, dict(self.by_kind), dict(self.by_role), dtype, self.ccl, self.from_preset)

    def with_ccl(self, dtype: str) -> WeightFormats:
        return WeightFormats(self.default, dict(self.by_kind), dict(self.by_role), self.kv_cache, dtype,
                             self.from_preset)

    def like(self, other: WeightFormats) -> WeightFormats:
        """These weight formats with `other`'s KV cache and collective payloads."""
        return self.with_kv_cache(other.kv_cache).with_ccl(other.ccl)

    @property
    def weights(self) -> WeightFormats:
        """The weight formats alone (the KV cache and the collective payloads bf16)."""
        return self if (self.kv_cache, self.ccl) == ("bf16", "bf16") else self.with_kv_cache("bf16").with_ccl("bf16")

    def __str__(self) -> str:
        """The weight formats as `--weights-dtype` takes them (the KV cache is `--kv-dtype`'s)."""
        for name, (default, by_role) in PRESETS.items():
            if (self.default, self.by_kind, self.by_role) == (default, {}, by_role):
                return name
        if self.plain:
            return self.default
        parts = [self.default] if self.default != "bf16" else []
        parts += [f"{k}={v}" for k, v in sorted(self.by_kind.items())]
        parts += [f"{r}={self.by_role[r]}" for r in ROLES if r in self.by_role]
        return ",".join(parts)

    def check_kinds(self, kinds, matrix_kinds=None, roles=None) -> None:
        """A clear error for a kind the model does not have, or (given `matrix_kinds`, the kinds with
        weight matrices) for one whose parameters no format changes: naming it would change nothing; and
        (given `roles`, the roles of the model's matrices) for a role it has no matrix of."""
        known = sorted(kinds)
        for kind in self.by_kind:
            if kind not in known:
                alias = ROLE_ALIASES.get(kind)
                said = (f"say `{alias}={self.by_kind[kind]}`: `{alias}` is the "
                        + ("kind" if alias in known else "matrix role") + f" of what `{kind}` names in many models."
                        if alias and (roles is None or alias in roles or alias in known) else None)
                raise UsageError(f"--weights-dtype names kind `{kind}`, which this model has no parameters of",
                                 hint=" ".join(filter(None, (said or did_you_mean(kind, known),
                                                             "kinds (from `ttspec params`): " + ", ".join(known) + ";",
                                                             "matrix roles: " + ", ".join(ROLES)))))
            if matrix_kinds is not None and kind not in matrix_kinds:
                takes = ", ".join(sorted(matrix_kinds)) or "none in this model"
                raise UsageError(f"--weights-dtype {kind}={self.by_kind[kind]}: kind `{kind}` has no weight matrices; "
                                 "its lookup tables, norms and biases stay bf16 on every target",
                                 hint=f"leave `{kind}` out; the kinds a weight format applies to: {takes}")
        if roles is None:
            return
        for role in self.by_role:
            if role not in roles and role not in self.from_preset:
                has = ", ".join(r for r in ROLES if r in roles) or "none"
                raise UsageError(f"--weights-dtype {role}={self.by_role[role]}: this model has no {ROLES[role]} "
                                 f"matrix in role `{role}`",
                                 hint=f"leave `{role}` out; the roles its matrices have: {has}")


BF16 = WeightFormats()  # every weight matrix bf16: the default


def _dtype(text: str, what: str) -> str:
    if text not in DTYPES:
        raise UsageError(f"--weights-dtype: unknown dtype `{text[:40]}`{what}",
                         hint=" ".join(filter(None, (did_you_mean(text, DTYPES), "dtypes: " + ", ".join(DTYPES)))))
    return text


def _plain(text: str) -> str:
    """A plain entry: a dtype or a preset's name."""
    if text in DTYPES or text in PRESETS:
        return text
    if text == "accuracy":
        raise UsageError("--weights-dtype: no `accuracy` preset: tt_transformers' accuracy settings depend on the "
                         "model (model_config.py ModelOptimizations.accuracy: Llama 3 and Mistral 7B keep bfloat8_b "
                         "everywhere, 70B-class models bfloat4_b MLP w1/w3, others bf16 attention)",
                         hint="say the formats: bfloat8_b, or bfloat8_b,attention=bf16, or performance")
    names = DTYPES + tuple(PRESETS)
    known = "dtypes: " + ", ".join(DTYPES) + "; presets: " + ", ".join(PRESETS)
    raise UsageError(f"--weights-dtype: unknown dtype `{text[:40]}` (nor a preset)",
                     hint=" ".join(filter(None, (did_you_mean(text, names), known))))


def parse(text) -> WeightFormats:
    """`bfloat8_b`, `performance`, `attention=bfloat8_b,mlp=bfloat4_b`, `performance,ff2=bfloat4_b` (see the
    module doc); a WeightFormats passes through."""
    if isinstance(text, WeightFormats):
        return text
    plain: list[str] = []
    by_kind: dict[str, str] = {}
    by_role: dict[str, str] = {}
    if not str(text).strip():
        raise UsageError("--weights-dtype: an empty value", hint=EXAMPLES)
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            raise UsageError(f"--weights-dtype: empty entry in {text[:60]!r}", hint=EXAMPLES)
        if "=" not in part:
            plain.append(_plain(part))
            if len(plain) > 1:
                raise UsageError(f"--weights-dtype: at most one plain dtype or preset, got {text[:60]!r}",
                                 hint="the plain value (a dtype, or `performance`) is the default for the matrices "
                                      "not named")
            continue
        key, _, dtype = (s.strip() for s in part.partition("="))
        if not key:
            raise UsageError(f"--weights-dtype: `{part[:40]}` has no kind before `=` (nor a matrix role)",
                             hint=EXAMPLES)
        if key in PRESETS or key in DTYPES:
            raise UsageError(f"--weights-dtype: `{key}` is a {'preset' if key in PRESETS else 'dtype'}, not a kind "
                             "or role", hint=EXAMPLES)
        table, what = (by_role, "role") if key in ROLES else (by_kind, "kind")
        if key in table:
            raise UsageError(f"--weights-dtype gives {what} `{key}` twice", hint="give each kind and role once")
        table[key] = _dtype(dtype, f" for {what} `{key}`")
    default, preset_roles = "bf16", {}
    if plain and plain[0] in PRESETS:
        default, preset_roles = PRESETS[plain[0]]
    elif plain:
        default = plain[0]
    # a kind named replaces what the preset says of its roles; roles named replace the preset's
    implied = {r: d for r, d in preset_roles.items() if ROLES[r] not in by_kind and r not in by_role}
    return WeightFormats(default, by_kind, {**implied, **by_role}, from_preset=tuple(implied))


def parse_kv(text: str) -> str:
    """`--kv-dtype`: bf16 or bfloat8_b."""
    if not text.strip():
        raise UsageError("--kv-dtype: an empty value", hint="KV cache dtypes: " + ", ".join(KV_DTYPES))
    if text not in KV_DTYPES:
        hint = did_you_mean(text, KV_DTYPES)
        more = " (a bfloat4_b cache is not offered: 3 mantissa bits per key)" if text == "bfloat4_b" else ""
        raise UsageError(f"--kv-dtype: unknown KV cache dtype `{text[:40]}`{more}",
                         hint=" ".join(filter(None, (hint, "KV cache dtypes: " + ", ".join(KV_DTYPES)))))
    return text


def parse_ccl(text: str) -> str:
    """`--ccl-dtype`: bf16 or bfloat8_b."""
    if text not in CCL_DTYPES:
        hint = did_you_mean(text, CCL_DTYPES)
        if text in ("bfloat16", "bf16_b"):
            hint = "bfloat16 is spelled bf16 here, as in --weights-dtype and --kv-dtype"
        more = " (bfloat4_b payloads are not offered: 3 mantissa bits per partial sum)" if text == "bfloat4_b" else ""
        raise UsageError(f"--ccl-dtype: unknown collective payload dtype `{text[:40]}`{more}",
                         hint=" ".join(filter(None, (hint, "payload dtypes: " + ", ".join(CCL_DTYPES)))))
    return text


# Bytes per value for each weight format; block-float formats store 1024 values (one 32x32
# tile) as 1024 (bfloat8_b) or 512 (bfloat4_b) mantissa bytes plus 64 bytes of exponents.
DTYPE_BYTES = {"fp32": (4, 1), "bf16": (2, 1), "bfloat8_b": (1088, 1024), "bfloat4_b": (576, 1024)}


def tensor_bytes(numel: int, dtype: str) -> int:
    num, per = DTYPE_BYTES[dtype]
    if per == 1:
        return numel * num
    return -(-numel // per) * num  # whole blocks of 1024 values
