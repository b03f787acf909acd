"""Devices and where tensors go on them. Every program opens a ttnn MeshDevice, a single chip as a
1x1 mesh (as tt_transformers does), and places every tensor with a mesh mapper: split or replicated
per mesh axis as the program's placements say."""

import torch
import ttnn

from .header import DATA_PARALLEL, FABRIC, LOGITS_SPLIT, MESH_SHAPE, TILE, TP_AXIS, TRACE_REGION, VOCAB


def open_device():
    """The program's MESH_SHAPE mesh (one chip: 1x1), with the FABRIC its collectives travel on: with
    FABRIC_1D_RING, ttnn 0.81.1 runs all_gather and reduce_scatter over a 1xN mesh axis as a Ring."""
    if MESH_SHAPE != (1, 1):  # one chip has no collectives
        ttnn.set_fabric_config(FABRIC)
    return ttnn.open_mesh_device(ttnn.MeshShape(*MESH_SHAPE), l1_small_size=8192, trace_region_size=TRACE_REGION)


def close_device(device):
    ttnn.close_mesh_device(device)


def shard(device, dims=(None, None)):
    """The mesh mapper that splits tensor dim dims[a] over mesh axis a (None replicates over that axis)."""
    if all(dim is None for dim in dims):
        return ttnn.replicate_tensor_to_mesh_mapper(device)
    placements = [ttnn.PlacementReplicate() if dim is None else ttnn.PlacementShard(dim) for dim in dims]
    return ttnn.create_mesh_mapper(device, ttnn.MeshMapperConfig(placements))


def per_axis(split: str | tuple | None) -> list:
    """A weight's split on each mesh axis: a 2-D plan names both, (rows, columns); a 1-D plan's split
    is on the tensor-parallel axis, none on the other; None: whole on every device."""
    if isinstance(split, tuple):
        return list(split)
    splits = [None, None]
    splits[TP_AXIS] = split
    return splits


def tokens_to_device(tokens, device):
    """Tokens [batch, seq] as a uint32 device tensor: the same on every device, or with DATA_PARALLEL
    split on the batch over the replicas' axis."""
    dims = (None, None)
    if DATA_PARALLEL:
        replicas = MESH_SHAPE[1 - TP_AXIS]
        if tokens.shape[0] % replicas:
            raise ValueError(f"batch {tokens.shape[0]} does not split over {replicas} data-parallel replicas")
        dims = [0, 0]
        dims[TP_AXIS] = None
    return ttnn.from_torch(tokens, dtype=ttnn.uint32, layout=ttnn.ROW_MAJOR_LAYOUT, device=device,
                           mesh_mapper=shard(device, dims))


def tp_group():
    """The device indices of the first tensor-parallel group (row-major device order): the devices along
    TP_AXIS at index 0 of the other axis."""
    step = MESH_SHAPE[1] if TP_AXIS == 0 else 1
    return [i * step for i in range(MESH_SHAPE[TP_AXIS])]


def logits_to_host(logits, device):
    """Device logits as one torch float tensor. With LOGITS_SPLIT the vocabulary slices sit side by
    side along the tensor-parallel axis: read from one tensor-parallel group where the other axis holds
    copies, and with DATA_PARALLEL the other axis's batches concatenated; otherwise every device has
    them all."""
    if not LOGITS_SPLIT:
        return ttnn.to_torch(ttnn.get_device_tensors(logits)[0]).float()
    if not DATA_PARALLEL:  # the other axis's devices hold copies of these slices: not read
        tensors = ttnn.get_device_tensors(logits)
        return torch.cat([ttnn.to_torch(tensors[i]) for i in tp_group()], dim=-1).float()
    dims = [0, 0]
    dims[TP_AXIS] = -1
    composer = ttnn.create_mesh_composer(device, ttnn.MeshComposerConfig(dims))
    return ttnn.to_torch(logits, mesh_composer=composer).float()


