"""The one driver: spec file -> verified IR (load_model) -> lowered, sharded, sized program (compile_source).

Every command and the tests go through here. No torch, no ttnn."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .analysis.interpreters import verify
from .errors import ArchError, UsageError
from .records import Record, fresh
from .targets import TILE, TORCH, TWO_D_MESHES, Strategy, Target, mesh_text
from .weight_formats import BF16, DTYPES, WeightFormats

if TYPE_CHECKING:
    from .analysis.memory import Memory
    from .ir.sharding import ShardPlan
    from .passes.pipeline import Lowered
from .elaborate import elaborate
from .families import FAMILIES, SHORT_FORMS
from .frontend.parser import parse_source, read_source
from .frontend.source import source_text
from .ir.graph import Model

MAX_DECODE_USERS = TILE  # decode puts the users on the rows of one tile


def load_model(path: str | Path, text: str | None = None) -> Model:
    """The spec at `path` elaborated and verified; `text`: its contents where they are not the file's (an
    editor's unsaved buffer), its imports still resolved next to `path`."""
    path = Path(path)
    text = read_source(path) if text is None else source_text(text, str(path))
    module = parse_source(text, str(path), short_forms=SHORT_FORMS)
    model = elaborate(module, path.resolve().parent, FAMILIES)
    verify(model)
    return model


class Options(Record):
    """Everything a target program depends on besides the spec."""

    target: Target
    mesh: tuple[int, int]  # the device mesh the program runs on; (1, 1) for one chip
    dp: bool = False  # 2-D meshes: split the batch over the axis not used for tensor parallelism
    weights_dtype: WeightFormats = BF16  # one dtype, or formats per kind (`attention=bfloat8_b,mlp=bfloat4_b`)
    batch: int = 1  # users the program's KV cache is sized for (decode runs up to 32 per step)
    strategy: Strategy | None = None  # tensor parallelism "1d" or "2d" (both mesh axes); None: the planner chooses


class Build(Record):
    """The pipeline's result for a TT-NN target: the lowered (and, on a mesh, sharded) model,
    its sharding plan, and its memory model (what one chip holds; ttspec/analysis/memory.py)."""

    model: Model  # as the user wrote it
    lowered: Model  # after the lowering passes and the sharding planner
    options: Options
    shard_plan: ShardPlan  # one chip: a 1x1 mesh with no axes
    memory: Memory
    strategy_reason: str = ""  # why the planner chose this plan's strategy over the other (choose_strategy)
    weighed: list[Build] = fresh(list)  # the other strategies' builds choose_strategy weighed

    @property
    def weight_bytes(self) -> int:
        """Device DRAM bytes of the weights on one chip."""
        return self.memory.weights_total

    @property
    def fits(self) -> bool:
        """Weights, the KV cache of the batch and activations at one tile of context fit one chip."""
        return self.memory.fits(self.options.batch)

    @property
    def context(self) -> int | None:
        """The longest sequence the program accepts: the spec's bound on `seq`, lowered to the
        largest context that fits with the KV cache of the batch (None: no bound and nothing limits it)."""
        return self.memory.max_context(self.options.batch) or None


def resolve_options(chosen: Target, weights_dtype: WeightFormats = BF16, mesh: tuple[int, int] | None = None,
                    dp: bool = False, batch: int = 1, strategy: Strategy | None = None) -> Options:
    """Typed command-line values -> Options, with a clear error for a mesh the target cannot hold."""
    target, shape = chosen.name, mesh
    if shape and shape[0] * shape[1] > chosen.chips:
        raise UsageError(f"--mesh {mesh_text(shape)} needs {shape[0] * shape[1]} chips; {target} has {chosen.chips}",
                         hint=f"{target} is a {chosen.mesh[0]}x{chosen.mesh[1]} mesh; pick a sub-mesh of it "
                              "or a bigger target")
    if batch < 1:
        raise UsageError(f"--batch {batch}: the KV cache needs at least one user")
    shape = shape or chosen.mesh
    if strategy == "2d" and min(shape) < 2:
        raise UsageError(f"--strategy 2d needs a mesh with two axes of 2 or more chips; {target}"
                         + (f" --mesh {mesh_text(mesh)}" if mesh else "") + f" is {shape[0]}x{shape[1]}",
                         hint=f"2-D tensor parallelism is for {TWO_D_MESHES}; use --strategy 1d here")
    if strategy == "2d" and dp:
        raise UsageError("--dp and --strategy 2d both claim the second mesh axis",
                         hint="--dp splits the batch over it (with 1-D tensor parallelism); 2-D tensor parallelism "
                              "splits the weights over it")
    return Options(chosen, shape, dp, weights_dtype, batch, strategy)


