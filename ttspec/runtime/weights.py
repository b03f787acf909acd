"""Weights for runs: seeded random ones, and files, in ttspec's names or a family's HF names."""

from __future__ import annotations

from ..errors import ArchError
from ..ir.graph import Model, iter_params


def stored_shapes(model: Model) -> dict[str, tuple[int, ...]]:
    """Every stored parameter's ttspec name and shape (tied parameters are their source's)."""
    return {name: tuple(p.shape) for name, p in iter_params(model.graph) if not p.tied_to}


def random_state_dict(model: Model, seed: int = 0) -> dict:
    """Seeded random weights under ttspec's names (norm weights near 1, biases near 0)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    ours = {}
    for name, shape in stored_shapes(model).items():
        noise = torch.randn(shape, generator=gen)
        if len(shape) == 1:
            ours[name] = (1.0 + 0.1 * noise) if name.endswith("weight") else 0.1 * noise
        else:
            ours[name] = 0.05 * noise
    return ours


def random_hf_state_dict(model: Model, seed: int = 0) -> dict:
    """The same seeded random weights under HF names (the spec needs a `family`)."""
    from ..checkpoints import to_hf_state_dict

    return to_hf_state_dict(model, random_state_dict(model, seed))


TTSPEC_NAMES, HF_NAMES = "ttspec", "hf"


def weights_naming(model: Model, tensors: dict, source: str = "the weights") -> str:
    """Whether `tensors` are named as ttspec names them (any spec) or, for a spec with a family,
    as HF transformers names them; one clear error, with a few missing names, for neither."""
    ours = stored_shapes(model)
    candidates = [(TTSPEC_NAMES, ours)]
    if model.family is not None:
        import torch

        from ..checkpoints import to_hf_state_dict

        meta = to_hf_state_dict(model, {n: torch.empty(shape, device="meta") for n, shape in ours.items()})
        candidates.append((HF_NAMES, {n: tuple(t.shape) for n, t in meta.items()}))
    # the naming with the most names present decides; ttspec's own names win a tie
    naming, expected = max(candidates, key=lambda c: sum(n in tensors for n in c[1]))
    missing = [n for n in expected if n not in tensors]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        hf = f", or HF transformers names for `family {model.family}`" if model.family else \
            " (the spec has no `family`, so HF names cannot be mapped)"
        raise ArchError(f"{source} lacks {len(missing)} tensor(s) the spec needs: {', '.join(missing[:3])}{more}",
                        hint="a weights file holds ttspec's names, as `ttspec params --json` lists them" + hf)
    for name, shape in expected.items():
        if tuple(tensors[name].shape) != shape:
            raise ArchError(f"{source}: {name} has shape {list(tensors[name].shape)}, the spec needs {list(shape)}",
                            hint="was this checkpoint made for another spec?")
    return naming


def as_ttspec_names(model: Model, tensors: dict) -> dict:
    """The stored parameters under ttspec's names, whichever naming `tensors` use."""
    if weights_naming(model, tensors) == HF_NAMES:
        from ..checkpoints import from_hf_state_dict

        return from_hf_state_dict(model, tensors)
    return {name: tensors[name] for name in stored_shapes(model)}


def load_weights_file(model: Model, path: str) -> dict:
    """A safetensors file in ttspec names or, for a spec with a family, HF names; checked name by
    name and shape by shape against the spec."""
    try:
        from safetensors.torch import load_file

        tensors = load_file(path)
    except FileNotFoundError:
        raise ArchError(f"no such weights file: {path}") from None
    except Exception as e:  # safetensors raises its own error types for bad headers
        raise ArchError(f"cannot read {path} as safetensors: {e}",
                        hint="save with safetensors.torch.save_file(state_dict, path), or with "
                             "`ttspec run --save-weights`") from None
    weights_naming(model, tensors, path)
    return tensors


def save_weights_file(tensors: dict, path: str) -> None:
    """A safetensors file written like every ttspec output (ttspec/output.py): atomically, to a
    regular file only, keeping the mode of a file it replaces."""
    from safetensors.torch import save

    from ..output import write_output_bytes

    write_output_bytes(save({k: v.contiguous() for k, v in tensors.items()}), path)
