"""The pipeline front half: file -> AST -> graph IR, verified. No torch, no ttnn."""

from __future__ import annotations

from pathlib import Path

from .elaborate import elaborate
from .ir import Model
from .parser import parse_source, read_source
from .passes import verify


def load_model(path: str | Path) -> Model:
    path = Path(path)
    text = read_source(path)
    module = parse_source(text, str(path))
    model = elaborate(module, path.resolve().parent)
    verify(model)
    return model
