"""`ttspec run`: compile a spec, load weights, run one prefill, return logits.

Modes: torch (the generated PyTorch reference), golden (the generated TT-NN program with
ttnn's golden functions, see golden.py), mock (the same program on ttnn's mock device: real
host-side validation of every op and allocation, outputs not meaningful), device (real
Tenstorrent hardware: untested here, since no hardware is reachable).
"""

from __future__ import annotations

import importlib.util
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


def random_hf_state_dict(model: Model, seed: int = 0) -> dict:
    """Seeded random weights under HF names (norm weights near 1, biases near 0)."""
    import torch

    from ..checkpoints import to_hf_state_dict

    gen = torch.Generator().manual_seed(seed)
    ours = {}
    for name, p in iter_params(model.graph):
        if p.tied_to:
            continue
        noise = torch.randn(p.shape, generator=gen)
        if len(p.shape) == 1:
            ours[name] = (1.0 + 0.1 * noise) if name.endswith("weight") else 0.1 * noise
        else:
            ours[name] = 0.05 * noise
    return to_hf_state_dict(model, ours)


def root_class(module, model: Model):
    from ..codegen.plan import class_name

    return getattr(module, class_name(model.name))


def run_torch(model: Model, spec_path: str, hf_state_dict: dict, tokens):
    import torch

    from ..codegen.torch_backend import compile_torch

    module = load_program(compile_torch(model, spec_path), f"{model.name}_torch")
    net = root_class(module, model)()
    net.load_hf_state_dict(hf_state_dict)
    net.eval()
    with torch.no_grad():
        return net(tokens)


def run_golden(model: Model, spec_path: str, target, hf_state_dict: dict, tokens, weights_dtype="bf16",
               source: str | None = None):
    from ..driver import compile_source
    from .golden import GoldenTTNN

    if source is None:
        source = compile_source(model, spec_path, target.name, weights_dtype)
    module = load_program(source, f"{model.name}_{target.name}_golden")
    module.ttnn = GoldenTTNN()
    program = root_class(module, model)(module.open_device())
    program.load_weights(hf_state_dict)
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
    """An HF-named safetensors file, checked name by name and shape by shape against the spec."""
    import torch

    from ..checkpoints import to_hf_state_dict

    try:
        from safetensors.torch import load_file

        tensors = load_file(path)
    except FileNotFoundError:
        raise ArchError(f"no such weights file: {path}") from None
    except Exception as e:  # safetensors raises its own error types for bad headers
        raise ArchError(f"cannot read {path} as safetensors: {e}",
                        hint="save with safetensors.torch.save_file(model.state_dict(), path)") from None
    expected = to_hf_state_dict(model, {n: torch.empty(p.shape, device="meta")
                                        for n, p in iter_params(model.graph) if not p.tied_to})
    missing = sorted(set(expected) - set(tensors))
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise ArchError(f"{path} lacks {len(missing)} tensor(s) the spec needs: {', '.join(missing[:3])}{more}",
                        hint=f"the spec's `family {model.family}` expects HF transformers names")
    for name, meta in expected.items():
        if tuple(tensors[name].shape) != tuple(meta.shape):
            raise ArchError(f"{path}: {name} has shape {list(tensors[name].shape)}, the spec needs "
                            f"{list(meta.shape)}", hint="was this checkpoint made for another spec?")
    return tensors


def require(module: str, why: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ArchError(f"`ttspec run` needs {module} for {why}, and it is not installed",
                        hint="bash .ci/setup test installs torch, ttnn 0.81.1 and the rest")


def run_program(model: Model, args) -> int:
    from ..targets import get_target

    require("torch", "weights and logits")
    require("safetensors", "weight files")
    if args.mode != "torch":
        require("ttnn", f"--mode {args.mode}")

    vocab = model.graph.node(next(iter(model.graph.outputs.values()))).type.shape[-1]
    tokens = load_tokens(args.tokens, args.random_tokens, vocab_of_input(model), args.seed)
    if args.allocate_only:
        if args.mode not in ("mock", "device"):
            raise ArchError("--allocate-only is for --mode mock or --mode device")
        if args.weights:
            raise ArchError("--allocate-only and --weights exclude each other")
        state = None
    else:
        state = load_weights_file(model, args.weights) if args.weights else random_hf_state_dict(model, args.seed)
    if args.mode == "torch":
        logits = run_torch(model, args.spec, state, tokens)
    elif args.mode == "golden":
        if args.target == "torch":
            raise ArchError("--mode golden runs a TT-NN program: choose --target n150, p100 or p150")
        from ..driver import compile_source

        source = compile_source(model, args.spec, args.target, args.weights_dtype, args.mesh, args.dp)
        logits, calls = run_golden(model, args.spec, get_target(args.target), state, tokens, args.weights_dtype,
                                   source=source)
        print(f"golden: {sum(calls.values())} ttnn op calls ran as ttnn golden functions "
              f"({len(calls)} distinct ops)")
    else:
        from .device import run_on_device

        logits = run_on_device(model, args, state, tokens)
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
    return 0


def vocab_of_input(model: Model) -> int:
    """The vocabulary the token input indexes: the rows of the embedding that reads it."""
    g = model.graph
    for node in g.topo():
        if node.op == "embedding" and node.inputs[0] in g.inputs:
            return node.attrs["vocab"]
    raise ArchError("the spec has no token embedding reading its input", model.loc)
