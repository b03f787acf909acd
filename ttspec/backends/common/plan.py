"""From the graph IR to a plan of Python classes, shared by every backend.

Each block instance becomes a class (deduplicated by its generated text), each labelled
parameter-owning primitive a leaf module, a block that only wraps one such primitive with
`as self` (rmsnorm, token_embedding, lm_head) that primitive's leaf, and a `repeat` a
ModuleList iterated in a loop (its layers instances of one class per layer variant). Values
used once and never named in the spec are inlined into their consumer, so the forward
methods read like hand-written ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...ir.graph import Graph, Model, Node, layer_pattern, layer_variants
from ...ops import REGISTRY, Config
from .names import Scope, camel, member_scope, root_class_name

CLASS_NAMES = {
    "attention": "Attention", "rmsnorm": "RMSNorm", "layernorm": "LayerNorm", "swiglu": "SwiGLU",
    "geglu": "GeGLU", "glu": "GLU", "mlp": "MLP", "lm_head": "LMHead", "token_embedding": "TokenEmbedding",
    "learned_positions": "LearnedPositions", "sinusoidal": "SinusoidalPositions",
    "moe": "MoE", "moe_router": "Router", "moe_experts": "Experts",
}


def class_name(block: str) -> str:
    """The spelling a block's class would like; the namer (names.py) makes it unique and legal."""
    return CLASS_NAMES.get(block) or camel(block) or "Block"


@dataclass
class Leaf:
    """A parameter-owning primitive held as an attribute (nn.Linear, ttnn weights ...)."""

    attr: str  # the Python attribute
    node: Node
    label: str = ""  # the spec's label: names its parameters (data), may differ from attr
    bias_attr: str = ""  # TT-NN: the attribute holding its bias


@dataclass
class Child:
    """A block instance held as an attribute and called from the parent's forward."""

    attr: str
    cls: ClassPlan
    inputs: list[str]  # node ids passed in, in order
    output: str  # node id it returns
    label: str = ""


@dataclass
class Repeat:
    attr: str
    cls: ClassPlan  # the class of layer 0
    count: int
    node: Node
    label: str = ""
    classes: list[ClassPlan] = field(default_factory=list)  # one per layer variant (ir.graph.layer_variants)
    pattern: tuple[int, ...] = ()  # the variant of each layer

    def layer_classes(self) -> list[str]:
        """The class name of each layer (variants whose classes came out alike share a name)."""
        names = [c.name for c in self.classes]
        return [names[v] for v in self.pattern]


@dataclass
class ClassPlan:
    name: str
    block: str
    path: str  # module path of the (first) instance, "" for the model
    graph: Graph
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    leaves: list[Leaf] = field(default_factory=list)
    children: list[Child | Repeat] = field(default_factory=list)
    ops: list[Node] = field(default_factory=list)  # nodes executed directly in forward
    self_params: list[Node] = field(default_factory=list)  # `as self` primitives (own weights)
    calls: dict[str, Child | Repeat | Leaf] = field(default_factory=dict)  # node id -> what computes it
    ropes: dict[Config, str] = field(default_factory=dict)  # rotary configs -> the attribute holding each helper
    needs_device: bool = False  # forward creates device tensors (position ids, tables), so keeps the device
    needs_state: bool = False  # forward consults the program's run state (positions, prefill or decode step)
    state_members: list[tuple[str, str, str]] = field(default_factory=list)  # (node id, attr, init): per-instance
    # run state an op asks for (an attention's KV cache)
    claimed: dict[tuple, str] = field(default_factory=dict)  # (node id, stem) or (stem, init) -> that member's attr
    member_comments: dict[str, str] = field(default_factory=dict)  # attr -> what a configuration member is
    rope_styles: dict[str, str] = field(default_factory=dict)  # rotary attr -> the style its program runs, where
    # the backend changed the spec's (TT-NN decode: adjacent pairs on permuted q and k rows)
    needs_positions: bool = False  # forward takes `pos` (torch: an op on its path reads token positions)
    members: Scope = field(default_factory=member_scope)  # attribute names taken in this class
    labels: dict[str, str] = field(default_factory=dict)  # attribute -> the spec label it holds, where they differ

    def attr_path(self, path: str) -> str:
        """A parameter's attribute path from this class (`class_.weight`) given its ttspec name
        (`class.weight`): the two differ where a label is not a usable attribute name."""
        head, _, rest = path.partition(".")
        for member in [*self.children, *self.leaves]:
            if member.label != head:
                continue
            if isinstance(member, Repeat) and rest:
                index, _, rest = rest.partition(".")
                cls = member.classes[member.pattern[int(index)]] if index.isdigit() else member.cls
                return f"{member.attr}.{index}." + cls.attr_path(rest) if rest else f"{member.attr}.{index}"
            if isinstance(member, Child) and rest:
                return f"{member.attr}.{member.cls.attr_path(rest)}"
            return f"{member.attr}.{rest}" if rest else member.attr
        return path


