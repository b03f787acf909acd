"""The device ops of a generated TT-NN program's decode step, read from the program this backend wrote, for
the cost model (analysis/program.py's records): what the lowering rows' `decode` expressions emitted, the
runtime helpers they call (inlined into the program) and the configuration members they name.

The program's text is walked as Python (ast), from the root class's `decode_step`: a `ttnn.*` call that dispatches
work is a device op; a call of a program class's method (`self.attn.decode`, `layer.decode` over `self.layers`,
`self.rotary.decode`), of a runtime function (`concat_heads_decode`) or of the run state's `per_step` (once per step
for every layer) is followed into its body. Views and host-side calls (reshape, unsqueeze, deallocate, from_torch,
memory-config builders) dispatch nothing, except a reshape that moves rows between tiles (to `(1, users, 1,
head_dim)`: ttnn dispatches ReshapeViewDeviceOperation, measured on the mock). A conditional on a function's
parameter that the call binds to a constant (`concat_heads_decode(y, 8, sharded=True)` then `if not sharded:`, or a
name the caller bound to one; a header constant naming a ttnn value: `KV_CACHE_DTYPE != ttnn.bfloat16`) takes the
branch the constant selects; any other the first branch (the program's main path: `y if users == rows else
ttnn.slice(y, ...)` slices nothing at 32 users). A return (or raise) on the path walked leaves the function, unless
a condition above it is undecided (`if state.mode != "prefill" or self.last is None: return x` in a prefill: the
walk goes on, as the return may not be taken). A comprehension or generator over a sequence of known length (a
literal tuple, or a name bound to one: RoPE's cos and sin tables), and a `for` loop over one (the KV cache's `for
cache, new in ((self.k, k), (self.v, v))`), dispatches its element's ops once per item, its names bound to the item
where the sequence is a literal (`w` -> `self.lm_head_1`). A call the walker cannot price is refused, naming the
call and its line (program_calls.UnknownProgramCall): a ttnn call in none of program_calls.DEVICE_CALLS, NOT_DEVICE
or COMPOSITES, a name that is no function, class, builtin or parameter it knows, a member or object whose class it
cannot tell, a weight matmul whose program or compute-kernel config it cannot find or whose config class it does not
know, a layer list whose count the text does not state. tests/test_decode_capture.py and test_walk_programs.py check
the counts per layer and
once per step against the mock device's capture."""

from __future__ import annotations

import ast
import builtins

from ...analysis.program import COLLECTIVE_CALLS, DEFAULT, DRAM_SHARDED, MCAST_1D, MCAST_2D, DecodeProgram, DeviceOp
from ...ops import ALL_GATHER, ALL_REDUCE, LINEAR, REDUCE_SCATTER
from .program_calls import DEVICE_CALLS, ROUTING_CALLS, reduction_parts, refuse, routing_parts
from .program_text import (
    bound_arguments,
    bound_constants,
    bound_lengths,
    leaves,
    length,
    local_callables,
    truth,
)
from .program_text import callee_name as _callee_name
from .program_text import dotted as _dotted

# ttnn calls that dispatch no device op (views, host transfers, deallocation, config and shape builders)
NOT_DEVICE = {"deallocate", "reshape", "unsqueeze", "squeeze", "from_torch", "to_torch", "get_device_tensors",
              "create_sharded_memory_config", "num_cores_to_corerangeset", "copy_host_to_device_tensor",
              "allocate_tensor_on_device", "execute_trace", "begin_trace_capture", "end_trace_capture", "release_trace",
              "synchronize_device", "set_fabric_config", "open_mesh_device", "close_mesh_device",
              "replicate_tensor_to_mesh_mapper", "create_mesh_mapper", "create_mesh_composer",
              "shard_tensor_to_mesh_mapper", "concat_mesh_to_tensor_composer"}
FACTORIES = {"MatmulMultiCoreReuseMultiCastDRAMShardedProgramConfig": DRAM_SHARDED,
             "MatmulMultiCoreReuseMultiCast1DProgramConfig": MCAST_1D,
             "MatmulMultiCoreReuseMultiCastProgramConfig": MCAST_2D}
