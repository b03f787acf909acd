"""What every backend shares: op lookup, the emission context handed to op lowerings, rotary
helpers, and the order of a class's __init__ members.

A backend knows nothing about particular ops: each op's lowering lives in its slice of the
op registry (ttspec/ops/), and the backend asks it for statements and expressions.
"""

from __future__ import annotations

import re

from ...elaborate import show
from ...errors import ArchError
from ...ir.graph import Graph, Node, layer_variants, point_at_spec
from ...ops import APPLY_ROPE, REGISTRY, Config, Unsupported, WeightRefs, rotary_dims
from ...targets import TILE
from .emit import wrap
from .names import POSITIONS_ARG, class_scope
from .plan import ClassPlan, Leaf, Repeat, class_name


class EmitContext:
    """What an op's lowering may consult or request while one class is emitted."""

    def __init__(self, backend: Backend, plan: ClassPlan):
        self.backend, self.plan = backend, plan

    @property
    def graph(self):
        return self.plan.graph

    @property
    def mesh(self):
        return self.backend.mesh

    def weight_dtype(self, module: str) -> str | None:
        """The device dtype of the weight matrix of `module` when `--weights-dtype` gives its kind
        a format other than the program's default (WEIGHTS_DTYPE); None otherwise."""
        formats = getattr(self.backend, "weight_formats", None)
        if formats is None or formats.plain:
            return None
        from ...ops.queries import kind_of

        dtype = formats.dtype(kind_of(self.graph, module))
        return None if dtype == formats.default else dtype

    def helper(self, name: str) -> None:
        """Ask for a module-level helper of the generated program (split_heads, position_ids ...)."""
        self.backend.helpers.add(name)

    def rotary(self, rope: Config, head_dim: int) -> str:
        return f"self.{self.backend.rotary_attr(self.plan, rope)}"

    def device(self) -> str:
        self.plan.needs_device = True
        return "self.device"

    def state(self) -> str:
        """The program's run state (positions of the rows being computed, prefill or decode step)."""
        self.plan.needs_state = True
        return "self.state"

    def member(self, node, stem: str, init: str) -> str:
        """A per-instance attribute this op keeps between calls (an attention's KV cache), made in
        __init__ by `init`; returns the expression naming it."""
        for node_id, attr, _ in self.plan.state_members:
            if node_id == node.id:  # asked again (emission measures a line before writing it)
                return f"self.{attr}"
        attr = self.plan.members.claim(stem)
        self.plan.state_members.append((node.id, attr, init))
        return f"self.{attr}"

    def positions(self) -> str:
        """Where this forward pass's tokens sit (`pos`, a Positions helper or None): the forward of
        every class on the op's path takes it (the torch backend marks them before emitting)."""
        assert self.plan.needs_positions, "an op reads positions that its class was not marked for"
        return POSITIONS_ARG

    def kv_cache(self, node: Node, kv_heads: int, k_dim: int, v_dim: int) -> str:
        """The KV cache member of this class for one attention node: [batch, kv_heads, context, head_dim]."""
        self.backend.helpers.add("KVCache")
        args = f"{kv_heads}, {k_dim}" + (f", {v_dim}" if v_dim != k_dim else "")
        return self.member(node, "cache", f"KVCache({args})")


