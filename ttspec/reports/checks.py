"""Design-level checks for a target: errors for what its backend cannot do, warnings for a
spec that is valid but will not fit where it is headed.

Inference uses the one memory model (analysis/memory.py, through driver.prepare), so `check
--target` warns exactly when `compile` would refuse; training memory only when asked."""

from __future__ import annotations

from ..analysis.interpreters import count_params
from ..driver import not_fitting, prepare, resolve_options
from ..errors import ArchError, Diagnostic, UsageError
from ..ir.graph import Model
from ..targets import Target
from ..weight_formats import BF16, WeightFormats

# Training with AdamW in mixed precision: bf16 weights and gradients, fp32 moments and master
# weights = 2 + 2 + 4 + 4 + 4 = 16 bytes per parameter, before activations.
TRAIN_BYTES_PER_PARAM = 16


def target_warnings(model: Model, chosen: Target, weights_dtype: WeightFormats = BF16, training: bool = False
                    ) -> list[Diagnostic]:
    loc = model.target[1] if model.target else model.loc
    target = chosen.name
    options = resolve_options(chosen, weights_dtype)
    warnings = []
    try:
        build = prepare(model, options)
    except UsageError:  # an option that cannot apply (--weights-dtype naming a kind without matrices): exit 2
        raise
    except ArchError as e:  # the backend cannot do it, or the mesh cannot split it: an error, as in compile
        d = e.diagnostic
        warnings.append(Diagnostic("error", f"cannot be compiled for {target}: {d.message}", d.loc or loc,
                                   hint=d.hint, notes=d.notes))
        build = None
    if build is not None and not build.fits:
        d = not_fitting(build).diagnostic
        warnings.append(Diagnostic("warning", d.message, loc, hint=d.hint))
    if training:
        warning = training_warning(model, options.target, loc)
        if warning is not None:
            warnings.append(warning)
    return warnings


def training_warning(model: Model, target: Target, loc) -> Diagnostic | None:
    """A warning when training the model cannot fit `target` even at batch 1 over the spec's whole context:
    16 bytes per parameter for weights, gradients and AdamW's moments, and the activations
    (backends/torch/training_memory.py; `check --training --batch B --seq S` states the estimate itself)."""
    from ..backends.torch.training_memory import seq_bound, training_memory

    total = count_params(model.graph)
    dram = target.dram_per_chip * target.chips
    state = total * TRAIN_BYTES_PER_PARAM
    seq = seq_bound(model)
    peak = training_memory(model, 1, seq).peak if seq else state
    if max(state, peak) <= dram:
        return None
    at = f", about {peak / 1e9:.0f} GB at its peak with batch 1 x seq {seq}" if seq else ""
    return Diagnostic(
        "warning", f"{total:,} parameters: training needs about {state / 1e9:.0f} GB "
        f"({TRAIN_BYTES_PER_PARAM} bytes/parameter for weights, gradients and AdamW state){at}, but "
        f"{target.name} has {dram / 1e9:.1f} GB", loc,
        hint="start small (10-20M parameters) and scale up; the lesson's nano-trickster has ~5M")
