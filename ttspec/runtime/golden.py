"""Golden mode: a generated TT-NN program run on the host with ttnn's own golden functions.

On a mesh, a tensor is a list of per-device torch tensors (MeshTensor): mesh mappers split
or replicate host tensors exactly as the program's placements say, every op's golden runs
on each device's shard separately, and collectives are ttnn's collective goldens, which
combine the shards.

`GoldenTTNN` stands in for the `ttnn` module. Every op the program calls is replaced by
`ttnn.get_golden_function(op)`, ttnn's torch reference for that op, so op semantics come
from ttnn itself. The stand-in only moves data: `from_torch` casts to the tensor's dtype (a
block float, bfloat8_b or bfloat4_b, goes through ttnn's own host conversion to that format
and back, so weights carry exactly the rounding a device's copy has: see `quantise`),
`to_torch` returns the tensor, and devices are placeholders. An op without a
golden in ttnn 0.81.1 runs ttspec's labelled reference for it (golden_decode.py, each tested
against golden-backed ops) where there is one, and raises otherwise.
"""

from __future__ import annotations

import types

from ..ops import ALL_REDUCE, MESH_PARTITION, REDUCE_SCATTER
from ..ops import COLLECTIVES as COLLECTIVE_OPS
from .golden_decode import DECODE_REFERENCES, paged_update_cache_reference  # noqa: F401 (tests import it here)


class GoldenUnavailable(RuntimeError):
    pass


class _GridSize:
    x, y = 8, 8  # a Wormhole's worker grid, for programs that size sharded layouts


class _DramGridSize:
    x, y = 12, 1  # a Wormhole's 12 DRAM banks, as the mock n150's device.dram_grid_size() gives them


class _HostDevice:
    """Placeholder for a device in golden mode."""

    def compute_with_storage_grid_size(self):
        return _GridSize()

    def dram_grid_size(self):  # programs width-shard decode weights over the DRAM banks
        return _DramGridSize()

    def __repr__(self) -> str:
        return "<golden host device>"


HOST = _HostDevice()


class GoldenTTNN:
    def __init__(self, ttnn_module=None):
        if ttnn_module is None:
            from .device import import_ttnn

            ttnn_module = import_ttnn()
        self._ttnn = ttnn_module
        self._cache: dict[str, object] = {}
        self.calls: dict[str, int] = {}  # op name -> how many times its golden ran

    def __getattr__(self, name: str):
        return self._resolve(name, getattr(self._ttnn, name))

    def _resolve(self, qualified: str, real):
        if qualified in self._cache:
            return self._cache[qualified]
        if qualified in DATA_MOVEMENT:
            value = types.MethodType(DATA_MOVEMENT[qualified], self)
        elif qualified in REFERENCES:
            value = self._reference(qualified, REFERENCES[qualified])
        elif isinstance(real, types.ModuleType) or qualified in ("transformer", "experimental"):
            value = _Namespace(self, qualified, real)
        elif callable(real) and hasattr(real, "python_fully_qualified_name"):
            value = self._golden(qualified, real)
        else:
            value = real  # dtypes, layouts, memory configs, enums
        self._cache[qualified] = value
        return value

    def _reference(self, qualified: str, reference):
        reference = _rounding_writes(self._ttnn, qualified, reference)

        def run(*args, **kwargs):
            self.calls[qualified] = self.calls.get(qualified, 0) + 1
            try:
                return _per_device(reference, args, kwargs)
            except NotImplementedError as e:  # an argument the reference does not model
                raise GoldenUnavailable(f"ttnn.{qualified}: {e}") from e

        run.__name__ = f"reference_{qualified.replace('.', '_')}"
        return run

    def _golden(self, qualified: str, op):
        try:
            golden = self._ttnn.get_golden_function(op)
        except Exception as e:
            raise GoldenUnavailable(f"ttnn.{qualified} has no golden function in this ttnn") from e
        if qualified in COLLECTIVES:
            def run(tensor, *args, **kwargs):
                self.calls[qualified] = self.calls.get(qualified, 0) + 1
                block = getattr(tensor, "block_dtype", None)
                if block is not None and qualified in (REDUCE_SCATTER.name, ALL_REDUCE.name):
                    return _block_reduce(self._ttnn, qualified, tensor, block, *args, **kwargs)
                return _collective(golden, qualified, tensor, *args, **kwargs)
        else:
            golden = _rounding_writes(self._ttnn, qualified, golden)

            def run(*args, **kwargs):
                self.calls[qualified] = self.calls.get(qualified, 0) + 1
                return _block_output(self, _per_device(golden, args, kwargs), kwargs.get("dtype"))

        run.__name__ = f"golden_{qualified.replace('.', '_')}"
        return run