class Backend:
    """Base of the torch and TT-NN backends. Subclasses say how each kind of member is
    constructed (the *_init methods) and which lowering of an OpDef they use."""

    target_name = ""
    rotary_prefix: list[str] = []  # leading constructor arguments of the generated Rotary helper
    pad_heads_to_tiles = False

    def __init__(self, mesh=None):
        self.helpers: set[str] = set()
        self.mesh = mesh  # a ShardPlan for mesh programs, None on one chip

    def lowering_of(self, opdef):  # pragma: no cover - abstract
        raise NotImplementedError

    def lowering(self, node: Node):
        lowering = self.lowering_of(REGISTRY[node.op])
        if lowering is None:
            raise ArchError(f"`{node.op}` has no {self.target_name} lowering", node.loc)
        return lowering

    def context(self, plan: ClassPlan) -> EmitContext:
        return EmitContext(self, plan)

    def default_name(self, node: Node) -> str:
        return REGISTRY[node.op].var_name(node)

    @staticmethod
    def leaf_refs(leaf: Leaf) -> WeightRefs:
        """A leaf's weights: loaded by its label (parameter names are data), held in its attributes."""
        return WeightRefs(f'prefix + "{leaf.label}"', (("weight", f"self.{leaf.attr}"),
                                                        ("bias", f"self.{leaf.bias_attr}")))

    @staticmethod
    def own_refs() -> WeightRefs:
        return WeightRefs("prefix[:-1]", (("weight", "self.weight"), ("bias", "self.bias")))

    # ---- rotary embedding helpers, one per distinct config in a class
    def rotary_attr(self, plan: ClassPlan, rope: Config) -> str:
        """The attribute holding the Rotary helper for this config in this class."""
        self.helpers.add("Rotary")
        if rope not in plan.ropes:
            plan.ropes[rope] = plan.members.claim("rotary")
        return plan.ropes[rope]

    def rotary_init(self, attr: str, rope: Config, head_dim: int) -> str:
        f = dict(rope.fields)
        width = -(-head_dim // TILE) * TILE if self.pad_heads_to_tiles else head_dim
        args = self.rotary_prefix + [str(width), f"theta={f['theta']!r}"]
        rot = rotary_dims(head_dim, rope)
        if rot != width:
            args.append(f"rotary_dims={rot}")
        if f["style"] != "half":
            args.append(f'style="{f["style"]}"')
        if f["scaling"] != "none":
            args += [f'scaling="{f["scaling"]}"'] + [f"{k}={f[k]!r}" for k in (
                "factor", "low_freq_factor", "high_freq_factor", "original_max_positions")]
        line = f"self.{attr} = Rotary({', '.join(args)})"
        if len(line) > 100:
            line = f"self.{attr} = Rotary(\n" + "".join(f"    {a},\n" for a in args) + ")"
        return line

    def class_init(self, plan: ClassPlan) -> list[str]:
        """__init__ statements, in the order the forward method first uses each member."""
        order = {n.id: i for i, n in enumerate(plan.ops)}
        members: list[tuple[int, list[str]]] = []
        for child in plan.children:
            if isinstance(child, Repeat):
                members.append((order[child.node.id], [self.repeat_init(child)]))
            else:
                members.append((order[child.output], [self.child_init(child)]))
        for leaf in plan.leaves:
            members.append((order[leaf.node.id], self.leaf_init(leaf, plan)))
        for node in plan.self_params:
            members.append((order[node.id], self.self_param_init(node, plan)))
        for node_id, attr, init in plan.state_members:
            members.append((order[node_id], [f"self.{attr} = {init}"]))
        for rope, attr in plan.ropes.items():
            first = next(n for n in plan.ops if n.op == APPLY_ROPE.name and n.attrs["rope"] == rope)
            members.append((order[first.id], [self.rotary_init(attr, rope, first.type.shape[-1])]))
        return [wrap(line) for _, lines in sorted(members, key=lambda m: m[0]) for line in lines]

    # ---- abstract
    def repeat_init(self, rep: Repeat) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def child_init(self, child) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def leaf_init(self, leaf: Leaf, plan: ClassPlan) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def self_param_init(self, node: Node, plan: ClassPlan) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError


def layer_variants_of(rep: Repeat) -> tuple[list[str], list[str]] | None:
    """For a repeat whose layers are instances of more than one class: comment lines saying
    which layers use which class (and the per-layer argument values that make it), and the
    per-layer sequence of classes as a Python expression, e.g. `(Decoder, Decoder_1) * 3`.
    None when every layer has the same class (the program is then exactly as without variants)."""
    names = rep.layer_classes()
    if len(set(names)) < 2:
        return None
    values = rep.node.attrs.get("variant_args", ())
    by_class: dict[str, list[int]] = {}
    args: dict[str, list[str]] = {}
    for variant, cls in enumerate(rep.classes):
        if variant < len(values):
            text = ", ".join(f"{name} = {show(v)}" for name, v in values[variant])
            if text not in args.setdefault(cls.name, []):
                args[cls.name].append(text)
    for i, name in enumerate(names):
        by_class.setdefault(name, []).append(i)
    comment = [f"# {len(by_class)} variants of the layer, by its per-layer arguments:"]
    for name, layers in by_class.items():
        line = f"#   {name}: {_layers_text(layers)}"
        if args.get(name):
            line += f" ({' | '.join(args[name])})"
        comment.append(line if len(line) <= 96 else line[:92] + " ...")
    return comment, _sequence(names)


def _layers_text(layers: list[int]) -> str:
    if len(layers) == 1:
        return f"layer {layers[0]}"
    step = layers[1] - layers[0]
    if len(layers) > 4 and all(b - a == step for a, b in zip(layers, layers[1:])):
        every = "" if step == 1 else f", every {step}{'nd' if step == 2 else 'rd' if step == 3 else 'th'}"
        return f"layers {layers[0]} to {layers[-1]} ({len(layers)} layers{every})"
    if len(layers) <= 8:
        return "layers " + ", ".join(map(str, layers))
    return "layers " + ", ".join(map(str, layers[:6])) + f", ... ({len(layers)} layers)"


def _sequence(names: list[str]) -> str:
    """The shortest of: one period repeated (`(A, B) * 13`, plus a remainder), or runs
    (`(A,) * 28 + (B,) * 8`)."""
    def tup(items) -> str:
        return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"

    def times(items, k: int) -> str:
        return tup(items) + (f" * {k}" if k > 1 else "")

    n = len(names)
    period = next(p for p in range(1, n + 1) if all(names[i] == names[i % p] for i in range(n)))
    q, r = divmod(n, period)
    periodic = [times(names[:period], q)] + ([tup(names[:r])] if r else [])
    runs, start = [], 0
    for i in range(1, n + 1):
        if i == n or names[i] != names[start]:
            runs.append(times([names[start]], i - start))
            start = i
    return " + ".join(min(periodic, runs, key=lambda terms: len(" + ".join(terms))))


def tuple_items(seq: str) -> str | None:
    """`A, B, C` when the sequence is one tuple `(A, B, C)`; None when it has `*` or `+`."""
    return seq[1:-1] if seq.startswith("(") and seq.count("(") == 1 and seq.endswith(")") else None


def fill_sequence(seq: str, indent: str, width: int = 100) -> str:
    """A long class sequence as lines of `indent` + text within `width`, broken after commas (each
    line ends with a newline); the caller puts it inside brackets."""
    lines, current = [], ""
    for token in re.split(r"(?<=,) ", seq):
        if current and len(indent + current + " " + token) > width:
            lines.append(current)
            current = token
        else:
            current = f"{current} {token}" if current else token
    lines.append(current)
    return "".join(f"{indent}{line}\n" for line in lines)


def check_lowerable(graph: Graph, backend_name: str, lowering_of, outer: list | None = None) -> None:
    """Refuse, with the reason and where the spec asks for it, any op (or use of an op) a
    backend cannot lower."""
    outer = outer or []
    for node in graph.topo():
        if node.op == "input":
            continue
        if node.op == "repeat":
            for body, _ in layer_variants(node):
                check_lowerable(body, backend_name, lowering_of, [(graph, node.module)] + outer)
            continue
        lowering = lowering_of(REGISTRY[node.op])
        try:
            if lowering is None:
                raise ArchError(f"`{node.op}` cannot be lowered to {backend_name}", node.loc)
            if lowering.check is not None:
                lowering.check(node, graph)
        except Unsupported as e:
            raise point_at_spec(ArchError(e.reason, node.loc, hint=e.hint), [(graph, node.module)] + outer) from None
        except ArchError as e:
            raise point_at_spec(e, [(graph, node.module)] + outer) from None


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
