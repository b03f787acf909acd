"""Peak host memory while `ttspec run --weights DIR` loads a real-size checkpoint, beside its peer.

Writes (in a temp dir) an 8B-shaped checkpoint: Llama-3.1-8B's tensors (vocab 128256, d 4096,
GQA 32/8, MLP 14336, untied head) as random bf16 data in several shards with a
model.safetensors.index.json and a config.json, as save_pretrained lays it out. The shards
are written streaming too: the header first, then one tensor at a time.

Then, each in a fresh process with its peak RSS (resource.getrusage ru_maxrss) measured:
- ttspec: the loader `ttspec run --weights DIR` uses (ttspec.runtime.weights.load_weights_file:
  headers checked against specs/llama-3.1-8b.arch, then one tensor at a time), feeding the
  placement code of the generated n150 program (bfloat8_b, as generated/ keeps it): its own
  `Weights` class, with ttnn.from_torch doing ttnn's real host-side conversion to the device
  format and the host copy then dropped, as it is once uploaded (no device is reachable here);
- peer: safetensors.torch.load_file of every shard into one dict (the whole checkpoint in
  host memory, as the loader before issue 10 held it), then the same placement. (load_file
  alone maps the files and reads pages only when a tensor is touched, so it is measured
  with the consumer that touches them.)

Run: .venv/bin/python bench/load_memory.py [--layers N] [--dir DIR] [--keep]
(all 32 layers need about 16 GB of disk; --layers 8 writes a 4.8 GB checkpoint).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "llama-3.1-8b.arch"
VOCAB, D, HEADS, KV, MLP, HEAD_DIM = 128256, 4096, 32, 8, 14336, 128
SHARD_BYTES = 5 * 1024**3  # save_pretrained's default max_shard_size


def tensors(layers: int) -> list[tuple[str, tuple[int, ...]]]:
    """Llama-3.1-8B's HF tensor names and shapes, in save_pretrained's order."""
    out = [("model.embed_tokens.weight", (VOCAB, D))]
    for i in range(layers):
        p = f"model.layers.{i}."
        out += [(p + "input_layernorm.weight", (D,)),
                (p + "self_attn.q_proj.weight", (HEADS * HEAD_DIM, D)),
                (p + "self_attn.k_proj.weight", (KV * HEAD_DIM, D)),
                (p + "self_attn.v_proj.weight", (KV * HEAD_DIM, D)),
                (p + "self_attn.o_proj.weight", (D, HEADS * HEAD_DIM)),
                (p + "post_attention_layernorm.weight", (D,)),
                (p + "mlp.gate_proj.weight", (MLP, D)),
                (p + "mlp.up_proj.weight", (MLP, D)),
                (p + "mlp.down_proj.weight", (D, MLP))]
    return out + [("model.norm.weight", (D,)), ("lm_head.weight", (VOCAB, D))]


def write_shard(path: Path, items: list[tuple[str, tuple[int, ...]]], seed: int) -> None:
    """One safetensors file written streaming: the header (offsets from the shapes), then each
    tensor's random bf16 bytes as it is drawn."""
    import torch

    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in items:
        size = 2 * math.prod(shape)
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    gen = torch.Generator().manual_seed(seed)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for _, shape in items:
            t = torch.randn(shape, generator=gen).mul_(0.02).to(torch.bfloat16)
            f.write(t.view(torch.int16).numpy().tobytes())
            del t


def write_checkpoint(folder: Path, layers: int) -> tuple[int, int, int]:
    """(bytes, largest tensor's bytes, shards) of the checkpoint written to `folder`."""
    items = tensors(layers)
    shards, current, size = [], [], 0
    for name, shape in items:
        nbytes = 2 * math.prod(shape)
        if current and size + nbytes > SHARD_BYTES:
            shards.append(current)
            current, size = [], 0
        current.append((name, shape))
        size += nbytes
    shards.append(current)
    weight_map = {}
    for i, shard in enumerate(shards):
        file = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        print(f"  writing {file} ({sum(2 * math.prod(s) for _, s in shard) / 1e9:.2f} GB)", flush=True)
        write_shard(folder / file, shard, seed=i)
        weight_map.update({name: file for name, _ in shard})
    total = sum(2 * math.prod(s) for _, s in items)
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    (folder / "config.json").write_text(json.dumps({
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": VOCAB, "hidden_size": D,
        "num_hidden_layers": layers, "num_attention_heads": HEADS, "num_key_value_heads": KV,
        "intermediate_size": MLP, "torch_dtype": "bfloat16"}, indent=2))
    return total, max(2 * math.prod(s) for _, s in items), len(shards)