def lower(model: Model) -> Model:
    """The passes that come before sharding (passes/pipeline.py: PIPELINE.shared), which every mesh shares."""
    from .passes.pipeline import PIPELINE

    return PIPELINE.shared(model).model


def prepare(model: Model, options: Options) -> Build:
    """lower -> shard -> memory: what `plan` and `check --target` report. Refuses only what the
    backend cannot do (with the reason); a model that does not fit is reported, not refused."""
    from .backends.ttnn.support import check_supported

    check_supported(model)
    from .analysis.memory import check_weight_formats

    check_weight_formats(model, options.weights_dtype)  # the memory model's kinds (a tied head's own copy: `head`)
    shared = _shared(model)  # lowered once for every strategy weighed
    if options.mesh == (1, 1):  # one chip: no strategy to weigh (its plan has no axes, whichever is asked)
        return _prepare(model, options, "1d", shared)
    first, *others = [options.strategy] if options.strategy else strategies_allowed(options.mesh, options.dp)
    builds = [_prepare(model, options, first, shared)]  # the first (1-D) must build: its refusal is the error to show
    for strategy in others:  # a strategy the user did not force is simply not a candidate where it cannot build
        builds += _try_prepare(model, options, strategy, shared)
    return choose_strategy(builds, options)


def strategies_allowed(mesh: tuple[int, int], dp: bool) -> tuple[str, ...]:
    """The strategies a mesh allows whatever the options force: 1-D on any mesh, and 2-D as well on a
    mesh with two axes of 2 or more chips that --dp does not claim."""
    if mesh == (1, 1):
        return ()
    return ("1d", "2d") if min(mesh) >= 2 and not dp else ("1d",)


def _try_prepare(model: Model, options: Options, strategy: str, shared: Lowered) -> list[Build]:
    """The build with `strategy`, or none when the model cannot be sharded so."""
    try:
        return [_prepare(model, options, strategy, shared)]
    except ArchError:
        return []


def strategy_builds(model: Model, options: Options, chosen: Build | None = None) -> list[tuple[str, Build | ArchError]]:
    """Every strategy the mesh allows (strategies_allowed), built whether or not the options force one,
    or the planner's refusal: what `ttspec plan` compares. `chosen`: a build already made for one of them."""
    # built already: the chosen plan, and those the planner weighed
    made = {b.shard_plan.strategy: b for b in ([chosen] + chosen.weighed if chosen is not None else [])}
    out: list[tuple[str, Build | ArchError]] = []
    shared = None
    for strategy in strategies_allowed(options.mesh, options.dp):
        if strategy in made:
            out.append((strategy, made[strategy]))
            continue
        try:
            shared = shared or _shared(model)
            out.append((strategy, _prepare(model, options, strategy, shared)))
        except ArchError as e:
            out.append((strategy, e))
    return out


STRATEGY_LABELS = {"1d": "1-D", "2d": "2-D"}
CHOICE_CONTEXT = 2048  # the context at which choose_strategy prices a decode step (or less where it must)


def choice_context(builds: list[Build]) -> int:
    """The context choose_strategy prices the decode steps at: 2048, or the shortest any of them accepts."""
    return min([CHOICE_CONTEXT] + [b.context for b in builds if b.context])


