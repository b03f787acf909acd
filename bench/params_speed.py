"""`ttspec params specs/llama-3.1-8b.arch` (whole process) beside its peer: building the
same model with HF transformers on torch's meta device and counting its parameters.

Both are measured here, in this run, as whole processes (start-up included), and the ratio
is printed. Run: .venv/bin/python bench/params_speed.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "llama-3.1-8b.arch"
TTSPEC = Path(sys.executable).with_name("ttspec")
PEER = """
import torch, transformers
config = transformers.LlamaConfig(vocab_size=128256, hidden_size=4096, num_hidden_layers=32,
    num_attention_heads=32, num_key_value_heads=8, intermediate_size=14336,
    max_position_embeddings=131072, rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=False)
with torch.device("meta"):
    model = transformers.LlamaForCausalLM(config)
print(sum(p.numel() for p in model.parameters()))
"""


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return time.perf_counter() - start, out.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=10, help="runs of ttspec (the peer runs a third as often)")
    args = ap.parse_args()
    cache = tempfile.mkdtemp(prefix="ttspec-bench-cache-")
    env = dict(os.environ, TTSPEC_CACHE_DIR=cache)
    cold_env = dict(os.environ, TTSPEC_NO_CACHE="1")
    try:
        cmd = [str(TTSPEC), "params", "--json", str(SPEC)]
        _, first = timed(cmd, env)  # fills the AST cache
        warm = [timed(cmd, env)[0] for _ in range(args.runs)]
        cold = [timed(cmd, cold_env)[0] for _ in range(args.runs)]
        peer_runs = [timed([sys.executable, "-c", PEER]) for _ in range(max(1, args.runs // 3))]
    finally:
        shutil.rmtree(cache, ignore_errors=True)

    import json

    ours = json.loads(first)["total"]
    theirs = int(peer_runs[0][1].strip())
    peer = [t for t, _ in peer_runs]
    w, c, p = statistics.median(warm), statistics.median(cold), statistics.median(peer)
    print(f"model: Llama-3.1-8B   ttspec total {ours:,}   transformers total {theirs:,}   "
          f"{'agree' if ours == theirs else 'DISAGREE'}")
    print(f"ttspec params (AST cache warm)   median {w * 1000:7.1f} ms  over {len(warm)} runs")
    print(f"ttspec params (no cache, cold)   median {c * 1000:7.1f} ms  over {len(cold)} runs")
    print(f"transformers on meta device      median {p * 1000:7.1f} ms  over {len(peer)} runs")
    print(f"ratio peer/ttspec: {p / w:.1f}x warm, {p / c:.1f}x cold   (targets: ttspec < 300 ms, >= 10x)")
    if ours != theirs:
        sys.exit(1)


if __name__ == "__main__":
    main()
