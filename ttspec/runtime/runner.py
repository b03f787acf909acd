"""`ttspec run`: compile a spec, load weights, run one prefill, return logits.

Modes: torch (the generated PyTorch reference), golden (the generated TT-NN program with
ttnn's golden functions, see golden.py), mock (the same program on ttnn's mock device: real
host-side validation of every op and allocation, outputs not meaningful), device (real
Tenstorrent hardware: untested here, since no hardware is reachable).
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys
import tempfile
from pathlib import Path

from ..errors import ArchError
from ..ir.graph import Model
from .weights import (
    HF_NAMES,
    Progress,
    WeightStream,
    as_ttspec_names,
    load_weights_file,
    random_state_dict,
    save_weights_file,
    stored_shapes,
    weights_naming,
)
from .weights import random_hf_state_dict as random_hf_state_dict  # re-exported for tests and tools

MODES = ("torch", "golden", "mock", "device")


def load_program(source: str, name: str):
    """Import generated source as a module (kept in a temp dir for tracebacks)."""
    folder = Path(tempfile.mkdtemp(prefix="ttspec-run-"))
    path = folder / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"ttspec_generated_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def root_class(module, model: Model):
    from ..codegen.names import root_class_name

    return getattr(module, root_class_name(model.name))


def run_torch(model: Model, spec_path: str, state: dict, tokens, weights_dtype="bf16"):
    """The torch reference on `state` (ttspec names, or HF names for a spec with a family), its weight
    matrices rounded to the block floats `weights_dtype` gives them (as a TT-NN program stores them)."""
    import torch

    _, net = build_torch(model, spec_path, state, weights_dtype=weights_dtype)
    with torch.no_grad():
        return net(tokens)


def build_torch(model: Model, spec_path: str, state: dict, source: str | None = None, weights_dtype="bf16"):
    """The generated torch program (its module) and its model with `state` loaded, in eval mode."""
    from ..codegen.torch_backend import compile_torch

    module = load_program(source or compile_torch(model, spec_path, weights_dtype), f"{model.name}_torch")
    net = root_class(module, model)()
    if isinstance(state, WeightStream):
        stream_into_torch(net, module, state)
    elif weights_naming(model, state) == HF_NAMES:
        net.load_hf_state_dict(state)
    else:
        net.load_ttspec_weights(state)
    net.eval()
    return module, net


def stream_into_torch(net, module, stream: WeightStream) -> None:
    """Copy a checkpoint into a generated torch model one tensor at a time (each file tensor read
    once; a bf16 tensor is converted as it is copied into its fp32 parameter, so no fp32 copy of
    the whole checkpoint exists beside the model)."""
    import torch

    rename = getattr(module, "ttspec_name", None)
    params = net.state_dict(keep_vars=True)
    by_ours = {(rename(net, key) if rename else key): key for key in params}
    tied: dict[str, list[str]] = {}
    for name, source in getattr(module, "TIED", {}).items():
        tied.setdefault(source, []).append(name)
    loaded = set()
    block_float_dtype = getattr(module, "block_float_dtype", lambda name: None)  # --weights-dtype's rounding
    with torch.no_grad():
        for name, tensor in stream.items():
            for target in [name] + tied.get(name, []):
                if target not in by_ours:
                    raise ArchError(f"{stream.source}: the generated model has no parameter {target}")
                dtype = block_float_dtype(target)
                params[by_ours[target]].copy_(module.block_float(tensor, dtype) if dtype else tensor)
                loaded.add(target)
    missing = [name for name in by_ours if name not in loaded and isinstance(params[by_ours[name]], torch.nn.Parameter)]
    if missing:
        raise ArchError(f"{stream.source} left {len(missing)} parameter(s) unset: {', '.join(missing[:3])}")


def golden_program(model: Model, spec_path: str, target, state, weights_dtype="bf16", source: str | None = None,
                   mesh=None, dp: bool = False, strategy: str | None = None):
    """The TT-NN program compiled (unless `source` is given), imported with ttnn's golden functions
    standing in for ttnn, and loaded with `state` (as for run_torch). Returns (program, module):
    the program has the agreed API (model(tokens), allocate_cache, prefill, decode) and
    module.generate(program, prompts, ...) samples from it; module.ttnn.calls counts the goldens run.
    Golden mode never traces (trace capture is a device feature)."""
    from ..driver import compile_source
    from .golden import GoldenTTNN

    if source is None:
        source = compile_source(model, spec_path, target.name, weights_dtype, mesh, dp, strategy=strategy)
    module = load_program(source, f"{model.name}_{target.name}_golden")
    module.ttnn = GoldenTTNN()
    program = root_class(module, model)(module.open_device(), trace=False)
    if isinstance(state, WeightStream):
        program.load_ttspec_weights(state)  # each tensor read from disk as it is placed
    elif weights_naming(model, state) == HF_NAMES:
        program.load_weights(state)
    else:
        program.load_ttspec_weights(state)
    return program, module


def run_golden(model: Model, spec_path: str, target, state: dict, tokens, weights_dtype="bf16",
               source: str | None = None):
    """The TT-NN program on ttnn's golden functions; `state` as for run_torch."""
    program, module = golden_program(model, spec_path, target, state, weights_dtype, source)
    logits = program(tokens)
    return logits, module.ttnn.calls


