"""The pass pipeline: the one place that knows which passes turn a verified model into the IR a TT-NN
program is generated from, and in which order. The driver (ttspec/driver.py), `plan --search`
(ttspec/reports/plan_search.py) and the tests all run PIPELINE.

A pass is a named function from IR to IR (`Lowered`: the graph and, once sharded, its ShardPlan).
The passes that do not depend on the mesh come first (`shared`): the driver weighing two strategies
and the plan search trying many meshes run them once per model and the rest (`finish`) per mesh.

Between passes the IR verifier (passes/verify.py) checks the invariants every pass must keep, when
TTSPEC_VERIFY_PASSES=1 (set by the tests) or `verify=True`; off by default: compiles do not pay for it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from ..ir.graph import Model
from ..ir.sharding import ShardPlan
from .fuse import fuse_activations, fuse_qkv

VERIFY_ENV = "TTSPEC_VERIFY_PASSES"


@dataclass(frozen=True)
class Sharding:
    """How the program is split over the mesh: tensor parallelism `strategy` ("1d" or "2d") over
    `mesh`, `dp` splitting the batch over the axis 1-D leaves out."""

    mesh: tuple[int, int]
    strategy: str = "1d"
    dp: bool = False


@dataclass(frozen=True)
class Lowered:
    """The IR between passes: the model's graph as the passes so far left it, and the sharding plan
    once the sharding pass has run (None before it; one chip's plan is a 1x1 mesh with no axes)."""

    model: Model
    plan: ShardPlan | None = None


@dataclass(frozen=True)
class PassContext:
    """What a pass may consult besides the IR: the sharding asked for (None: one chip) and what the
    target backend can fuse (op -> the activation its linear applies, from the backend's lowering
    table: passes sit below backends, so the driver hands it in)."""

    sharding: Sharding | None = None
    fused_activations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Pass:
    """One pass: `run(ir, context)` returns the new IR. `per_mesh`: its result depends on the mesh,
    so it and every pass after it run once per mesh."""

    name: str
    run: Callable[[Lowered, PassContext], Lowered]
    per_mesh: bool = False


def _fuse_qkv(ir: Lowered, context: PassContext) -> Lowered:
    return replace(ir, model=fuse_qkv(ir.model))


def _shard(ir: Lowered, context: PassContext) -> Lowered:
    sharding = context.sharding or Sharding((1, 1))  # one chip: a 1x1 mesh, planned like any other
    from . import shard  # looked up when run: the tests count the plans a search makes

    model, plan = shard.plan_sharding(ir.model, sharding.mesh, dp=sharding.dp, strategy=sharding.strategy)
    return Lowered(model, plan)


def _fuse_activations(ir: Lowered, context: PassContext) -> Lowered:
    return replace(ir, model=fuse_activations(ir.model, dict(context.fused_activations)))


@dataclass(frozen=True)
class Pipeline:
    passes: tuple[Pass, ...]
    # (op, activation): what the target's linear computes inside the matmul (for_target sets it)
    fused_activations: tuple[tuple[str, str], ...] = ()

    def for_target(self, fused_activations: Mapping[str, str]) -> Pipeline:
        """This pipeline for a backend whose linears apply `fused_activations` themselves."""
        return replace(self, fused_activations=tuple(sorted(fused_activations.items())))

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.passes]

    @property
    def _split(self) -> int:
        return next((i for i, p in enumerate(self.passes) if p.per_mesh), len(self.passes))

    def run(self, model: Model, sharding: Sharding | None = None, verify: bool | None = None) -> Lowered:
        """Every pass, in order, on a verified model."""
        return self.finish(self.shared(model, verify), sharding, verify)

    def shared(self, model: Model, verify: bool | None = None) -> Lowered:
        """The passes before the first that depends on the mesh: their result serves every mesh."""
        return _run(self.passes[:self._split], Lowered(model), self._context(None), verify)

    def finish(self, ir: Lowered, sharding: Sharding | None, verify: bool | None = None) -> Lowered:
        """The passes from the first that depends on the mesh on, from `shared`'s result."""
        return _run(self.passes[self._split:], ir, self._context(sharding), verify)

    def _context(self, sharding: Sharding | None) -> PassContext:
        return PassContext(sharding, dict(self.fused_activations))


def verifying() -> bool:
    return os.environ.get(VERIFY_ENV) == "1"


def _run(passes: tuple[Pass, ...], ir: Lowered, context: PassContext, verify: bool | None) -> Lowered:
    check = verifying() if verify is None else verify
    for p in passes:
        ir = p.run(ir, context)
        if check:
            from .verify import verify_ir  # imported only when asked for: the core commands start fast

            verify_ir(ir.model, ir.plan, after=p.name)
    return ir


# QKV fusion first: the planner shards the fused projection as one column-parallel linear. Activations fuse
# into linears after sharding: only a linear whose output is complete can apply one.
PIPELINE = Pipeline((
    Pass("fuse_qkv", _fuse_qkv),
    Pass("shard", _shard, per_mesh=True),
    Pass("fuse_activations", _fuse_activations, per_mesh=True),
))
