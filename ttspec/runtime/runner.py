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

from ..errors import ArchError
from ..inputs import MiB, quote, read_bytes
from ..ir.graph import Model
from ..targets import DEVICE_TARGETS, TORCH, Target, listing
from ..weight_formats import BF16, WeightFormats
from . import tempdirs
from .requests import MODES as MODES
from .requests import Program, RunRequest
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


def load_program(source: str, name: str):
    """Import generated source as a module (written to a temporary directory, for tracebacks, which
    goes when the command ends: tempdirs.session)."""
    folder = tempdirs.make("ttspec-run-")
    path = folder / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"ttspec_generated_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def root_class(module, model: Model):
    from ..backends.common.names import root_class_name

    return getattr(module, root_class_name(model.name))


def run_torch(model: Model, spec_path: str, state: dict, tokens, weights_dtype: WeightFormats = BF16):
    """The torch reference on `state` (ttspec names, or HF names for a spec with a family), its weight
    matrices rounded to the block floats `weights_dtype` gives them (as a TT-NN program stores them)."""
    import torch

    _, net = build_torch(model, spec_path, state, weights_dtype=weights_dtype)
    with torch.no_grad():
        return net(tokens)


def build_torch(model: Model, spec_path: str, state: dict, source: str | None = None,
                weights_dtype: WeightFormats = BF16):
    """The generated torch program (its module) and its model with `state` loaded, in eval mode."""
    from ..backends.torch.backend import compile_torch

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


def golden_program(model: Model, spec_path: str, target: Target, state, weights_dtype: WeightFormats = BF16,
                   source: str | None = None, mesh: tuple[int, int] | None = None, dp: bool = False,
                   strategy: str | None = None):
    """The TT-NN program compiled (unless `source` is given), imported with ttnn's golden functions
    standing in for ttnn, and loaded with `state` (as for run_torch). Returns (program, module):
    the program has the agreed API (model(tokens), allocate_cache, prefill, decode) and
    module.generate(program, prompts, ...) samples from it; module.ttnn.calls counts the goldens run.
    Golden mode never traces (trace capture is a device feature)."""
    from ..driver import compile_source
    from .device import import_ttnn

    import_ttnn()  # first, and quietly: its import logs its whole config at DEBUG otherwise (LOGURU_LEVEL decides)
    from .golden import GoldenTTNN

    if source is None:
        source = compile_source(model, spec_path, target, weights_dtype, mesh, dp, strategy=strategy)
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


def run_golden(model: Model, spec_path: str, target: Target, state: dict, tokens,
               weights_dtype: WeightFormats = BF16, source: str | None = None):
    """The TT-NN program on ttnn's golden functions; `state` as for run_torch."""
    program, module = golden_program(model, spec_path, target, state, weights_dtype, source)
    logits = program(tokens)
    return logits, module.ttnn.calls


MAX_TOKENS_FILE_BYTES = 256 * MiB  # 32 users x 1M positions of int64 ids; far past any context a run can hold


