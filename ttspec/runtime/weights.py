"""Weights for runs: seeded random ones, and checkpoints on disk in ttspec's names or a family's
HF names. A checkpoint (a model directory, one .safetensors file, or a sharded one's index) is
checked from its config.json and headers alone (model_type against the spec's family, every
config field the spec encodes, every tensor's name, shape and dtype kind) and then streamed:
`WeightStream` reads one tensor at a time with safetensors' safe_open when its consumer (a torch
parameter's copy_, or a TT-NN placement) asks, and refuses a tensor holding NaN or infinity."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import ArchError, Loc
from ..inputs import MiB, load_json, quote, regular_file
from ..ir.graph import Model, iter_params


def stored_shapes(model: Model) -> dict[str, tuple[int, ...]]:
    """Every stored parameter's ttspec name and shape (tied parameters are their source's)."""
    return {name: tuple(p.shape) for name, p in iter_params(model.graph) if not p.tied_to}


def random_state_dict(model: Model, seed: int = 0) -> dict:
    """Seeded random weights under ttspec's names (norm weights near 1, biases near 0)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    ours = {}
    for name, shape in stored_shapes(model).items():
        noise = torch.randn(shape, generator=gen)
        if len(shape) == 1:
            ours[name] = (1.0 + 0.1 * noise) if name.endswith("weight") else 0.1 * noise
        else:
            ours[name] = 0.05 * noise
    return ours


def random_hf_state_dict(model: Model, seed: int = 0) -> dict:
    """The same seeded random weights under HF names (the spec needs a `family`)."""
    from ..families import to_hf_state_dict

    return to_hf_state_dict(model, random_state_dict(model, seed))


TTSPEC_NAMES, HF_NAMES = "ttspec", "hf"


def _hf_layouts(model: Model) -> list[dict[str, tuple[int, ...]]]:
    """HF name -> shape for each of the family's layouts (hub files first; transformers 5's fused
    experts in memory second, for a mixture of experts)."""
    from ..families import layouts_of, plan_for

    return [{t.name: t.shape for t in plan_for(model, rules)} for rules in layouts_of(model.family)]


def weights_naming(model: Model, tensors: dict, source: str = "the weights") -> str:
    """Whether `tensors` (a dict of tensors, or of shapes) are named as ttspec names them (any
    spec) or, for a spec with a family, as HF transformers names them; one clear error, with a
    few missing names, for neither."""
    ours = stored_shapes(model)
    candidates = [(TTSPEC_NAMES, ours)]
    if model.family is not None:
        candidates += [(HF_NAMES, shapes) for shapes in _hf_layouts(model)]
    # the naming with the most names present decides; ttspec's own names win a tie
    naming, expected = max(candidates, key=lambda c: sum(n in tensors for n in c[1]))
    missing = [n for n in expected if n not in tensors]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        hf = f", or HF transformers names for `family {model.family}`" if model.family else \
            " (the spec has no `family`, so HF names cannot be mapped)"
        raise ArchError(f"{source} lacks {len(missing)} tensor(s) the spec needs: {', '.join(missing[:3])}{more}",
                        hint="a weights file holds ttspec's names, as `ttspec params --json` lists them" + hf)
    for name, shape in expected.items():
        got = tensors[name] if isinstance(tensors[name], tuple) else tuple(tensors[name].shape)
        if tuple(got) != shape:
            raise ArchError(f"{source}: {name} has shape {list(got)}, the spec needs {list(shape)}",
                            hint="was this checkpoint made for another spec?")
    return naming


def as_ttspec_names(model: Model, tensors) -> dict:
    """The stored parameters under ttspec's names, whichever naming `tensors` use (a checkpoint
    stream is read whole: this is for writing them out again)."""
    if isinstance(tensors, WeightStream):
        return {name: tensor.contiguous() for name, tensor in tensors.items()}
    if weights_naming(model, tensors) == HF_NAMES:
        from ..families import from_hf_state_dict

        return from_hf_state_dict(model, tensors)
    return {name: tensors[name] for name in stored_shapes(model)}


# --- checkpoints on disk, streamed -------------------------------------------------------------

INDEX_NAME, SINGLE_NAME = "model.safetensors.index.json", "model.safetensors"


@dataclass
class Checkpoint:
    """Safetensors file(s) with only their headers read: every tensor's file, dtype and shape,
    and the config.json beside them (its model_type, data and text)."""
    source: str  # as the user gave it
    tensors: dict[str, tuple[str, str, tuple[int, ...]]]  # name -> (file, safetensors dtype, shape)
    model_type: str | None = None
    config_path: str | None = None
    config: dict | None = None
    config_text: str | None = None