TTSPEC_LOAD = """
import glob, os, resource, sys, time
sys.path.insert(0, {root!r})
from ttspec.mock.toolchain import cluster_descriptor

# ttnn's host conversion to tiles sizes them through its runtime context, which needs a cluster:
# the mock n150 descriptor (as golden mode's quantise does); nothing runs on it
os.environ["TT_METAL_MOCK_CLUSTER_DESC_PATH"] = str(cluster_descriptor("n150"))
from ttspec.driver import compile_source, load_model
from ttspec.targets import get_target
from ttspec.weight_formats import parse
from ttspec.runtime.device import import_ttnn
from ttspec.runtime.runner import load_program, root_class
from ttspec.runtime.weights import load_weights_file

ttnn = import_ttnn()
model = load_model({spec!r})
source = compile_source(model, {spec!r}, get_target("n150"), parse("bfloat8_b"))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Placing:
    # ttnn for the program's Weights class: real host-side conversion, then the host copy goes
    def __init__(self, real):
        self.real, self.placed, self.nbytes = real, 0, 0

    def __getattr__(self, name):
        return getattr(self.real, name)

    def from_torch(self, tensor, dtype=None, layout=None, device=None, memory_config=None, **kw):
        host = self.real.from_torch(tensor, dtype=dtype, layout=layout)
        self.placed += 1
        self.nbytes += tensor.numel()
        del host
        return ("placed", tuple(tensor.shape))


module = load_program(source, "bench_place")
module.ttnn = Placing(ttnn)
start = time.perf_counter()
if {peer!r}:  # the whole checkpoint in one dict first, as the loader before issue 10 did
    from safetensors.torch import load_file

    from ttspec.families import from_hf_state_dict

    state = {{}}
    for file in sorted(glob.glob(os.path.join({folder!r}, "model-*.safetensors"))):
        state.update(load_file(file))
    state = from_hf_state_dict(model, state)
else:
    state = load_weights_file(model, {folder!r})
root_class(module, model)(None).load_ttspec_weights(state)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print("RESULT", peak, base, seconds, module.ttnn.placed, module.ttnn.nbytes, flush=True)
"""


def measure(code: str) -> tuple[int, int, float, int, int]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, LOGURU_LEVEL="WARNING"))
    if out.returncode != 0:
        raise SystemExit(f"measurement failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    line = next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))
    peak, base, seconds, count, numel = line.split()[1:]
    return int(peak), int(base), float(seconds), int(count), int(numel)


def memory_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=32, help="decoder layers (Llama-3.1-8B has 32)")
    ap.add_argument("--dir", help="write the checkpoint here (default: a temp dir under $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep the checkpoint afterwards")
    ap.add_argument("--no-peer", action="store_true", help="measure ttspec only")
    ap.add_argument("--write-into", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.write_into:
        folder = Path(args.write_into)
        (folder / "written.json").write_text(json.dumps(write_checkpoint(folder, args.layers)))
        return

    size = 2 * sum(math.prod(s) for _, s in tensors(args.layers))
    parent = Path(args.dir or tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(parent).free
    if size * 1.05 > free:
        raise SystemExit(f"{args.layers} layers need {size / 1e9:.1f} GB of disk and {parent} has "
                         f"{free / 1e9:.1f} GB free: pass --layers N (8 layers: about 4.8 GB) or --dir")
    folder = Path(tempfile.mkdtemp(prefix="ttspec-load-bench-", dir=parent))
    spec = SPEC
    try:
        if args.layers != 32:  # the same spec with fewer layers
            spec = folder / "llama-3.1-8b-shape.arch"
            spec.write_text(SPEC.read_text().replace("let layers = 32", f"let layers = {args.layers}"))
        print(f"writing an 8B-shaped checkpoint ({args.layers} layers, random bf16) to {folder}")
        t0 = time.perf_counter()
        # written by a child process: this one stays small, so the measured children (whose
        # ru_maxrss starts from their parent's size at fork) start from a small process
        subprocess.run([sys.executable, __file__, "--write-into", str(folder), "--layers", str(args.layers)],
                       check=True)
        total, largest, shards = json.loads((folder / "written.json").read_text())
        print(f"  {total / 1e9:.2f} GB in {shards} shards, written in {time.perf_counter() - t0:.0f} s")

        peak, base, seconds, placed, numel = measure(TTSPEC_LOAD.format(
            root=str(ROOT), spec=str(spec), folder=str(folder), peer=False))
        print(f"\ncheckpoint: {total / 1e9:.2f} GB ({numel:,} parameters placed by {placed} uploads); "
              f"largest tensor {largest / 1e9:.2f} GB (bf16 embedding / lm_head)")
        print(f"ttspec (load_weights_file, streamed into the n150 bfloat8_b program's placement): "
              f"peak RSS {peak / 1e9:.2f} GB ({(peak - base) / 1e9:.2f} GB above the {base / 1e9:.2f} GB "
              f"before loading), {seconds:.0f} s; "
              f"peak / checkpoint {peak / total:.2f}, peak above start / largest tensor {(peak - base) / largest:.1f}")
        if args.no_peer:
            return
        available = memory_available()
        if total * 1.1 > available:  # the peer holds every tensor at once
            print(f"peer skipped: safetensors.torch.load_file of all {total / 1e9:.1f} GB needs more than the "
                  f"{available / 1e9:.1f} GB of memory available (pass --layers N for a smaller checkpoint)")
            return
        p_peak, p_base, p_seconds, _, _ = measure(TTSPEC_LOAD.format(
            root=str(ROOT), spec=str(spec), folder=str(folder), peer=True))
        print(f"peer (safetensors.torch.load_file of every shard into one dict, then the same placement): "
              f"peak RSS {p_peak / 1e9:.2f} GB ({(p_peak - p_base) / 1e9:.2f} GB above the "
              f"{p_base / 1e9:.2f} GB before loading), {p_seconds:.0f} s; peak / checkpoint {p_peak / total:.2f}")
        print(f"ratio: the peer's peak RSS is {p_peak / peak:.2f}x ttspec's "
              f"({(p_peak - p_base) / max(1, peak - base):.2f}x above each process's start)")
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
