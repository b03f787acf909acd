"""Golden mode: a generated TT-NN program run on the host with ttnn's own golden functions.

`GoldenTTNN` stands in for the `ttnn` module. Every op the program calls is replaced by
`ttnn.get_golden_function(op)`, ttnn's torch reference for that op, so op semantics come
from ttnn itself. The stand-in only moves data: `from_torch` casts to the tensor's dtype
(block-float dtypes such as bfloat8_b are kept in bf16 here: their quantisation is not
emulated), `to_torch` returns the tensor, and devices are placeholders. An op without a
golden in ttnn 0.81.1 raises, rather than running something of ours in its place.
"""

from __future__ import annotations

import types


class GoldenUnavailable(RuntimeError):
    pass


class _HostDevice:
    """Placeholder for a device in golden mode."""

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
        elif isinstance(real, types.ModuleType) or qualified in ("transformer", "experimental"):
            value = _Namespace(self, qualified, real)
        elif callable(real) and hasattr(real, "python_fully_qualified_name"):
            value = self._golden(qualified, real)
        else:
            value = real  # dtypes, layouts, memory configs, enums
        self._cache[qualified] = value
        return value

    def _golden(self, qualified: str, op):
        try:
            golden = self._ttnn.get_golden_function(op)
        except Exception as e:
            raise GoldenUnavailable(f"ttnn.{qualified} has no golden function in this ttnn") from e

        def run(*args, **kwargs):
            self.calls[qualified] = self.calls.get(qualified, 0) + 1
            return golden(*args, **kwargs)

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
    return torch.bfloat16  # bfloat16, and block floats kept in bf16 (see the module docstring)


def _from_torch(self, tensor, dtype=None, *, layout=None, device=None, memory_config=None, mesh_mapper=None,
                **_):
    wanted = _torch_dtype(self, dtype)
    return tensor if wanted is None else tensor.to(wanted)


def _to_torch(self, tensor, *, mesh_composer=None, **_):
    return tensor


def _identity(self, tensor, *args, **kwargs):
    return tensor


def _open_device(self, *args, **kwargs):
    return HOST


def _close_device(self, device):
    return None


DATA_MOVEMENT = {
    "from_torch": _from_torch,
    "to_torch": _to_torch,
    "to_device": _identity,
    "from_device": _identity,
    "to_memory_config": _identity,
    "open_device": _open_device,
    "close_device": _close_device,
}
