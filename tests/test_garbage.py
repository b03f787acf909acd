"""Garbage in: a clear error, never a crash, a traceback or a hang (a guard, not a timing: tests/numerics.py)."""

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ttspec.driver import load_model
from ttspec.errors import ArchError

from .numerics import QUICK_GUARD_S


def check_clear_error(path, needle=None):
    start = time.perf_counter()
    with pytest.raises(ArchError) as info:
        load_model(path)
    elapsed = time.perf_counter() - start
    assert elapsed < QUICK_GUARD_S, f"took {elapsed:.2f}s"  # a hang guard, not a timing: tests/numerics.py
    text = info.value.render()
    if needle:
        assert needle in text, text
    return info.value


def test_empty_file(write_spec):
    e = check_clear_error(write_spec(""), "empty spec")
    assert e.loc is not None and (e.loc.line, e.loc.col) == (1, 1)


def test_only_comments(write_spec):
    check_clear_error(write_spec("# nothing here\n\n   # still nothing\n"), "empty spec")


def test_binary_bytes(tmp_path):
    path = tmp_path / "model.arch"
    path.write_bytes(b"model m\n\x89PNG\r\n\x1a\n\xff\xfe\x00\x01")
    e = check_clear_error(path, "not UTF-8")
    assert (e.loc.line, e.loc.col) == (2, 1)


def test_nul_byte(tmp_path):
    path = tmp_path / "model.arch"
    path.write_bytes(b"model m\nlet a = 1\x00\n")
    check_clear_error(path, "NUL byte")


def test_deeply_nested_parentheses(write_spec):
    depth = 1_000
    check_clear_error(write_spec("model m\nlet a = " + "(" * depth + "1" + ")" * depth + "\n"),
                      "nested more than")


def test_long_operator_chain(write_spec):
    e = check_clear_error(write_spec("model m\nlet a = " + " + ".join(["1"] * 3_000) + "\n"), "nested too deeply")
    assert (e.loc.line, e.loc.col) == (2, 1)


def test_enormous_literal(write_spec):
    check_clear_error(write_spec("model m\nlet a = " + "9" * 10_000 + "\n"), "integer literal too large")


def test_too_many_tokens(write_spec):
    check_clear_error(write_spec("model m\nlet a = " + "+".join(["1"] * 20_000) + "\n"), "more than 8,000 tokens")


def test_enormous_float(write_spec):
    check_clear_error(write_spec("model m\nlet a = 1e999\n"), "too large")


def test_huge_file(tmp_path):
    path = tmp_path / "big.arch"
    path.write_text("# " + "x" * (1 << 20))
    check_clear_error(path, "ttspec reads at most 65,536")


def test_power_tower(write_spec):
    check_clear_error(write_spec("model m\nlet a = 10 ** 10 ** 10\n"), "too large")


def test_giant_dims_are_counted_not_allocated(write_spec):
    from ttspec.analysis.interpreters import count_params

    start = time.perf_counter()
    model = load_model(write_spec(
        "model m\ninput t: int32[b, s]\nh = token_embedding(t, 10000000, 10000000)\n"
        "h = linear(h, 10000000) as a\noutput o = h\n"))
    assert count_params(model.graph) == 2 * 10_000_000 ** 2
    assert time.perf_counter() - start < QUICK_GUARD_S  # counted, not allocated: 10^14 values would not fit
    # 3e9 x 3e9 = 9e18 elements is past what torch can allocate for one tensor (the program's model
    # could not be built): a located error since one weight is limited to 2**48 elements
    check_clear_error(write_spec("model m\ninput t: int32[b, s]\nh = token_embedding(t, 3000000000, 3000000000)\n"
                                 "output o = h\n"), "one weight is limited to 2**48")


def test_missing_file(tmp_path):
    check_clear_error(tmp_path / "nope.arch", "no such file")


def test_directory(tmp_path):
    check_clear_error(tmp_path, "it is a directory")


def test_a_fifo_or_device_is_refused_without_reading(tmp_path):
    import os

    fifo = tmp_path / "spec.arch"
    os.mkfifo(fifo)  # read_bytes opens without blocking: no writer ever comes
    check_clear_error(fifo, "it is a FIFO")
    check_clear_error("/dev/zero", "it is a character device")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400))
def test_random_bytes_never_crash(tmp_path, data):
    path = tmp_path / "fuzz.arch"
    path.write_bytes(data)
    try:
        load_model(path)
    except ArchError as e:
        e.render()


TOKENS = ["model", "m", "let", "a", "=", "1", "2.5", "(", ")", "[", "]", "{", "}", ",", ":", "block", "input",
          "output", "repeat", "as", "self", "return", "if", "else", "+", "*", "/", "//", "-", "**", "x",
          "int32", "batch", "seq", "where", "<=", "linear", "attention", "heads", "rmsnorm", "\n", '"s"',
          "true", "none", "import", "kind", "lm_head", "token_embedding", "tokens", "h"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(TOKENS), max_size=60))
def test_random_token_soup_never_crashes(tmp_path, tokens):
    path = tmp_path / "soup.arch"
    path.write_text("model m\n" + " ".join(tokens))
    try:
        load_model(path)
    except ArchError as e:
        assert e.render()
