"""bench/mutants.py stays runnable: each mutant's text is in the current code exactly once (a
refactor that moves it must re-create the mutant), and each names tests that exist."""

import importlib.util
import sys

from .conftest import ROOT


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_mutants", ROOT / "bench" / "mutants.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def test_every_mutant_applies_to_the_current_code():
    bench = load_bench()
    assert len(bench.MUTANTS) >= 7
    for mutant in bench.MUTANTS:
        text = (ROOT / mutant.path).read_text(encoding="utf-8")
        assert text.count(mutant.old) == 1, mutant.name
        assert mutant.old != mutant.new
        for test in mutant.tests:
            path, _, name = test.partition("::")
            assert "test_generated" not in path
            source = (ROOT / path).read_text(encoding="utf-8")
            assert not name or f"def {name.split('[')[0]}(" in source, (mutant.name, test)


def test_every_audited_survivor_is_carried():
    bench = load_bench()
    names = {m.name for m in bench.MUTANTS}
    for issue, survivors in bench.BY_ISSUE.items():
        assert len(set(survivors)) == len(survivors), issue
        assert set(survivors) <= names, (issue, sorted(set(survivors) - names))
    assert len(bench.BY_ISSUE[18]) == 19  # the issue's count of survivors
