"""The `ttspec` command line: main.py (the entry point), options.py (every option declared once and
parsed into typed values), shared.py, and one module per command in commands/."""


def __getattr__(name: str):
    """`ttspec.cli.main` the function, for console scripts installed before the entry point moved to
    `ttspec.cli.main:main` (imported on use, so `python -m ttspec.cli.main` finds it unimported)."""
    if name == "main":
        from .main import main

        return main
    raise AttributeError(name)