def choose_strategy(builds: list[Build], options: Options) -> Build:
    """Memory first: a plan that fits beats one that does not, and among plans that fit (or none)
    the one with more DRAM beside its weights, unless the cost model prices its decode step
    slower; ties go to the first (1-D: fewer collectives). The choice and its reason go into the
    plan's notes and Build.strategy_reason."""
    from .analysis.cost import estimate

    fitting = [b for b in builds if b.fits] or builds
    context = choice_context(fitting)
    steps: dict[int, float] = {}

    def step_s(build: Build) -> float:
        if id(build) not in steps:
            steps[id(build)] = estimate(build, options.batch, context, prompt=TILE).decode_s
        return steps[id(build)]

    roomiest = max(fitting, key=lambda b: b.memory.dram - b.memory.weights_total)
    chosen = roomiest
    if len(fitting) > 1 and step_s(roomiest) > step_s(fitting[0]):
        chosen = fitting[0]
    if len(builds) > 1:
        other = next(b for b in builds if b is not chosen)
        name, other_name = (STRATEGY_LABELS[b.shard_plan.strategy] for b in (chosen, other))
        at = f"at batch {options.batch}, context {context:,}"
        fit = all(b.fits for b in builds)
        verdict = "both fit" if fit else f"neither fits {options.target.name} at batch {options.batch}"
        if len(fitting) > 1 and chosen is roomiest:
            room = "leaves more DRAM beside its weights" if fit else "needs less DRAM"
            reason = (f"{verdict}; {name} {room} ({chosen.weight_bytes:,} against "
                      f"{other.weight_bytes:,} bytes of weights per chip) and its modelled decode step is no slower "
                      f"({step_s(chosen) * 1e3:.2f} against {step_s(other) * 1e3:.2f} ms {at})")
        elif len(fitting) > 1:
            reason = (f"{verdict}; {other_name} holds fewer bytes of weights per chip ({other.weight_bytes:,} "
                      f"against {chosen.weight_bytes:,}) but its modelled decode step is slower "
                      f"({step_s(other) * 1e3:.2f} against {name}'s {step_s(chosen) * 1e3:.2f} ms {at})")
        else:
            reason = (f"only {name} fits {options.target.name} at batch {options.batch} ({chosen.weight_bytes:,} "
                      f"against {other.weight_bytes:,} bytes of weights per chip)")
        chosen.strategy_reason = reason
        chosen.weighed = [b for b in builds if b is not chosen]
        strategies = (chosen.shard_plan.strategy.upper(), other.shard_plan.strategy.upper())
        chosen.shard_plan.notes.insert(0, f"the planner chose {strategies[0]} tensor parallelism over {strategies[1]}: "
                                          f"{reason}; --strategy forces one")
    return chosen


def target_pipeline():
    """The pass pipeline (passes/pipeline.py) for the TT-NN backend: its linears apply the activations
    its lowering table says they can (FUSED_ACTIVATIONS)."""
    from .backends.ttnn.lower import FUSED_ACTIVATIONS
    from .passes.pipeline import PIPELINE

    return PIPELINE.for_target(FUSED_ACTIVATIONS)


def fits_on(model: Model, targets: list[Target]) -> dict[str, bool | ArchError]:
    """Whether the model fits each target on its whole mesh, bf16 weights, batch 1: what `ttspec plan` says
    (its chosen plan fits exactly when one of the strategies it weighs fits: memory comes first), without
    pricing the strategies against each other, and lowered once for all the targets. A target whose backend
    or mesh refuses the model (plan's error) maps to that ArchError."""
    from .analysis.memory import check_weight_formats
    from .backends.ttnn.support import check_supported

    try:
        check_supported(model)
        check_weight_formats(model, BF16)
    except ArchError as e:
        return {t.name: e for t in targets}
    shared, out = _shared(model), {}
    for target in targets:
        options = resolve_options(target)
        out[target.name] = False
        for i, strategy in enumerate(strategies_allowed(options.mesh, options.dp) or ("1d",)):
            try:
                if _prepare(model, options, strategy, shared).fits:
                    out[target.name] = True
                    break
            except ArchError as e:  # the first (1-D) must build, as in prepare; another is simply not a candidate
                if i == 0:
                    out[target.name] = e
                    break
    return out


def _shared(model: Model) -> Lowered:
    return target_pipeline().shared(model)


def _prepare(model: Model, options: Options, strategy: str, shared: Lowered) -> Build:
    """The pipeline's passes from `shared` (PIPELINE.shared(model)) on with `strategy` over the options'
    mesh (one chip: a 1x1 mesh, which the sharding pass plans with no axes), then the memory model of the
    result."""
    from .analysis.memory import memory_model
    from .passes.pipeline import Sharding

    lowered = target_pipeline().finish(shared, Sharding(options.mesh, strategy, options.dp))
    sharded = dram_sharded(lowered.model, lowered.plan, options.target, options.weights_dtype)
    memory = memory_model(model, lowered.model, options.target, options.weights_dtype, lowered.plan, sharded=sharded)
    return Build(model, lowered.model, options, lowered.plan, memory)


def dram_sharded(lowered: Model, plan: ShardPlan, target: Target, weights_dtype: WeightFormats):
    """The matrices the TT-NN program of `lowered` DRAM-shards (its backend's layer plan, and the LM head's column
    chunks): the memory model counts their banks' whole shards."""
    from .backends.ttnn.lower_head import head_matrices
    from .backends.ttnn.lower_matmul import sharded_matrices

    return sharded_matrices(lowered.graph, plan, target, weights_dtype) + head_matrices(lowered.graph, plan, target,
                                                                                       weights_dtype)


