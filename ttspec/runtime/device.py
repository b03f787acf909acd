"""Running a generated TT-NN program on a device: ttnn's mock device or real hardware.

Each run is a fresh Python process (device_worker.py), because the mock device is chosen by
environment variables that must be set before ttnn is imported, and because tt-metal
writes files (generated/fabric, generated/watcher) into its working directory, which is a
scratch folder here rather than the user's project.

`--mode device` uses the same worker without the mock environment: it is the path to real
hardware, and it has never been run on hardware by this project (none is reachable).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from ..errors import ArchError
from ..ir.graph import Model
from . import tempdirs


def import_ttnn():
    """Import ttnn quietly (its import logs its whole config at DEBUG level)."""
    os.environ.setdefault("LOGURU_LEVEL", "WARNING")
    try:
        import ttnn
    except ImportError as e:
        raise ArchError(f"ttnn is not importable here: {e}",
                        hint="pip install 'ttspec[ttnn]' (ttnn 0.81.1: Python 3.10 or 3.12)") from None
    return ttnn


def device_env(mode: str, target: str) -> dict[str, str]:
    env = dict(os.environ, LOGURU_LEVEL="WARNING")
    if mode == "mock":
        from ..mock.toolchain import ensure_toolchain, mock_env

        ensure_toolchain()
        env.update(mock_env(target))
    return env


def run_worker(model: Model, source: str, mode: str, target: str, *, state: dict | None = None, tokens=None,
               calls=None, trace: bool = False, timeout: float = 1800, job: dict | None = None,
               on_line=None) -> dict:
    """Run `source` in a worker process. `state`: ttspec names, or HF names for a spec with a
    family, or a checkpoint's WeightStream (the worker reads the files itself, one tensor at a time).
    With `state` None, weights are only allocated (torch meta tensors, ttspec names),
    so a 70B model's fit can be checked without its data. `job`: a generation or scoring job
    (generation.Job as a dict) run through the program's serving API; each line the worker prints
    goes to on_line as it comes (the tokens it streams)."""
    import numpy as np
    import torch

    from .weights import HF_NAMES, WeightStream, stored_shapes, weights_naming

    work = tempdirs.make(f"ttspec-{mode}-")  # removed when the command ends (--keep-temp keeps it)
    (work / "program.py").write_text(source, encoding="utf-8")
    request = {"class": _root_name(model), "target": target, "load": "load_ttspec_weights",
               "trace": bool(trace and mode == "device")}  # the mock device cannot replay traces
    if calls is not None:
        request["calls"] = [[name, *(_plain(a) for a in args)] for name, *args in calls]
    if state is None:
        request["meta_weights"] = {name: list(shape) for name, shape in stored_shapes(model).items()}
    elif isinstance(state, WeightStream):  # the worker streams the checkpoint itself, tensor by tensor
        request["checkpoint"] = state.to_json()
    else:
        from safetensors.torch import save_file

        if weights_naming(model, state) == HF_NAMES:
            request["load"] = "load_weights"  # the program maps HF names itself
        save_file({k: v.contiguous() for k, v in state.items()}, str(work / "weights.safetensors"))
    if tokens is not None:
        np.save(work / "tokens.npy", tokens.numpy())
    if job is not None:
        request["job"] = job
    (work / "request.json").write_text(json.dumps(request))
    command = [sys.executable, "-m", "ttspec.runtime.device_worker", str(work)]
    if job is None:
        proc = subprocess.run(command, cwd=work, env=device_env(mode, target), capture_output=True, text=True,
                              timeout=timeout)
        stdout, stderr, returncode = proc.stdout, proc.stderr, proc.returncode
    else:  # stream the worker's lines (its tokens) as they come
        with open(work / "stderr.txt", "w+", encoding="utf-8") as err:
            proc = subprocess.Popen(command, cwd=work, env=device_env(mode, target), stdout=subprocess.PIPE,
                                    stderr=err, text=True)
            lines = []
            try:
                for line in proc.stdout:
                    lines.append(line)
                    if on_line is not None:
                        on_line(line.rstrip("\n"))
                returncode = proc.wait(timeout=timeout)
            finally:  # Ctrl-C or an error here: stop the worker before its directory is removed
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            err.seek(0)
            stdout, stderr = "".join(lines), err.read()
    result_path = work / "result.json"
    if not result_path.exists():
        tail = "\n".join((stderr or stdout).strip().splitlines()[-15:])
        raise ArchError(f"the {mode} run failed before reporting (exit {returncode}):\n{tail}")
    result = json.loads(result_path.read_text())
    result["workdir"] = str(work)
    if result.get("error"):
        raise ArchError(f"{mode} run on {target}: {result['error']}", hint=result.get("hint"))
    if (work / "logits.npy").exists():
        result["logits"] = torch.from_numpy(np.load(work / "logits.npy"))
    if calls is not None:
        outputs = np.load(work / "outputs.npz", allow_pickle=False) if (work / "outputs.npz").exists() else {}
        result["outputs"] = [torch.from_numpy(outputs[f"call{i}"]) if f"call{i}" in outputs else
                             result.get("ids", {}).get(str(i)) for i in range(len(calls))]
    return result


def _plain(value):
    """A call argument as JSON: torch tensors and numpy arrays become lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def _root_name(model: Model) -> str:
    from ..backends.common.names import root_class_name

    return root_class_name(model.name)


def run_on_device(model: Model, mode: str, target: str, state: dict | None, tokens, source: str):
    result = run_worker(model, source, mode, target, state=state, tokens=tokens)
    what = "ttnn mock device (ops and allocations validated; values not meaningful)" if mode == "mock" \
        else "device"
    allocated = result.get("dram_bytes_allocated")
    print(f"{mode}: ran on {what} {target} in {result['seconds']:.1f} s; weights "
          + ("allocated without data" if state is None else "loaded") + f" in {result['weights_seconds']:.1f} s"
          + (f"; DRAM in use {allocated:,} bytes" if allocated else ""))
    return result["logits"]
