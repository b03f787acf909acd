"""Spec.torch_module: the generated PyTorch reference (`ttspec compile --target torch`), imported and instantiated
by the code `ttspec run --mode torch` uses (runtime/runner.py). torch is imported here only, on first use."""

from __future__ import annotations

import importlib.util

from ..errors import ArchError
from ..weight_formats import BF16, WeightFormats

INSTALL_HINT = "pip install 'ttspec[torch]'"


def require_torch() -> None:
    for module in ("torch", "numpy"):
        if importlib.util.find_spec(module) is None:
            raise ArchError(f"Spec.torch_module() needs {module}, and it is not installed", hint=INSTALL_HINT)


def build(model, spec_path: str, weights: str | None, seed: int | None, weights_dtype: WeightFormats | None):
    """The generated model's root nn.Module: torch's initialisation, or seeded random weights (as `ttspec run
    --seed`), or a checkpoint's (as `--weights`); loaded weights leave it in eval mode, as run_torch uses it."""
    require_torch()
    from ..backends.torch.backend import compile_torch
    from ..runtime.runner import build_torch, load_program, root_class

    formats = weights_dtype or BF16
    if weights is not None and seed is not None:
        raise ArchError("torch_module: give weights or seed, not both",
                        hint="weights=PATH loads a checkpoint; seed=N draws the random weights `ttspec run` draws")
    source = compile_torch(model, spec_path, formats)
    if weights is None and seed is None:
        module = load_program(source, f"{model.name}_torch")
        return root_class(module, model)()
    if seed is not None:
        from ..runtime.weights import random_state_dict

        state = random_state_dict(model, seed)
    else:
        if importlib.util.find_spec("safetensors") is None:
            raise ArchError("Spec.torch_module(weights=...) needs safetensors, and it is not installed",
                            hint=INSTALL_HINT)
        from ..runtime.weights import load_weights_file

        state = load_weights_file(model, weights)
    _, net = build_torch(model, spec_path, state, source=source, weights_dtype=formats)
    return net
