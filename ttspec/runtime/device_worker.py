"""Worker process for device runs (see device.py): python -m ttspec.runtime.device_worker DIR.

DIR holds program.py, request.json and either weights.safetensors, request["checkpoint"] (a
checkpoint's WeightStream, ttspec names, read from its files as each tensor is placed) or
request["meta_weights"] (allocate without data, ttspec names), and optionally tokens.npy; request["load"] names the
program's loader (load_ttspec_weights for ttspec names, load_weights for HF names). Writes result.json and logits.npy.
request["job"]: a `ttspec generate` job (generation.Job) run through the program's serving API instead; its
tokens are printed to stdout as they come.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
import traceback
from pathlib import Path


def main(work: Path) -> None:
    result: dict = {}
    try:
        import numpy as np
        import torch

        from ttspec.runtime.device import import_ttnn

        ttnn = import_ttnn()
        request = json.loads((work / "request.json").read_text())
        spec = importlib.util.spec_from_file_location("program", work / "program.py")
        program_module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(program_module)
        start = time.perf_counter()
        device = program_module.open_device()  # one chip, or the mesh with its fabric
        try:
            program = getattr(program_module, request["class"])(device, trace=request.get("trace", False))
            if "meta_weights" in request:
                state = {k: torch.empty(v, device="meta") for k, v in request["meta_weights"].items()}
            elif "checkpoint" in request:  # streamed from the checkpoint's files as each tensor is placed
                from ttspec.runtime.weights import WeightStream

                state = WeightStream.from_json(request["checkpoint"])
            else:
                from safetensors.torch import load_file

                state = load_file(str(work / "weights.safetensors"))
            t0 = time.perf_counter()
            getattr(program, request["load"])(state)  # load_ttspec_weights, or load_weights for HF names
            result["weights_seconds"] = time.perf_counter() - t0
            result["dram_bytes_allocated"] = dram_allocated(ttnn, device)
            if "job" in request:  # ttspec generate: the serving API (allocate_cache, prefill, decode, generate)
                from ttspec.runtime.generation import serve_in_worker

                result.update(serve_in_worker(program_module, program, request["job"], work))
            elif (work / "tokens.npy").exists():
                tokens = torch.from_numpy(np.load(work / "tokens.npy"))
                logits = program(tokens)
                np.save(work / "logits.npy", logits.float().numpy())
            if "calls" in request:
                _run_calls(program_module, program, request["calls"], ttnn, device, work, result)
        finally:
            program_module.close_device(device)
        result["seconds"] = time.perf_counter() - start
    except Exception as e:  # reported to the parent, which turns it into one clear message
        from ttspec.errors import ArchError

        message = str(e).strip().splitlines()
        if isinstance(e, ArchError):  # a refusal (a checkpoint tensor holding NaN): its own message and hint
            result["error"], result["hint"] = str(e), e.diagnostic.hint
        else:
            result["error"] = f"{type(e).__name__}: {message[0] if message else ''}"
        if "Out of Memory" in str(e) or "out of memory" in str(e).lower():
            result["hint"] = "the weights do not fit this target's DRAM; try --weights-dtype bfloat8_b"
        result["traceback"] = traceback.format_exc()[-4000:]
    (work / "result.json").write_text(json.dumps(result))


def _run_calls(module, program, calls, ttnn, device, work, result) -> None:
    """The agreed API's calls in order; logits go to outputs.npz (call{i}), generated ids to result["ids"]."""
    import numpy as np
    import torch

    outputs, result["ids"], result["dram_bytes_after"], result["call_seconds"] = {}, {}, [], []
    for i, (name, *args) in enumerate(calls):
        start = time.perf_counter()
        if name == "allocate_cache":
            program.allocate_cache(*args)
        elif name == "prefill":
            outputs[f"call{i}"] = program.prefill(torch.tensor(args[0]), *args[1:]).float().numpy()
        elif name == "decode":
            outputs[f"call{i}"] = program.decode(torch.tensor(args[0]), torch.tensor(args[1])).float().numpy()
        elif name == "generate":
            result["ids"][str(i)] = module.generate(program, args[0], **(args[1] if len(args) > 1 else {}))
        else:
            raise ValueError(f"unknown call {name!r}")
        result["call_seconds"].append(time.perf_counter() - start)
        result["dram_bytes_after"].append(dram_allocated(ttnn, device))
    np.savez(work / "outputs.npz", **outputs)


def dram_allocated(ttnn, device) -> int | None:
    """DRAM bytes allocated per chip (every bank of one device; a mesh allocates alike on each), or None."""
    try:
        stats = ttnn.get_memory_view(device, ttnn.BufferType.DRAM)
        return int(stats.total_bytes_allocated_per_bank) * int(stats.num_banks)
    except Exception:
        return None


if __name__ == "__main__":
    main(Path(sys.argv[1]))
