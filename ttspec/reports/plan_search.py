"""`ttspec plan --search`: which plan to run a model with on a target.

The choices a user has on a target are enumerated:

- the sub-mesh and its tensor-parallel degree: mesh shapes R x C whose sides are powers of two
  (or the target's own sides) and that fit the target's grid in either orientation (T3K's eight
  chips are also wired as 2x4); tensor parallelism runs over the longer axis (passes/shard.py),
  the other axis holds data-parallel replicas (`--dp`: the batch is split over them). Shapes
  that give the same (tensor-parallel degree, replicas) are searched once, in the target's own
  orientation where it has one; a replica axis without --dp (idle copies) is not searched;
- the strategy: besides those 1-D plans, 2-D tensor parallelism (passes/shard.py: every weight
  matrix split over both axes, as tt-metal's Galaxy models) on each sub-mesh with two sides of 2
  or more, in the target's own orientation or its wiring's (T3K's 2x4), without --dp (which
  claims the second axis); `--strategy` fixes it;
- the weight format of each parameter kind whose bytes depend on it (bf16, bfloat8_b and
  bfloat4_b for attention, mlp and the head's matrix; lookup tables and norms stay bf16, as
  weight_formats.py and the memory model store them);
- the batch: powers of two up to the spec's batch bound (else MAX_BATCH), plus the largest batch
  that fits at the context.

Each mesh is sharded once (a planner ArchError excludes the mesh, with its reason) and its ops
tabled once (analysis/cost.py's OpTable), each (mesh, formats) gets its memory model from that one
sharding, prefill (time to first token) is priced once per (mesh, formats) and every batch by one
cost-model decode step. A candidate is
kept when it fits by the memory model at the context and meets the floors; the kept ones are
ranked by the objective: latency (decode tokens/s per user) or throughput (tokens/s at the
batch). Ties go to fewer chips, then to bigger (more precise) weight formats, then to the smaller
batch, then to the mesh and format text: the order is deterministic. Accuracy is not modelled:
smaller formats only ever look faster here; fix the formats with `--weights-dtype` to search the
rest.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from ..analysis.cost import OpTable, PricedPhase
from ..analysis.memory import in_formats
from ..driver import MAX_DECODE_USERS, Build, Options
from ..errors import ArchError
from ..ir.graph import Model
from ..targets import Strategy, Target, mesh_text
from ..weight_formats import BF16, DTYPES, WeightFormats
from .report import DEFAULT_CONTEXT, DEFAULT_PROMPT

SCHEMA = "ttspec-plan-search/1"
OBJECTIVES = ("latency", "throughput")
MAX_BATCH = 1024  # without a bound in the spec: the largest power of two searched
DTYPE_BITS = {"bf16": 16, "bfloat8_b": 8, "bfloat4_b": 4}


@dataclass(frozen=True)
class Plan:
    """One kept candidate and the numbers that decided it."""

    mesh: tuple[int, int]
    dp: bool
    tensor_parallel: int
    replicas: int
    weights_dtype: WeightFormats
    batch: int
    context: int
    prompt: int
    memory_per_chip: int
    dram: int
    ttft_ms: float
    decode_ms_per_step: float
    tokens_per_s_per_user: float
    tokens_per_s: float
    decode: PricedPhase = field(compare=False, repr=False)  # the decode step, for its bottleneck
    strategy: str = "1d"  # tensor parallelism over one mesh axis, or 2d over both

    @property
    def decode_bottleneck(self) -> str:
        """What bounds the decode step's costliest op class: worked out for the plans shown only (it adds
        up every op by class; most candidates are never shown)."""
        return max(self.decode.by_class().items(), key=lambda kv: kv[1]["time_s"])[1]["bottleneck"]

    @property
    def strategy_option(self) -> str | None:
        """The --strategy the plan needs: always for 2-D; for 1-D where the mesh would let the planner
        choose 2-D instead (two axes of 2 or more, no --dp)."""
        from ..driver import strategies_allowed

        if len(strategies_allowed(self.mesh, self.dp)) > 1:
            return self.strategy
        return None

    @property
    def chips(self) -> int:
        return self.mesh[0] * self.mesh[1]

    @property
    def mesh_text(self) -> str:
        return mesh_text(self.mesh)

    def options(self) -> list[str]:
        """The command-line options that select this plan (compile, plan, report, run)."""
        words = ["--mesh", self.mesh_text] + (["--dp"] if self.dp else [])
        words += ["--strategy", self.strategy_option] if self.strategy_option else []
        kv, ccl = self.weights_dtype.kv_cache, self.weights_dtype.ccl
        return words + ["--weights-dtype", str(self.weights_dtype)] + (["--kv-dtype", kv] if kv != "bf16" else []) \
            + (["--ccl-dtype", ccl] if ccl != "bf16" and self.mesh != (1, 1) else [])

    def as_dict(self) -> dict:
        return {"mesh": list(self.mesh), "dp": self.dp, "strategy": self.strategy,
                "tensor_parallel": self.tensor_parallel, "replicas": self.replicas, "chips": self.chips,
                "weights_dtype": str(self.weights_dtype),
                "batch": self.batch, "context": self.context, "prompt": self.prompt,
                "memory_per_chip": self.memory_per_chip, "dram": self.dram, "ttft_ms": self.ttft_ms,
                "decode_ms_per_step": self.decode_ms_per_step, "tokens_per_s_per_user": self.tokens_per_s_per_user,
                "tokens_per_s": self.tokens_per_s, "decode_bottleneck": self.decode_bottleneck,
                "options": " ".join(self.options())}


def _pow2(limit: int) -> list[int]:
    out, n = [], 1
    while n <= limit:
        out.append(n)
        n *= 2
    return out


def sub_meshes(target: Target) -> list[tuple[tuple[int, int], bool]]:
    """(mesh, dp) choices on `target`, one per (tensor-parallel degree, replicas), in a fixed order."""
    grids = [target.mesh, target.mesh[::-1]]
    if target.grid:  # chips wired as a grid other than the mesh programs open (T3K's 2x4)
        grids += [target.grid, target.grid[::-1]]
    sides = sorted(set(_pow2(target.chips)) | set(target.mesh))
    shapes = [(r, c) for r in sides for c in sides
              if r * c <= target.chips and any(r <= g[0] and c <= g[1] for g in grids)]

    def degrees(shape):  # passes/shard.py: tensor parallelism over the longer axis (ties: axis 1)
        axis = 1 if shape[1] >= shape[0] else 0
        return shape[axis], shape[1 - axis]

    # the target's own orientation first (its ring axes), then the rest in order
    own = [s for s in shapes if s[0] <= target.mesh[0] and s[1] <= target.mesh[1]]
    chosen: dict[tuple[int, int], tuple[int, int]] = {}
    for shape in own + [s for s in shapes if s not in own]:
        chosen.setdefault(degrees(shape), shape)
    return [(shape, degrees(shape)[1] > 1) for _, shape in sorted(chosen.items())]


def sub_meshes_2d(target: Target) -> list[tuple[int, int]]:
    """The meshes 2-D tensor parallelism is searched on: R x C with both sides 2 or more (powers of two
    or the target's own sides) that fit the target's mesh or its wiring's grid as they stand (rows
    split heads and the MLP, columns hidden: the orientation matters, and each axis keeps its ring or
    line)."""
    grids = [target.mesh] + ([target.grid] if target.grid else [])
    sides = sorted(set(_pow2(target.chips)) | set(target.mesh))
    return [(r, c) for r in sides for c in sides
            if r >= 2 and c >= 2 and r * c <= target.chips and any(r <= g[0] and c <= g[1] for g in grids)]


def format_kinds(model: Model) -> list[str]:
    """The parameter kinds whose bytes depend on the weight format (their weight matrices)."""
    from ..analysis.memory import weight_bytes_by_kind, weight_layouts

    layouts = weight_layouts(model)
    wide, narrow = weight_bytes_by_kind(model, BF16, layouts=layouts), \
        weight_bytes_by_kind(model, WeightFormats("bfloat4_b"), layouts=layouts)
    return sorted(k for k in wide if wide[k] != narrow.get(k))


def format_choices(model: Model, fixed: WeightFormats | None = None) -> list[WeightFormats]:
    """Every per-kind assignment of DTYPES to the kinds a format changes (one plain dtype when all
    agree); or just `fixed`."""
    if fixed is not None:
        return [fixed]
    kinds = format_kinds(model)
    out = []
    for combo in itertools.product(DTYPES, repeat=len(kinds)):
        if len(set(combo)) <= 1:
            out.append(WeightFormats(combo[0]) if combo else BF16)
        else:
            out.append(WeightFormats("bf16", {k: d for k, d in zip(kinds, combo, strict=True) if d != "bf16"}))
    return out


def format_bits(model: Model, formats: WeightFormats, kinds: list[str] | None = None) -> int:
    """Bits per value summed over the searched kinds (`kinds`: format_kinds(model), when already found):
    a tie-break towards more precise formats."""
    return sum(DTYPE_BITS[formats.dtype(k)] for k in (format_kinds(model) if kinds is None else kinds))


@dataclass
class Search:
    model: str
    target: Target
    objective: str
    context: int
    prompt: int
    floors: dict
    meshes: list[dict]
    formats: list[WeightFormats]
    batches: list[int]
    candidates: int
    plans: list[Plan]  # every kept plan, ranked
    excluded: dict[str, int]

    def as_dict(self, top: int) -> dict:
        return {"schema": SCHEMA, "model": self.model, "target": self.target.name, "objective": self.objective,
                "context": self.context, "prompt": self.prompt, "floors": self.floors,
                "space": {"meshes": self.meshes, "weights_dtypes": [str(f) for f in self.formats],
                          "batches": self.batches, "candidates": self.candidates},
                "kept": len(self.plans), "excluded": self.excluded,
                "plans": [dict(p.as_dict(), rank=i + 1) for i, p in enumerate(self.plans[:top])]}


def rank_key(objective: str, plan: Plan, bits: int) -> tuple:
    speed = (-plan.tokens_per_s_per_user, -plan.tokens_per_s) if objective == "latency" else \
        (-plan.tokens_per_s, -plan.tokens_per_s_per_user)
    return speed + (plan.chips, -bits, plan.batch, plan.mesh, str(plan.weights_dtype), plan.strategy)


@dataclass
class _Space:
    """What a search tries on every mesh, and what it has found so far."""

    target: Target
    formats: list[WeightFormats]
    batches: list[int]
    fixed_batch: int | None
    bound_batch: int | None
    context: int
    prompt: int
    min_tokens_per_s_per_user: float | None
    max_ttft_ms: float | None
    plans: list[Plan] = field(default_factory=list)
    mesh_rows: list[dict] = field(default_factory=list)
    excluded: dict[str, int] = field(default_factory=dict)
    candidates: int = 0

    def exclude(self, reason: str, n: int = 1) -> None:
        self.excluded[reason] = self.excluded.get(reason, 0) + n


def search(model: Model, chosen: Target, objective: str = "latency", seq: int | None = None,
           min_tokens_per_s_per_user: float | None = None, max_ttft_ms: float | None = None,
           mesh: tuple[int, int] | None = None, dp: bool | None = None, weights_dtype: WeightFormats | None = None,
           batch: int | None = None, strategy: Strategy | None = None, kv_dtype: str = "bf16",
           ccl_dtype: str = "bf16") -> Search:
    """Every plan on `target` that fits and meets the floors, ranked by `objective`. `mesh`,
    `dp`, `weights_dtype`, `batch`, `strategy`: fix that choice instead of searching it; `kv_dtype`: the KV
    cache's format of every plan (--kv-dtype); `ccl_dtype`: the payload of every mesh plan's reduces into the
    residual (--ccl-dtype; priced, and carried into the plans' options)."""
    from ..backends.ttnn.support import check_supported
    from ..driver import target_pipeline

    if objective not in OBJECTIVES:
        raise ValueError(objective)
    check_supported(model)  # what no plan changes
    meshes = _meshes(chosen, mesh, dp, strategy)
    bound_seq = _bound(model, -1)
    context = seq or min(DEFAULT_CONTEXT, bound_seq or DEFAULT_CONTEXT)
    bound_batch = _bound(model, 0)
    formats = [f.with_kv_cache(kv_dtype).with_ccl(ccl_dtype) for f in _formats(model, weights_dtype)]
    space = _Space(chosen, formats, [batch] if batch else _pow2(bound_batch or MAX_BATCH),
                   batch, bound_batch, context, min(DEFAULT_PROMPT, context), min_tokens_per_s_per_user, max_ttft_ms)
    shared = target_pipeline().shared(model)  # the passes before sharding: once for every mesh
    for shape, use_dp, strategy_ in meshes:
        _search_mesh(model, shared, space, shape, use_dp, strategy_)
    kinds = format_kinds(model)
    bits = {f: format_bits(model, f, kinds) for f in space.formats}
    plans = _distinct(sorted(space.plans, key=lambda p: rank_key(objective, p, bits[p.weights_dtype])), space)
    floors = {"min_tokens_per_s_per_user": min_tokens_per_s_per_user, "max_ttft_ms": max_ttft_ms}
    return Search(model.name, chosen, objective, context, space.prompt, floors, space.mesh_rows, space.formats,
                  space.batches, space.candidates, plans,
                  dict(sorted(space.excluded.items(), key=lambda kv: (-kv[1], kv[0]))))


def _formats(model: Model, weights_dtype: WeightFormats | None) -> list[WeightFormats]:
    """The weight formats searched: the one given (checked against the model's kinds), or every choice."""
    from ..analysis.memory import check_weight_formats

    if weights_dtype is None:
        return format_choices(model)
    check_weight_formats(model, weights_dtype)
    return [weights_dtype]


def _meshes(target: Target, mesh: tuple[int, int] | None, dp: bool | None,
            strategy: Strategy | None) -> list[tuple[tuple[int, int], bool, Strategy]]:
    """(mesh, dp, strategy) of every sharding searched: the given mesh, or every sub-mesh of `target`."""
    from ..driver import resolve_options

    if strategy is not None:  # a UsageError for a strategy the mesh or --dp rules out
        resolve_options(target, BF16, mesh, bool(dp), 1, strategy)
    one_axis = strategy in (None, "1d")
    two_axes = strategy in (None, "2d") and not dp
    if mesh is not None:
        shape = resolve_options(target, BF16, mesh).mesh
        return ([(shape, bool(dp) and min(shape) > 1, "1d")] if one_axis else []) + \
               ([(shape, False, "2d")] if two_axes and min(shape) >= 2 else [])
    meshes = [(m, use_dp, "1d") for m, use_dp in sub_meshes(target) if one_axis and (dp is None or not dp or use_dp)]
    return meshes + [(m, False, "2d") for m in sub_meshes_2d(target) if two_axes]


def _search_mesh(model: Model, shared, space: _Space, shape: tuple[int, int], use_dp: bool, strategy: str) -> None:
    """Shard `model` (PIPELINE.shared's result: `shared`) once over `shape` and try every format and batch on it."""
    from ..analysis.memory import memory_model, weight_layouts
    from ..driver import dram_sharded, target_pipeline
    from ..passes.pipeline import Sharding

    row = {"mesh": list(shape), "dp": use_dp, "strategy": strategy}
    space.mesh_rows.append(row)
    try:
        lowered = target_pipeline().finish(shared, Sharding(shape, strategy, use_dp))
    except ArchError as e:
        row["excluded"] = e.diagnostic.message
        n = len(space.formats) * len(space.batches)
        space.candidates += n
        space.exclude(f"the sharding planner refuses {shape[0]}x{shape[1]}" + (" 2-D" if strategy == "2d" else "")
                      + f": {e.diagnostic.message}", n)
        return
    plan = lowered.plan
    row["tensor_parallel"] = plan.group
    row["replicas"] = plan.replicas
    # one sharding in every format: what does not depend on the formats is found once per mesh
    layouts = weight_layouts(model, plan)
    shared_memory = memory_model(model, lowered.model, space.target, space.formats[0], plan, layouts)
    table: list[OpTable] = []  # tabled when a candidate first fits (a mesh none fits on never needs it)
    for fmt in space.formats:
        sharded = dram_sharded(lowered.model, plan, space.target, fmt)  # the program's DRAM-sharded matrices
        _search_format(model, lowered.model, plan, space, row, strategy, fmt,
                       in_formats(shared_memory, model, fmt, plan, layouts, sharded, lowered.model), table)


def _search_format(model: Model, lowered: Model, plan, space: _Space, row: dict, strategy: str, fmt: WeightFormats,
                   memory, table: list[OpTable]) -> None:
    """Every batch of one (mesh, format): kept as a Plan where it fits and meets the floors."""
    shape, use_dp, context, prompt = tuple(row["mesh"]), row["dp"], space.context, space.prompt
    build = Build(model, lowered, Options(space.target, shape, use_dp, fmt, strategy=strategy), plan, memory)
    # decode puts a replica's users on the rows of one tile
    largest = min(memory.max_batch(context), MAX_DECODE_USERS * memory.replicas)
    tries = sorted(set(space.batches) | ({largest} if not space.fixed_batch
                                         and 0 < largest < (space.bound_batch or MAX_BATCH) else set()))
    space.candidates += len(tries)
    too_many = [b for b in tries if memory.local_batch(b) > MAX_DECODE_USERS]
    if too_many:
        space.exclude(f"more than {MAX_DECODE_USERS} users per replica (decode puts them on the rows of one tile)",
                      len(too_many))
        tries = [b for b in tries if b not in too_many]
    fitting = [b for b in tries if memory.usage(b, context).fits]
    if len(fitting) < len(tries):
        space.exclude(f"does not fit the DRAM at context {context:,}", len(tries) - len(fitting))
    if not fitting:
        return
    if not table:
        table.append(OpTable(lowered, plan, space.target))
    ttft_ms = table[0].price(build, "prefill", 1, prompt, prompt).time_s * 1e3
    if space.max_ttft_ms is not None and ttft_ms > space.max_ttft_ms:
        space.exclude(f"time to first token above --max-ttft-ms {space.max_ttft_ms:g}", len(fitting))
        return
    floor = space.min_tokens_per_s_per_user
    for users in fitting:
        decode = table[0].price(build, "decode", users, 1, context)
        step = decode.time_s
        if floor is not None and 1.0 / step < floor:
            space.exclude(f"tokens/s/user below --min-tokens-per-s-per-user {floor:g}")
            continue
        space.plans.append(Plan(shape, use_dp, row["tensor_parallel"], memory.replicas, fmt, users, context,
                                prompt, memory.usage(users, context).total, memory.dram, ttft_ms, step * 1e3,
                                1.0 / step, users / step, decode, strategy))


def _distinct(plans: list[Plan], space: _Space) -> list[Plan]:
    """Ranked plans without those that only add replicas the batch leaves idle: the same plan on more chips."""
    seen: set[tuple] = set()
    distinct = []
    for p in plans:
        key = (p.strategy, p.tensor_parallel, p.weights_dtype, p.batch, p.ttft_ms, p.decode_ms_per_step,
               p.memory_per_chip)
        if key in seen:
            space.exclude("the same modelled plan as one on fewer chips (replicas the batch leaves idle)")
        else:
            seen.add(key)
            distinct.append(p)
    return distinct


def _bound(model: Model, axis: int) -> int | None:
    from ..analysis.memory import _bound as bound

    return bound(model, axis)


def best(model: Model, target: Target, **kwargs) -> Plan:
    """The top plan, or an ArchError saying why there is none (with what the best candidates reach)."""
    result = search(model, target, **kwargs)
    if result.plans:
        return result.plans[0]
    raise no_plan(model, result, **kwargs)


def no_plan(model: Model, result: Search, **kwargs) -> ArchError:
    floors = [f"{name} {value:g}" for name, value in (
        ("--min-tokens-per-s-per-user", result.floors["min_tokens_per_s_per_user"]),
        ("--max-ttft-ms", result.floors["max_ttft_ms"])) if value is not None]
    message = (f"no plan for {model.name} on {result.target.name} "
               + (f"meets {' and '.join(floors)}" if floors else "fits")
               + f" (of {result.candidates:,} candidates at context {result.context:,})")
    hint = "candidates excluded: " + "; ".join(f"{n:,}: {reason}" for reason, n in result.excluded.items())
    if floors:  # what is reachable without them
        free = {k: v for k, v in kwargs.items() if k not in ("min_tokens_per_s_per_user", "max_ttft_ms")}
        loose = search(model, result.target, **free)
        if loose.plans:
            fastest = max(loose.plans, key=lambda p: p.tokens_per_s_per_user)
            quickest = min(loose.plans, key=lambda p: p.ttft_ms)
            hint += (f"; without the floors the best reach {fastest.tokens_per_s_per_user:.1f} tokens/s/user "
                     f"({' '.join(fastest.options())} at batch {fastest.batch}) and a first token in "
                     f"{quickest.ttft_ms:.1f} ms")
    return ArchError(message, model.loc, hint=hint)


def render_search(s: dict, compile_command: str) -> str:
    """`compile_command`: the `ttspec compile ... --plan best` line that compiles the top plan."""
    floors = [f"{name} >= {value:g}" if "min" in key else f"{name} <= {value:g}"
              for key, name in (("min_tokens_per_s_per_user", "tokens/s/user"), ("max_ttft_ms", "first token ms"))
              if (value := s["floors"][key]) is not None]
    space = s["space"]
    lines = [f"{s['model']} on {s['target']}: plans ranked by {s['objective']} ("
             + ("decode tokens/s per user" if s["objective"] == "latency" else "tokens/s at the batch")
             + f"), context {s['context']:,}, prompt {s['prompt']}" + (f", {', '.join(floors)}" if floors else ""),
             ""]
    header = ("rank", "mesh", "strategy", "TP", "DP", "weights", "batch", "mem/chip", "TTFT ms", "ms/step", "t/s/u",
              "t/s", "decode bound by")
    rows = [header]
    for p in s["plans"]:
        rows.append((str(p["rank"]), f"{p['mesh'][0]}x{p['mesh'][1]}", p["strategy"], str(p["tensor_parallel"]),
                     str(p["replicas"]), p["weights_dtype"], str(p["batch"]),
                     f"{p['memory_per_chip'] / 1e9:.1f} GB ({100 * p['memory_per_chip'] / p['dram']:.0f}%)",
                     f"{p['ttft_ms']:.1f}", f"{p['decode_ms_per_step']:.2f}", f"{p['tokens_per_s_per_user']:.1f}",
                     f"{p['tokens_per_s']:.1f}", p["decode_bottleneck"]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    right = {0, 3, 4, 6, 7, 8, 9, 10, 11}
    for r in rows:
        lines.append("  " + "  ".join(c.rjust(w) if i in right else c.ljust(w)
                                      for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip())
    meshes = ", ".join(f"{m['mesh'][0]}x{m['mesh'][1]}" + (" dp" if m["dp"] else "")
                       + (" 2d" if m["strategy"] == "2d" else "") for m in space["meshes"])
    batches = (f"batch {space['batches'][0]}" if len(space["batches"]) == 1 else
               f"batches {space['batches'][0]}..{space['batches'][-1]} (powers of two, plus the largest that fits)")
    n_meshes = f"{len(space['meshes'])} mesh" + ("es" if len(space["meshes"]) > 1 else "")
    n_formats = f"{len(space['weights_dtypes'])} weight format" + ("s" if len(space["weights_dtypes"]) > 1 else "")
    lines += ["", f"searched {space['candidates']:,} candidates: {n_meshes} ({meshes}) x {n_formats} x {batches}; "
              f"kept {s['kept']:,}"]
    if s["excluded"]:
        lines.append("excluded:")
        lines += [f"  {n:>7,}  {reason}" for reason, n in s["excluded"].items()]
    if s["plans"]:
        top = s["plans"][0]
        lines += ["", f"compile the top plan: {compile_command}",
                  f"  (the same as --target {s['target']} {top['options']}; run it at batch {top['batch']})",
                  "the spec language has no mesh or dtype statements, so a plan is not written back to the spec"]
    return "\n".join(lines)