def run_session(model: Model, source: str, mode: str, target: str, state, calls, trace: bool = True,
                timeout: float = 1800) -> dict:
    """A TT-NN program on the mock device or hardware (a worker process, see device.py), running
    `calls` of the agreed API in order: ("allocate_cache", batch, context), ("prefill", tokens, user),
    ("decode", tokens, positions), ("generate", prompts, {keyword arguments}). Returns the worker's
    result: "outputs" (each call's logits or ids, in order) and "dram_bytes_after" (ttnn's allocator
    after each call). `trace` (device mode) captures the decode step; the mock device cannot replay a
    trace (ttnn 0.81.1 segfaults), so mock runs never trace."""
    from .device import run_worker

    return run_worker(model, source, mode, target, state=state, calls=calls,
                      trace=trace and mode == "device", timeout=timeout)


def load_tokens(path: str | None, random_shape: str | None, vocab: int, seed: int = 0):
    import torch

    if path:
        import numpy as np

        try:
            array = np.load(path)
        except (OSError, ValueError) as e:
            raise ArchError(f"cannot read tokens from {path}: {e}", hint="pass a .npy file of int token ids") from None
        if array.ndim != 2 or array.dtype.kind not in "iu":
            raise ArchError(f"{path}: tokens must be a 2-D integer array [batch, seq], got {array.dtype} "
                            f"{list(array.shape)}")
        tokens = torch.from_numpy(array.astype("int64"))
    else:
        try:
            batch, seq = (int(v) for v in (random_shape or "1,32").split(","))
        except ValueError:
            raise ArchError(f"--random-tokens expects B,S such as 1,64, got {random_shape!r}") from None
        if batch < 1 or seq < 1:
            raise ArchError(f"--random-tokens needs positive sizes, got {random_shape!r}")
        tokens = torch.randint(0, vocab, (batch, seq), generator=torch.Generator().manual_seed(seed))
    if tokens.numel() and (tokens.min() < 0 or tokens.max() >= vocab):
        raise ArchError(f"token ids must be in [0, {vocab}), got [{int(tokens.min())}, {int(tokens.max())}]")
    return tokens


