"""What a run writes to --out and --resume reads back. `model.safetensors`: the weights under ttspec's names (the
stored parameters of `ttspec params --json`, a tied one once), what `ttspec generate --weights` and `ttspec run
--weights` read; `train_state.pt`: everything a resumed run needs to continue bit-for-bit (the weights again, the
optimizer's and scheduler's state, the RNG states, the step, the hyper-parameters and a digest of the data).
Each file is written whole to a temporary file and renamed over the old one (ttspec/output.py), so a run killed at
any moment leaves the last complete checkpoint readable; the weights are written after the state, and a resume
reads only the state."""

from __future__ import annotations

import io
from pathlib import Path

from ..errors import ArchError, UsageError
from ..inputs import quote, regular_file
from ..output import write_output_bytes

WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "train_state.pt"
FORMAT = 1
MAX_STATE_BYTES = 1 << 40


def ttspec_state(net, module, stored: dict) -> dict:
    """The model's stored parameters under ttspec's names (detached, on the host, fp32 as trained)."""
    rename = getattr(module, "ttspec_name", None)
    ours = {}
    for key, tensor in net.state_dict().items():
        name = rename(net, key) if rename else key
        if name in stored:
            ours[name] = tensor.detach().to("cpu").contiguous()
    return ours


def save(out: Path, state: dict, weights: dict, step: int) -> None:
    """Write the resume state, then the weights, each atomically."""
    import torch
    from safetensors.torch import save as save_safetensors

    buffer = io.BytesIO()
    torch.save(dict(state, format=FORMAT, step=step, model=weights), buffer)
    write_output_bytes(buffer.getvalue(), str(out / STATE_FILE))
    write_output_bytes(save_safetensors(weights, metadata={"ttspec_train_step": str(step)}),
                       str(out / WEIGHTS_FILE))


def load(folder: str) -> dict:
    """The state a run left in `folder` (--resume), checked for its format."""
    import torch

    path = Path(folder)
    if not path.exists():
        raise UsageError(f"--resume {quote(folder)}: no such directory",
                         hint="give the --out directory of an earlier `ttspec train`")
    if not path.is_dir():
        raise UsageError(f"--resume {quote(folder)} is not a directory",
                         hint="give the --out directory of an earlier `ttspec train`")
    file = path / STATE_FILE
    if not file.exists():
        raise UsageError(f"--resume {quote(folder)} holds no {STATE_FILE}",
                         hint="give the --out directory of an earlier `ttspec train` (it writes a checkpoint every "
                              "--save-every steps)")
    regular_file(file, "training state", MAX_STATE_BYTES)
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # torch's unpickler raises many kinds
        raise ArchError(f"cannot read {quote(file)}: {quote(e, 300)}",
                        hint="the file is damaged; an earlier checkpoint is not kept") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ArchError(f"{quote(file)} is not a ttspec training state of format {FORMAT}")
    return state