_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8, "I32": 4,
                "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
_FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")
CONFIG_LIMIT = 16 * MiB  # config.json files are kilobytes
INDEX_LIMIT = 64 * MiB  # an index lists every tensor once: a few hundred KB for the largest models


def _exists(path: Path) -> bool:
    """Whether anything is at `path`: a FIFO, a device or a dangling symlink counts (and is refused
    by inputs.regular_file when read), so none of them is passed over for another file."""
    return os.path.lexists(path)


def open_checkpoint(path: str) -> Checkpoint:
    """A model directory (config.json with model.safetensors, or model.safetensors.index.json and
    its shards), one .safetensors file, or an index file: headers only, no tensor data. Every file
    is read through ttspec.inputs: regular files only, indexes and configs size-limited."""
    p = Path(path)
    if p.name == "config.json" and not p.is_dir() and _exists(p):  # the model directory it describes
        regular_file(p, "config.json", CONFIG_LIMIT)
        p = p.parent
    if p.is_dir():
        if _exists(p / INDEX_NAME):
            files = _index_files(p / INDEX_NAME)
        elif _exists(p / SINGLE_NAME):
            files = [regular_file(p / SINGLE_NAME, "checkpoint file")]
        else:
            found = sorted(p.glob("*.safetensors"))
            if len(found) != 1:
                raise ArchError(f"{quote(path)} has no {SINGLE_NAME} or {INDEX_NAME}"
                                + (f" (and {len(found)} other .safetensors files)" if found else ""),
                                hint="pass a model directory as save_pretrained writes it, one .safetensors "
                                     "file, or a model.safetensors.index.json")
            files = [regular_file(found[0], "checkpoint file")]
        config = p / "config.json"
    elif _exists(p):
        files = _index_files(p) if p.name.endswith(".json") else [regular_file(p, "checkpoint file")]
        config = p.parent / "config.json"
    else:
        raise ArchError(f"no such weights file: {quote(path)}",
                        hint="--weights takes a model directory, a .safetensors file or a model.safetensors.index.json")
    tensors: dict[str, tuple[str, str, tuple[int, ...]]] = {}
    for file in files:
        for name, dtype, shape in _header(file):
            if name in tensors:
                raise ArchError(f"{quote(path)}: tensor {quote(name)} is in both {quote(tensors[name][0])} and "
                                f"{quote(file)}")
            tensors[name] = (str(file), dtype, shape)
    if not _exists(config):
        return Checkpoint(str(path), tensors)
    data, text = load_json(config, "config.json", CONFIG_LIMIT)
    if not isinstance(data, dict):
        raise ArchError(f"a config.json holds a JSON object of fields, not a {type(data).__name__}",
                        Loc(str(config), 1, 1), hint="config.json should be HF transformers' JSON")
    model_type = data.get("model_type")
    return Checkpoint(str(path), tensors, model_type if isinstance(model_type, str) else None, str(config),
                      data, text)


def _index_files(index: Path) -> list[Path]:
    data, text = load_json(index, "safetensors index", INDEX_LIMIT)
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict):
        raise ArchError("a safetensors index is a JSON object with a `weight_map` of tensor name -> shard file",
                        Loc(str(index), 1, 1))
    shards: dict[str, str] = {}  # shard file -> the first tensor naming it
    for tensor, value in weight_map.items():
        if not isinstance(value, str) or Path(value).name != value or value in ("", ".", ".."):
            from ..families.hf_config import key_locations

            where = key_locations(text).get(("weight_map", tensor))
            raise ArchError(f"safetensors index: shard {quote(json.dumps(value))} of tensor {quote(tensor)} is not "
                            "a file name beside the index",
                            Loc(str(index), where[0], where[1], where[2]) if where else Loc(str(index), 1, 1),
                            hint="an index's weight_map names shard files in the index's own directory")
        shards.setdefault(value, tensor)
    paths = []
    for name in shards:
        if not _exists(index.parent / name):
            raise ArchError(f"{quote(index)} names shard {quote(name)}, which is not in {quote(index.parent)}")
        paths.append(regular_file(index.parent / name, "checkpoint shard"))
    return paths