def require(module: str, why: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ArchError(f"`ttspec run` needs {module} for {why}, and it is not installed",
                        hint="bash .ci/setup test installs torch, ttnn 0.81.1 and the rest")


def run_program(model: Model, args) -> int:
    require("torch", "weights and logits")
    require("safetensors", "weight files")
    if args.mode != "torch":
        require("ttnn", f"--mode {args.mode}")

    vocab = model.graph.node(next(iter(model.graph.outputs.values()))).type.shape[-1]
    tokens = load_tokens(args.tokens, args.random_tokens, vocab_of_input(model), args.seed)
    source = None
    if args.mode != "torch":  # compile first: a program that cannot be built needs no weights
        if args.target == "torch":
            raise ArchError(f"--mode {args.mode} runs a TT-NN program: choose --target n150, p100 or p150")
        from ..driver import compile_source

        source = compile_source(model, args.spec, args.target, args.weights_dtype, args.mesh, args.dp,
                                strategy=getattr(args, "strategy", None))
    state = weights_for_run(model, args)
    if args.mode == "torch":
        logits = run_torch(model, args.spec, state, tokens, args.weights_dtype)
    elif args.mode == "golden":
        from ..targets import get_target

        logits, calls = run_golden(model, args.spec, get_target(args.target), state, tokens, args.weights_dtype,
                                   source=source)
        print(f"golden: {sum(calls.values())} ttnn op calls ran as ttnn golden functions "
              f"({len(calls)} distinct ops)")
    else:
        from .device import run_on_device

        logits = run_on_device(model, args, state, tokens, source)
    logits = logits.float()
    print(f"logits {list(logits.shape)} (vocab {vocab}); first row argmax: "
          f"{logits[0].argmax(-1)[:16].tolist()}")
    if args.out:
        import io

        import numpy as np

        from ..output import write_output_bytes

        buffer = io.BytesIO()
        np.save(buffer, logits.numpy())
        write_output_bytes(buffer.getvalue(), args.out)
        print(f"wrote {args.out}")
    if args.save_weights:
        save_weights_file(as_ttspec_names(model, state), args.save_weights)
        print(f"wrote {args.save_weights}: the weights of this run under ttspec's names")
    return 0


# Random weights on the host: fp32 tensors, a converted copy (dtype or names) and the
# serialised copy a device run hands its worker: about three fp32 copies.
HOST_BYTES_PER_PARAM = 3 * 4


def host_memory_available() -> int | None:
    """MemAvailable from /proc/meminfo, in bytes (None where there is no such file), capped by
    TTSPEC_HOST_MEMORY (bytes) where that is set: a smaller budget for ttspec run to plan with."""
    available = None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    cap = os.environ.get("TTSPEC_HOST_MEMORY")
    if cap:
        try:
            limit = int(cap)
        except ValueError:
            raise ArchError(f"TTSPEC_HOST_MEMORY must be a number of bytes, got {cap!r}") from None
        available = limit if available is None else min(available, limit)
    return available


def weights_for_run(model: Model, args) -> dict | None:
    """The run's weights: a file, seeded random ones, or None (allocate on the device without
    host data: --allocate-only, or a mock run whose random weights would not fit host memory)."""
    if args.allocate_only:
        if args.mode not in ("mock", "device"):
            raise ArchError("--allocate-only is for --mode mock or --mode device")
        if args.weights:
            raise ArchError("--allocate-only and --weights exclude each other")
        if args.save_weights:
            raise ArchError("--allocate-only has no weights for --save-weights to write")
        return None
    if args.weights:
        stream = load_weights_file(model, args.weights)
        stream.progress = Progress(f"loading {args.weights}", stream.nbytes)
        return stream
    need = HOST_BYTES_PER_PARAM * sum(math.prod(shape) for shape in stored_shapes(model).values())
    available = host_memory_available()
    if available is not None and need > available:
        if args.mode == "mock" and not args.save_weights:
            print(f"mock: random weights would need about {need:,} bytes of host memory and {available:,} are "
                  "available, so the weights are allocated on the device without host data (as --allocate-only)")
            return None
        hint = ("drop --save-weights: --mode mock then allocates the weights on the device without host data"
                if args.mode == "mock" else
                "--mode mock allocates the weights on the device without host data; or pass --weights")
        raise ArchError(f"random weights for {model.name} need about {need:,} bytes of host memory "
                        f"({HOST_BYTES_PER_PARAM} per parameter); {available:,} are available", hint=hint)
    return random_state_dict(model, args.seed)


def vocab_of_input(model: Model) -> int:
    """The vocabulary the token input indexes: the rows of the embedding that reads it."""
    from ..ops.queries import input_vocabulary

    vocab = input_vocabulary(model.graph)
    if vocab is None:
        raise ArchError("the spec has no token embedding reading its input", model.loc)
    return vocab