def build(model: Model, options: Options) -> Build:
    """lower -> shard -> memory: everything a TT-NN program is generated from; refused (before
    ttnn is touched) when the model does not fit the target (see analysis/memory.py)."""
    result = prepare(model, options)
    users = result.memory.local_batch(options.batch)
    if users > MAX_DECODE_USERS:
        replicas = result.memory.replicas
        raise UsageError(f"--batch {options.batch}: {users} users per program" + (f" (over {replicas} data-parallel "
                         "replicas)" if replicas > 1 else "") + f"; a decode step holds 1 to {MAX_DECODE_USERS}",
                         hint=f"decode puts the users on the {MAX_DECODE_USERS} rows of a tile; serve more users "
                              "with more programs (or --dp on a 2-D mesh)")
    if not result.fits:
        raise not_fitting(result)
    return result


def not_fitting(result: Build) -> ArchError:
    """The one message for a model that does not fit, with the options that would."""
    model, memory, options = result.model, result.memory, result.options
    per = " per chip" if result.shard_plan.chips > 1 else ""
    target = options.target.name
    if memory.weights_total > memory.dram:
        message = (f"{model.name} needs {memory.weights_total:,} bytes of DRAM{per} for {options.weights_dtype} "
                   f"weights; {target} has {memory.dram:,}{per}")
    else:
        use = memory.usage(options.batch, TILE)
        message = (f"{model.name} needs {use.total:,} bytes of DRAM{per} ({use.weights_total:,} for "
                   f"{options.weights_dtype} weights, {use.kv_cache:,} for the KV cache and {use.activations:,} for "
                   f"activations at batch {options.batch} and one tile of context); {target} has "
                   f"{memory.dram:,}{per}")
    return ArchError(message, model.loc, hint=fitting_options(model, options)
                     + f"; `ttspec plan SPEC --target {target}` shows the memory per chip")


def fitting_options(model: Model, options: Options) -> str:
    """A hint naming smaller weight dtypes and bigger targets on which the model fits."""
    from .targets import TARGETS

    def fits(candidate: Options) -> bool:
        try:
            return prepare(model, candidate).fits
        except ArchError:  # e.g. heads that do not split over the target's devices
            return False

    dtypes = [WeightFormats(d).like(options.weights_dtype) for d in DTYPES]  # most precise first
    smaller = dtypes[dtypes.index(options.weights_dtype) + 1:] if options.weights_dtype in dtypes else dtypes[2:]
    chips = options.mesh[0] * options.mesh[1]
    bigger = [t for t in sorted(TARGETS.values(), key=lambda t: t.dram_per_chip * t.chips)
              if t.dram_per_chip * t.chips > options.target.dram_per_chip * chips]
    parts = []
    dtype = next((d for d in smaller if fits(Options(options.target, options.mesh, options.dp, d))), None)
    if dtype:
        parts.append(f"use --weights-dtype {dtype}")
    targets = [t.name for t in bigger if fits(Options(t, t.mesh, options.dp, options.weights_dtype))]
    if targets:
        parts.append(f"a bigger target ({', '.join(targets)})")
    if not parts:
        both = next(((t.name, d) for d in smaller for t in bigger if fits(Options(t, t.mesh, options.dp, d))), None)
        if both is None:
            return "use a smaller model: it fits no target with any weights dtype"
        parts.append(f"use --target {both[0]} --weights-dtype {both[1]}")
    return " or ".join(parts)


def compile_program(model: Model, spec: str, target: Target, weights_dtype: WeightFormats = BF16,
                    mesh: tuple[int, int] | None = None, dp: bool = False, batch: int = 1,
                    strategy: Strategy | None = None) -> tuple[str, Build | None]:
    """The generated program's source for a target (targets.TORCH or a Tenstorrent target), and
    for a Tenstorrent target the Build it came from (its memory model, the context it accepts)."""
    if target is TORCH:
        from .backends.torch.backend import compile_torch

        return compile_torch(model, spec, weights_dtype), None
    from .backends.ttnn.backend import compile_ttnn

    result = build(model, resolve_options(target, weights_dtype, mesh, dp, batch, strategy))
    return compile_ttnn(result, spec), result


def compile_source(model: Model, spec: str, target: Target, weights_dtype: WeightFormats = BF16,
                   mesh: tuple[int, int] | None = None, dp: bool = False, batch: int = 1,
                   strategy: Strategy | None = None) -> str:
    """The generated program's source for a target (targets.TORCH or a Tenstorrent target)."""
    return compile_program(model, spec, target, weights_dtype, mesh, dp, batch, strategy)[0]