def load_tokens(path: str | None, random_shape: str | None, vocab: int, seed: int = 0, model: Model | None = None,
                logits_vocab: int | None = None):
    """Token ids [batch, seq] from a .npy file or random ones of a `B,S` shape; with `model`, the shape is
    checked against the spec's input (check_token_shape), and with `logits_vocab` the logits of that shape
    against host memory (check_logits_fit), before random ones are drawn."""
    import torch

    if path:
        import io

        import numpy as np

        data = read_bytes(path, "tokens file", MAX_TOKENS_FILE_BYTES)
        try:
            _check_npy_header(data)
            array = np.load(io.BytesIO(data), allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise ArchError(f"cannot read tokens from {quote(path)}: {quote(e)}",
                            hint="pass a .npy file of int token ids") from None
        if not isinstance(array, np.ndarray) or array.ndim != 2 or array.dtype.kind not in "iu":
            what = f"{array.dtype} {list(array.shape)}" if isinstance(array, np.ndarray) else "an .npz archive"
            raise ArchError(f"{quote(path)}: tokens must be a 2-D integer array [batch, seq], got {what}")
        if 0 in array.shape:
            raise ArchError(f"{quote(path)}: tokens {list(array.shape)} hold no token",
                            hint="a run needs at least one row of at least one token id")
        if model is not None:
            check_token_shape(model, array.shape, f"the tokens in {quote(path)}")
        low, high = int(array.min()), int(array.max())  # numpy's values: a uint64 past int64 has not wrapped yet
        if low < 0 or high >= vocab:
            raise ArchError(f"token ids must be in [0, {vocab}), got [{low}, {high}]")
        tokens = torch.from_numpy(array.astype("int64"))
    else:
        try:
            batch, seq = (int(v) for v in (random_shape or "1,32").split(","))
        except ValueError:
            raise ArchError(f"--random-tokens expects B,S such as 1,64, got {quote(random_shape)!r}") from None
        if batch < 1 or seq < 1:
            raise ArchError(f"--random-tokens needs positive sizes, got {quote(random_shape)!r}")
        if model is not None:
            check_token_shape(model, (batch, seq), f"--random-tokens {batch},{seq}")
        if logits_vocab is not None:  # a spec without bounds takes any shape: memory is the bound
            check_logits_fit((batch, seq), logits_vocab)
        tokens = torch.randint(0, vocab, (batch, seq), generator=torch.Generator().manual_seed(seed))
    return tokens


def _check_npy_header(data: bytes) -> None:
    """ValueError unless a .npy file's header describes no more data than the file holds: numpy allocates
    the array its header declares before reading it, so a lying header would ask for any amount of memory."""
    import io

    import numpy as np

    if not data.startswith(b"\x93NUMPY"):
        return  # not .npy (an .npz archive, or not numpy at all): np.load says which
    buffer = io.BytesIO(data)
    version = np.lib.format.read_magic(buffer)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        raise ValueError(f".npy format version {version[0]}.{version[1]} is not one ttspec reads (1.0 or 2.0)")
    shape, _, dtype = readers[version](buffer)
    need = math.prod(shape) * dtype.itemsize
    if need > len(data) - buffer.tell():
        raise ValueError(f"its header declares {list(shape)} {dtype} ({need:,} bytes) but the file holds "
                         f"{len(data) - buffer.tell():,} bytes of data")


def check_token_shape(model: Model, shape, what: str, context: int | None = None, limit: str = "") -> None:
    """Token ids of `shape` against the spec's input: a fixed dim must match, a symbolic one stay within its
    `where` bound (and seq within `context`, the longest a TT-NN program accepts, where that is less; `limit`
    says why). Refused at the input statement, before anything is allocated or run."""
    graph = model.graph
    node = graph.node(graph.inputs[0])
    dims = node.type.shape
    if len(shape) != len(dims):
        raise ArchError(f"{what} have {len(shape)} dims {list(shape)}; the spec's input `{node.id}` has {len(dims)}",
                        node.loc)
    for axis, (size, dim) in enumerate(zip(shape, dims)):
        if isinstance(dim, int):
            if size != dim:
                raise ArchError(f"{what} {list(shape)} have {size} in dim {axis}; the spec's input `{node.id}` "
                                f"fixes it at {dim}", node.loc, hint=f"give tokens with {dim} in dim {axis}")
            continue
        bound = model.bounds.get(dim)
        if bound is not None and size > bound:
            raise ArchError(f"{what} {list(shape)} have {dim} = {size:,}, past the spec's bound {dim} <= {bound:,} "
                            f"(its input `{node.id}`)", node.loc,
                            hint=f"give at most {bound:,} in dim {axis}, or raise the bound in the spec")
    if context is not None and shape[-1] > context:
        raise ArchError(f"{what} {list(shape)} have {shape[-1]:,} positions; the program takes at most {context:,}"
                        f" ({limit})", hint="give fewer positions")


def require(module: str, why: str, command: str = "run") -> None:
    """Refuse, naming the command the user ran (`run` or `generate`), when `module` is not installed."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        extra = "ttnn" if module == "ttnn" else "torch"
        raise ArchError(f"`ttspec {command}` needs {module} for {why}, and it is not installed",
                        hint=f"pip install 'ttspec[{extra}]'" + (" (ttnn 0.81.1: Python 3.10 or 3.12)"
                                                                if extra == "ttnn" else ""))


def run_program(model: Model, request: RunRequest) -> int:
    """`ttspec run`: one prefill on the request's program; prints and saves the logits."""
    program = request.program
    require("torch", "weights and logits")
    require("safetensors", "weight files")
    if program.mode != "torch":
        require("ttnn", f"--mode {program.mode}")

    vocab = model.graph.node(next(iter(model.graph.outputs.values()))).type.shape[-1]
    tokens = load_tokens(request.tokens, request.random_tokens, vocab_of_input(model), program.seed, model, vocab)
    check_logits_fit(tokens.shape, vocab)
    source = None
    if program.mode != "torch":  # compile first: a program that cannot be built needs no weights
        source, build = _compile_for_run(model, program)
        check_token_shape(model, tokens.shape, "the tokens", build.context,
                          f"the longest context that fits {program.target.name}'s DRAM at batch 1")
    state = weights_for_run(model, program, request.allocate_only, request.save_weights)
    if program.mode == "torch":
        logits = run_torch(model, program.spec, state, tokens, program.weights_dtype)
    elif program.mode == "golden":
        logits, calls = run_golden(model, program.spec, program.target, state, tokens, program.weights_dtype,
                                   source=source)
        print(f"golden: {sum(calls.values())} ttnn op calls ran as ttnn golden functions "
              f"({len(calls)} distinct ops)")
    else:
        from .device import run_on_device

        logits = run_on_device(model, program.mode, program.target.name, state, tokens, source)
    logits = logits.float()
    check_finite_logits(logits)
    print(f"logits {list(logits.shape)} (vocab {vocab}); first row argmax: "
          f"{logits[0].argmax(-1)[:16].tolist()}")
    if request.out:
        import io

        import numpy as np

        from ..output import write_output_bytes

        buffer = io.BytesIO()
        np.save(buffer, logits.numpy())
        write_output_bytes(buffer.getvalue(), request.out)
        print(f"wrote {request.out}")
    if request.save_weights:
        save_weights_file(as_ttspec_names(model, state), request.save_weights)
        print(f"wrote {request.save_weights}: the weights of this run under ttspec's names")
    return 0


def _compile_for_run(model: Model, program: Program):
    """The TT-NN program's source and Build for a TT-NN mode."""
    if program.target is None or program.target is TORCH:
        raise ArchError(f"--mode {program.mode} runs a TT-NN program: choose --target {listing(DEVICE_TARGETS)}")
    from ..driver import compile_program

    return compile_program(model, program.spec, program.target, program.weights_dtype, program.mesh, program.dp,
                           strategy=program.strategy)


def check_logits_fit(shape, vocab: int) -> None:
    """The logits a run returns, [batch, seq, vocab] fp32, against host memory: a closed-form lower bound on
    what the run holds, checked before the weights are made."""
    need = 4 * math.prod(shape) * vocab
    available = host_memory_available()
    if available is not None and need > available:
        raise ArchError(f"the logits of tokens {list(shape)} alone, [{shape[0]:,}, {shape[1]:,}, {vocab:,}] fp32, need "
                        f"{need:,} bytes of host memory; {available:,} are available",
                        hint="run fewer or shorter rows of tokens")


def check_finite_logits(logits) -> None:
    """A program whose logits hold NaN or an infinity (overflow, NaN weights) is an error, never printed as an
    argmax (the argmax of NaN is 0) or saved."""
    import torch

    bad = ~torch.isfinite(logits)
    if bad.any():
        row, position = (int(i) for i in bad.any(-1).nonzero()[0])
        kind = "NaN" if logits[row, position].isnan().any() else "infinite"
        raise ArchError(f"the program's logits are not finite: row {row}, position {position} is {kind} "
                        f"({int(bad.sum()):,} of {logits.numel():,} values are NaN or infinite)",
                        hint="check the weights (NaN, infinities, or values so large that the computation overflows)")


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
    room = _address_space_left()
    if room is not None:
        available = room if available is None else min(available, room)
    cap = os.environ.get("TTSPEC_HOST_MEMORY")
    if cap:
        try:
            limit = int(cap)
        except ValueError:
            raise ArchError(f"TTSPEC_HOST_MEMORY must be a number of bytes, got {cap!r}") from None
        available = limit if available is None else min(available, limit)
    return available


def _address_space_left() -> int | None:
    """Under an address-space limit (`ulimit -v`, RLIMIT_AS) the process can map only so much more than it
    has mapped already (VmSize), whatever the machine has free; None without a limit."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft == resource.RLIM_INFINITY:
            return None
        with open("/proc/self/status", encoding="ascii") as f:
            size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
        return max(0, soft - size)
    except (ImportError, OSError, ValueError, IndexError, StopIteration):
        return None


def weights_for_run(model: Model, program: Program, allocate_only: bool = False,
                    save_weights: str | None = None) -> dict | None:
    """The run's weights: a file, seeded random ones, or None (allocate on the device without
    host data: --allocate-only, or a mock run whose random weights would not fit host memory)."""
    mode = program.mode
    if allocate_only:
        if mode not in ("mock", "device"):
            raise ArchError("--allocate-only is for --mode mock or --mode device")
        if program.weights:
            raise ArchError("--allocate-only and --weights exclude each other")
        if save_weights:
            raise ArchError("--allocate-only has no weights for --save-weights to write")
        return None
    if program.weights:
        stream = load_weights_file(model, program.weights)
        stream.progress = Progress(f"loading {program.weights}", stream.nbytes)
        return stream
    need = HOST_BYTES_PER_PARAM * sum(math.prod(shape) for shape in stored_shapes(model).values())
    available = host_memory_available()
    if available is not None and need > available:
        if mode == "mock" and not save_weights:
            print(f"mock: random weights would need about {need:,} bytes of host memory and {available:,} are "
                  "available, so the weights are allocated on the device without host data (as --allocate-only)")
            return None
        hint = ("drop --save-weights: --mode mock then allocates the weights on the device without host data"
                if mode == "mock" else
                "--mode mock allocates the weights on the device without host data; or pass --weights")
        raise ArchError(f"random weights for {model.name} need about {need:,} bytes of host memory "
                        f"({HOST_BYTES_PER_PARAM} per parameter); {available:,} are available", hint=hint)
    return random_state_dict(model, program.seed)


def vocab_of_input(model: Model) -> int:
    """The vocabulary the token input indexes: the rows of the embedding that reads it."""
    from ..ops.queries import input_vocabulary

    vocab = input_vocabulary(model.graph)
    if vocab is None:
        raise ArchError("the spec has no token embedding reading its input", model.loc)
    return vocab
