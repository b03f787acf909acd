"""Weights on the device: host tensors by ttspec name, placed in the layout each op wants and
split over the mesh as each weight's placement says (whole on a 1x1 mesh)."""

import torch
import ttnn

from .header import MESH_SHAPE, TILE, WEIGHTS_DTYPE
from .mesh import by_device, per_axis, shard


class Weights:
    """Host tensors by ttspec name, placed on the device in the layout each op wants."""

    def __init__(self, tensors, device, dtype=WEIGHTS_DTYPE, state=None):
        self.tensors = tensors
        self.device = device
        self.dtype = dtype
        self.state = state  # the model's RunState: what its layers read while they run

    def _tensor(self, name):
        tensor = self.tensors[name]  # bf16 stays bf16: ttnn converts it exactly, without an fp32 copy
        return tensor if tensor.dtype in (torch.float32, torch.bfloat16) else tensor.to(torch.float32)

    def _get(self, module, which, parts=None):
        if parts is None:
            return self._tensor(f"{module}.{which}")
        parent = module.rsplit(".", 1)[0]  # a fused module: its parts are its siblings
        return torch.cat([self._tensor(f"{parent}.{part}.{which}") for part in parts], dim=0)


    def _upload(self, tensor, dtype, layout, dims=(None, None), memory=None):
        """To every device of the mesh, split along dims[a] over mesh axis a (None: replicated over it);
        `memory`: the device layout (DRAM interleaved unless given)."""
        memory = memory or ttnn.DRAM_MEMORY_CONFIG
        if tensor.is_meta:  # torch meta tensors: allocate on the devices without host data (fit checks)
            shape = list(tensor.shape)
            for axis, dim in enumerate(dims):
                if dim is not None:
                    shape[dim] //= MESH_SHAPE[axis]
            return ttnn.allocate_tensor_on_device(ttnn.Shape(shape), dtype, layout, self.device, memory)
        return ttnn.from_torch(tensor, dtype=dtype, layout=layout, device=self.device,
                               memory_config=memory, mesh_mapper=shard(self.device, dims))

    def linear(self, module, parts=None, split=None, qkv_heads=None, rows=None, heads=None, input_heads=None,
               head_dim=None, dtype=None, rope_pairs=None, memory=None):
        """[out, in] weights as ttnn.linear's [in, out] operand. `split` (see per_axis): "column": each
        device holds a slice of the output features (a fused QKV by whole heads, `qkv_heads`); "row": a
        slice of the input features. `rows`: zero rows appended so the output splits evenly (vocab).
        `heads` / `input_heads`: zero-pad each head of the output / input features to whole tiles.
        `dtype`: this matrix's format when its kind has its own (--weights-dtype KIND=DTYPE).
        `rope_pairs` (heads, kv_heads) of a fused QKV: each q and k head's rows in adjacent RoPE pairs.
        `memory`: the matrix's device layout (a layer matmul's: width-sharded over the DRAM banks)."""
        weight = self._get(module, "weight", parts)
        if rope_pairs:
            weight = adjacent_rope_pairs(weight, *rope_pairs)
        if heads:
            weight = pad_heads(weight, heads, head_dim, dim=0)
        if input_heads:
            weight = pad_heads(weight, input_heads, head_dim, dim=1)
        splits = per_axis(split)
        if qkv_heads:
            weight = self._by_device(weight, qkv_heads, splits)
        if rows and rows > weight.shape[0]:
            weight = torch.nn.functional.pad(weight, (0, 0, 0, rows - weight.shape[0]))
        dims = [{"column": -1, "row": -2}.get(s) for s in splits]
        return self._upload(weight.T.contiguous(), dtype or self.dtype, ttnn.TILE_LAYOUT, dims, memory)

    def linear_chunks(self, module, widths, memories, split=None, rows=None, dtype=None):
        """An LM head's [out, in] weight as column chunks of ttnn.linear's [in, out] operand: chunk i holds
        `widths[i]` columns of each device's output slice (split="column": the vocabulary split over a mesh
        axis, `rows` its zero-padded length), placed as memories[i] says (width-sharded over the DRAM banks)."""
        weight = self._get(module, "weight")
        if rows and rows > weight.shape[0]:
            weight = torch.nn.functional.pad(weight, (0, 0, 0, rows - weight.shape[0]))
        splits = per_axis(split)
        devices = MESH_SHAPE[splits.index("column")] if "column" in splits else 1
        per = weight.shape[0] // devices
        dims = [-1 if s == "column" else None for s in splits]
        chunks, start = [], 0
        for width, memory in zip(widths, memories, strict=True):
            part = torch.cat([weight[d * per + start : d * per + start + width] for d in range(devices)])
            chunks.append(self._upload(part.T.contiguous(), dtype or self.dtype, ttnn.TILE_LAYOUT, dims, memory))
            start += width
        return chunks

    def bias(self, module, parts=None, split=None, qkv_heads=None, rows=None, heads=None, head_dim=None,
             rope_pairs=None):
        bias = self._get(module, "bias", parts)
        if rope_pairs:
            bias = adjacent_rope_pairs(bias, *rope_pairs)
        if heads:
            bias = pad_heads(bias, heads, head_dim, dim=0)
        splits = per_axis(split)
        if qkv_heads:
            bias = self._by_device(bias, qkv_heads, splits)
        if rows and rows > bias.shape[0]:
            bias = torch.nn.functional.pad(bias, (0, rows - bias.shape[0]))
        for axis, s in enumerate(splits):
            if s == "row":  # every device adds it to its partial sum, and the sums are added up
                bias = bias / MESH_SHAPE[axis]
        dims = [-1 if s == "column" else None for s in splits]
        return self._upload(bias[None], ttnn.bfloat16, ttnn.TILE_LAYOUT, dims)

    @staticmethod
    def _by_device(rows, qkv_heads, splits):
        """A fused QKV projection's rows reordered so each device's slice holds its own heads."""
        heads, kv = qkv_heads
        devices = MESH_SHAPE[splits.index("column")]
        return by_device(rows, (heads, kv, kv), rows.shape[0] // (heads + 2 * kv), devices)

    def experts(self, module, which, split=None, dtype=None, memory=None):
        """An expert bank's matrices `which` [E, out, in] (w1 / w3 [E, I, d], w2 [E, d, I]) as the
        batched matmul's [1, E, in, out] operand (rt/moe.py). split="experts" (see per_axis): each device of
        that axis holds ceil(E / devices) whole experts, zero experts appended so that they divide evenly."""
        weight = self._tensor(f"{module}.{which}")
        splits = per_axis(split)
        for axis, s in enumerate(splits):
            if s == "experts" and weight.shape[0] % MESH_SHAPE[axis]:
                extra = MESH_SHAPE[axis] - weight.shape[0] % MESH_SHAPE[axis]
                weight = torch.nn.functional.pad(weight, (0, 0, 0, 0, 0, extra))
        dims = [1 if s == "experts" else None for s in splits]
        return self._upload(weight.transpose(1, 2).contiguous()[None], dtype or self.dtype, ttnn.TILE_LAYOUT, dims,
                            memory)

    def norm(self, module, which="weight", offset=0.0, split=None):
        """A norm's vector; `offset` is added to it here, so a norm that multiplies by (offset + w)
        (Gemma's 1 + w) runs as ttnn.rms_norm with that weight. split="hidden": each device holds
        the slice of its own slice of hidden (a distributed norm)."""
        vector = self._tensor(f"{module}.{which}")[None]
        if offset:
            vector = vector + offset
        dims = [-1 if s == "hidden" else None for s in per_axis(split)]
        return self._upload(vector, ttnn.bfloat16, ttnn.TILE_LAYOUT, dims)

    def table(self, module, which="weight", split=None):
        """An embedding table; split="hidden": each device holds a slice of the features."""
        dims = [-1 if s == "hidden" else None for s in per_axis(split)]
        return self._upload(self._tensor(f"{module}.{which}"), ttnn.bfloat16, ttnn.ROW_MAJOR_LAYOUT, dims)


def chunked_linear(x, weight, programs, compute_kernel_config):
    """x [..., rows, k] @ weight for a DRAM-sharded weight in prefill: the rows run as a batch of chunks of the
    most rows `programs` (chunk rows -> 2-D multicast program config, largest first) has a program for that
    divide them, each chunk with that program (ttnn's unconfigured matmul refuses a DRAM-sharded weight)."""
    *lead, rows, k = x.shape
    chunk = next(c for c in programs if rows % c == 0)
    batch = rows // chunk
    for d in lead:
        batch *= d
    y = ttnn.linear(ttnn.reshape(x, (batch, chunk, k)), weight, program_config=programs[chunk],
                    compute_kernel_config=compute_kernel_config)
    return ttnn.reshape(y, (*lead, rows, y.shape[-1]))


def head_chunks_prefill(x, chunks, programs, compute_kernel_config):
    """The LM head over DRAM-sharded column chunks in prefill: each chunk with chunked_linear's 2-D programs
    (programs[i]: chunk rows -> program for chunk i), then one concat."""
    outputs = [chunked_linear(x, w, p, compute_kernel_config) for w, p in zip(chunks, programs, strict=True)]
    if len(outputs) > 1:
        logits = ttnn.concat(outputs, dim=-1)
        for y in outputs:
            ttnn.deallocate(y)
        return logits
    return outputs[0]


def adjacent_rope_pairs(rows: torch.Tensor, heads: int, kv_heads: int) -> torch.Tensor:
    """A fused QKV projection's rows with each q and k head's features reordered from rotate-half pairs
    (i, i + head_dim / 2) to adjacent ones (2i, 2i + 1), the pairs rotary_embedding_llama rotates; V stays.
    Q and K are permuted alike, so every attention score is unchanged (and the KV cache holds permuted K)."""
    head_dim = rows.shape[0] // (heads + 2 * kv_heads)
    half = head_dim // 2
    order = torch.stack([torch.arange(half), torch.arange(half, head_dim)], dim=1).reshape(-1)
    qk = (heads + kv_heads) * head_dim
    rest = tuple(rows.shape[1:])
    permuted = rows[:qk].reshape(heads + kv_heads, head_dim, *rest)[:, order].reshape(qk, *rest)
    return torch.cat([permuted, rows[qk:]])


def pad_heads(tensor: torch.Tensor, heads: int, head_dim: int, dim: int) -> torch.Tensor:
    """Zero-pad each of `heads` heads along `dim` from head_dim to a multiple of 32: ttnn splits
    and concatenates heads in whole tiles. Zero q/k features add nothing to attention scores
    and zero v features come out as zeros, which the zero-padded output projection ignores."""
    padded = -(-head_dim // TILE) * TILE
    if padded == head_dim:
        return tensor
    shape = list(tensor.shape)
    split = shape[:dim] + [heads, head_dim] + shape[dim + 1 :]
    tensor = tensor.reshape(split)
    widths = [0, 0] * (tensor.dim() - dim - 2) + [0, padded - head_dim]
    tensor = torch.nn.functional.pad(tensor, widths)
    return tensor.reshape(shape[:dim] + [heads * padded] + shape[dim + 1 :])
