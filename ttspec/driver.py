"""The one driver: spec file -> verified IR (load_model) -> lowered, sharded, sized program (compile_source).

Every command and the tests go through here. No torch, no ttnn."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .analysis.interpreters import verify
from .errors import ArchError

if TYPE_CHECKING:
    from .passes.shard import ShardPlan
    from .targets import Target
from .frontend.parser import parse_source, read_source
from .ir.elaborate import elaborate
from .ir.graph import Model


def load_model(path: str | Path) -> Model:
    path = Path(path)
    text = read_source(path)
    module = parse_source(text, str(path))
    model = elaborate(module, path.resolve().parent)
    verify(model)
    return model


@dataclass
class Options:
    """Everything a target program depends on besides the spec."""

    target: Target
    mesh: tuple[int, int]  # the device mesh the program runs on; (1, 1) for one chip
    dp: bool = False  # 2-D meshes: split the batch over the axis not used for tensor parallelism
    weights_dtype: str = "bf16"


@dataclass
class Build:
    """The pipeline's result for a TT-NN target: the lowered (and, on a mesh, sharded) model,
    its sharding plan, and the weight bytes per chip the program will hold."""

    model: Model  # as the user wrote it
    lowered: Model  # after the lowering passes and the sharding planner
    options: Options
    shard_plan: ShardPlan | None
    weight_bytes: int


def resolve_options(target: str, weights_dtype: str = "bf16", mesh: str | None = None, dp: bool = False) -> Options:
    """Command-line values -> Options, with a clear error for a mesh the target cannot hold."""
    from .targets import get_target, parse_mesh

    chosen = get_target(target)
    shape = parse_mesh(mesh) if mesh else None
    if shape and shape[0] * shape[1] > chosen.chips:
        raise ArchError(f"--mesh {mesh} needs {shape[0] * shape[1]} chips; {target} has {chosen.chips}")
    return Options(chosen, shape or chosen.mesh, dp, weights_dtype)


def lower(model: Model) -> Model:
    """The lowering passes every TT-NN target runs (see ttspec/passes/fuse.py)."""
    from .passes.fuse import fuse_activations, fuse_qkv

    return fuse_activations(fuse_qkv(model))


def build(model: Model, options: Options) -> Build:
    """lower -> shard -> memory: everything a TT-NN program is generated from."""
    from .codegen.ttnn_backend import check_fits, check_supported

    check_supported(model)
    lowered = lower(model)
    shard_plan = None
    if options.mesh != (1, 1):
        from .passes.shard import plan_sharding

        lowered, shard_plan = plan_sharding(lowered, options.mesh, dp=options.dp)
    need = check_fits(model, options.target, options.weights_dtype, shard_plan)
    return Build(model, lowered, options, shard_plan, need)


def compile_source(model: Model, spec: str, target: str, weights_dtype: str = "bf16", mesh: str | None = None,
                   dp: bool = False) -> str:
    """The generated program's source for a target name (`torch` or a Tenstorrent target)."""
    if target == "torch":
        from .codegen.torch_backend import compile_torch

        return compile_torch(model, spec)
    from .codegen.ttnn_backend import compile_ttnn

    return compile_ttnn(build(model, resolve_options(target, weights_dtype, mesh, dp)), spec)