def _header(file: Path) -> list[tuple[str, str, tuple[int, ...]]]:
    """(name, dtype, shape) of every tensor in one safetensors file, from its header alone."""
    try:
        from safetensors import safe_open

        with safe_open(str(file), framework="pt") as f:
            out = []
            for name in f.keys():
                info = f.get_slice(name)
                out.append((name, info.get_dtype(), tuple(info.get_shape())))
            return out
    except FileNotFoundError:
        raise ArchError(f"no such weights file: {quote(file)}") from None
    except Exception as e:  # safetensors raises its own error types for bad headers
        raise ArchError(f"cannot read {quote(file)} as safetensors: {quote(e, 300)}",
                        hint="save with safetensors.torch.save_file(state_dict, path), with save_pretrained, "
                             "or with `ttspec run --save-weights`") from None


class WeightStream(Mapping):
    """The spec's stored parameters under ttspec's names, read from a checkpoint only when asked
    for: iterating reads each file tensor once, in checkpoint order, and hands its parts on; a
    lookup reads the file tensor that holds the name (a fused one once, keeping its other parts
    until they are asked for). Nothing is kept after it is handed out, so host memory stays
    near the largest tensor. Plain data (JSON-able), so a worker process can rebuild it."""

    def __init__(self, entries: list[tuple], source: str = ""):
        # (file, tensor name in the file, transposed, [(our name, our shape), ...] concatenated along dim `axis`
        # [, axis: 0 when left out]); file and name are lists of one per expert where HF stores each expert apart:
        # our tensor is their stack
        self.entries = [(file, key, transpose, [(n, tuple(s)) for n, s in parts])
                        for file, key, transpose, parts, *_ in entries]
        self.axes = [e[4] if len(e) > 4 else 0 for e in entries]
        self.source = source
        self.nbytes = 0  # the file tensors' size, where known (progress)
        self._where = {name: i for i, entry in enumerate(self.entries) for name, _ in entry[3]}
        self._pending: dict[str, object] = {}
        self.progress = None  # called with (entries read, entries in all, bytes read) after each read
        self._read = 0
        self._bytes = 0

    def to_json(self) -> dict:
        return {"entries": [[f, k, t, [[n, list(s)] for n, s in parts], a]
                            for (f, k, t, parts), a in zip(self.entries, self.axes)],
                "source": self.source}

    @classmethod
    def from_json(cls, data: dict) -> WeightStream:
        return cls([tuple(e) for e in data["entries"]], data.get("source", ""))

    def __getitem__(self, name: str):
        if name in self._pending:
            return self._pending.pop(name)
        pieces = self._read_entry(self._where[name])  # KeyError for a name the spec lacks
        for other, tensor in pieces:
            if other != name:
                self._pending[other] = tensor
        return dict(pieces)[name]

    def __iter__(self):
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, name) -> bool:
        return name in self._where

    def items(self):
        """(name, tensor) for every parameter, each file tensor read once."""
        for i in range(len(self.entries)):
            yield from self._read_entry(i)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: shape for entry in self.entries for name, shape in entry[3]}

    def _read_entry(self, i: int) -> list:
        (file, key, transpose, parts), axis = self.entries[i], self.axes[i]
        if isinstance(key, list):  # one HF tensor per expert: stacked into ours, one expert read at a time
            tensor = None
            for e, (one_file, one_key) in enumerate(zip(file, key)):
                piece = self._read_tensor(one_file, one_key, parts)
                if tensor is None:
                    tensor = piece.new_empty((len(key), *piece.shape))
                tensor[e] = piece
        else:
            tensor = self._read_tensor(file, key, parts)
        self._read += 1
        if self.progress is not None:
            self.progress(self._read, len(self.entries), self._bytes)
        if transpose and tensor.dim() == 2:
            tensor = tensor.T
        if len(parts) == 1:
            return [(parts[0][0], tensor)]
        return list(zip([n for n, _ in parts], tensor.split([s[axis] for _, s in parts], dim=axis)))

    def _read_tensor(self, file: str, key: str, parts: list):
        from safetensors import safe_open

        # a file opened per tensor: its mapping is dropped at once, so pages already read do not
        # stay resident in this process while the rest of a multi-GB shard streams through
        regular_file(file, "checkpoint file")  # checked again: the path may have been replaced since
        with safe_open(file, framework="pt") as f:
            tensor = f.get_tensor(key)
        bad = first_non_finite(tensor)
        if bad is not None:
            index, value = bad
            ours = ", ".join(n for n, _ in parts)
            raise ArchError(f"{quote(self.source)}: tensor {quote(key)} holds {value} at {list(index)}"
                            + ("" if ours == key else f" (the spec's {ours})"),
                            hint=f"in {quote(file)}; weights must be finite: the checkpoint is damaged or was saved "
                                 "from a diverged run")
        self._bytes += tensor.numel() * tensor.element_size()
        return tensor


