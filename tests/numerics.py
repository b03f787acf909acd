"""Numeric bounds that hold on any machine: one place for the tolerances the tests put on bf16 and
block-float programs, each derived from the format's precision and checked with robust statistics.

Why not maxima. A bf16 program's largest elementwise error is the tail of a distribution of
rounding errors; where exactly each value rounds depends on the CPU's kernels (summation order,
fused multiply-adds, AVX-512 BF16 or not), so the maximum moves by 20% or more from one CPU to the
next (issue 18: 0.0685 on one machine where another measured 0.0574), and a ratio of two maxima
moves more. Means, high percentiles and PCC over thousands of values average those choices out:
they move by a few percent, so bounds set with a 2-3x margin over the rounding model below hold on
any CPU, and still reject a real bug (a dropped collective, a norm over the wrong slice, a wrong
scale), whose error is far above them (see each test's note).

The formats (unit roundoff u: the largest relative error of one round-to-nearest):
- fp32: 24 significant bits, u = 2^-24.
- bf16: 8 significant bits (7 stored and the implicit one), u = 2^-8 = 0.0039.
- bfloat8_b / bfloat4_b (ttnn's block floats): 16 values of a tile row share one exponent, each
  keeps a sign and 7 / 3 mantissa bits with no implicit bit, so one step is 2^-6 / 2^-2 of the
  block's largest power of two, and a value's error is at most one step (truncation) relative to
  its block's largest magnitude, whatever its own size.

The rounding model for a bf16 program against an fp32 reference on the same weights: every op
rounds its output to bf16, a relative error uniform in [-u, u] (RMS u/sqrt(3)); independent
roundings add in quadrature, and norms and the head pass relative errors on without amplifying
them (a normalised value's relative error is its input's). A logit that went through R roundings
has a relative RMS error of about u * sqrt(R / 3). The tests' models have at most 8 layers of about
10 roundings each (norm, projections, scores, softmax, attention output, activation, residual
adds), plus the embedding and the head: R <= 100, so about 6u RMS, and the mean |error| (0.8 RMS for
a normal distribution) about 5u. Measured on nano-trickster and llama-gqa-tiny (any chip or mesh):
mean 4.0-5.2u, 99th percentile 13-17u, relative to mean |logit|; over every spec the suite compares
this way, mean <= 6.3u and p99 <= 24u; on HF's own random initialisation (larger activations, wider
sums), mean 9.4u and p99 33u at the most.
"""

from __future__ import annotations

from dataclasses import dataclass

try:
    import torch
except ImportError:  # pragma: no cover  (the test modules that use these skip without torch)
    torch = None

U_FP32 = 2.0**-24
U_BF16 = 2.0**-8
# one step of the block floats' mantissa, relative to the block's largest power of two (see above)
BLOCK_FLOAT_STEP = {"bfloat8_b": 2.0**-6, "bfloat4_b": 2.0**-2}
BLOCK = 16  # values sharing one exponent: half a tile row

# The bf16 budget for logits against an fp32 reference on the same weights, in units of u relative to
# the reference's mean |value| (the signal scale):
# - mean |error| <= 16u: 3x the model's 5u (measured <= 5.2u). A wrong scale of the logits by s adds
#   about s * mean|ref|, so it shows from a few percent on; a dropped collective adds 100u and more.
# - 99th percentile <= 48u: for a normal error the 99th percentile is 3.2x the mean, so 3x the
#   model's 16u (measured <= 17u). Sees an error confined to some rows or positions (a mask or a
#   cache off by one on a few percent of the values), which a mean dilutes.
# - PCC >= 0.999: 1 - PCC is about half the squared relative RMS error, so 0.999 allows a relative
#   RMS error of 0.045 = 11.5u, 2x the model's 6u (measured PCC 0.99980-0.99988, i.e. 4.3-5.5u). PCC
#   does not see a scale or a shift; the mean does.
BF16_PCC = 0.999
BF16_MEAN = 16 * U_BF16  # 0.0625
BF16_P99 = 48 * U_BF16  # 0.1875
# ||error|| / ||reference|| of a bf16 program against an fp32 truth (HF transformers, a closed form)
# on the HF models' own random initialisation, whose activations are larger than the seeded specs':
# relative RMS error 16u = 0.0625 (the model's 6u with the larger R of a full-size init's wider sums
# and 2.5x margin; measured 0.009-0.036 = 2.3-9.3u over the specs, meshes and random architectures).
# A program with one feature wrong lands far outside: 0.26-0.28 (test_references).
BF16_REL = 16 * U_BF16
# Two bf16 programs computing the same function on the same weights (a mesh and the single chip; a
# torch program holding ttnn's rounded weights and the TT-NN program): each differs from the fp32
# reference by its own roundings, so the mesh may not be less accurate than the single chip by more
# than this factor on the mean and the 99th percentile. Independent roundings of the same count
# would give 1.0; a different count (the mesh rounds its partial sums before adding them: one more
# rounding on R of about 100) a few percent more. Measured 1.01-1.06; a 2% scale error of the logits
# gives 1.66, a shift by 8u 2.1 (tests/test_numerics.py).
AS_ACCURATE_FACTOR = 1.5
# A measured quantile is robust when a percent of the values is still many values: at least this many.
MIN_VALUES = 1000


@dataclass(frozen=True)
class ErrorStats:
    """How far `got` is from `ref`, in robust statistics; mean and p99 relative to mean |ref|."""

    pcc: float
    mean: float  # mean |got - ref| / mean |ref|
    p99: float  # 99th percentile of |got - ref| / mean |ref|
    rel: float  # ||got - ref|| / ||ref||

    def __str__(self) -> str:
        return (f"pcc {self.pcc:.6f} mean {self.mean / U_BF16:.2f}u p99 {self.p99 / U_BF16:.2f}u "
                f"rel {self.rel:.4f} (u = 2^-8, relative to mean |ref|)")


