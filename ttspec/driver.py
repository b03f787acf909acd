"""The one driver: spec file -> verified IR (load_model) -> lowered, sharded, sized program (compile_source).

Every command and the tests go through here. No torch, no ttnn."""

from __future__ import annotations

from pathlib import Path

from .analysis.interpreters import verify
from .errors import ArchError
from .frontend.parser import parse_source, read_source
from .ir.elaborate import elaborate
from .ir.graph import Model


def load_model(path: str | Path) -> Model:
    path = Path(path)
    text = read_source(path)
    module = parse_source(text, str(path))
    model = elaborate(module, path.resolve().parent)
    verify(model)
    return model


def compile_source(model, spec: str, target: str, weights_dtype: str, mesh: str | None = None,
                   dp: bool = False) -> str:
    if target == "torch":
        from .codegen.torch_backend import compile_torch

        return compile_torch(model, spec)
    from .codegen.ttnn_backend import compile_ttnn
    from .targets import get_target, parse_mesh

    chosen = get_target(target)
    shape = parse_mesh(mesh) if mesh else None
    if shape and shape[0] * shape[1] > chosen.chips:
        raise ArchError(f"--mesh {mesh} needs {shape[0] * shape[1]} chips; {target} has {chosen.chips}")
    return compile_ttnn(model, spec, chosen, weights_dtype, mesh=shape, dp=dp)
