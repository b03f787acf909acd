"""Design-level warnings: a spec that is valid but will not fit where it is headed."""

from __future__ import annotations

from ..errors import Diagnostic
from ..ir.graph import Model
from ..targets import Target
from .interpreters import count_params
from .params_report import weight_bytes

# Training with AdamW in mixed precision: bf16 weights and gradients, fp32 moments and master
# weights = 2 + 2 + 4 + 4 + 4 = 16 bytes per parameter, before activations.
TRAIN_BYTES_PER_PARAM = 16


def target_warnings(model: Model, target: Target) -> list[Diagnostic]:
    total = count_params(model.graph)
    dram = target.dram_per_chip * target.chips
    bf16 = weight_bytes(model.graph)["bf16"]
    loc = model.target[1] if model.target else model.loc
    warnings = []
    if bf16 > dram:
        warnings.append(Diagnostic(
            "warning", f"{total:,} parameters need {bf16 / 1e9:.1f} GB in bf16; {target.name} has "
            f"{dram / 1e9:.1f} GB of DRAM", loc,
            hint="use bfloat8_b weights, a bigger target, or a smaller model"))
    train = total * TRAIN_BYTES_PER_PARAM
    if train > dram:
        warnings.append(Diagnostic(
            "warning", f"{total:,} parameters: training needs about {train / 1e9:.0f} GB "
            f"({TRAIN_BYTES_PER_PARAM} bytes/parameter for weights, gradients and AdamW state) but "
            f"{target.name} has {dram / 1e9:.1f} GB", loc,
            hint="start small (10-20M parameters) and scale up; the lesson's nano-trickster has ~5M"))
    return warnings
