"""What ttnn 0.81.1 can run, checked before anything is generated; apart from backend.py so that
`plan` and `check --target` need only the lowering table (lower.py), not the emitter (start-up)."""

from __future__ import annotations

from ...errors import ArchError
from ...ir.graph import Model, point_at_spec
from ..common.support import check_lowerable
from .lower import LOWERINGS


def check_supported(model: Model) -> None:
    """Refuse what ttnn 0.81.1 cannot run, with the reason, before generating anything."""
    outputs = list(model.graph.outputs)
    if len(outputs) > 1:
        node = model.graph.node(model.graph.outputs[outputs[1]])
        raise point_at_spec(ArchError(
            f"TT-NN programs return one output (the logits); this spec declares {len(outputs)}: "
            f"{', '.join(f'`{o}`' for o in outputs)}", node.loc,
            hint="keep one `output` for a TT-NN target (`--target torch` returns them all)"),
            [(model.graph, node.module)])
    check_lowerable(model.graph, "TT-NN", lambda opdef: LOWERINGS.get(opdef.name))