def first_non_finite(tensor, chunk: int = 1 << 22) -> tuple[tuple[int, ...], str] | None:
    """(index, "NaN" / "inf" / "-inf") of a tensor's first non-finite value, or None. Checked in
    chunks as the tensor is read, so the check needs a few MB beside the tensor, never a copy."""
    import torch

    if not tensor.is_floating_point():
        return None
    flat = tensor.reshape(-1)
    for start in range(0, flat.numel(), chunk):
        part = flat[start:start + chunk]
        finite = torch.isfinite(part)
        if not bool(finite.all()):
            offset = int((~finite).nonzero()[0, 0])
            value = float(part[offset])
            flat_index, index = start + offset, []
            for size in reversed(tensor.shape):
                index.append(flat_index % size)
                flat_index //= size
            return tuple(reversed(index)), "NaN" if math.isnan(value) else repr(value)
    return None


def open_weights(model: Model, path: str) -> WeightStream:
    """A checkpoint for `model`, checked before any tensor data is read: the config's
    model_type against the spec's family, every field of the config the spec encodes
    (checkpoint_config), then every tensor's name, shape and dtype kind. Tensors are checked
    for NaN and infinity as they stream."""
    ckpt = open_checkpoint(path)
    shown = ckpt.source
    if ckpt.model_type is not None:
        from ..families import FAMILIES, family_list

        if model.family is not None and ckpt.model_type != model.family:
            known = ckpt.model_type in FAMILIES
            raise ArchError(
                f"{shown} is a `{ckpt.model_type}` checkpoint (model_type in {ckpt.config_path}), but the spec "
                f"says `family {model.family}`", model.loc,
                hint=(f"write a spec for this checkpoint with `ttspec import-hf {shown}`, or, if the spec's "
                      f"structure already is {ckpt.model_type}'s, change the line to `family {ckpt.model_type}`")
                if known else
                (f"ttspec maps no `{ckpt.model_type}` layout (families: {family_list()}); a checkpoint saved "
                 "under ttspec's names loads with no `family` line"))
    if model.family is not None and ckpt.model_type == model.family:
        from ..importers.checkpoint_config import check_config

        check_config(model, Path(ckpt.config_path), ckpt.config, ckpt.config_text)
    naming, expected, file_key, rules = _decide_naming(model, ckpt)
    _check_tensors(model, ckpt, naming, expected, file_key)
    if naming == TTSPEC_NAMES:
        entries = [(ckpt.tensors[n][0], n, False, [(n, shape)]) for n, shape in expected.items()]
    else:
        entries = _hf_entries(model, ckpt, file_key, rules)
    stream = WeightStream(entries, shown)
    keys = [k for _, key, _, _, *_ in entries for k in (key if isinstance(key, list) else [key])]
    stream.nbytes = sum(_DTYPE_BYTES.get(ckpt.tensors[k][1], 4) * math.prod(ckpt.tensors[k][2]) for k in keys)
    return stream


def _hf_entries(model: Model, ckpt: Checkpoint, file_key: dict, rules) -> list[tuple]:
    """The stream's entries for an HF-named checkpoint under one of the family's layouts: one per HF
    tensor, or one per expert tensor of ours where HF stores each expert apart (stacked on reading)."""
    from ..families import plan_for

    entries: list[tuple] = []
    stacks: dict[str, tuple] = {}  # our expert tensor -> its entry (files and keys filled in expert order)
    for t in plan_for(model, rules):
        key = file_key[t.name]
        if t.expert is None:
            entries.append((ckpt.tensors[key][0], key, t.flipped, list(t.parts), t.axis))
            continue
        name = t.parts[0][0]
        if name not in stacks:
            stacks[name] = ([], [], False, list(t.parts), 0)
            entries.append(stacks[name])
        stacks[name][0].append(ckpt.tensors[key][0])
        stacks[name][1].append(key)
    return entries


def _decide_naming(model: Model, ckpt: Checkpoint):
    """(naming, expected name -> shape, expected name -> name in the file, the family's rules of that
    layout or None). HF checkpoints saved from a base model (GPT-2's `h.0...`, without `transformer.`)
    match without that prefix; a mixture of experts' hub files (one tensor per expert) and transformers
    5's fused expert tensors are both HF layouts. A spec without a family loads under ttspec's names only."""
    ours = stored_shapes(model)
    candidates = [(TTSPEC_NAMES, ours, {n: n for n in ours}, None)]
    if model.family is not None:
        from ..families import layouts_of

        for rules, hf in zip(layouts_of(model.family), _hf_layouts(model)):
            candidates.append((HF_NAMES, hf, {n: n for n in hf}, rules))
            stripped = {n: n.split(".", 1)[1] for n in hf if n.startswith(("model.", "transformer."))}
            candidates.append((HF_NAMES, hf, {n: stripped.get(n, n) for n in hf}, rules))
    # the naming with the most names present decides; ttspec's own names win a tie
    return max(candidates, key=lambda c: sum(k in ckpt.tensors for k in c[2].values()))


