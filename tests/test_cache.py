"""The AST cache is an accelerator only: same answers warm or cold, and never stale."""

import os
from pathlib import Path

from ttspec.analysis.interpreters import count_params
from ttspec.driver import load_model


def cache_files():
    return sorted(Path(os.environ["TTSPEC_CACHE_DIR"], "ast").glob("*.json"))


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
        f.write_bytes(b"not json")
    assert count_params(load_model(path).graph) == 12


def test_cache_cannot_run_code(write_spec, tmp_path):
    """The cache is JSON read back only into the AST's own classes: a planted pickle, or JSON
    naming another class, is ignored (issue 9, class 8)."""
    import pickle

    marker = tmp_path / "pwned"
    path = write_spec("model m\ninput t: int32[b, s]\noutput o = token_embedding(t, 3, 5)\n")
    load_model(path)
    files = cache_files()
    assert any(f.read_text().startswith("[") for f in files)

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    for f in files:
        f.write_bytes(pickle.dumps(Evil()))
        f.with_suffix(".pickle").write_bytes(pickle.dumps(Evil()))
    assert count_params(load_model(path).graph) == 15
    for f in cache_files():
        f.write_text('["Popen", "touch ' + str(marker) + '"]')
    assert count_params(load_model(path).graph) == 15
    assert not marker.exists()


def test_a_warm_load_does_not_parse(write_spec, monkeypatch):
    """The cache is used: the first load stores the parsed module, the second never calls the parser."""
    import ttspec.frontend.syntax as syntax

    path = write_spec("model m\ninput t: int32[b, s]\noutput o = token_embedding(t, 7, 5)\n")
    before = set(cache_files())
    assert count_params(load_model(path).graph) == 35
    assert len(set(cache_files()) - before) == 1  # this spec's module, stored by content

    def no_parsing(*args, **kwargs):
        raise AssertionError("parsed again although the cache holds this spec")

    monkeypatch.setattr(syntax, "parse_full", no_parsing)
    assert count_params(load_model(path).graph) == 35
