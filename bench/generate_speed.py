"""Greedy decode throughput of the generated torch program beside HF transformers' own
`generate(do_sample=False, use_cache=True)`, on the same random model, in this run.

The model is a Llama of 8 layers, hidden 512, 8 heads with 4 KV heads (GQA), MLP 1536, a vocabulary
of 8192: small enough for a CPU, large enough that the matmuls are not free. HF builds it, it is saved,
`ttspec import-hf` makes its spec, and the torch program loads the same weights. Both generate the same
number of new tokens from the same prompts (prefill included), alternating runs; the median tokens/s of
each and their ratio are printed, and both must produce the same ids.

Run: .venv/bin/python bench/generate_speed.py [--runs N] [--new-tokens N] [--batch B] [--threads T]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--prompt", type=int, default=32, help="prompt length")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both (default 1: a shared CPU)")
    args = parser.parse_args()

    import torch
    import transformers

    from ttspec.driver import load_model
    from ttspec.importers.hf import import_hf
    from ttspec.runtime.runner import build_torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=8192, hidden_size=512, intermediate_size=1536, num_hidden_layers=8,
                                      num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=1024,
                                      rms_norm_eps=1e-5)
    hf = transformers.AutoModelForCausalLM.from_config(config).float().eval()
    folder = Path(tempfile.mkdtemp(prefix="ttspec-bench-generate-"))
    hf.save_pretrained(folder / "model")
    (folder / "model.arch").write_text(import_hf(folder / "model").text)
    model = load_model(folder / "model.arch")
    module, net = build_torch(model, str(folder / "model.arch"), dict(hf.state_dict()))
    prompts = torch.randint(0, config.vocab_size, (args.batch, args.prompt), generator=torch.Generator().manual_seed(1))
    new = args.new_tokens

    def ours() -> list[list[int]]:
        net.allocate_cache(args.batch, args.prompt + new)
        return module.generate(net, prompts.tolist(), new)

    def theirs() -> list[list[int]]:
        with torch.no_grad():
            out = hf.generate(prompts, attention_mask=torch.ones_like(prompts), do_sample=False, use_cache=True,
                              max_new_tokens=new, eos_token_id=None, pad_token_id=0)
        return out[:, args.prompt:].tolist()

    assert ours() == theirs(), "the two greedy generations differ"  # also a warm-up for both
    times: dict[str, list[float]] = {"ttspec": [], "hf": []}
    for _ in range(args.runs):
        for name, fn in (("ttspec", ours), ("hf", theirs)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    rate = {name: args.batch * new / statistics.median(ts) for name, ts in times.items()}
    best = {name: args.batch * new / min(ts) for name, ts in times.items()}
    print(f"model: llama, 8 layers, hidden 512, GQA 8/4 heads, vocab 8192 ({sum(p.numel() for p in hf.parameters()):,} "
          f"parameters); batch {args.batch}, prompt {args.prompt}, {new} new tokens, greedy; torch threads "
          f"{args.threads}; median of {args.runs} runs (prefill included)")
    for name in ("ttspec", "hf"):
        print(f"  {name:>6}: {rate[name]:8.1f} tokens/s median, {best[name]:.1f} best "
              f"({statistics.median(times[name]):.3f} s per generation)")
    print(f"ratio ttspec / HF: {rate['ttspec'] / rate['hf']:.2f}x (median), {best['ttspec'] / best['hf']:.2f}x (best)")


if __name__ == "__main__":
    main()
