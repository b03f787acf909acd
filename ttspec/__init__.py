"""ttspec: a declarative compiler from .arch specs to TT-NN programs.

The Python API (ttspec/api/; docs/python-api.md): `ttspec.load(path_or_text)` -> Spec with `.params` (total,
active, by_kind), `.check()`, `.plan(target)`, `.search(target)`, `.report(targets)`, `.compile(target)`,
`.graph()` and `.torch_module()`; `ttspec.check(path_or_text)` -> every diagnostic; errors raise `ttspec.ArchError`
(`ttspec.UsageError` for bad arguments). `import ttspec` itself loads nothing else: the names
resolve on first use, so the command line's start-up is unchanged. No torch, no ttnn."""

__version__ = "0.1.0"

__all__ = ["ArchError", "Diagnostic", "Diagnostics", "Params", "Plan", "Report", "Reports", "Search", "Spec",
           "UsageError", "check", "load"]
_API = ("Diagnostics", "Params", "Plan", "Report", "Reports", "Search", "Spec", "check", "load")
_ERRORS = ("ArchError", "Diagnostic", "UsageError")


def __getattr__(name: str):
    # ttspec.api sits on the top floor (it drives the compiler), this package module on the bottom one that
    # every module may import; so the facade reaches it by name at run time, not through an import statement
    if name in _API:
        import importlib

        return getattr(importlib.import_module("ttspec.api"), name)
    if name in _ERRORS:
        from . import errors

        return getattr(errors, name)
    raise AttributeError(f"module 'ttspec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
