"""What every backend shares: op lookup, the emission context handed to op lowerings, rotary
helpers, and the order of a class's __init__ members.

A backend knows nothing about particular ops: each op's lowering is a row of the backend's
lowering table (ttspec/backends/<backend>/lower.py), and the backend asks it for structured
statements and expressions (pyast.py), which the printer writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...elaborate import show
from ...errors import ArchError
from ...ir.graph import Node, layers_text
from ...ir.sharding import ONE_CHIP, ShardPlan
from ...ops import APPLY_ROPE, REGISTRY, Config, rotary_dims
from ...targets import TILE
from .names import POSITIONS_ARG, class_scope
from .plan import ClassPlan, Leaf, Repeat, class_name
from .pyast import Assign, BinOp, Chain, Comment, Const, Expr, Name, Slice, Stmt, Subscript, Tuple, call, name, size


@dataclass(frozen=True)
class WeightRefs:
    """How generated code refers to one op's weights: `module` is the expression naming, at load
    time, the component that owns them (`prefix + "wq"`, or `prefix[:-1]` for a block's own);
    `members` maps each local parameter name to the attribute holding it (`self.wq`, `self.bias`)."""

    module: Expr
    members: tuple[tuple[str, Expr], ...]

    def __getitem__(self, local: str) -> Expr:
        return dict(self.members)[local]


class EmitContext:
    """What an op's lowering may consult or request while one class is emitted."""

    def __init__(self, backend: Backend, plan: ClassPlan):
        self.backend, self.plan = backend, plan

    @property
    def graph(self):
        return self.plan.graph

    @property
    def mode(self) -> str:
        """The method being emitted: "prefill" (forward) or "decode" (one token per user)."""
        return self.backend.mode

    @property
    def mesh(self):
        return self.backend.mesh

    def weight_dtype(self, module: str) -> str | None:
        """The device dtype of the weight matrix of `module` when `--weights-dtype` gives its kind or
        matrix role a format other than the program's default (WEIGHTS_DTYPE); None otherwise."""
        formats = getattr(self.backend, "weight_formats", None)
        if formats is None or formats.plain:
            return None
        from ...ops.queries import matrix_of

        dtype = formats.dtype(matrix_of(self.graph, module))
        return None if dtype == formats.default else dtype

    def helper(self, helper: str) -> Name:
        """Ask for a module-level helper of the generated program (split_heads, position_ids ...);
        returns its name."""
        self.backend.helpers.add(helper)
        return Name(helper)

    def rotary(self, rope: Config, head_dim: int) -> Expr:
        return name(f"self.{self.backend.rotary_attr(self.plan, rope)}")

    def device(self) -> Expr:
        self.plan.needs_device = True
        return name("self.device")

    def state(self) -> Expr:
        """The program's run state (positions of the rows being computed, prefill or decode step)."""
        self.plan.needs_state = True
        return name("self.state")

    def member(self, node, stem: str, init: Expr) -> Expr:
        """A per-instance attribute this op keeps between calls (an attention's KV cache), made in
        __init__ by `init`; returns the expression naming it. The prefill and decode methods of a
        class share it: a node asking again for the same stem gets the same member."""
        key = (node.id, stem)
        if key not in self.plan.claimed:
            self.plan.claimed[key] = self.plan.members.claim(stem)
            self.plan.state_members.append((node.id, self.plan.claimed[key], init))
        return name(f"self.{self.plan.claimed[key]}")

    def config_member(self, node, stem: str, init: Expr, comment: str) -> Expr:
        """A configuration this class states once in __init__ (`comment` says what it is) and its ops read:
        the same `stem` and `init` give the same member, made where `node` first needs it."""
        key = (stem, init)
        if key not in self.plan.claimed:
            attr = self.plan.claimed[key] = self.plan.members.claim(stem)
            self.plan.state_members.append((node.id, attr, init))
            self.plan.member_comments[attr] = comment
        return name(f"self.{self.plan.claimed[key]}")

    def positions(self) -> Expr:
        """Where this forward pass's tokens sit (`pos`, a Positions helper or None): the forward of
        every class on the op's path takes it (the torch backend marks them before emitting)."""
        assert self.plan.needs_positions, "an op reads positions that its class was not marked for"
        return Name(POSITIONS_ARG)

    def kv_cache(self, node: Node, kv_heads: int, k_dim: int, v_dim: int) -> Expr:
        """The KV cache member of this class for one attention node: [batch, kv_heads, context, head_dim]."""
        dims = [Const(kv_heads), Const(k_dim)] + ([Const(v_dim)] if v_dim != k_dim else [])
        return self.member(node, "cache", self.helper("KVCache")(*dims))


class Backend:
    """Base of the torch and TT-NN backends. Subclasses say how each kind of member is
    constructed (the *_init methods) and which lowering of an OpDef they use."""

    target_name = ""
    rotary_prefix: tuple[Expr, ...] = ()  # leading constructor arguments of the generated Rotary helper
    pad_heads_to_tiles = False
    lowerings: dict = {}  # op name -> the backend's row for it (its lower.py)

    def __init__(self, mesh: ShardPlan = ONE_CHIP):
        self.helpers: set[str] = set()
        self.mode = "prefill"  # which method is being emitted (EmitContext.mode)
        self.mesh = mesh  # the sharding plan (one chip: a 1x1 mesh with no axes)

    def lowering_of(self, opdef):
        return self.lowerings.get(opdef.name)

    def lowering(self, node: Node):
        lowering = self.lowering_of(REGISTRY[node.op])
        if lowering is None:
            raise ArchError(f"`{node.op}` has no {self.target_name} lowering", node.loc)
        return lowering

    def context(self, plan: ClassPlan) -> EmitContext:
        return EmitContext(self, plan)

    def release(self, node: Node, var: Expr, plan: ClassPlan) -> Stmt | None:
        """A statement freeing `var` (holding `node`'s value) after its last use, or None: memory is the runtime's."""
        return None

    def default_name(self, node: Node) -> str:
        return REGISTRY[node.op].var_name(node)

    @staticmethod
    def leaf_refs(leaf: Leaf) -> WeightRefs:
        """A leaf's weights: loaded by its label (parameter names are data), held in its attributes."""
        return WeightRefs(BinOp(Name("prefix"), "+", Const(leaf.label)),
                          (("weight", name(f"self.{leaf.attr}")), ("bias", name(f"self.{leaf.bias_attr}"))))

    @staticmethod
    def own_refs() -> WeightRefs:
        return WeightRefs(Subscript(Name("prefix"), Slice(upper=Const(-1))),
                          (("weight", name("self.weight")), ("bias", name("self.bias"))))

    # ---- rotary embedding helpers, one per distinct config in a class
    def rotary_attr(self, plan: ClassPlan, rope: Config) -> str:
        """The attribute holding the Rotary helper for this config in this class."""
        self.helpers.add("Rotary")
        if rope not in plan.ropes:
            plan.ropes[rope] = plan.members.claim("rotary")
        return plan.ropes[rope]

    def rotary_init(self, attr: str, rope: Config, head_dim: int, style: str | None = None) -> Stmt:
        """The Rotary helper of `rope`; `style`: the pairs it rotates where the program changed the spec's."""
        f = dict(rope.fields)
        if style is not None:
            f["style"] = style
        width = -(-head_dim // TILE) * TILE if self.pad_heads_to_tiles else head_dim
        options: dict[str, Expr] = {"theta": Const(f["theta"])}
        rot = rotary_dims(head_dim, rope)
        if rot != width:
            options["rotary_dims"] = Const(rot)
        if f["style"] != "half":
            options["style"] = Const(f["style"])
        if f["scaling"] != "none":
            options["scaling"] = Const(f["scaling"])
            options.update((k, Const(f[k])) for k in (
                "factor", "low_freq_factor", "high_freq_factor", "original_max_positions"))
        return Assign(name(f"self.{attr}"), call("Rotary", *self.rotary_prefix, Const(width), **options))

    def class_init(self, plan: ClassPlan) -> list[Stmt]:
        """__init__ statements, in the order the forward method first uses each member."""
        order = {n.id: i for i, n in enumerate(plan.ops)}
        members: list[tuple[int, list[Stmt]]] = []
        for child in plan.children:
            if isinstance(child, Repeat):
                members.append((order[child.node.id], self.repeat_init(child)))
            else:
                members.append((order[child.output], [self.child_init(child)]))
        for leaf in plan.leaves:
            members.append((order[leaf.node.id], self.leaf_init(leaf, plan)))
        for node in plan.self_params:
            members.append((order[node.id], self.self_param_init(node, plan)))
        for node_id, attr, init in plan.state_members:
            comment = [Comment(plan.member_comments[attr])] if attr in plan.member_comments else []
            members.append((order[node_id], [*comment, Assign(name(f"self.{attr}"), init)]))
        for rope, attr in plan.ropes.items():
            first = next(n for n in plan.ops if n.op == APPLY_ROPE.name and n.attrs.rope == rope)
            members.append((order[first.id], [self.rotary_init(attr, rope, first.type.shape[-1],
                                                               plan.rope_styles.get(attr))]))
        return [stmt for _, stmts in sorted(members, key=lambda m: m[0]) for stmt in stmts]

    # ---- abstract
    def repeat_init(self, rep: Repeat) -> list[Stmt]:  # pragma: no cover - abstract
        raise NotImplementedError

    def child_init(self, child) -> Stmt:  # pragma: no cover - abstract
        raise NotImplementedError

    def leaf_init(self, leaf: Leaf, plan: ClassPlan) -> list[Stmt]:  # pragma: no cover - abstract
        raise NotImplementedError

    def self_param_init(self, node: Node, plan: ClassPlan) -> list[Stmt]:  # pragma: no cover - abstract
        raise NotImplementedError


def layer_variants_of(rep: Repeat) -> tuple[list[Stmt], Expr] | None:
    """For a repeat whose layers are instances of more than one class: comments saying
    which layers use which class (and the per-layer argument values that make it), and the
    per-layer sequence of classes as a Python expression, e.g. `(Decoder, Decoder_1) * 3`.
    None when every layer has the same class (the program is then exactly as without variants)."""
    names = rep.layer_classes()
    if len(set(names)) < 2:
        return None
    values = rep.node.attrs.variant_args
    by_class: dict[str, list[int]] = {}
    args: dict[str, list[str]] = {}
    for variant, cls in enumerate(rep.classes):
        if variant < len(values):
            text = ", ".join(f"{arg} = {show(v)}" for arg, v in values[variant])
            if text not in args.setdefault(cls.name, []):
                args[cls.name].append(text)
    for i, cls_name in enumerate(names):
        by_class.setdefault(cls_name, []).append(i)
    comment: list[Stmt] = [Comment(f"{len(by_class)} variants of the layer, by its per-layer arguments:")]
    for cls_name, layers in by_class.items():
        line = f"  {cls_name}: {layers_text(layers)}"
        if args.get(cls_name):
            line += f" ({' | '.join(args[cls_name])})"
        comment.append(Comment(line))
    return comment, _sequence(names)


def _sequence(names: list[str]) -> Expr:
    """The smaller (in tree size) of: one period repeated (`(A, B) * 13`, plus a remainder), or
    runs (`(A,) * 28 + (B,) * 8`)."""
    def times(items, k: int) -> Expr:
        tup = Tuple(tuple(Name(n) for n in items))
        return BinOp(tup, "*", Const(k)) if k > 1 else tup

    def total(terms: list[Expr]) -> Expr:
        return terms[0] if len(terms) == 1 else Chain("+", tuple(terms))

    n = len(names)
    period = next(p for p in range(1, n + 1) if all(names[i] == names[i % p] for i in range(n)))
    q, r = divmod(n, period)
    periodic = total([times(names[:period], q)] + ([times(names[:r], 1)] if r else []))
    runs, start = [], 0
    for i in range(1, n + 1):
        if i == n or names[i] != names[start]:
            runs.append(times([names[start]], i - start))
            start = i
    return min(periodic, total(runs), key=size)


class ClassNames:
    """Module-scope names of the generated classes. The model's class is named first (so from
    the model's name alone); a block's class is named when emitted, children before parents, and
    one whose text equals an earlier class of the same block reuses that class."""

    def __init__(self, root: ClassPlan):
        self.scope = class_scope()
        root.name = self.scope.claim_exact(root.name)
        self.root = root
        self.seen: dict[tuple, str] = {}

    def name(self, plan: ClassPlan, text: tuple) -> bool:
        """Name `plan`; False when an identical class already exists (then `plan` shares its name)."""
        if plan is self.root:
            return True
        key = (plan.block, text)
        if key in self.seen:
            plan.name = self.seen[key]
            return False
        plan.name = self.seen[key] = self.scope.claim(class_name(plan.block))
        return True
