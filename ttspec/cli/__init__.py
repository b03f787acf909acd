"""The `ttspec` command line: main.py (the entry point, `ttspec.cli.main:main`), options.py (every
option declared once and parsed into typed values), shared.py, and one module per command in
commands/. `python -m ttspec.cli` runs it too (__main__.py)."""