class _Namespace:
    def __init__(self, owner: GoldenTTNN, prefix: str, real):
        self._owner, self._prefix, self._real = owner, prefix, real

    def __getattr__(self, name: str):
        return self._owner._resolve(f"{self._prefix}.{name}", getattr(self._real, name))


def _torch_dtype(self: GoldenTTNN, dtype):
    import torch

    t = self._ttnn
    if dtype is None:
        return None
    if dtype in (t.uint32, t.int32, getattr(t, "uint16", None)):
        return torch.int32
    if dtype == t.float32:
        return torch.float32
    return torch.bfloat16  # bfloat16, and block floats after `quantise` (exact in bf16)


def _is_block_float(self: GoldenTTNN, dtype) -> bool:
    t = self._ttnn
    return dtype is not None and dtype in (t.bfloat8_b, t.bfloat4_b)


_HOST_READY = False


def quantise(ttnn_module, tensor, dtype):
    """`tensor` rounded to the block float `dtype` by ttnn's own host conversion (from_torch to
    a tile-layout host tensor of that dtype, then to_torch): shared exponents per 16 values, as
    a device holds them. No device is used, but ttnn sizes tiles through its runtime context,
    which needs a cluster: where none has been set up in this process, the context is created
    once against the mock n150 cluster descriptor (ttspec/mock/clusters), and the environment
    is restored right after, so nothing else in this process or its children sees it."""
    import os

    import torch

    global _HOST_READY
    t = ttnn_module
    key = "TT_METAL_MOCK_CLUSTER_DESC_PATH"
    patched = not _HOST_READY and key not in os.environ
    if patched:
        from ..mock.toolchain import cluster_descriptor
        from ..targets import DEFAULT_TARGET

        os.environ[key] = str(cluster_descriptor(DEFAULT_TARGET))
    try:
        host = t.from_torch(tensor.float(), dtype=dtype, layout=t.TILE_LAYOUT)
        _HOST_READY = True
    except RuntimeError as e:
        raise GoldenUnavailable(f"ttnn's host conversion to {dtype} failed: {e}") from e
    finally:
        if patched:
            del os.environ[key]
    return t.to_torch(host).reshape(tensor.shape).to(torch.bfloat16)


def _from_torch(self, tensor, dtype=None, *, layout=None, device=None, memory_config=None, mesh_mapper=None,
                **_):
    if _is_block_float(self, dtype):
        return quantise(self._ttnn, tensor, dtype)
    wanted = _torch_dtype(self, dtype)
    return tensor if wanted is None else tensor.to(wanted)


def _to_torch(self, tensor, *, mesh_composer=None, **_):
    return tensor


def _nothing_yet(self, *args, **kwargs):
    return None  # memory layouts (sharding) only place data; golden tensors are plain


def _deallocate(self, tensor, *args, **kwargs):
    return None  # host memory is freed when the program drops its last reference


def _identity(self, tensor, *args, **kwargs):
    return tensor


def _open_device(self, *args, **kwargs):
    return HOST


def _close_device(self, device):
    return None


def _allocate(self, shape, dtype=None, layout=None, device=None, memory_config=None, **_):
    """A device tensor without host data: zeros here (the program writes before it reads). One in a block
    float (a bfloat8_b KV cache) is marked with its format, so that what the cache-writing ops store into
    it is rounded to that format (_rounding_writes)."""
    import torch

    shape = [int(d) for d in shape]
    wanted = _torch_dtype(self, dtype) or torch.bfloat16
    count = device.get_num_devices() if isinstance(device, HostMesh) else 1
    shards = [torch.zeros(shape, dtype=wanted) for _ in range(count)]
    if _is_block_float(self, dtype):
        for shard in shards:
            shard.ttspec_block_float = dtype
    return MeshTensor(shards, device) if isinstance(device, HostMesh) else shards[0]