MATMUL_CALLS = {LINEAR.name, "matmul"}  # ttnn.linear lowers the linear op
# ttnn calls that dispatch more than one device op, as the mock device's capture shows them (ttnn 0.81.1, Galaxy
# 8x4 with FABRIC_1D):
# all_reduce over a mesh axis runs a ReduceScatter then an AllGather (and MoE routing's: program_calls.routing_parts)
COMPOSITES = {ALL_REDUCE.name: (REDUCE_SCATTER.name, ALL_GATHER.name)}
SAMPLING_CALLS = {"argmax", "sampling", "topk"}


class _Class:
    def __init__(self, node: ast.ClassDef, classes: set[str]):
        self.name = node.name
        self.methods = {f.name: f for f in node.body if isinstance(f, ast.FunctionDef)}
        self.members: dict[str, str] = {}  # self.X -> program class it holds
        self.lists: dict[str, tuple[tuple[str, ...], int]] = {}  # self.X -> (classes it cycles through, cycles)
        self.configs: dict[str, ast.Call] = {}  # self.X -> the ttnn config it is built as
        self.chunks: dict[str, tuple[tuple[int, int], ...]] = {}  # self.X = {rows: config, ...}: (rows, cores)
        for stmt in (s for f in self.methods.values() for s in ast.walk(f)):  # __init__, the root's build
            if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1):
                continue
            target = _dotted(stmt.targets[0])
            if not target.startswith("self."):
                continue
            attr, value = target[5:], stmt.value
            if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in classes:
                self.members[attr] = value.func.id
            elif isinstance(value, ast.Call) and _dotted(value.func).startswith("ttnn."):
                self.configs[attr] = value
            elif _per_rows(value) or isinstance(value, ast.List) and value.elts and all(map(_per_rows, value.elts)):
                # prefill configs per chunk of rows (a head's: a list of them, one per column chunk, read alike)
                first = value if isinstance(value, ast.Dict) else value.elts[0]
                self.configs[attr] = first.values[0]
                self.chunks[attr] = tuple((int(k.value), _grid_cores(v)) for k, v in zip(first.keys, first.values,
                                                                                        strict=True))
            elif isinstance(value, ast.ListComp) and isinstance(value.elt, ast.Call):
                self.lists[attr] = _listed(value)


def _per_rows(value) -> bool:
    """`{rows: ttnn.XProgramConfig(...), ...}`: a linear's prefill programs per chunk of rows."""
    return isinstance(value, ast.Dict) and bool(value.values) and all(
        isinstance(v, ast.Call) and _dotted(v.func).startswith("ttnn.") for v in value.values) \
        and all(isinstance(k, ast.Constant) for k in value.keys)


def _listed(comp: ast.ListComp) -> tuple[tuple[str, ...], int]:
    """The classes a layer list cycles through and how many cycles: `[Decoder(...) for i in range(32)]` is
    ((Decoder,), 32); layer variants, `[cls(...) for i, cls in enumerate((Decoder, Decoder_1) * 13)]`, are
    ((Decoder, Decoder_1), 13)."""
    it = comp.generators[0].iter
    if isinstance(it, ast.Call) and _callee_name(it) == "enumerate" and it.args:
        seq, times = it.args[0], 1
        if isinstance(seq, ast.BinOp) and isinstance(seq.op, ast.Mult) and isinstance(seq.right, ast.Constant):
            seq, times = seq.left, int(seq.right.value)
        if isinstance(seq, (ast.Tuple, ast.List)) and all(isinstance(e, ast.Name) for e in seq.elts):
            return tuple(e.id for e in seq.elts), times
    return (_callee_name(comp.elt),), _range_count(it)


def _range_count(it) -> int:
    if isinstance(it, ast.Call) and _callee_name(it) == "range" and it.args and isinstance(it.args[0], ast.Constant):
        return int(it.args[0].value)
    return 0


def _grid_cores(config: ast.Call) -> int:
    """The cores of a matmul program config's `compute_with_storage_grid_size=ttnn.CoreCoord(x, y)`, 0 if unstated."""
    grid = next((k.value for k in config.keywords if k.arg == "compute_with_storage_grid_size"), None)
    if isinstance(grid, ast.Call) and len(grid.args) == 2 and all(isinstance(a, ast.Constant) for a in grid.args):
        return int(grid.args[0].value) * int(grid.args[1].value)
    return 0


