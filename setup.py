"""The build hook that ships grammar/arch.lark inside the package, as ttspec/grammar/arch.lark.

grammar/ stays at the repository's top (the source of truth: make_tables.py compiles it into
ttspec/frontend/arch_tables.json); a wheel or a non-editable install carries a copy, which
ttspec/frontend/source.py finds when the repository's grammar/ is not beside the package.
Everything else is declared in pyproject.toml."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

GRAMMAR = Path(__file__).resolve().parent / "grammar"


class BuildPy(build_py):
    def run(self):
        super().run()
        if self.editable_mode:  # an editable install reads the repository's grammar/ directly
            return
        target = Path(self.build_lib) / "ttspec" / "grammar"
        self.mkpath(str(target))
        for path in sorted(GRAMMAR.glob("*.lark")):
            self.copy_file(str(path), str(target / path.name))

    def get_outputs(self, include_bytecode=True):
        names = [] if self.editable_mode else sorted(p.name for p in GRAMMAR.glob("*.lark"))
        return [*super().get_outputs(include_bytecode), *(str(Path(self.build_lib) / "ttspec" / "grammar" / n)
                                                          for n in names)]


setup(cmdclass={"build_py": BuildPy})
