"""The AST cache is an accelerator only: same answers warm or cold, and never stale."""

import os
from pathlib import Path

from ttspec.analysis.interpreters import count_params
from ttspec.driver import load_model


def cache_files():
    return sorted(Path(os.environ["TTSPEC_CACHE_DIR"], "ast").glob("*.pickle"))


def test_warm_equals_cold(write_spec, monkeypatch):
    path = write_spec("model m\ninput t: int32[b, s]\noutput o = lm_head(token_embedding(t, 10, 8), 10)\n")
    warm1 = count_params(load_model(path).graph)
    warm2 = count_params(load_model(path).graph)
    monkeypatch.setenv("TTSPEC_NO_CACHE", "1")
    cold = count_params(load_model(path).graph)
    assert warm1 == warm2 == cold == 10 * 8 * 2


def test_edit_is_seen(write_spec):
    path = write_spec("model m\ninput t: int32[b, s]\noutput o = token_embedding(t, 10, 8)\n")
    assert count_params(load_model(path).graph) == 80
    path.write_text("model m\ninput t: int32[b, s]\noutput o = token_embedding(t, 10, 9)\n")
    assert count_params(load_model(path).graph) == 90


def test_corrupt_cache_is_ignored(write_spec):
    path = write_spec("model m\ninput t: int32[b, s]\noutput o = token_embedding(t, 3, 4)\n")
    load_model(path)
    for f in cache_files():
        f.write_bytes(b"not a pickle")
    assert count_params(load_model(path).graph) == 12


def test_a_warm_load_does_not_parse(write_spec, monkeypatch):
    """The cache is used: the first load stores the parsed module, the second never calls the parser."""
    import ttspec.frontend.syntax as syntax

    path = write_spec("model m\ninput t: int32[b, s]\noutput o = token_embedding(t, 7, 5)\n")
    before = set(cache_files())
    assert count_params(load_model(path).graph) == 35
    assert len(set(cache_files()) - before) == 1  # this spec's module, pickled by content

    def no_parsing(*args, **kwargs):
        raise AssertionError("parsed again although the cache holds this spec")

    monkeypatch.setattr(syntax, "parse_full", no_parsing)
    assert count_params(load_model(path).graph) == 35
