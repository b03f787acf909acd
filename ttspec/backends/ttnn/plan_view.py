"""What the layer and head planning (lower_matmul.py, lower_head.py) read of the backend and of an emit context,
for a plan made outside an emit (the memory model's `sharded_matrices` / `head_matrices`) as well as during one."""

from __future__ import annotations

from typing import NamedTuple

from ...ir.graph import Graph
from ...ir.sharding import ShardPlan


class PlanFacts(NamedTuple):
    """What planning reads of the backend: the target and the weights' formats (None: bf16)."""

    target: object
    weight_formats: object


class PlanView(NamedTuple):
    """What planning reads of an emit context, for one layer body (decode_configs' helpers take it as ctx)."""

    backend: PlanFacts
    mesh: ShardPlan
    graph: Graph
