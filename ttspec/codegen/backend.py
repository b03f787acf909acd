"""What every backend shares: rotary helpers and the order of a class's __init__ members."""

from __future__ import annotations

from ..ops.registry import Config, rotary_dims
from ..targets import TILE
from .plan import ClassPlan, Repeat


class Backend:
    """Base of the torch and TT-NN backends. Subclasses lower single nodes (op_expr,
    leaf_call) and say how each kind of member is constructed (the *_init methods)."""

    rotary_prefix: list[str] = []  # leading constructor arguments of the generated Rotary helper
    pad_heads_to_tiles = False

    def __init__(self):
        self.helpers: set[str] = set()

    def rotary_attr(self, plan: ClassPlan, rope: Config) -> str:
        """The attribute holding the Rotary helper for this config in this class."""
        self.helpers.add("Rotary")
        ropes = plan.__dict__.setdefault("_ropes", {})
        if rope not in ropes:
            ropes[rope] = "rotary" if not ropes else f"rotary_{len(ropes)}"
        return ropes[rope]

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
        for rope, attr in plan.__dict__.get("_ropes", {}).items():
            first = next(n for n in plan.ops if n.op == "apply_rope" and n.attrs["rope"] == rope)
            members.append((order[first.id], [self.rotary_init(attr, rope, first.type.shape[-1])]))
        return [line for _, lines in sorted(members, key=lambda m: m[0]) for line in lines]