# The ops that write rows into a cache tensor in place: (cache, rows) argument positions. A device cache in a
# block float (bfloat8_b) stores the rows it is given in its format: 16 consecutive values of a tile row share
# one exponent, and a cache row (one position's head_dim values) is a tile row, so rounding the rows written
# (as ttnn's host conversion does, `quantise`) is rounding the cache they land in.
CACHE_WRITES = {"fill_cache": ((0, 1),), "update_cache": ((0, 1),), "experimental.paged_update_cache": ((0, 1),),
                "experimental.paged_fused_update_cache": ((0, 1), (2, 3))}


def _rounding_writes(ttnn_module, qualified: str, op):
    """`op` (a golden or reference, on one device's tensors) rounding what it writes into a block-float cache
    (one _allocate marked), when it is one of CACHE_WRITES; else `op` itself."""
    pairs = CACHE_WRITES.get(qualified)
    if pairs is None:
        return op

    def write(*args, **kwargs):
        args = list(args)
        for cache, rows in pairs:
            dtype = getattr(args[cache], "ttspec_block_float", None) if len(args) > rows else None
            if dtype is not None:
                args[rows] = quantise(ttnn_module, args[rows], dtype)
        return op(*args, **kwargs)

    return write


def _typecast(self, tensor, dtype, *args, **kwargs):
    """ttnn.typecast: to a block float, ttnn's own host conversion (`quantise`, per device); else its golden."""
    if not _is_block_float(self, dtype):
        return self._golden("typecast", self._ttnn.typecast)(tensor, dtype, *args, **kwargs)
    if isinstance(tensor, MeshTensor):
        return MeshTensor([quantise(self._ttnn, shard, dtype) for shard in tensor.shards], tensor.mesh)
    return quantise(self._ttnn, tensor, dtype)


DATA_MOVEMENT = {
    "allocate_tensor_on_device": _allocate,
    "create_sharded_memory_config": _nothing_yet,
    "num_cores_to_corerangeset": _nothing_yet,
    "from_torch": _from_torch,
    "to_torch": _to_torch,
    "typecast": _typecast,
    "to_device": _identity,
    "from_device": _identity,
    "to_memory_config": _identity,
    "deallocate": _deallocate,
    "open_device": _open_device,
    "close_device": _close_device,
}


# ---------------------------------------------------------------- references for ops without a golden
# ttnn ops with no golden function in ttnn 0.81.1 run ttspec's labelled reference for them, each stated
# once in golden_decode.py and tested against a composition of golden-backed ops
# (tests/test_golden_decode.py).
REFERENCES = dict(DECODE_REFERENCES)


# ---------------------------------------------------------------- meshes
# ttnn names its CCL ops as ttspec names the collectives it emits (ttspec/ops/collectives.py).
COLLECTIVES = tuple(op.name for op in COLLECTIVE_OPS)


class HostMesh:
    """Placeholder for a mesh device in golden mode."""

    def __init__(self, shape):
        self.shape = tuple(shape)

    def get_num_devices(self) -> int:
        return self.shape[0] * self.shape[1]

    def compute_with_storage_grid_size(self):
        return _GridSize()

    def dram_grid_size(self):
        return _DramGridSize()

    def __repr__(self) -> str:
        return f"<golden host mesh {self.shape[0]}x{self.shape[1]}>"


class MeshTensor:
    """One torch tensor per device, in row-major device order."""

    def __init__(self, shards, mesh: HostMesh):
        self.shards, self.mesh = list(shards), mesh

    @property
    def shape(self):
        return self.shards[0].shape

    @property
    def dtype(self):
        return self.shards[0].dtype


class _Mapper:
    def __init__(self, mesh: HostMesh, placements):
        self.mesh, self.placements = mesh, list(placements)

    def split(self, tensor) -> MeshTensor:
        rows, cols = self.mesh.shape
        shards = []
        for r in range(rows):
            for c in range(cols):
                piece = tensor
                for axis, index, size in ((0, r, rows), (1, c, cols)):
                    dim = self.placements[axis]
                    if dim is not None:
                        piece = piece.chunk(size, dim=dim)[index]
                shards.append(piece.contiguous())
        return MeshTensor(shards, self.mesh)


