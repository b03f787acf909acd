"""The bounds of tests/numerics.py still fail on real bugs: a mesh program's logits pass them, and the
same logits with a bug's signature planted (a scale a few percent off, a shift, one position or one
user's rows wrong) do not. Block floats: skipping the rounding, or rounding to the other format,
lands outside the format's bounds."""

import pytest

from .conftest import formats_of, target_of
from .numerics import (
    U_BF16,
    assert_same_up_to_rounding,
    block_float_error_bounds,
    block_float_steps,
    error_stats,
    rel_err,
)

torch = pytest.importorskip("torch")
pytest.importorskip("ttnn")


@pytest.fixture(scope="module")
def mesh_run():
    """llama-gqa-tiny on n300 (1x2, 1-D) and n150, seeded weights and tokens [4, 40], and fp32."""
    from ttspec.driver import compile_source
    from ttspec.runtime.runner import run_golden
    from ttspec.targets import get_target

    from .test_mesh import single_chip_runs

    spec = "llama-gqa-tiny.arch"
    single = single_chip_runs("n150")
    model, state, tokens, expected = single(spec)
    source = compile_source(model, f"specs/{spec}", target_of("n300"), formats_of("bf16"))
    logits, _ = run_golden(model, f"specs/{spec}", get_target("n300"), state, tokens, source=source)
    return logits.float(), expected.float(), single.fp32(spec).float()


def planted(logits, expected):
    """A bug's signature on the mesh's logits, by name (each seen in a real mesh or decode bug)."""
    wrong_position = logits.clone()
    wrong_position[:, -1] = logits[:, -2]  # the last position reads the one before (a mask or cache off by one)
    other_user = logits.clone()
    other_user[1] = expected[0]  # one user's rows are another's (a batch split)
    return {
        "scale 1.03": logits * 1.03,  # a norm's gamma or a softcap a few percent off
        "shift 8u": logits + 8 * U_BF16 * expected.abs().mean(),  # a bias added twice, small
        "last position wrong": wrong_position,
        "one user's rows another's": other_user,
    }


def test_the_mesh_passes(mesh_run):
    logits, expected, fp32 = mesh_run
    assert_same_up_to_rounding(logits, expected, fp32, "n300")


@pytest.mark.parametrize("bug", ["scale 1.03", "shift 8u", "last position wrong", "one user's rows another's"])
def test_each_planted_bug_fails_the_bounds(mesh_run, bug):
    """Measured: scale 1.03 gives a mean error against fp32 of 8.8u where the single chip has 4.0u (the
    mesh may have AS_ACCURATE_FACTOR = 1.5x that); the shift 8.3u; the last position wrong a 99th
    percentile of 279u (the budget: 48u); another user's rows PCC 0.78."""
    logits, expected, fp32 = mesh_run
    with pytest.raises(AssertionError) as info:
        assert_same_up_to_rounding(planted(logits, expected)[bug], expected, fp32, bug)
    print(f"{bug}: {str(info.value).splitlines()[0]}")


def test_block_float_bounds_separate_the_formats():
    from ttspec.runtime.golden import GoldenTTNN, quantise

    ttnn = GoldenTTNN()._ttnn
    x = torch.randn(64, 96, generator=torch.Generator().manual_seed(1)) * 0.02  # weight-sized values
    q8, q4 = (quantise(ttnn, x, getattr(ttnn, d)).float() for d in ("bfloat8_b", "bfloat4_b"))
    (low8, high8), (low4, high4) = (block_float_error_bounds(x, d) for d in ("bfloat8_b", "bfloat4_b"))
    assert low8 < rel_err(q8, x) < high8 and low4 < rel_err(q4, x) < high4
    assert rel_err(x.bfloat16().float(), x) < low8  # bf16 only: no block rounding happened
    assert rel_err(q4, x) > high8  # bfloat4_b's rounding where bfloat8_b's was asked for
    assert not ((q4 - x).abs() <= block_float_steps(x, "bfloat8_b")).all()


def test_error_stats_are_relative_to_the_signal():
    """The statistics scale with the reference: the same relative error at 1e-3 and at 1e3."""
    ref = torch.randn(4096, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    noise = torch.randn(4096, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 0.01
    small, large = error_stats((ref + noise) * 1e-3, ref * 1e-3), error_stats((ref + noise) * 1e3, ref * 1e3)
    assert small.mean == pytest.approx(large.mean, rel=1e-12) and small.p99 == pytest.approx(large.p99, rel=1e-12)
    # |N(0, s)| has mean s * sqrt(2 / pi): 0.01 against mean |ref| = sqrt(2 / pi)
    assert small.mean == pytest.approx(0.01, rel=0.05)
