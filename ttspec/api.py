"""The Python API (`import ttspec`): a thin layer over the driver for notebooks and scripts.

    >>> import ttspec
    >>> spec = ttspec.load("specs/nano-trickster.arch")   # a path, or the text of a spec
    >>> spec.params.total
    5180672
    >>> program = spec.compile(target="n150")              # the generated TT-NN program's source
    >>> spec.compile(target="torch", output="nano.py")      # or written to a file, as `ttspec compile -o`

Errors are ttspec's own: `ttspec.ArchError` for a problem in the spec (`UsageError`, a subclass, for a bad
argument such as an unknown target), with the message the command line prints; `err.render()` gives the
whole diagnostic (place, excerpt, notes, hint) exactly as `ttspec check` writes it. No torch, no ttnn."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from .errors import ArchError, Diagnostic

STRING_NAME = "<string>"  # the file name of a spec given as text, in diagnostics


class Params(NamedTuple):
    """Exact parameter counts: `total`, `active` per token (differs from total for mixture-of-experts
    models), and `by_kind` (attention, mlp, norm, embedding, ... as `ttspec params` groups them)."""

    total: int
    active: int
    by_kind: dict[str, int]


def _is_text(source: str | Path) -> bool:
    """A str holding a newline or a brace is a spec's text; anything else names a file."""
    return isinstance(source, str) and ("\n" in source or "{" in source)


def _load_model(source: str | Path):
    from .driver import load_model

    if not _is_text(source):
        return load_model(source)
    from .analysis.interpreters import verify
    from .elaborate import elaborate
    from .families import FAMILIES, SHORT_FORMS
    from .frontend.parser import parse_source
    from .frontend.source import MAX_SOURCE_BYTES, decode_source

    data = str(source).encode("utf-8", "surrogatepass")
    if len(data) > MAX_SOURCE_BYTES:
        raise ArchError(f"spec text too large: {len(data):,} bytes (the limit is {MAX_SOURCE_BYTES:,})",
                        hint="a spec this long is not a transformer description; is this the right text?")
    text = decode_source(data, STRING_NAME)
    model = elaborate(parse_source(text, STRING_NAME, short_forms=SHORT_FORMS), Path.cwd(), FAMILIES)
    verify(model)
    return model


def load(source: str | Path) -> Spec:
    """Parse, elaborate and check a spec: `source` is a path (str or Path) or the spec's text (a str with a
    newline or a `{`; its imports resolve from the current directory). Raises ArchError with the message
    `ttspec check` prints when the spec is wrong."""
    return Spec(_load_model(source))


def check(source: str | Path) -> list[Diagnostic]:
    """The spec's diagnostics: [] when it is well-formed, else the error `ttspec check` reports (a
    Diagnostic: severity, message, loc, hint, notes; `.render()` gives the CLI's text). Never raises for
    a problem in the spec."""
    try:
        _load_model(source)
    except ArchError as e:
        return [e.diagnostic]
    return []


class Spec:
    """A checked spec (load() raised for any error; ttspec.check() reports instead): `.name`, `.file`, `.params`,
    `.compile(...)`; `.model` is the verified graph IR."""

    def __init__(self, model) -> None:
        self.model = model
        self._params: Params | None = None

    def __repr__(self) -> str:
        return f"<ttspec.Spec {self.name} ({self.params.total:,} parameters)>"

    @property
    def name(self) -> str:
        """The spec's `model NAME`."""
        return self.model.name

    @property
    def file(self) -> str:
        """The file it was read from (`<string>` for text)."""
        return self.model.file

    @property
    def params(self) -> Params:
        """Exact parameter counts (the numbers of `ttspec params`)."""
        if self._params is None:
            from .analysis.interpreters import count_active, count_params
            from .analysis.params_report import params_by_kind

            g = self.model.graph
            self._params = Params(count_params(g), count_active(g), params_by_kind(g))
        return self._params

    def compile(self, target: str | None = None, *, weights_dtype: str | None = None,
                mesh: tuple[int, int] | str | None = None, dp: bool = False, batch: int = 1,
                output: str | Path | None = None) -> str:
        """The generated program's source for `target` ("torch" for the PyTorch reference, or a Tenstorrent
        target such as "n150", "n300", "t3k"; default: the spec's `target` statement, else n150), as
        `ttspec compile` writes it. `weights_dtype` takes what --weights-dtype takes ("bf16", "bfloat8_b",
        "performance", "attention=bfloat8_b,mlp=bfloat4_b"); `mesh` a (rows, cols) tuple or "1x4".
        With `output`, the program is also written there (atomically); the text is returned either way."""
        from .driver import compile_source
        from .output import write_output
        from .targets import DEFAULT_TARGET, TORCH, get_target
        from .weight_formats import BF16, parse

        name = target or (self.model.target[0] if self.model.target else DEFAULT_TARGET)
        chosen = TORCH if name == TORCH.name else get_target(name)
        formats = BF16 if weights_dtype is None else parse(weights_dtype)
        text = compile_source(self.model, self.file, chosen, formats, _mesh(mesh), dp, batch)
        if output is not None:
            write_output(text, str(output))
        return text


def _mesh(mesh: tuple[int, int] | str | None) -> tuple[int, int] | None:
    if mesh is None or isinstance(mesh, tuple):
        return mesh
    from .errors import UsageError

    rows, _, cols = str(mesh).partition("x")
    if not (rows.isdigit() and cols.isdigit()):
        raise UsageError(f"mesh `{mesh}`: expected ROWSxCOLS, e.g. 1x4")
    return int(rows), int(cols)