class _Composer:
    def __init__(self, dims):
        self.dims = list(dims)  # the tensor dim to concatenate along, per mesh axis

    def compose(self, tensor: MeshTensor):
        import torch

        rows, cols = tensor.mesh.shape
        row_values = [torch.cat(tensor.shards[r * cols:(r + 1) * cols], dim=self.dims[1]) for r in range(rows)]
        return torch.cat(row_values, dim=self.dims[0])


def _per_device(golden, args, kwargs):
    values = list(args) + list(kwargs.values())
    meshes = [a for a in values if isinstance(a, MeshTensor)] + [t for a in values if isinstance(a, (list, tuple))
                                                                  for t in a if isinstance(t, MeshTensor)]
    if not meshes:
        return golden(*args, **kwargs)
    mesh = meshes[0].mesh
    outputs = []
    for i in range(mesh.get_num_devices()):
        device_args = [_on_device(a, i) for a in args]  # a list of tensors (ttnn.concat's): each device's own
        device_kwargs = {k: _on_device(v, i) for k, v in kwargs.items()}
        outputs.append(golden(*device_args, **device_kwargs))
    if isinstance(outputs[0], tuple):
        return tuple(MeshTensor([o[j] for o in outputs], mesh) for j in range(len(outputs[0])))
    return MeshTensor(outputs, mesh)


def _on_device(value, i):
    """Device i's part of an op argument: its shard of a mesh tensor, of each mesh tensor in a list."""
    if isinstance(value, MeshTensor):
        return value.shards[i]
    if isinstance(value, (list, tuple)) and any(isinstance(t, MeshTensor) for t in value):
        return type(value)(t.shards[i] if isinstance(t, MeshTensor) else t for t in value)
    return value


def _collective(golden, name, tensor: MeshTensor, *args, cluster_axis=None, **kwargs):
    """Run ttnn's collective golden and split its combined result back into shards.

    The golden takes the per-device tensors and returns them composed into one host tensor.
    Each shard gets a new leading axis, along which the composition stacks the device groups
    of the other mesh axis, so that the composition can be undone exactly."""
    mesh = tensor.mesh
    rows, cols = mesh.shape
    dim = args[0] if args else kwargs.pop("dim", None)
    stacked = [shard.unsqueeze(0) for shard in tensor.shards]
    rank = stacked[0].dim()
    dim = None if dim is None else (dim if dim < 0 else dim + 1) % rank
    other = None if cluster_axis is None else 1 - cluster_axis
    groups = mesh.shape[other] if other is not None else 1
    shard_dims = [None, None]
    if groups > 1:
        shard_dims[other] = 0
    extra = () if name == ALL_REDUCE.name else (dim,)
    combined = golden(stacked, *extra, cluster_axis=cluster_axis, _ttnn_golden_mesh_shape=(rows, cols),
                      _ttnn_golden_mesh_shard_dims=tuple(shard_dims), **kwargs)
    per_group = combined.chunk(groups, dim=0)
    shards = []
    for r in range(rows):
        for c in range(cols):
            coordinate = (r, c)
            piece = per_group[coordinate[other]] if groups > 1 else per_group[0]
            if name in (REDUCE_SCATTER.name, MESH_PARTITION.name):  # each device keeps its slice of `dim`
                if cluster_axis is None:
                    piece = piece.chunk(rows * cols, dim=dim)[r * cols + c]
                else:
                    piece = piece.chunk(mesh.shape[cluster_axis], dim=dim)[coordinate[cluster_axis]]
            shards.append(piece.squeeze(0).contiguous())
    return MeshTensor(shards, mesh)


def _block_output(self: GoldenTTNN, out, dtype):
    """An op's output in the block float its `dtype=` asks for (`ttnn.linear(..., dtype=ttnn.bfloat8_b)`): ttnn's
    goldens compute in torch and ignore `dtype`, a device writes the format, so each device's output is rounded to
    it (quantise) and a mesh tensor remembers it (`block_dtype`), as a collective of it carries that format."""
    if not _is_block_float(self, dtype) or isinstance(out, tuple):  # several outputs: no op of ours asks that
        return out
    if isinstance(out, MeshTensor):
        rounded = MeshTensor([quantise(self._ttnn, shard, dtype) for shard in out.shards], out.mesh)
        rounded.block_dtype = dtype
        return rounded
    return quantise(self._ttnn, out, dtype)


