"""AST -> graph IR. Evaluates parameters, instantiates components, infers shapes as it goes.

Blocks are instantiated with their tensor signatures unified against the arguments, which
binds dim names (`x: [b, s, hidden]` binds `hidden`). A `repeat(N) block(x)` elaborates
the block once into a body graph and keeps N beside it. When its other arguments depend on
`layer` (the 0-based layer index, bound only there), they are evaluated for every layer, and
each distinct set of values (a variant) is elaborated once: the repeat node keeps the variants'
bodies and which variant each layer uses (see ir.graph.layer_variants).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ArchError, Diagnostic, Loc, Note
from ..frontend import ast
from ..ir.graph import Graph, Model
from .blocks import BlocksMixin
from .calls import CallsMixin
from .diagnostics import dead_assignments
from .expressions import ExpressionsMixin
from .repeats import RepeatsMixin
from .statements import StatementsMixin
from .values import BlockEntry, Scope, is_stdlib


@dataclass
class Elaborator(StatementsMixin, ExpressionsMixin, CallsMixin, BlocksMixin, RepeatsMixin):
    root_dir: Path
    # the checkpoint families a spec may name (`family llama`): ttspec.families' registry, passed in by the
    # caller because the IR layer sits below the families and must not import them
    families: Sequence[str] = ()
    blocks: dict[str, BlockEntry] = field(default_factory=dict)
    warnings: list[Diagnostic] = field(default_factory=list)
    bounds: dict[str, int] = field(default_factory=dict)
    symbols: list[str] = field(default_factory=list)
    loaded: dict[str, Scope] = field(default_factory=dict)
    loading: list[str] = field(default_factory=list)
    assignments: list[tuple[Graph, str, str, Loc]] = field(default_factory=list)
    target: tuple[str, Loc] | None = None
    family: str | None = None
    family_loc: Loc | None = None
    active: list[tuple[str, Loc]] = field(default_factory=list)  # blocks being instantiated, outermost first
    instances: int = 0
    nodes: int = 0
    steps: int = 0
    layer_steps: int = 0
    shard_overrides: list = field(default_factory=list)


def elaborate(module: ast.Module, root_dir: Path, families: Sequence[str]) -> Model:
    """The spec's graph IR. `families`: the names `family NAME` may take (ttspec.families.FAMILIES)."""
    if module.name is None:
        raise ArchError("a spec starts with `model NAME`", Loc(module.file, 1, 1),
                        hint="add e.g. `model nano_trickster` as the first line")
    graph = Graph()
    el = Elaborator(root_dir, tuple(families))
    el.load_stdlib(graph)
    el.loading.append(str(Path(module.file).resolve()))
    scope = Scope(None, "", graph, module.file)
    try:
        el.run_file(module, scope, top=True)
    except ArchError as e:
        d = e.diagnostic
        if d.loc is not None and is_stdlib(d.loc.file) and module.name_loc is not None:
            # A family template expanded from the short form: point at the user's value that
            # caused it when it is known, else at the user's model.
            origin = getattr(e, "origin", None)
            d.notes.insert(0, Note("inside the family template", d.loc))
            d.loc = origin if origin is not None and not is_stdlib(origin.file) else module.name_loc
        raise
    if not graph.outputs:
        raise ArchError("the spec declares no output", module.name_loc,
                        hint="declare one, e.g. `output logits = lm_head(h, vocab)`")
    model = Model(module.name, graph, dict(el.bounds), list(el.symbols), module.file,
                  el.warnings + dead_assignments(el.assignments), module.name_loc, el.target, el.family,
                  el.shard_overrides)
    return model