def pcc(a, b) -> float:
    """Pearson correlation of all values: sees any change of shape of the result, not its scale."""
    a, b = torch.as_tensor(a).double().flatten(), torch.as_tensor(b).double().flatten()
    a, b = a - a.mean(), b - b.mean()
    return float((a @ b) / (a.norm() * b.norm()))


def rel_err(a, b) -> float:
    """||a - b|| / ||b||: unlike PCC, sees a wrong scale or shift."""
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    return float((a - b).norm() / b.norm())


def error_stats(got, ref) -> ErrorStats:
    got, ref = torch.as_tensor(got).double().flatten(), torch.as_tensor(ref).double().flatten()
    assert got.shape == ref.shape and got.numel() >= MIN_VALUES, (got.shape, ref.shape)
    assert bool(torch.isfinite(got).all()), "non-finite values"
    err = (got - ref).abs()
    scale = ref.abs().mean().item()
    assert scale > 0, "a reference of zeros has no scale"
    p99 = torch.kthvalue(err, max(1, int(0.99 * err.numel()))).values.item()  # no size limit, unlike quantile
    return ErrorStats(pcc(got, ref), err.mean().item() / scale, p99 / scale, rel_err(got, ref))


def within_bf16(stats: ErrorStats) -> bool:
    return stats.pcc >= BF16_PCC and stats.mean <= BF16_MEAN and stats.p99 <= BF16_P99


def assert_bf16_accurate(got, ref, what: str = "") -> ErrorStats:
    """`got`, a bf16 program's result, against `ref`, fp32 on the same weights: the bf16 budget."""
    stats = error_stats(got, ref)
    print(f"{what}: {stats}")
    assert within_bf16(stats), f"{what} outside the bf16 budget: {stats}"
    return stats


def assert_same_up_to_rounding(got, single, ref, what: str = "mesh") -> None:
    """Two bf16 programs of the same function and weights (`got`, e.g. a mesh, and `single`, the
    single chip), `ref` the fp32 reference: both within the bf16 budget of it, `got` as accurate as
    `single` (AS_ACCURATE_FACTOR on the mean and the 99th percentile), and the two within the bf16
    budget of each other (measured 3.1-5.2u mean, 11-17u p99: they round the same weights in
    another order)."""
    own = assert_bf16_accurate(single, ref, "single vs fp32")
    mine = assert_bf16_accurate(got, ref, f"{what} vs fp32")
    assert mine.mean <= AS_ACCURATE_FACTOR * own.mean and mine.p99 <= AS_ACCURATE_FACTOR * own.p99, \
        f"{what} less accurate than the single chip: {mine} against {own}"
    assert_bf16_accurate(got, single, f"{what} vs single")


def block_float_steps(x: torch.Tensor, dtype: str) -> torch.Tensor:
    """One step of `dtype`'s mantissa for each value of `x`: 16 values along the last dim share the
    exponent of their largest magnitude. quantise(x) - x is at most this, value for value (the
    format's guarantee: measured up to 0.9 of it for bfloat8_b, which rounds, and 0.99 for
    bfloat4_b)."""
    assert x.shape[-1] % BLOCK == 0
    blocks = x.double().reshape(*x.shape[:-1], -1, BLOCK)
    top = blocks.abs().amax(-1, keepdim=True)
    exponent = torch.floor(torch.log2(top.clamp_min(torch.finfo(torch.float64).tiny)))
    return (BLOCK_FLOAT_STEP[dtype] * torch.exp2(exponent)).expand_as(blocks).reshape(x.shape)


def block_float_error_bounds(x: torch.Tensor, dtype: str) -> tuple[float, float]:
    """(lower, upper) bounds on ||quantise(x) - x|| / ||x|| from the format: every value's error is at
    most one step of its block, and in all at least a quarter of the RMS of a uniform rounding error
    over the steps, s / sqrt(12) (values drawn from a continuous distribution are not on the grid,
    so they do round). Measured on unit normals: bfloat8_b 0.0072 in (0.0018, 0.025), bfloat4_b
    0.118 in (0.029, 0.41); no rounding at all, or one format's rounding for the other's, falls out."""
    step, norm = block_float_steps(x, dtype), x.double().norm()
    return float(0.25 * step.norm() / 12**0.5 / norm), float(step.norm() / norm)


# fp32 against fp32 (a torch program against HF transformers or a closed form, both fp32): the suite
# bounds the largest elementwise error by 1e-4 on logits of a few units, which is over 500 roundings
# of fp32 (2^-24 relative); two code paths (fused or split projections, another BLAS kernel) order
# their sums differently and differ by about sqrt(n) roundings of a sum of n terms, 23 for n = 512
# (measured <= 7.3e-6). A maximum is safe there because it sits 10x and more below the bound; a
# wrong op moves logits by 1e-2 and more.
FP32_ATOL = 1e-4


# Guards against hangs and runaway work, not timings: a loaded machine (other jobs, a CI runner
# shared by many) runs a command several times slower than an idle one (measured here: a 100,000-layer
# compile 0.4 s idle, 5.8 s beside other jobs), and a test that measures speed fails there. Work that
# must not grow with the input is checked by counting it (tests/test_hostile.py), not by the clock.
QUICK_GUARD_S = 10.0  # in-process work that takes well under a second on an idle machine (100x)
HANG_GUARD_S = 60.0  # a command in a fresh process, start-up included (2 s idle: 30x), or a plan search
