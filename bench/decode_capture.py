"""What one decode step of a generated TT-NN program dispatches, captured with `ttnn.graph` on ttnn's mock device.

Compiles SPEC for TARGET (as `ttspec compile` does, --batch USERS), runs it on the mock device in a fresh process
with its weights allocated without host data (ttspec/runtime/decode_capture.py), takes one uncaptured decode step
to warm it, then captures the next step of USERS users and prints, per decode layer: the device ops (names,
counts), their program factories, math fidelities, dtypes and memory layouts (DRAM/L1, interleaved/sharded), the
weight matmuls (named by the program's own Weights class), collectives, and the host<->device bytes of the step
(uploads and reads, and whether uploads grow with the number of layers). --prefill T also captures one user's
prefill of T tokens. The mock validates every op, config and allocation but runs no kernel: no timing, no values.

How ops are grouped by layer: the capturing process wraps each element of the program's layer list so its call is
one named scope in the capture (`ttnn.graph.track_function_start("ttspec.layer <i>")`); an op belongs to the layer
whose scope it was dispatched in (ttspec/runtime/graph_summary.py). A device op is a captured node carrying the
`program_factory_type` ttnn resolved, including the Tilize/Typecast that `ttnn.from_torch` runs on the device when
it uploads float32 host data (counted apart as "in uploads"). tests/test_decode_capture.py checks the grouping
against total(2 layers) - total(1 layer).

Run: .venv/bin/python bench/decode_capture.py specs/llama-3.1-8b.arch --target n150 \
         --weights-dtype attention=bfloat8_b,mlp=bfloat4_b --users 32 [--layers N] [--prefill T] [--json]
         [--strategy 2d]
(--layers N recompiles the spec with `let layers = N`, for big models or for checking per-layer counts.)

Measured on main at 18315e8 (ttnn 0.81.1 mock, 2-core machine; wall times include process start):
Llama, 32 users, context 256, per decode layer unless said. "ops" counts every device op dispatched in the
layer's scope; in (brackets) without the 8 Tilize/Typecast that ttnn.from_torch runs on the device for the 4
float32 cos/sin tables each layer uploads. (Issue 20's "30 per layer" for 8B is the bracketed count, its "42"
for 70B T3K the full one; its "0/10" and "0/6" are two layers' worth of the per-layer 0 of 5 and 0 of 3.)

                        8B n150              70B T3K (1x8)        70B T3K (1x8)        70B Galaxy (8x4)
  --weights-dtype       attn bf8, mlp bf4    bfloat8_b            attn bf8, mlp bf4    bfloat8_b
  device ops per layer  38 (30)              42 (34)              42 (34)              52 (44)
  DRAM-sharded matmuls  0 of 5 (Mcast1D)     0 of 5               0 of 5               0 of 5
  matmul fidelity       HiFi2 (bf4: 3 of 3)  HiFi2                HiFi2 (bf4: 3 of 3)  HiFi2
  host->device, layer   65,664 B             525,312 B (x8)       525,312 B            2,101,248 B (x32)
  host->device, step    2,101,376 B          42,025,984 B         42,025,984 B         168,103,936 B
  device->host, step    8,208,384 B          8,208,384 B          8,208,384 B          32,833,536 B
  per user              256,512 B            256,512 B            256,512 B            1,026,048 B
  fabric                (one chip)           FABRIC_1D            FABRIC_1D            FABRIC_1D
  collectives per layer -                    2 AG + 2 RS          2 AG + 2 RS          7 AG + 5 RS
  topology, payload     -                    Linear, bf16         Linear, bf16         Linear, bf16 (+fp32 stats)
  capture: wall, RSS    7 s                  12 s, 1.3 GB         21 s                 37 s, 2.4 GB

- 8B n150: total(2 layers) - total(1 layer) = 79 - 41 = 38. Per layer: 9 binary, 7 matmuls (wqkv, wo, w1, w3, w2
  and the 2 RoPE rotations), 4 transposes, 2 rms_norm, 2 interleaved->sharded, 2 paged_update_cache, create heads,
  SDPA decode, concat heads, a separate SiLU, and the 4 Tilize + 4 Typecast of the uploads. Activations are bf16 in
  DRAM, interleaved; L1 holds only the 2 height-sharded K/V rows that paged_update_cache takes. Uploads per layer:
  4 float32 [1, 1, 32, 128] cos/sin tables (16,384 B each) + int32 positions (128 B); the step adds the tokens
  (128 B). The step reads back all bf16 logits [32, 128256]. After the layers: the final norm and a bf16 head.
- 70B Galaxy: after the layers the head's all-reduce is AllBroadcast + Concat + MorehSum; the 32 chips' logits
  slices come back (32 x [32, 16032] bf16).
- Prefill of 128 tokens (--prefill 128, one user): 8B 28 ops per layer, 70B T3K 32; both read back every
  position's logits, 32,833,536 B.

After issue 20's decode step (classes' `decode` methods, configured matmuls, the decode attention chain; same
mock, 32 users, context 256; 70B with --layers 2):

                        8B n150              8B n150      70B T3K (1x8)        70B T3K      70B Galaxy (8x4)
  --weights-dtype       attn bf8, mlp bf4    bfloat8_b    attn bf8, mlp bf4    bfloat8_b    bfloat8_b
  device ops per layer  19                   19           23                   23           34
  once per step, before 7 (cos/sin gathers and their reshards, the position and token uploads)
  DRAM-sharded matmuls  0 of 5: 1-D multicast programs on DRAM-interleaved weights (prefill's unconfigured matmul
                        refuses DRAM-sharded weights; see ttspec/backends/ttnn/decode_configs.py)
  matmul fidelity       bf4 LoFi 3 of 3, bf8 HiFi2
  host->device, step    384 B                384 B        3,072 B              3,072 B      12,288 B
  (independent of the number of layers: the RoPE cos/sin are gathered on the device from one table)
- 8B n150 per layer: 2 rms_norm, 5 matmuls, nlp_create_qkv_heads_decode, 2 rotary_embedding_llama, 2
  paged_update_cache, SDPA decode, a reshard, nlp_concat_heads_decode, a sharded->interleaved, the SiLU-fused
  multiply and 2 adds. Prefill is unchanged (28 ops per layer at 128 tokens).

Meshes (h-mesh; 70B bfloat8_b, --layers 1; --strategy picks Galaxy's 2-D plan):
                        70B T3K before            70B T3K after               70B Galaxy 2-D before      after
  fabric                FABRIC_1D                 FABRIC_1D_RING              FABRIC_1D                  FABRIC_1D
  collectives per layer 2 AG + 2 RS, Linear       2 AG + 2 RS, Ring           Linear                     Linear
  reduce_scatter        ReduceScatterProgram      ReduceScatterMinimalDirect
  payloads              bf16                      bf16 (bf8 fails the golden PCC: docs/design-decode.md)
  device ops per layer  23                        23                          34                         34
  head's all-reduce     -                         -                           AllBroadcast+Concat+MorehSum  RS + AG
  ops after the layers  3                         3                           7                          6
  device->host, step    8,208,384 B               8,208,384 B                 32,833,536 B               33,030,144 B
(Topologies before this change were printed as the first of ttnn's per-axis topologies, axis 0's; "Linear" above is
the cluster axis's, re-read.)

Reads from the device (h-reads: the greedy step chooses each user's token on the device, decode_greedy, which the
capture runs unless --logits; a prefill's head runs on the tile holding the last position; logits are read from
one tensor-parallel group where the other mesh axis holds copies). Same mock, 32 users, context 256, 70B with
--layers 2, prefill of 128 tokens:

                              8B n150              70B T3K (1x8)        70B Galaxy (8x4)
  --weights-dtype             attn bf8, mlp bf4    attn bf8, mlp bf4    bfloat8_b
  device->host, greedy step   192 B (6 B a user)   1,536 B (48 B)       1,536 B (48 B)
    before                    8,208,384 B          8,208,384 B          32,833,536 B
  device ops after the layers 6                    7                    11
  device->host, prefill       8,208,384 B          8,208,384 B          8,208,384 B
    before                    32,833,536 B         32,833,536 B         131,334,144 B
  (the "before" figures measured on main at 1caa947 in the same way, except 8B n150's and T3K's prefill, from the
  table above; Galaxy's prefill dispatches 93 device ops against main's 91: the slice of the last tile of rows)
- A greedy step reads a uint32 id and a bf16 largest logit per user from each device of one tensor-parallel group
  (the closed form: devices x users x (4 + 2) B); after the head it adds 4 device ops (untilize, argmax, max, and
  the untilize of the [32, 1] maxima). A prefill reads one tile of rows, 32 x vocab x 2 B (per device's slice).

The LM head as DRAM-sharded column chunks (h-head, backends/ttnn/lower_head.py; 32 users, context 256,
--prefill 128; --layers 2, 70B --layers 1; "before": the 1-D multicast head on a DRAM-interleaved weight):

                         8B n150                1B n150 (tied)         3B n150 (tied)         70B T3K (1x8)
  --weights-dtype        attn bf8, mlp bf4,     attn bf8, mlp bf4,     attn bf8, mlp bf4      attn bf8, mlp bf4,
                         head bf8               head bf8               (head bf16)            head bf8
  head                   3 x DRAMSharded        3 x DRAMSharded        8 x DRAMSharded        1 x DRAMSharded
                         [4096, 42752] HiFi2    [2048, 42752] HiFi2    [3072, <=17024] HiFi4  [8192, 16032] per chip
    before               Mcast1D [4096, 128256] Mcast1D                Mcast1D
  ops after the layers   14 (before 7)          14                     24                     9
  ops per layer          19                     19                     20 (before 19; layer matmuls 5 of 5 DRAM-
                                                                       sharded, before 0 of 5)
  prefill, 128 tokens    61 ops (before 58)     61                     66                     36
  head bytes (memory model, 8B): 561,512,448 = 3 chunks x 12 banks x [4096, 3584] bfloat8_b (unpadded 558,137,344)
- After the layers (8B): the residual to interleaved, the final norm, its output resharded onto the head's 8x8 grid
  ([32, 64] per core), 3 DRAM-sharded matmuls, 3 sharded_to_interleaved, concat, and the 4-op greedy tail. Concat +
  one argmax (12 ops from the reshard on) is cheaper than an argmax and max per chunk combined (16). A bf16 head
  takes chunks scaled by tile bytes (1B with a bf16 head: 6 chunks of <= 22,688, 20 ops after the layers). 3B: wo
  reads nlp_concat_heads_decode's 24 heads of 128 resharded onto the residual's 32 cores (ReshardGenericFactory, +1
  op per layer); bench/calibrate_decode.py now prices 1B / 3B / 8B n150 at 1.03 / 0.92 / 1.00 of PERF.md (3B was
  0.77 before its layer matmuls were DRAM-sharded).

After the DRAM-sharded layer matmuls (ttspec/backends/ttnn/lower_matmul.py; same mock, 32 users, context 256,
--layers 2, attention bfloat8_b and MLP bfloat4_b, --prefill 160; 70B T3K measured then with a switch,
lower_matmul.MESHES = True, that shipped False until the memory model counted the DRAM shards' padding):

                        8B n150                          70B T3K (1x8)
  device ops per layer  19 (8 before the layers, 3 after) 23 (7 before, 3 after)
  DRAM-sharded matmuls  5 of 5 (MatmulMultiCoreReuseMultiCastDRAMShardedProgramFactory; weights DRAM width_sharded,
                        activations L1 width_sharded)
  matmul fidelity       bf4 LoFi 3 of 3, bf8 HiFi2 2 of 2     the same
  prefill, 160 tokens   27 ops per layer                  31 ops per layer
  capture: wall         15 s                              36 s
- 8B n150 per layer: 2 sharded rms_norm (LayerNormShardedProgramFactory), 5 DRAM-sharded matmuls, a
  sharded->interleaved of the QKV output, nlp_create_qkv_heads_decode, 2 rotary_embedding_llama, 2
  paged_update_cache, SDPA decode, its reshard, nlp_concat_heads_decode (read by wo as it is), the SiLU-fused
  multiply and 2 adds, all on one 32-core grid. Once per step: the embedding onto that grid, the residual back
  to interleaved before the final norm. Prefill also validated at 1056 and 2048 tokens (--users 1 --layers 1
  --context 2048: chunks of 32 and 1024 rows). 70B Galaxy keeps the 1-D path (34 ops per layer).

1-D meshes DRAM-sharded as shipped (h-meshdram: the memory model counts each bank's whole shard; same mock, 32
users, context 256, --layers 1, attention bfloat8_b and MLP bfloat4_b):

                        70B T3K (1x8)                          llama-gqa-tiny T3K (bf16)
  device ops per layer  23 (7 before the layers, 7 after)      23
  DRAM-sharded matmuls  5 of 5 (wqkv [8192, 1280] and wo bf8 HiFi2; w1/w3/w2 bf4 LoFi)   5 of 5 (HiFi4)
  collectives per layer 2 AG + 2 RS, Ring, bf16                the same
  host->device, step    3,072 B                                3,072 B
  device->host, greedy  1,536 B (48 B a user)                  1,536 B
  capture: wall         33 s                                   7 s
- Weights per chip, ttnn's mock allocator against the memory model (tests/test_mesh.py test_mock_mesh, prefill of
  64 tokens, 70B bfloat8_b): 10,219,388,928 B allocated, 10,212,818,944 B planned (0.06%; the model before this
  counted 9,577,775,104: each bank holds a whole shard, QKV 1280 -> 1536 columns, w1/w3 3584 -> 3840, wo/w2
  8192 -> 8448). 8B n150 bfloat8_b: 9,192,931,328 B planned (+151,519,232 B of padding: wo/w2 4096 -> 4224,
  w1/w3 14336 -> 14592).
- llama-gqa-tiny on T3K was refused by the mock before (num_blocks_total <= num_cores in its decode QKV matmul,
  a 1-D program sized for 48 columns per chip where the chip holds 96: 1 query head and copies of 1 K and 1 V
  head); decode_configs.local_matmul_shape now counts the repeated KV heads.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ttspec.driver import compile_source, load_model  # noqa: E402
from ttspec.targets import compile_target  # noqa: E402
from ttspec.weight_formats import parse as parse_formats  # noqa: E402


def load_with_layers(spec: Path, layers: int | None):
    """The spec's model, with `let layers = N` replaced when `layers` is given (the spec is rewritten to a
    temporary file: a spec importing files beside it would need them there too)."""
    if layers is None:
        return load_model(spec)
    text, count = re.subn(r"(?m)^let layers = \d+", f"let layers = {layers}", spec.read_text(encoding="utf-8"))
    if count != 1:
        raise SystemExit(f"{spec}: no single `let layers = N` line to replace")
    from ttspec.runtime import tempdirs

    folder = tempdirs.make("ttspec-capture-spec-")  # removed when the process exits
    path = folder / spec.name
    path.write_text(text, encoding="utf-8")
    return load_model(path)


def capture(spec: Path, target: str, weights_dtype: str | None, users: int, context: int,
            layers: int | None = None, prefill: int | None = None, raw: Path | None = None,
            timeout: float = 1800, strategy: str | None = None, logits: bool = False,
            kv_dtype: str = "bf16", ccl_dtype: str = "bf16") -> dict:
    """Compile and capture; the result of ttspec.runtime.decode_capture.capture_decode plus what was asked."""
    from ttspec.runtime.decode_capture import capture_decode

    model = load_with_layers(spec, layers)
    compile_as = compile_target(target)
    formats = parse_formats(weights_dtype) if weights_dtype else parse_formats("bf16")
    formats = formats.with_kv_cache(kv_dtype).with_ccl(ccl_dtype)
    source = compile_source(model, str(spec), compile_as, formats, batch=users, strategy=strategy)
    start = time.perf_counter()
    result = capture_decode(model, source, target, users=users, context=context, prefill=prefill,
                            raw=raw, timeout=timeout, logits=logits)
    result["seconds"] = round(time.perf_counter() - start, 1)
    result["asked"] = {"spec": str(spec), "target": target, "weights_dtype": weights_dtype or "bf16",
                       "kv_dtype": kv_dtype, "ccl_dtype": ccl_dtype, "users": users, "context": context,
                       "layers": layers, "prefill": prefill,
                       "strategy": strategy, "step": "logits" if logits else "greedy"}
    return result


def headline(result: dict) -> dict:
    """The figures issue 20 quotes, from a capture."""
    decode = result["decode"]
    per_layer = decode["device_ops_per_layer"]
    matmuls = decode["layer0_matmuls"]
    weight_matmuls = [m for m in matmuls if m["weight"]]
    bfp4 = [m for m in weight_matmuls if m["weight_dtype"] == "bfloat4_b"]
    users = result["asked"]["users"]
    uploads = decode["bytes_to_device_per_layer"]
    return {
        "device_ops_per_layer": per_layer[0] if per_layer else 0,
        "same_in_every_layer": len(set(per_layer)) <= 1,
        "device_ops_in_uploads_per_layer": decode["layer0_ops_in_uploads"],
        "weight_matmuls_per_layer": len(weight_matmuls),
        "weight_matmuls_dram_sharded": sum("DRAMSharded" in m["factory"] for m in weight_matmuls),
        "bfloat4_b_matmul_fidelities": dict(Counter(m["fidelity"] for m in bfp4)),
        "weight_matmul_fidelities": dict(Counter(f"{m['weight_dtype']} {m['fidelity']}" for m in weight_matmuls)),
        "bytes_to_device_per_step": decode["bytes_to_device_per_step"],
        "bytes_to_device_per_layer": uploads[0] if uploads else 0,
        "uploads_grow_with_layers": any(uploads),
        "bytes_to_host_per_step": decode["bytes_to_host_per_step"],
        "bytes_to_host_per_user": decode["bytes_to_host_per_step"] // users,
        "collectives_per_layer": len(decode["collectives"]),
        "collective_payload_dtypes": dict(Counter(c["payload_dtype"] for c in decode["collectives"])),
        "collective_topologies": dict(Counter(c["topology"] for c in decode["collectives"])),
        "fabric": result["fabric"],
    }


def report(result: dict) -> str:
    asked, decode, head = result["asked"], result["decode"], headline(result)
    mesh = "x".join(map(str, result["mesh_shape"]))
    lines = [f"{asked['spec']} on the mock {asked['target']} (mesh {mesh}, fabric {result['fabric']}), weights "
             f"{asked['weights_dtype']}, {asked['users']} users, context {asked['context']}, "
             f"{decode['layers']} layers; captured in {result['seconds']} s",
             "",
             f"decode step: {decode['device_ops_total']} device ops ({decode['device_ops_before_layers']} before the "
             f"layers, {decode['device_ops_after_layers']} after); program executions (one per op and chip): "
             f"{sum(decode['program_executions'].values())}",
             f"device ops per decode layer: {head['device_ops_per_layer']} "
             f"({head['device_ops_per_layer'] - head['device_ops_in_uploads_per_layer']} on the layer's tensors, "
             f"{head['device_ops_in_uploads_per_layer']} converting uploaded host data); the same in every layer: "
             f"{head['same_in_every_layer']}",
             "", "layer 0's device ops (count, op: program factory):"]
    lines += [f"  {n:3d}  {name}" for name, n in sorted(decode["layer0_factories"].items(), key=lambda i: -i[1])]
    lines += ["", "layer 0's matmuls (weight operand, its dtype and memory, activation memory -> factory, fidelity):"]
    lines += [_matmul_line(m) for m in decode["layer0_matmuls"]]
    lines += ["after the layers:"] + [_matmul_line(m) for m in decode["head_matmuls"]]
    lines += [f"  {n:3d}  {name}" for name, n in decode["ops_after_layers"].items()]
    lines += ["", f"weight matmuls per layer: {head['weight_matmuls_per_layer']}, on the DRAM-sharded factory: "
              f"{head['weight_matmuls_dram_sharded']}; fidelity by weight dtype: {head['weight_matmul_fidelities']}",
              f"layer 0's tensors by memory (inputs and outputs of its ops): {dict(decode['layer0_memory'])}",
              f"layer 0's op outputs by dtype: {dict(decode['layer0_activation_dtypes'])}"]
    if decode["collectives"]:
        lines += ["collectives in layer 0 (op: factory, topology, payload dtype and shape):"]
        lines += [f"  {c['op']}: {c['factory']}, {c['topology']}, {c['payload_dtype']} {c['payload_shape']}"
                  for c in decode["collectives"]]
    lines += ["", f"host -> device per step: {head['bytes_to_device_per_step']:,} B "
              f"({head['bytes_to_device_per_layer']:,} B in each layer, {decode['bytes_to_device_outside_layers']:,} "
              f"B outside); grows with the number of layers: {head['uploads_grow_with_layers']}"]
    lines += [f"  {n:3d} x {row}" for row, n in decode["uploads_per_step"].items()]
    lines += [f"device -> host per {asked['step']} step: {head['bytes_to_host_per_step']:,} B "
              f"({head['bytes_to_host_per_user']:,} B per user)"]
    lines += [f"  {n:3d} x {row}" for row, n in decode["reads_per_step"].items()]
    if "prefill" in result:
        p = result["prefill"]
        lines += ["", f"prefill of {asked['prefill']} tokens (one user): {p['device_ops_total']} device ops, "
                  f"{p['device_ops_per_layer'][0] if p['device_ops_per_layer'] else 0} per layer; host -> device "
                  f"{p['bytes_to_device_per_step']:,} B, device -> host {p['bytes_to_host_per_step']:,} B"]
    return "\n".join(lines)


def _matmul_line(m: dict) -> str:
    name = m["weight"] or f"(not a weight: {m['caller']})"
    return (f"  {name:<28} {m['weight_dtype']:<9} {m['weight_memory']:<18} {m['weight_shape']!s:<14} "
            f"act {m['activation_memory']:<18} -> {m['factory']}, {m['fidelity']}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", type=Path)
    parser.add_argument("--target", default="n150")
    parser.add_argument("--weights-dtype", help="as ttspec compile: DTYPE or KIND=DTYPE,... (default bf16)")
    parser.add_argument("--kv-dtype", default="bf16", choices=("bf16", "bfloat8_b"), help="as ttspec compile")
    parser.add_argument("--ccl-dtype", default="bf16", choices=("bf16", "bfloat8_b"), help="as ttspec compile")
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--context", type=int, default=256, help="KV cache positions allocated (default 256)")
    parser.add_argument("--layers", type=int, help="recompile with `let layers = N`")
    parser.add_argument("--prefill", type=int, metavar="T", help="also capture one user's prefill of T tokens")
    parser.add_argument("--logits", action="store_true",
                        help="capture the step that returns every user's logits (decode, as --score runs it) "
                             "instead of the greedy step generate runs (decode_greedy)")
    parser.add_argument("--raw", type=Path, help="write the captured decode graph (JSON) there")
    parser.add_argument("--json", action="store_true", help="print the summary and headline as JSON")
    parser.add_argument("--ops", action="store_true", help="with --json: every captured device op too")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--strategy", choices=("1d", "2d"), help="as ttspec compile (a mesh's tensor parallelism)")
    args = parser.parse_args(argv)
    result = capture(args.spec, args.target, args.weights_dtype, args.users, args.context, args.layers,
                     args.prefill, args.raw, args.timeout, args.strategy, args.logits, args.kv_dtype,
                     args.ccl_dtype)
    if args.json:
        if not args.ops:
            result.pop("decode_ops", None)
        print(json.dumps({"headline": headline(result), **result}, indent=1))
    else:
        print(report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