def _block_reduce(ttnn_module, name, tensor: MeshTensor, dtype, *args, cluster_axis=None, **kwargs):
    """Reduce-scatter or all-reduce of block-float partial sums as a device adds them: along each line of
    `cluster_axis` the partial sums are added one device at a time and every running sum is re-packed in the payload's
    format before it is forwarded (n - 1 roundings over n devices, as a ring or a line does; the order of the adds
    differs by topology, the count does not). A reduce-scatter leaves device i of the line its i-th slice of `dim`.
    The exact sum is what ttnn's golden for the collective computes; tests/test_golden_ccl.py checks the two agree
    within the format's bound."""
    rows, cols = tensor.mesh.shape
    dim = args[0] if args else kwargs.get("dim")
    lines = ([[r * cols + c for r in range(rows)] for c in range(cols)] if cluster_axis == 0 else
             [[r * cols + c for c in range(cols)] for r in range(rows)] if cluster_axis == 1 else
             [list(range(rows * cols))])
    shards = [None] * (rows * cols)
    for line in lines:
        total = tensor.shards[line[0]].float()
        for device in line[1:]:
            total = quantise(ttnn_module, total + tensor.shards[device].float(), dtype).float()
        total = total.to(tensor.shards[0].dtype)
        for position, device in enumerate(line):
            piece = total.chunk(len(line), dim=dim)[position] if name == REDUCE_SCATTER.name else total
            shards[device] = piece.contiguous()
    out = MeshTensor(shards, tensor.mesh)
    out.block_dtype = dtype
    return out


def _open_mesh_device(self, mesh_shape=None, *args, **kwargs):
    return HostMesh(mesh_shape)


def _mesh_shape(self, *dims):
    return tuple(dims)


def _replicate_mapper(self, mesh):
    return _Mapper(mesh, [None, None])


def _create_mesh_mapper(self, mesh, config):
    return _Mapper(mesh, config)


def _mesh_mapper_config(self, placements):
    return [p for p in placements]


def _placement_shard(self, dim):
    return dim


def _placement_replicate(self):
    return None


def _concat_composer(self, mesh, dim):
    return _Composer([dim, dim])


def _create_mesh_composer(self, mesh, dims):
    return _Composer(dims)


def _mesh_composer_config(self, dims):
    return list(dims)


def _get_device_tensors(self, tensor):
    return tensor.shards if isinstance(tensor, MeshTensor) else [tensor]


def _nothing(self, *args, **kwargs):
    return None


def _from_torch_mesh(self, tensor, dtype=None, *, layout=None, device=None, memory_config=None, mesh_mapper=None,
                     **_):
    if mesh_mapper is None:
        return _from_torch(self, tensor, dtype)
    # each device converts its own shard, as ttnn does (block floats: per-shard tiles)
    split = mesh_mapper.split(tensor)
    return MeshTensor([_from_torch(self, shard, dtype) for shard in split.shards], split.mesh)


def _to_torch_mesh(self, tensor, *, mesh_composer=None, **_):
    if isinstance(tensor, MeshTensor):
        if mesh_composer is None:
            raise GoldenUnavailable("to_torch of a mesh tensor needs a mesh_composer")
        return mesh_composer.compose(tensor)
    return tensor


DATA_MOVEMENT.update({
    "from_torch": _from_torch_mesh,
    "to_torch": _to_torch_mesh,
    "open_mesh_device": _open_mesh_device,
    "close_mesh_device": _close_device,
    "set_fabric_config": _nothing,
    "MeshShape": _mesh_shape,
    "replicate_tensor_to_mesh_mapper": _replicate_mapper,
    "create_mesh_mapper": _create_mesh_mapper,
    "MeshMapperConfig": _mesh_mapper_config,
    "PlacementShard": _placement_shard,
    "PlacementReplicate": _placement_replicate,
    "concat_mesh_to_tensor_composer": _concat_composer,
    "create_mesh_composer": _create_mesh_composer,
    "MeshComposerConfig": _mesh_composer_config,
    "get_device_tensors": _get_device_tensors,
})