def best_on_device(logits, state):
    """Each row's greedy token, found on the device so that the host reads ids rather than logits: the argmax
    ([..., rows, 1] uint32; ttnn.argmax reads row-major logits) and the largest logit ([..., rows, 1] bf16
    row-major: NaN or an infinity there means the row is not finite; on a split vocabulary it says which
    device's best wins), with the width of one device's logits. With LOGITS_SPLIT each device finds the best
    of its own slice; where the slices are padded past VOCAB (zero logits that could win), the padding is
    pushed to -inf first by one add of vocab_mask, made once before any trace is captured."""
    width = logits.shape[-1]
    if LOGITS_SPLIT and width * MESH_SHAPE[TP_AXIS] != VOCAB:
        logits = ttnn.add(logits, state.keep("vocab_mask", lambda: vocab_mask(logits, state.device)))
    ids = ttnn.argmax(ttnn.untilize(logits, use_multicore=True), dim=-1, keepdim=True)
    peaks = ttnn.untilize(ttnn.max(logits, dim=-1, keepdim=True))  # row-major: the host reads rows x 2 B, not a tile
    return ids, peaks, width


def vocab_mask(logits, device):
    """0 on the columns of the vocabulary and -inf on the padding past VOCAB, split over TP_AXIS as the logits
    are (each device its slice; the other axis holds copies)."""
    *outer, width = tuple(logits.shape)
    mask = torch.zeros(*outer, width * MESH_SHAPE[TP_AXIS])
    mask[..., VOCAB:] = float("-inf")
    dims = [None, None]
    dims[TP_AXIS] = len(outer)
    return ttnn.from_torch(mask, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device,
                           mesh_mapper=shard(device, dims))


def best_to_host(best, device):
    """best_on_device's result as host tensors (ids [rows] int64, largest logits [rows] float): with
    LOGITS_SPLIT, each device of one tensor-parallel group gives the best of its slice (offset by the slice's
    start) and the largest wins, the first device on a tie (as an argmax over the whole vocabulary)."""
    ids, peaks, width = best
    group = tp_group() if LOGITS_SPLIT else [0]  # the other axis holds copies

    def read(tensors, convert):
        return torch.stack([convert(ttnn.to_torch(tensors[i]).reshape(-1)) for i in group])

    ids = read(ttnn.get_device_tensors(ids), lambda t: t.long())  # [devices, rows]
    ids += torch.arange(len(group))[:, None] * width
    peaks = read(ttnn.get_device_tensors(peaks), lambda t: t.float())
    winner = peaks.argmax(0, keepdim=True)  # the first largest (NaN counts as largest: it is reported)
    return ids.gather(0, winner)[0], peaks.gather(0, winner)[0]


def by_device(rows: torch.Tensor, counts: tuple[int, ...], head_dim: int, devices: int) -> torch.Tensor:
    """Reorder the rows of a fused [q; k; v] projection so that device i's contiguous slice holds
    its own q heads and the k/v heads they attend with (KV heads are repeated when there are
    fewer of them than devices)."""
    parts = torch.split(rows, [count * head_dim for count in counts])
    per_device = []
    for i in range(devices):
        for part, count in zip(parts, counts, strict=True):
            heads = part.reshape(count, head_dim, *part.shape[1:])
            if count % devices == 0:
                mine = heads[i * count // devices : (i + 1) * count // devices]
            else:
                mine = heads[i * count // devices : i * count // devices + 1]
            per_device.append(mine.reshape(-1, *part.shape[1:]))
    return torch.cat(per_device)


def users_sharded(device, users, head_dim):
    """Height sharding with one user's [kv_heads (padded to a tile), head_dim] on each core, as
    paged_update_cache wants its input."""
    grid = device.compute_with_storage_grid_size()
    cores = ttnn.num_cores_to_corerangeset(users, grid, row_wise=True)
    return ttnn.create_sharded_memory_config(shape=(TILE, head_dim), core_grid=cores,
                                             strategy=ttnn.ShardStrategy.HEIGHT,
                                             use_height_and_width_as_shard_shape=True)