def _check_tensors(model: Model, ckpt: Checkpoint, naming: str, expected: dict, file_key: dict) -> None:
    from ..checkpoints import IGNORED_HF

    source = ckpt.source
    names = "ttspec's names (`ttspec params --json`)" if naming == TTSPEC_NAMES else \
        f"HF transformers' names for `family {model.family}`"
    missing = [n for n in expected if file_key[n] not in ckpt.tensors]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        if naming == TTSPEC_NAMES:
            from ..families import FAMILIES

            hint = ("a weights file holds ttspec's names, as `ttspec params --json` lists them"
                    + (f", or HF transformers names for `family {model.family}`" if model.family else
                       " (the spec has no `family`, so HF names cannot be mapped"
                       + (f"; this is a `{ckpt.model_type}` checkpoint: add `family {ckpt.model_type}` to the spec"
                          if ckpt.model_type in FAMILIES else "") + ")"))
        else:
            hint = "was this checkpoint saved for a spec with fewer layers or a tied head? compare `ttspec params`"
        beside = Path(source).parent / INDEX_NAME
        if Path(source).is_file() and Path(source).suffix == ".safetensors" and beside.is_file():
            hint = f"{source} is one shard of a sharded checkpoint: pass its directory or {beside}"
        raise ArchError(f"{source} lacks {len(missing)} tensor(s) the spec needs: "
                        f"{', '.join(file_key[n] for n in missing[:3])}{more}", hint=hint)
    wanted = set(file_key.values())
    extra = [n for n in ckpt.tensors if n not in wanted and not (naming == HF_NAMES and IGNORED_HF.fullmatch(n))]
    if extra:
        more = f" and {len(extra) - 3} more" if len(extra) > 3 else ""
        raise ArchError(f"{source} has {len(extra)} tensor(s) the spec does not use: {', '.join(extra[:3])}{more}",
                        hint=f"the tensors were matched by {names}; was this checkpoint made for another spec "
                             "(more layers, biases, an untied head)?")
    for name, shape in expected.items():
        _, dtype, got = ckpt.tensors[file_key[name]]
        if tuple(got) != tuple(shape):
            raise ArchError(f"{source}: {file_key[name]} has shape {list(got)}, the spec needs {list(shape)}",
                            hint="was this checkpoint made for another spec?")
        if dtype not in _FLOAT_DTYPES:
            raise ArchError(f"{source}: {file_key[name]} holds {dtype} values; ttspec loads weights stored as "
                            f"{', '.join(_FLOAT_DTYPES)}", hint="was this tensor quantised by another tool?")


def load_weights_file(model: Model, path: str) -> WeightStream:
    """The weights at `path` (see open_checkpoint) for `model`, checked, streamed on use."""
    return open_weights(model, path)


class Progress:
    """`loading weights: 12/291 tensors, 1.2 of 16.1 GB` on a terminal (stderr), rewritten in place
    at most five times a second once loading has taken a second; silent when stderr is not a
    terminal."""

    def __init__(self, what: str, total_bytes: int, stream=None):
        import sys
        import time

        self.what, self.total = what, total_bytes
        self.out = stream or sys.stderr
        self.enabled = hasattr(self.out, "isatty") and self.out.isatty()
        self.start = self.last = time.monotonic()
        self.shown = False

    def __call__(self, done: int, count: int, nbytes: int) -> None:
        import time

        now = time.monotonic()
        if not self.enabled or (now - self.start < 1.0 and done < count) or (now - self.last < 0.2 and done < count):
            return
        if done == count and not self.shown:
            return
        self.last, self.shown = now, True
        self.out.write(f"\r{self.what}: {done}/{count} tensors, {nbytes / 1e9:.1f} of {self.total / 1e9:.1f} GB")
        if done == count:
            self.out.write("\n")
        self.out.flush()


def save_weights_file(tensors: dict, path: str) -> None:
    """A safetensors file written like every ttspec output (ttspec/output.py): atomically, to a
    regular file only, keeping the mode of a file it replaces."""
    from safetensors.torch import save

    from ..output import write_output_bytes

    write_output_bytes(save({k: v.contiguous() for k, v in tensors.items()}), path)