def _moves_rows(call: ast.Call) -> bool:
    """A reshape of a tiled tensor to a shape whose rows are 1 (`(1, users, 1, head_dim)`): rows move between
    tiles, a device op (ReshapeViewDeviceOperation on the mock); other reshapes in the program keep the tiles."""
    shape = call.args[1] if len(call.args) > 1 else None
    return isinstance(shape, ast.Tuple) and len(shape.elts) >= 2 and isinstance(shape.elts[-2], ast.Constant) \
        and shape.elts[-2].value == 1


class ProgramWalker:
    """Follows the decode step's calls through the program, appending each device op to the current bucket."""

    def __init__(self, tree: ast.Module):
        names = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
        self.classes = {n.name: _Class(n, names) for n in tree.body if isinstance(n, ast.ClassDef)}
        self.functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        # the header's literal constants (LOGITS_SPLIT = False, ...): conditions on them are decided, not guessed
        self.header = {n.targets[0].id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
                       and isinstance(n.targets[0], ast.Name) and isinstance(n.value, ast.Constant)}
        # and those naming a ttnn value (CCL_DTYPE = ttnn.bfloat8_b): a `dtype=` given by name reads as its value
        self.named = {n.targets[0].id: _dotted(n.value) for n in tree.body if isinstance(n, ast.Assign)
                      and isinstance(n.targets[0], ast.Name) and _dotted(n.value)}
        owners: dict[str, list[str]] = {}
        for c in self.classes.values():
            for m in c.methods:
                owners.setdefault(m, []).append(c.name)
        self.unique = {m: cs[0] for m, cs in owners.items() if len(cs) == 1}  # methods only one class defines
        self.owners = owners
        self.buckets: dict[str, list[DeviceOp]] = {"before": [], "layer": [], "after": [], "step": []}
        self.bucket = "before"
        self.per_step_done: set[tuple[str, str]] = set()
        self.step_inputs: set[str] = set()
        self.layers = 0
        self.cycle = 1
        self.stack: list[tuple[str, str]] = []
        self.scopes: list[set[str]] = []  # the walked functions' parameters and nested functions
        self.callables: dict[ast.FunctionDef, set[str]] = {}  # (by function: made once)
        self.done: set[tuple[str, str]] = set()  # walked already, not again (decode_step, from the step around it)
        self.constants: dict[str, object] = {}  # the walked function's parameters bound to constants
        self.aliases: dict[str, tuple[ast.AST, _Class | None]] = {}  # its parameters: the caller's argument
        self.modes: dict[str, object] = {"decoding": True, "mode": "decode"}  # the run state's, in the phase walked
        self.lengths: dict[str, int] = {}  # its local names bound to sequences of known length
        self.dense_experts = False  # walked rt/moe.py's moe_experts_dense: every local expert computes every row
        # the member path of the object whose method is walked, from the layer (in a layer) or the root class:
        # "" for the layer or root itself, "a" for its `self.a`, "a.mlp" for that one's `self.mlp`; None where the
        # walker found the method by its name alone (the object unknown)
        self.path: str | None = ""

    def known(self) -> dict[str, object]:
        """What a condition here may read: the header's constants (and the ttnn values it names:
        `KV_CACHE_DTYPE != ttnn.bfloat16`), the parameters bound to constants, and the lengths of local sequences
        whose length is known (`len(outputs)`)."""
        return {**self.named, **self.header, **self.constants,
                **{f"len({k})": n for k, n in self.lengths.items() if n}}

    # -- statements -------------------------------------------------------------------------
    def body(self, stmts, cls: _Class | None, local: dict[str, _Class]) -> bool:
        """Walk `stmts`; True where they leave the function (a return or raise on the path walked, below every
        condition whose truth is known: a condition the walker cannot decide walks its first branch, but a return
        there does not end the walk, as it may not be taken: `head_rows`' `if ... or self.last is None: return x`)."""
        for stmt in stmts:
            if isinstance(stmt, (ast.Return, ast.Raise)):
                self.expr(stmt, cls, local)
                return True
            if isinstance(stmt, ast.For):
                listed = cls.lists.get(_dotted(stmt.iter).removeprefix("self.")) if cls and isinstance(
                    stmt.target, ast.Name) else None
                if listed and all(c in self.classes for c in listed[0]) and self.bucket == "before":
                    if not listed[1]:
                        raise refuse(stmt.iter, "a loop over program layers whose count the program's text does "
                                     "not state", "build the list over `range(<literal>)` or a literal tuple")
                    self.layers, self.cycle = listed[1], len(listed[0])
                    self.bucket = "layer"
                    for variant in listed[0]:  # one cycle of the layer variants
                        self.body(stmt.body, cls, {**local, stmt.target.id: self.classes[variant]})
                    self.bucket = "after"
                    continue
                self.expr(stmt.iter, cls, local)
                for _ in range(length(stmt.iter, self.lengths) or 1):  # once per item of a sequence of known length
                    self.body(stmt.body, cls, local)  # (the KV cache's `for cache, new in ((self.k, k), ...)`)
            elif isinstance(stmt, ast.If):
                known = truth(stmt.test, self.known(), self.modes)
                self.expr(stmt.test, cls, local)
                left = self.body(stmt.orelse if known is False else stmt.body, cls, local)  # (see the module doc)
                if left and (known is not None or leaves(stmt.orelse)):  # (an undecided `if`: both must leave)
                    return True
            elif isinstance(stmt, (ast.With, ast.Try)):
                if self.body(stmt.body, cls, local):
                    return True
            elif isinstance(stmt, ast.FunctionDef):  # a step defined to be run (traced): `def step(): ...`
                self.body(stmt.body, cls, local)
            elif isinstance(stmt, ast.ClassDef):
                continue
            else:
                if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                    self.lengths[stmt.targets[0].id] = length(stmt.value, self.lengths)
                self.expr(stmt, cls, local)
        return False

    def expr(self, node, cls: _Class | None, local: dict[str, _Class]):
        """The calls under `node`, innermost (evaluated) first; lambdas are deferred, so not walked."""
        if isinstance(node, ast.Lambda):
            return
        if isinstance(node, ast.IfExp):
            known = truth(node.test, self.known(), self.modes)
            self.expr(node.test, cls, local)
            self.expr(node.orelse if known is False else node.body, cls, local)
            return
        if isinstance(node, (ast.GeneratorExp, ast.ListComp)) and len(node.generators) == 1:
            self.expr(node.generators[0].iter, cls, local)  # then the element once per item (see the module doc)
            for i in range(length(node.generators[0].iter, self.lengths) or 1):
                saved = self.aliases
                self.aliases = {**saved, **self.items(node.generators[0], i, cls)}
                self.expr(node.elt, cls, local)
                self.aliases = saved
            return
        for child in ast.iter_child_nodes(node):
            self.expr(child, cls, local)
        if isinstance(node, ast.Call):
            self.call(node, cls, local)

    # -- calls ------------------------------------------------------------------------------
    def call(self, call: ast.Call, cls: _Class | None, local: dict[str, _Class]):
        dotted = _dotted(call.func)
        if dotted.startswith("ttnn."):
            self.device_op(dotted, call, cls)
            return
        if isinstance(call.func, ast.Name):
            fn = self.functions.get(call.func.id)
            if fn is not None:
                self.enter(fn, None, ("", fn.name), call, cls)
            elif call.func.id in local:  # `layer(h)` over the layer list: the layer's forward
                self.call_object(local[call.func.id], call, "")
            elif not (hasattr(builtins, call.func.id) or call.func.id in self.classes
                      or any(call.func.id in names for names in self.scopes)):
                raise refuse(call, "a call of a name that is neither a function or class of the program, a "
                             "builtin, nor a parameter or nested function of the walked one",
                             "inline it into the program (backends/common/make_index)")
            return
        if not isinstance(call.func, ast.Attribute):
            return
        method, owner = call.func.attr, call.func.value
        if method == "per_step" and len(call.args) == 2:  # once per step, shared by every layer
            self.per_step(call.args[1], cls)
            return
        if method == "step_input" and call.args and isinstance(call.args[0], ast.Constant):
            self.step_inputs.add(str(call.args[0].value))
            return
        target = self.owner_class(owner, cls, local)
        path = self.member_path(owner, local)
        if target is None and method in self.unique:
            target, path = self.classes[self.unique[method]], None
        if target is not None and method in target.methods:
            self.enter(target.methods[method], target, (target.name, method), call, path=path)
        elif isinstance(owner, ast.Name) and owner.id == "self" and cls is not None and method in cls.members:
            self.call_object(self.classes.get(cls.members[method]), call, self.member_path(call.func, local))
        elif isinstance(owner, ast.Name) and owner.id == "self" and cls is not None:
            raise refuse(call, f"a call of `self.{method}`, neither a method of {cls.name} nor a member it builds "
                         "as a program class", "build the member as `self.X = Class(...)`")
        elif target is None and method in self.owners:
            raise refuse(call, f"a call of `{method}`, a method of the program's "
                         f"{', '.join(sorted(self.owners[method]))}, on "
                         "an object the walker cannot tell the class of", "call it on `self`, a member built as "
                         "`self.X = Class(...)`, or a layer of a layer list")

    def call_object(self, target: _Class | None, call: ast.Call, path: str | None):
        method = next((m for m in ("__call__", "forward") if target is not None and m in target.methods), None)
        if method is not None:
            self.enter(target.methods[method], target, (target.name, method), call, path=path)

    def member_path(self, owner, local: dict[str, _Class]) -> str | None:
        """The member path (see __init__) of the object `owner` names: `self` the walked one's, `self.X` its
        member's, a layer of the layer list "" (a layer's weights are named from the layer)."""
        if isinstance(owner, ast.Name):
            return self.path if owner.id == "self" else "" if owner.id in local else None
        dotted = _dotted(owner)
        if self.path is None or not dotted.startswith("self.") or dotted.count(".") != 1:
            return None
        return f"{self.path}.{dotted[5:]}".lstrip(".")

    def owner_class(self, owner, cls: _Class | None, local: dict[str, _Class]) -> _Class | None:
        if isinstance(owner, ast.Name):
            return cls if owner.id == "self" else local.get(owner.id)
        dotted = _dotted(owner)
        if cls is not None and dotted.startswith("self.") and dotted.count(".") == 1:
            held = cls.members.get(dotted[5:])
            return self.classes.get(held) if held else None
        return None

    def enter(self, fn: ast.FunctionDef, cls: _Class | None, key: tuple[str, str], call: ast.Call | None = None,
              caller: _Class | None = None, path: str | None = ...):
        """Walk `fn` (a method of `cls`, or a function called from a method of `caller`), on the object at member
        `path` (by default the walked one: a function, or a method of the same object)."""
        if key in self.stack or key in self.done:
            return
        self.dense_experts |= fn.name == "moe_experts_dense"
        saved = self.constants, self.lengths, self.aliases, self.path
        self.path = self.path if path is ... else path
        self.constants, self.lengths = (bound_constants(fn, call, self.constants),
                                        bound_lengths(fn, call, self.lengths))
        self.aliases = {p: self.resolve(v, c) for p, (v, c) in bound_arguments(fn, call, caller).items()} \
            if cls is None and call is not None else {}  # (through the caller's own: chunked_linear's `weight`)
        self.stack.append(key)
        if fn not in self.callables:
            self.callables[fn] = local_callables(fn)
        self.scopes.append(self.callables[fn])
        self.body(fn.body, cls, {})
        self.scopes.pop()
        self.stack.pop()
        self.constants, self.lengths, self.aliases, self.path = saved

    def resolve(self, node, cls: _Class | None) -> tuple[ast.AST | None, _Class | None]:
        """What a name in a function stands for in its caller (`weight` -> `self.wqkv` of the attention), and a
        subscript for what it indexes (`programs[chunk]` -> the dict of configs per chunk)."""
        while isinstance(node, ast.Subscript):
            node = node.value
        if isinstance(node, ast.Name) and node.id in self.aliases:
            return self.aliases[node.id]
        return node, cls

    def items(self, generator: ast.comprehension, i: int, cls: _Class | None) -> dict:
        """What a comprehension's names stand for at its item `i`: the item of a literal sequence they iterate
        (`w` -> `self.lm_head_1` over `[self.lm_head_0, self.lm_head_1]`), else the sequence (`p` -> the list of
        configs it is read from); over `zip(...)`, each name of the target tuple from its own sequence."""
        target, seq = generator.target, generator.iter
        if isinstance(target, ast.Name):
            pairs = [(target, seq)]
        elif isinstance(target, ast.Tuple) and isinstance(seq, ast.Call) and _callee_name(seq) == "zip" \
                and len(seq.args) == len(target.elts):
            pairs = list(zip(target.elts, seq.args, strict=True))
        else:
            return {}
        out = {}
        for name, values in pairs:
            node, owner = self.resolve(values, cls)
            if isinstance(node, (ast.List, ast.Tuple)) and i < len(node.elts):
                node = node.elts[i]
            if isinstance(name, ast.Name):
                out[name.id] = (node, owner)
        return out

    def per_step(self, maker, cls: _Class | None):
        dotted = _dotted(maker)
        if cls is None or not dotted.startswith("self.") or dotted[5:] not in cls.methods:
            if isinstance(maker, ast.Lambda):
                self.expr(maker.body, cls, {})
            return
        key = (cls.name, dotted[5:])
        if key in self.per_step_done:
            return
        self.per_step_done.add(key)
        saved, self.bucket = self.bucket, "step"
        self.enter(cls.methods[dotted[5:]], cls, key)
        self.bucket = saved

    def device_op(self, dotted: str, call: ast.Call, cls: _Class | None):
        last = dotted.rsplit(".", 1)[-1]
        if last in NOT_DEVICE and not (last == "reshape" and _moves_rows(call)) or last[:1].isupper() \
                or last.isupper():
            return
        if dotted.removeprefix("ttnn.") not in DEVICE_CALLS and last not in COMPOSITES and last not in ROUTING_CALLS:
            raise refuse(call, "a ttnn call the walker does not know", "add it to program_calls.DEVICE_CALLS (one "
                         "device op), decode_facts.NOT_DEVICE (none) or decode_facts.COMPOSITES (several), as the "
                         "mock device's capture shows it")
        kwargs = {k.arg: k.value for k in call.keywords if k.arg}
        factory = fidelity = weight = ""
        chunks: tuple[int, ...] = ()
        held, holder = self.resolve(call.args[1], cls) if len(call.args) > 1 else (None, cls)
        if last in MATMUL_CALLS and _dotted(held).startswith("self."):
            weight = _dotted(held)[5:]
            for key in ("program_config", "compute_kernel_config"):  # priced by their factory and fidelity
                if key in kwargs and self.config(*self.resolve(kwargs[key], holder)) is None:
                    raise refuse(call, f"a matmul of `self.{weight}` whose {key} the walker cannot find", "state "
                                 "it as a member `self.X = ttnn.XConfig(...)` (or a dict of them per chunk of "
                                 "rows), passed by name")
            program, owner = self.resolve(kwargs.get("program_config"), holder)
            factory = self.factory(program, owner)
            program = _dotted(program)
            chunks = owner.chunks.get(program[5:], ()) if owner is not None and program.startswith("self.") else ()
        kernel = self.config(*self.resolve(kwargs.get("compute_kernel_config"), holder))
        if kernel is not None:
            for k in kernel.keywords:
                if k.arg == "math_fidelity":
                    fidelity = _dotted(k.value).rsplit(".", 1)[-1]
        output = self.buffer(*self.resolve(kwargs.get("memory_config"), holder))
        dtype = _dotted(kwargs["dtype"]) if "dtype" in kwargs else ""
        dtype = self.named.get(dtype, dtype).rsplit(".", 1)[-1]
        bucket = self.buckets[self.bucket]
        if not dtype and last.startswith(COLLECTIVE_CALLS) and bucket:  # its payload: what the op before it wrote
            dtype = bucket[-1].dtype  # (`ttnn.linear(..., dtype=ttnn.bfloat8_b)` then its reduce_scatter)
        parts = reduction_parts(call) if last == "sum" else self.routing(call) if last in ROUTING_CALLS \
            else COMPOSITES.get(last)
        if parts is None:
            path = "" if not weight or self.path is None else f"{self.path}.{weight}".lstrip(".")
            bucket.append(DeviceOp(dotted, factory, fidelity, weight, output, dtype, chunks, path))
            return
        for part in parts:  # each a device op, writing the payload the call asks for
            bucket.append(DeviceOp(f"{dotted} ({part})", dtype=dtype))

    def routing(self, call: ast.Call) -> tuple[str, ...]:
        """The device ops of the MoE routing's topk or scatter: by the router's width, the `experts` the program
        passes the routing function (moe_routing_weights(..., experts=8)), refused where the walk has none."""
        experts = self.constants.get("experts")
        if not isinstance(experts, int) or experts < 1:
            raise refuse(call, "a MoE routing call over a router width the program does not state", "pass the "
                         "routing function `experts=<E>` (lower_moe.routing)")
        return routing_parts(call.func.attr, experts)

    def buffer(self, value, cls: _Class | None) -> str:
        """Where a memory config puts an op's output: "L1" or "DRAM" by ttnn's constant's name
        (`ttnn.L1_WIDTH_SHARDED_MEMORY_CONFIG`) or the member's `ttnn.BufferType`; "" where the text does not say
        (a local: the op's default is assumed)."""
        dotted = _dotted(value) if value is not None else ""
        if dotted.startswith("ttnn."):
            return next((b for b in ("L1", "DRAM") if dotted[5:].startswith(b + "_")), "")
        built = self.config(value, cls)
        if built is None:
            return ""
        kinds = {_dotted(n) for n in ast.walk(built)} & {"ttnn.BufferType.L1", "ttnn.BufferType.DRAM"}
        if _dotted(built.func) == "ttnn.create_sharded_memory_config":  # sharded: L1 unless it says otherwise
            kinds = kinds or {"ttnn.BufferType.L1"}
        return kinds.pop().rsplit(".", 1)[-1] if len(kinds) == 1 else ""

    def config(self, value, cls: _Class | None) -> ast.Call | None:
        dotted = _dotted(value) if value is not None else ""
        if cls is None or not dotted.startswith("self."):
            return None
        return cls.configs.get(dotted[5:])

    def factory(self, value, cls: _Class | None) -> str:
        built = self.config(value, cls)
        if built is None:
            return DEFAULT
        kind = _dotted(built.func).rsplit(".", 1)[-1]
        if kind not in FACTORIES:
            raise refuse(built, "a matmul program config the walker does not know", "add its program factory "
                         "family to decode_facts.FACTORIES")
        return FACTORIES[kind]




