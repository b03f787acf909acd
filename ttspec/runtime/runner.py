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
from ..ir.graph import Model, iter_params

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
    from ..checkpoints import to_hf_state_dict

    return to_hf_state_dict(model, random_state_dict(model, seed))


TTSPEC_NAMES, HF_NAMES = "ttspec", "hf"


def weights_naming(model: Model, tensors: dict, source: str = "the weights") -> str:
    """Whether `tensors` are named as ttspec names them (any spec) or, for a spec with a family,
    as HF transformers names them; one clear error, with a few missing names, for neither."""
    ours = stored_shapes(model)
    candidates = [(TTSPEC_NAMES, ours)]
    if model.family is not None:
        import torch

        from ..checkpoints import to_hf_state_dict

        meta = to_hf_state_dict(model, {n: torch.empty(shape, device="meta") for n, shape in ours.items()})
        candidates.append((HF_NAMES, {n: tuple(t.shape) for n, t in meta.items()}))
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
        if tuple(tensors[name].shape) != shape:
            raise ArchError(f"{source}: {name} has shape {list(tensors[name].shape)}, the spec needs {list(shape)}",
                            hint="was this checkpoint made for another spec?")
    return naming


def as_ttspec_names(model: Model, tensors: dict) -> dict:
    """The stored parameters under ttspec's names, whichever naming `tensors` use."""
    if weights_naming(model, tensors) == HF_NAMES:
        from ..checkpoints import from_hf_state_dict

        return from_hf_state_dict(model, tensors)
    return {name: tensors[name] for name in stored_shapes(model)}


def root_class(module, model: Model):
    from ..codegen.plan import class_name

    return getattr(module, class_name(model.name))


def run_torch(model: Model, spec_path: str, state: dict, tokens):
    """The torch reference on `state` (ttspec names, or HF names for a spec with a family)."""
    import torch

    from ..codegen.torch_backend import compile_torch

    module = load_program(compile_torch(model, spec_path), f"{model.name}_torch")
    net = root_class(module, model)()
    if weights_naming(model, state) == HF_NAMES:
        net.load_hf_state_dict(state)
    else:
        net.load_ttspec_weights(state)
    net.eval()
    with torch.no_grad():
        return net(tokens)


def run_golden(model: Model, spec_path: str, target, state: dict, tokens, weights_dtype="bf16",
               source: str | None = None):
    """The TT-NN program on ttnn's golden functions; `state` as for run_torch."""
    from ..driver import compile_source
    from .golden import GoldenTTNN

    if source is None:
        source = compile_source(model, spec_path, target.name, weights_dtype)
    module = load_program(source, f"{model.name}_{target.name}_golden")
    module.ttnn = GoldenTTNN()
    program = root_class(module, model)(module.open_device())
    if weights_naming(model, state) == HF_NAMES:
        program.load_weights(state)
    else:
        program.load_ttspec_weights(state)
    logits = program(tokens)
    return logits, module.ttnn.calls


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


def load_weights_file(model: Model, path: str) -> dict:
    """A safetensors file in ttspec names or, for a spec with a family, HF names; checked name by
    name and shape by shape against the spec."""
    try:
        from safetensors.torch import load_file

        tensors = load_file(path)
    except FileNotFoundError:
        raise ArchError(f"no such weights file: {path}") from None
    except Exception as e:  # safetensors raises its own error types for bad headers
        raise ArchError(f"cannot read {path} as safetensors: {e}",
                        hint="save with safetensors.torch.save_file(state_dict, path), or with "
                             "`ttspec run --save-weights`") from None
    weights_naming(model, tensors, path)
    return tensors


def save_weights_file(tensors: dict, path: str) -> None:
    """Atomic safetensors write: a temp file beside the target, then rename."""
    from safetensors.torch import save_file

    target = Path(path)
    if target.is_dir() or not target.parent.exists():
        raise ArchError(f"cannot write {path}: " + ("it is a directory" if target.is_dir()
                                                    else f"directory {target.parent} does not exist"))
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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

        source = compile_source(model, args.spec, args.target, args.weights_dtype, args.mesh, args.dp)
    state = weights_for_run(model, args)
    if args.mode == "torch":
        logits = run_torch(model, args.spec, state, tokens)
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
        return load_weights_file(model, args.weights)
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
