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
from pathlib import Path

from ..errors import ArchError, Diagnostic, Loc, Note
from ..frontend import ast
from ..ir.graph import Graph, Model
from .blocks import BlocksMixin
from .calls import CallsMixin
from .diagnostics import dead_assignments
from .expressions import ExpressionsMixin
from .recovery import combined
from .repeats import RepeatsMixin
from .statements import StatementsMixin
from .values import BlockEntry, Scope, is_stdlib


class Elaborator(StatementsMixin, ExpressionsMixin, CallsMixin, BlocksMixin, RepeatsMixin):
    """One spec's elaboration state. A plain class (one per run, never compared): a dataclass would
    compile its methods at every cold start."""

    def __init__(self, root_dir: Path, families: Sequence[str] = ()) -> None:
        self.root_dir = root_dir
        # the checkpoint families a spec may name (`family llama`): ttspec.families' registry, passed in by the
        # caller because the IR layer sits below the families and must not import them
        self.families = families
        self.blocks: dict[str, BlockEntry] = {}
        self.warnings: list[Diagnostic] = []
        self.bounds: dict[str, int] = {}
        self.symbols: list[str] = []
        self.loaded: dict[str, Scope] = {}
        self.loading: list[str] = []
        self.assignments: list[tuple[Graph, str, str, Loc]] = []
        self.target: tuple[str, Loc] | None = None
        self.family: str | None = None
        self.family_loc: Loc | None = None
        self.active: list[tuple[str, Loc]] = []  # blocks being instantiated, outermost first
        self.instances = 0
        self.nodes = 0
        self.steps = 0
        self.layer_steps = 0
        self.shard_overrides: list = []
        self.errors: list[ArchError] = []  # the spec's failed top-level statements (recovery.py)
        self.poisoned: set[str] = set()  # names they would have bound


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
        raise combined([*el.errors, e]) from None
    if el.errors:
        raise combined(el.errors)
    if not graph.outputs:
        raise ArchError("the spec declares no output", module.name_loc,
                        hint="declare one, e.g. `output logits = lm_head(h, vocab)`")
    model = Model(module.name, graph, dict(el.bounds), list(el.symbols), module.file,
                  el.warnings + dead_assignments(el.assignments), module.name_loc, el.target, el.family,
                  el.shard_overrides)
    return model
