"""Capture one decode step (and optionally one prefill) of a generated TT-NN program with `ttnn.graph` on
ttnn's mock device, and summarize it (graph_summary.py): device ops per layer, their program factories,
math fidelities, dtypes and memory layouts, and the host<->device bytes of the step.

Like run_worker (device.py), the program runs in a fresh process (`python -m ttspec.runtime.decode_capture
DIR`) with the mock device's environment (device_env), from a scratch directory, with its weights allocated
without host data. In that process:
1. the program opens its device (one chip is a 1x1 mesh), loads its weights and allocates a KV cache; each
   tensor the program's `Weights` class places is recorded by device address, so a matmul's weight operand
   is named by the program itself (wqkv, w1, lm_head ...);
2. one decode step runs uncaptured, so the captured step is a steady one (kernels built, caches warm): the
   greedy step (decode_greedy: each user's token chosen on the device) unless the logits step is asked for;
3. each element of the program's layer list is wrapped so its call is bracketed by a named graph scope
   (graph_summary.LAYER_MARK), and the next decode step runs under `ttnn.graph.begin_graph_capture`.
The mock validates every op and allocation but runs no kernel, so no timing and no values come from it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..ir.graph import Model
from . import tempdirs


def capture_decode(model: Model, source: str, target: str, *, users: int = 32, context: int = 256,
                   prefill: int | None = None, timeout: float = 1800,
                   raw: Path | None = None, logits: bool = False, forward: int | None = None) -> dict:
    """Run `source` (a TT-NN program of `model` for `target`) on the mock device and return the summary of
    its captured decode step (graph_summary.summarize): the greedy step generate runs (decode_greedy), or
    with `logits` the step that returns every user's logits (decode, as --score runs it); and of one user's
    prefill of `prefill` tokens when given. `raw`: also write the captured decode graph there (JSON). `forward`:
    instead, a model that cannot decode (an encoder): one pass of `model(tokens)` over that many tokens, as
    {"forward": summary}."""
    import subprocess

    from ..backends.common.names import root_class_name
    from .device import device_env
    from .weights import stored_shapes

    work = tempdirs.make("ttspec-capture-")
    (work / "program.py").write_text(source, encoding="utf-8")
    request = {"class": root_class_name(model.name), "users": users, "context": context, "prefill": prefill,
               "layers": _layer_count(model), "logits": logits,
               "forward": forward, "raw": str(Path(raw).resolve()) if raw else None,
               "meta_weights": {name: list(shape) for name, shape in stored_shapes(model).items()}}
    (work / "request.json").write_text(json.dumps(request))
    proc = subprocess.run([sys.executable, "-m", "ttspec.runtime.decode_capture", str(work)], cwd=work,
                          env=device_env("mock", target), capture_output=True, text=True, timeout=timeout)
    result_path = work / "result.json"
    result = json.loads(result_path.read_text()) if result_path.exists() else {}
    if "decode" not in result and "forward" not in result:
        tail = "\n".join((result.get("traceback") or proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"the mock capture failed (exit {proc.returncode}): {result.get('error', '')}\n{tail}")
    return result


def _layer_count(model: Model) -> int:
    """How many repeated decoder layers the program has: its longest repeat (what `ttspec params` expands)."""
    from .weights import stored_shapes

    indices = {}
    for name in stored_shapes(model):
        parts = name.split(".")
        for i, part in enumerate(parts[1:], 1):
            if part.isdigit():
                indices.setdefault(".".join(parts[:i]), set()).add(int(part))
    return max((len(v) for v in indices.values()), default=0)


# ---------------------------------------------------------------- the worker process (mock environment)


def _main(work: Path) -> None:
    result: dict = {}
    try:
        result.update(_capture(work))
    except Exception as e:  # reported to the parent, which raises with it
        import traceback

        result["error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
        result["traceback"] = traceback.format_exc()[-4000:]
    (work / "result.json").write_text(json.dumps(result))


def _capture(work: Path) -> dict:
    import importlib.util

    import torch

    from .device import import_ttnn
    from .device_worker import dram_allocated
    from .graph_summary import summarize, walk

    ttnn = import_ttnn()
    request = json.loads((work / "request.json").read_text())
    spec = importlib.util.spec_from_file_location("program", work / "program.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    weights = _record_weight_matrices(module)
    device = module.open_device()
    try:
        program = getattr(module, request["class"])(device, trace=False)  # the mock cannot replay traces
        program.load_ttspec_weights({k: torch.empty(v, device="meta") for k, v in request["meta_weights"].items()})
        weights_dram = dram_allocated(ttnn, device)  # per chip: what the memory model's weights predict
        if request.get("forward"):  # a model that cannot decode: its forward pass (every position's logits)
            layers = _mark_layers(program, ttnn, request["layers"])
            ids = (torch.arange(request["forward"]) % 100 + 1)[None]
            return {"forward": summarize(walk(_captured(ttnn, lambda: program(ids)), weights), layers)}
        program.allocate_cache(request["users"], request["context"])
        layers = _mark_layers(program, ttnn, request["layers"])
        users, context = request["users"], request["context"]
        tokens = torch.arange(users) % 100 + 1
        positions = torch.tensor([(7 * b) % (context - 1) for b in range(users)])  # spread, never the last row
        # the step generate runs: greedy on the device where the program has it (request "logits": the logits step)
        step = program.decode if request.get("logits") or not hasattr(program, "decode_greedy") \
            else program.decode_greedy
        step(tokens, positions)  # warm: kernels built, any first-step tables made
        graph = _captured(ttnn, lambda: step(tokens, positions + 1))
        if request.get("raw"):
            Path(request["raw"]).write_text(json.dumps(graph, default=str))
        walked = walk(graph, weights)
        result = {"decode": summarize(walked, layers), "decode_ops": walked["ops"],
                  "mesh_shape": list(getattr(module, "MESH_SHAPE", (1, 1))), "fabric": _fabric(ttnn),
                  "weights_dram_bytes": weights_dram}
        if request.get("prefill"):
            ids = torch.arange(request["prefill"]) % 100 + 1
            graph = _captured(ttnn, lambda: program.prefill(ids, 0))
            result["prefill"] = summarize(walk(graph, weights), layers)
        return result
    finally:
        module.close_device(device)


def _captured(ttnn, step) -> list[dict]:
    ttnn.graph.begin_graph_capture(ttnn.graph.RunMode.NORMAL)
    try:
        step()
    finally:
        graph = ttnn.graph.end_graph_capture()
    return graph


def _record_weight_matrices(module) -> dict[int, str]:
    """Device address -> name of each tensor the program's Weights class places (matrices, norms, tables): every
    public method of it is wrapped, so a placement method added or renamed later is still seen. The name is the
    method's first argument, the parameter's module path (layers.0.attn.wqkv, lm_head ...)."""
    names: dict[int, str] = {}
    weights_class = getattr(module, "Weights", None)
    for attribute, place in list(vars(weights_class or object).items()):
        if attribute.startswith("_") or not callable(place):
            continue

        def recorded(self, name, *args, _place=place, **kwargs):
            tensor = _place(self, name, *args, **kwargs)
            if hasattr(tensor, "buffer_address") and isinstance(name, str):
                names[tensor.buffer_address()] = name
            elif isinstance(tensor, list) and isinstance(name, str):  # column chunks (the LM head's): name_i
                names.update({t.buffer_address(): f"{name}_{i}" for i, t in enumerate(tensor)
                              if hasattr(t, "buffer_address")})
            return tensor

        setattr(weights_class, attribute, recorded)
    return names


class _Marked:
    """A layer whose call is one named scope in the graph capture (graph_summary.LAYER_MARK + index)."""

    def __init__(self, layer, index, ttnn):
        self.layer, self.index, self.ttnn = layer, index, ttnn

    def __call__(self, *args, **kwargs):
        return self._scoped(self.layer, args, kwargs)

    def decode(self, *args, **kwargs):  # the layer's decode step (what a captured step calls)
        return self._scoped(self.layer.decode, args, kwargs)

    def _scoped(self, method, args, kwargs):
        from .graph_summary import LAYER_MARK

        self.ttnn.graph.track_function_start(f"{LAYER_MARK}{self.index}")
        try:
            return method(*args, **kwargs)
        finally:
            self.ttnn.graph.track_function_end()


def _mark_layers(program, ttnn, expected: int) -> int:
    """Wrap the program's list of `expected` decoder layers (`layers` in every generated program today, else the
    attribute holding a list of that many callables; layer variants, such as Gemma-2's alternating windows, are
    instances of different classes). Returns how many were wrapped."""
    for name, value in sorted(vars(program).items(), key=lambda item: item[0] != "layers"):
        if isinstance(value, list) and len(value) == expected and expected and all(map(callable, value)):
            setattr(program, name, [_Marked(layer, i, ttnn) for i, layer in enumerate(value)])
            return expected
    raise RuntimeError(f"no list of {expected} layers on the program: cannot group its ops by layer")


def _fabric(ttnn) -> str:
    """The fabric the device was opened with, as ttnn reports it (DISABLED on one chip, which opens none)."""
    return str(ttnn.get_fabric_config()).split(".")[-1]


if __name__ == "__main__":
    _main(Path(sys.argv[1]))