def _child_path(module: str, path: str) -> str:
    """The direct child of `path` that contains `module`."""
    rest = module[len(path) + 1:] if path else module
    return (path + "." if path else "") + rest.split(".")[0]


def _is_primitive(block: str) -> bool:
    return block in REGISTRY and REGISTRY[block].in_spec


def _is_thin_wrapper(graph: Graph, path: str, nodes: list[Node]) -> bool:
    return len(nodes) == 1 and nodes[0].module == path and bool(nodes[0].params)


def build_class(graph: Graph, path: str, name: str, block: str, nodes: list[Node]) -> ClassPlan:
    plan = ClassPlan(name, block, path, graph)
    ids = {n.id for n in nodes}
    plan.inputs = list(dict.fromkeys(i for n in nodes for i in n.inputs if i not in ids))
    groups: dict[str, list[Node]] = {}
    for n in nodes:
        if n.module == path and not n.is_repeat:
            if n.params:
                plan.self_params.append(n)
            plan.ops.append(n)
            continue
        groups.setdefault(_child_path(n.module, path), []).append(n)
    position = {n.id: i for i, n in enumerate(nodes)}  # a node's place, found once (list.index is a scan)
    order: list[tuple[int, str]] = sorted((position[g[0].id], p) for p, g in groups.items())
    for n in plan.self_params:  # `as self` parameters keep their own names (`self.weight`): data
        for local in n.params:
            if local not in plan.members.taken:
                plan.members.claim_exact(local)
    for _, child in order:
        members = groups[child]
        label = child.rsplit(".", 1)[-1]
        attr = plan.members.claim(label)
        if attr != label:
            plan.labels[attr] = label
        info = graph.modules.get(child)
        first = members[0]
        if first.is_repeat:
            classes = []
            for body, _ in layer_variants(first):
                cls = build_class(body, "", class_name(first.attrs.block), first.attrs.block, body.topo())
                cls.inputs = list(body.inputs)
                cls.outputs = [body.outputs["out"]]
                classes.append(cls)
            rep = Repeat(attr, classes[0], first.attrs.count, first, label, classes, layer_pattern(first))
            plan.children.append(rep)
            plan.calls[first.id] = rep
            plan.ops.append(first)
            continue
        if info is not None and _is_primitive(info.block) or _is_thin_wrapper(graph, child, members):
            leaf = Leaf(attr, members[0], label)
            plan.leaves.append(leaf)
            plan.calls[members[0].id] = leaf
            plan.ops.append(members[0])
            for extra in members[1:]:  # parameter-free ops inside a labelled primitive: none today
                plan.ops.append(extra)
            continue
        member_ids = {m.id for m in members}
        outs = [m.id for m in members if any(u not in member_ids for u in graph.users[m.id])
                or m.id in graph.outputs.values()]
        if not outs:  # an instance whose result is never used: still built (its weights count) and run
            outs = [next(m.id for m in reversed(members) if not graph.users[m.id])]
        cls = build_class(graph, child, class_name(info.block if info else attr), info.block if info else attr,
                          members)
        cls.outputs = outs
        call = Child(attr, cls, cls.inputs, outs[-1], label)
        plan.children.append(call)
        plan.calls[outs[-1]] = call
        plan.ops.append(graph.node(outs[-1]))
    for leaf in plan.leaves:  # after every label, so no label is renamed for a bias
        leaf.bias_attr = plan.members.claim(f"{leaf.attr}_bias")
    plan.ops.sort(key=lambda n: position[n.id])
    return plan


def model_plan(model: Model) -> ClassPlan:
    g = model.graph
    plan = build_class(g, "", root_class_name(model.name), model.name, g.topo())
    plan.inputs = list(g.inputs)
    plan.outputs = list(g.outputs.values())
    return plan


def all_classes(plan: ClassPlan) -> list[ClassPlan]:
    """Every class, children before parents (definition order in the generated file)."""
    out: list[ClassPlan] = []
    # Equal plans are listed once; comparing each with every class listed so far is quadratic when the
    # layers are written out, so a plan is compared only with those of its name, block and path.
    seen: dict[tuple[str, str, str], list[ClassPlan]] = {}

    def add(cls: ClassPlan) -> None:
        for c in cls.children:
            for child in c.classes if isinstance(c, Repeat) else [c.cls]:
                add(child)
        alike = seen.setdefault((cls.name, cls.block, cls.path), [])
        if cls is not plan and cls in alike:
            return
        alike.append(cls)
        out.append(cls)

    add(plan)
    return out