def program_fabric(tree: ast.Module) -> str:
    """The fabric the program opens its mesh with (`ttnn.set_fabric_config(X)`, X a `ttnn.FabricConfig` member or
    a module constant holding one), "" on one chip."""
    constants = {_dotted(n.targets[0]): n.value for n in tree.body if isinstance(n, ast.Assign)
                 and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name)}
    mesh = constants.get("MESH_SHAPE")
    if isinstance(mesh, ast.Tuple) and all(isinstance(e, ast.Constant) and e.value == 1 for e in mesh.elts):
        return ""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _dotted(node.func) == "ttnn.set_fabric_config" and node.args:
            arg = node.args[0]
            arg = constants.get(arg.id, arg) if isinstance(arg, ast.Name) else arg
            return _dotted(arg).rsplit(".", 1)[-1]
    return ""


def decode_program(source: str) -> DecodeProgram:
    """The decode step of the TT-NN program `source` (what compile_ttnn wrote), as the cost model reads it."""
    tree = ast.parse(source)
    walker = ProgramWalker(tree)
    root = next((c for c in walker.classes.values() if "decode_step" in c.methods), None)
    if root is None:
        raise ValueError("the program has no decode_step: not a TT-NN program ttspec wrote")
    walker.enter(root.methods["decode_step"], root, (root.name, "decode_step"))
    walker.done.add((root.name, "decode_step"))
    # what the step does around decode_step (sampling, reads): the greedy step where the program has one (what
    # `generate` runs, and tt_transformers' PERF.md measures), else the step returning logits
    around = next((m for m in ("decode_greedy", "decode") if m in root.methods), None)
    if around is not None:
        walker.bucket = "after"
        walker.enter(root.methods[around], root, (root.name, around))
    b = walker.buckets
    if not walker.layers:  # no repeated layers: everything runs once per step
        b["before"] += b.pop("layer")
        b["layer"] = []
    step = tuple(b["before"] + b["step"] + b["after"])
    uploads = len(walker.step_inputs)  # by key: the tokens, the positions, the RoPE rows' positions
    # what the host reads per row after on-device sampling: a uint32 id per argmax, a bf16 value per max (the row's
    # largest logit, read to check it is finite); no sampling op: the logits are read
    tail = [op.op.rsplit(".", 1)[-1] for op in b["after"]]
    ids = sum(op in SAMPLING_CALLS for op in tail)
    per_row = 4 * ids + 2 * tail.count("max") if ids else 0
    return DecodeProgram(tuple(b["layer"]), step, walker.layers, program_fabric(tree), uploads, bool(ids), walker.cycle,
                         per_row or 4, dense_experts=walker.dense_experts)
