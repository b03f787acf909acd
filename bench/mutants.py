"""A scripted mutation run: each mutant is one deliberate bug planted in a fresh copy of the
committed tree (git archive HEAD); the mutant is killed when the named tests fail on it. The
snapshot test (tests/test_generated.py) never counts: a mutant must fail a semantic test.

    .venv/bin/python bench/mutants.py            # every mutant against its tests
    .venv/bin/python bench/mutants.py --full     # every mutant against the whole suite
    .venv/bin/python bench/mutants.py dp_ignored # one mutant
    .venv/bin/python bench/mutants.py --issue 18 # the 19 survivors of issue 18's mutation audit

The first seven mutants are issue 8's: bugs that once passed the suite or were caught only by
the snapshot test; the rest are further codegen behaviours. Exit status 1 when a mutant
survives without an explanation of why it is equivalent.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Mutant:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]  # pytest arguments that must fail on the mutant
    what: str
    equivalent: str = ""  # why no numerical test can tell this mutant apart (it may survive)


# the semantic test files (everything that compares numbers against a reference)
SEMANTIC = ("tests/test_references.py", "tests/test_random_architectures.py", "tests/test_completeness.py",
            "tests/test_golden.py", "tests/test_torch_backend.py", "tests/test_mesh.py", "tests/test_block_floats.py")

CLOSED_FORMS = "tests/test_analysis_closed_forms.py::"

MUTANTS = [
    Mutant("interleaved_never_emitted", "ttspec/backends/common/backend.py",
           'if f["style"] != "half":', "if False:",
           ("tests/test_references.py::test_gptj_partial_interleaved_matches_hf",),
           "RoPE style never reaches the generated programs: interleaved rotates as rotate-half"),
    Mutant("dp_ignored", "ttspec/passes/shard.py",
           "dp=dp and mesh[1 - axis] > 1", "dp=False",
           ("tests/test_mesh.py::test_data_parallel_replicas_hold_and_compute_their_own_rows",),
           "--dp accepted and ignored: every device holds the whole batch"),
    Mutant("ast_cache_disabled", "ttspec/frontend/parser.py",
           'if os.environ.get("TTSPEC_NO_CACHE"):', "if True:",
           ("tests/test_cache.py",),
           "the AST cache never stores or loads"),
    Mutant("interleaved_sign_flipped", "ttspec/backends/ttnn/rt/rotary.py",
           "r[2 * i + 1, 2 * i], r[2 * i, 2 * i + 1] = -1.0, 1.0",
           "r[2 * i + 1, 2 * i], r[2 * i, 2 * i + 1] = 1.0, -1.0",
           ("tests/test_references.py::test_gptj_partial_interleaved_matches_hf",),
           "the TT-NN interleaved rotation turns the other way"),
    Mutant("row_parallel_bias_not_divided", "ttspec/backends/ttnn/rt/weights.py",
           "bias = bias / MESH_SHAPE[axis]", "bias = bias",
           ("tests/test_references.py::test_biases_on_meshes_match_hf",),
           "a row-parallel bias added once per device before the partial sums are reduced"),
    Mutant("rms_norm_eps_hard_coded", "ttspec/backends/ttnn/lower.py",
           'options = {"epsilon": Const(node.attrs.eps), "weight"',
           'options = {"epsilon": Const(node.attrs.eps if kind == "layer" else 1e-05), "weight"',
           ("tests/test_random_architectures.py",),
           "the TT-NN rms_norm ignores the spec's eps"),
    Mutant("llama3_scaling_broken_in_torch", "ttspec/backends/common/rt/rope.py",
           "scaled = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)", "scaled = inv_freq",
           ("tests/test_references.py::test_llama_rope_scaling_matches_hf",),
           "the runtime's Llama 3 scaling (the torch reference's and the TT-NN program's) leaves the low "
           "frequencies unscaled"),
    # beyond issue 8's seven: other codegen behaviours the snapshot test guards
    Mutant("sinusoidal_sin_cos_swapped", "ttspec/backends/ttnn/rt/rotary.py",
           "values[0, :, 0::2] = torch.sin(position * div)", "values[0, :, 0::2] = torch.cos(position * div)",
           SEMANTIC, "the TT-NN sinusoidal table puts cos in the even features"),
    Mutant("ttnn_layer_norm_bias_dropped", "ttspec/backends/ttnn/lower.py",
           'if node.attrs.bias:\n            options["bias"] = refs["bias"]',
           'if False:\n            options["bias"] = refs["bias"]',
           SEMANTIC, "the TT-NN layer_norm ignores its bias"),
    Mutant("torch_layer_norm_bias_dropped", "ttspec/backends/torch/lower.py",
           'w["weight"], _bias(node, w),\n', 'w["weight"], Const(None),\n',
           SEMANTIC, "the torch reference's layer_norm ignores its bias",
           equivalent="unreachable: every layer_norm with parameters is a class leaf (nn.LayerNorm); no spec in "
                      "specs/ or tests/test_completeness.py emits F.layer_norm"),
    Mutant("ttnn_linear_rope_scaling_dropped", "ttspec/backends/common/rt/rope.py",
           "        return inv_freq / factor", "        return inv_freq",
           SEMANTIC, "the runtime (TT-NN program and torch reference) ignores linear RoPE scaling"),
    Mutant("ttnn_attention_scale_default", "ttspec/backends/ttnn/lower.py",
           "is_causal=Const(True), scale=scale,", "is_causal=Const(True), scale=Const(None),",
           ("tests/test_random_architectures.py",),
           "SDPA falls back to ttnn's default scale (1/sqrt of the padded head_dim)"),
    Mutant("ttnn_gelu_tanh_as_exact", "ttspec/backends/ttnn/lower.py",
           '_unary("ttnn.gelu", variant=name("ttnn.GeluVariant.Tanh"))', '_unary("ttnn.gelu")',
           SEMANTIC, "the TT-NN gelu_tanh computes the exact GELU",
           equivalent="below bf16 resolution: |gelu - gelu_tanh| <= 4.7e-4 (at x = 2.7, where gelu is 2.69 and "
                      "a bf16 ulp is 0.0156); only the snapshot test sees it"),
    # issue 18: checkpoints
    Mutant("rotary_inv_freq_not_ignored", "ttspec/checkpoints.py",
           r'IGNORED_HF = re.compile(r"(.*\.)?(rotary_emb\.inv_freq|attn\.bias|attn\.masked_bias)")',
           r'IGNORED_HF = re.compile(r"(.*\.)?(attn\.bias|attn\.masked_bias)")',
           ("tests/test_checkpoints_hostile.py::test_rotary_inv_freq_buffers_are_ignored_as_hf_ignores_them[llama]",),
           "checkpoints' rotary inv_freq buffers (older transformers saved one per layer) are no longer ignored: "
           "such a checkpoint is refused for tensors the spec does not use"),
    # issue 18's survivors: the TT-NN decode path and the torch target's block floats
    Mutant("idle_rows_write_position_0", "ttspec/backends/ttnn/rt/program.py",
           "at = torch.full((state.batch,), -1, dtype=torch.int64)",
           "at = torch.full((state.batch,), 0, dtype=torch.int64)",
           ("tests/test_decode_edges.py::test_a_step_for_fewer_users_leaves_the_others_caches_alone",),
           "rows of users with no token this step write their K/V at position 0 (another user's first position)"),
    Mutant("cache_context_not_tile_padded", "ttspec/backends/ttnn/rt/run_state.py",
           "self.batch, self.context = batch, -(-context // TILE) * TILE",
           "self.batch, self.context = batch, context",
           ("tests/test_decode_edges.py::test_a_context_that_is_not_whole_tiles_is_padded_to_one",),
           "the cache's context not rounded to a tile: a 33-token prompt into allocate_cache(1, 40) refused"),
    Mutant("cache_dram_check_ignores_batch", "ttspec/backends/ttnn/rt/program.py",
           "cache = batch * padded * KV_CACHE_BYTES_PER_POSITION",
           "cache = padded * KV_CACHE_BYTES_PER_POSITION",
           ("tests/test_decode_edges.py::test_allocate_cache_counts_every_users_cache",),
           "allocate_cache's DRAM check counts one user's cache: 32 users x 8,288 positions allowed (34.8 GB)"),
    Mutant("block_float_layer_index_one_digit", "ttspec/backends/torch/rt/block_floats.py",
           'replace(r"\\*", r"\\d+")', 'replace(r"\\*", r"\\d")',
           ("tests/test_block_floats_deep.py::test_every_layers_matrices_are_rounded_as_ttnn_rounds_them",),
           "the torch target's block-float rounding skipped for layers >= 10 (the layer index matched with one digit)"),
    # issue 19: the torch programs' API as a runtime mixin (backends/torch/rt/program.py), read from data
    Mutant("torch_labels_ignored_on_load", "ttspec/backends/torch/rt/program.py",
           "names = {name: ttspec_name(self, name) for name in self.state_dict()}",
           "names = {name: name for name in self.state_dict()}",
           ("tests/test_runtime_torch.py::test_load_ttspec_weights_maps_labels_and_takes_tied_tensors",),
           "the torch program loads by attribute rather than ttspec name: a label renamed for Python (`def`) "
           "finds no tensor"),
    Mutant("torch_block_floats_not_rounded_on_load", "ttspec/backends/torch/rt/program.py",
           "dtype = block_float_dtype(name)", "dtype = None",
           ("tests/test_runtime_torch.py::test_block_float_weights_are_rounded_on_load",),
           "BLOCK_FLOAT_WEIGHTS ignored by load_ttspec_weights: the reference keeps weights the device rounds"),
    # issue 18's import-hf survivors: each test builds the model with transformers and compares
    Mutant("import_head_dim_dropped", "ttspec/families/llama_like.py",
           'eps=eps, **s)\n        desc.head_dim = head_dim if head_dim * s["heads"] != s["d"] else None',
           "eps=eps, **s)\n        desc.head_dim = None",
           ("tests/test_import_hf_hostile.py::test_explicit_head_dim_is_transformers",),
           "an explicit head_dim dropped in favour of hidden / heads (Qwen3-0.6B: 128, not 64)"),
    Mutant("import_phi_partial_rotary_default_dropped", "ttspec/families/phi.py",
           "partial_default=0.5, head_dim_key", "partial_default=1.0, head_dim_key",
           ("tests/test_import_hf_hostile.py::test_phi_partial_rotary_default_is_transformers",),
           "Phi's partial_rotary_factor default (0.5) dropped when config.json leaves it out: whole heads rotate"),
    Mutant("import_gpt2_tie_default_wins", "ttspec/families/gpt2.py",
           'desc.tied = cfg.get("tie_word_embeddings", "bool", DEFAULTS["tied"])\n    cfg.raw("n_ctx")',
           'desc.tied = cfg.get("tie_word_embeddings", "bool", DEFAULTS["tied"]) or DEFAULTS["tied"]\n'
           '    cfg.raw("n_ctx")',
           ("tests/test_import_hf_hostile.py::test_gpt2_untied_head_is_transformers",),
           "GPT-2's default (tied) wins over an explicit `tie_word_embeddings: false`"),
    # issue 18: survivors in the memory model, the cost model, plan --search (2-D) and the sharding planner,
    # killed by closed forms worked out by hand from the spec's sizes (tests/test_analysis_closed_forms.py)
    Mutant("residual_counted_unsplit", "ttspec/analysis/memory.py",
           "            residual = -(-residual // ax.devices)", "            residual = residual",
           (CLOSED_FORMS + "test_activations_count_the_residual_slice_not_the_whole",
            CLOSED_FORMS + "test_largest_context_is_the_closed_form_edge"),
           "the memory model counts the whole residual stream on every chip where the plan splits it"),
    Mutant("row_parallel_bias_sliced_in_memory", "ttspec/ir/sharding.py",
           "    if role == Placement.ROW and len(shape) == 1:", "    if False:",
           (CLOSED_FORMS + "test_row_parallel_biases_are_whole_on_every_chip",),
           "a row-parallel bias counted as a 1/n slice per chip though each chip holds it whole"),
    Mutant("flops_split_on_first_axis_only", "ttspec/ir/sharding.py",
           "    for ax in plan.axes:\n        placed", "    for ax in plan.axes[:1]:\n        placed",
           (CLOSED_FORMS + "test_2d_prefill_flops_are_split_over_both_mesh_axes",),
           "per-chip FLOPs divided over the first mesh axis only (a 2-D galaxy prefill 4x per chip)"),
    Mutant("norm_statistics_priced_as_bf16", "ttspec/analysis/cost.py",
           "per_device = values * STATISTICS_BYTES", "per_device = values * ACTIVATION_BYTES",
           (CLOSED_FORMS + "test_distributed_norm_statistics_are_float32_tiles",
            CLOSED_FORMS + "test_rmsnorm_statistics_are_one_float32_tile"),
           "the cost model prices the float32 statistics of a distributed norm as bf16"),
    Mutant("layernorm_statistics_one_tile_wide", "ttspec/ops/norms.py",
           "source.type.shape[:-1] + (TILE * (2 if mean else 1),)", "source.type.shape[:-1] + (TILE,)",
           (CLOSED_FORMS + "test_bytes_moved_over_the_columns_count_layernorm_statistics_twice",
            CLOSED_FORMS + "test_distributed_norm_statistics_are_float32_tiles"),
           "a distributed LayerNorm's statistics (sum x and sum x^2) typed one tile wide"),
    Mutant("decode_rows_not_tile_padded", "ttspec/analysis/cost.py",
           "            flops = flops * computed // rows  # whole 32-row tiles (a prefill's head: the last position's)",
           "            flops = flops  # whole 32-row tiles (a prefill's head: the last position's)",
           (CLOSED_FORMS + "test_decode_computes_whole_tile_rows_at_batch_1",),
           "decode matmuls priced at the batch's rows, not whole 32-row tiles (batch 1: 32x under)"),
    Mutant("search_ties_prefer_more_chips", "ttspec/reports/plan_search.py",
           "speed + (plan.chips, -bits", "speed + (-plan.chips, -bits",
           (CLOSED_FORMS + "test_search_keeps_the_plan_on_fewer_chips_when_a_replica_would_idle",),
           "plan --search breaks ties towards more chips: 2x4 --dp with an idle replica over 1x4"),
    Mutant("largest_batch_ignores_replicas", "ttspec/reports/plan_search.py",
           "MAX_DECODE_USERS * memory.replicas)", "MAX_DECODE_USERS)",
           (CLOSED_FORMS + "test_search_tries_the_largest_batch_over_its_replicas",),
           "plan --search caps the largest batch at one replica's 32 users (32 tried instead of 40 on 2 replicas)"),
    Mutant("reduce_scatter_into_part_tiles", "ttspec/passes/shard.py",
           "        return width % (self.devices * TILE) == 0", "        return width % self.devices == 0",
           (CLOSED_FORMS + "test_partial_sums_are_never_scattered_into_slices_of_part_tiles",),
           "partial sums reduce-scattered into slices that are not whole tiles (96 features over 2 chips)"),
    # issue 18: the sampler (the generated programs', backends/common/rt/generate.py) against HF transformers' logits
    # processors applied in HF's order: temperature, top-k, top-p
    Mutant("top_p_before_top_k", "ttspec/backends/common/rt/generate.py",
           "return keep_top_p(keep_top_k(scaled, top_k), top_p).softmax(-1)",
           "return keep_top_k(keep_top_p(scaled, top_p), top_k).softmax(-1)",
           ("tests/test_run_generate_hostile.py::test_top_k_then_top_p_never_draws_the_second_token",
            "tests/test_run_generate_hostile.py::test_sampling_distribution_equals_hf_logits_processors"),
           "top-p applied before top-k: T=1, k=2, p=0.7 draws a second token HF never draws"),
    Mutant("temperature_after_top_p", "ttspec/backends/common/rt/generate.py",
           "    scaled = (logits - logits.max(-1, keepdim=True).values) / temperature\n"
           "    return keep_top_p(keep_top_k(scaled, top_k), top_p).softmax(-1)",
           "    scaled = logits - logits.max(-1, keepdim=True).values\n"
           "    return (keep_top_p(keep_top_k(scaled, top_k), top_p) / temperature).softmax(-1)",
           ("tests/test_run_generate_hostile.py::test_top_p_sees_the_temperature",
            "tests/test_run_generate_hostile.py::test_sampling_distribution_equals_hf_logits_processors"),
           "temperature applied after top-p: the nucleus is chosen at T=1 whatever the temperature"),
    # issue 20's decode step
    Mutant("rope_pairs_not_permuted", "ttspec/backends/ttnn/rt/weights.py",
           "        if rope_pairs:\n            weight = adjacent_rope_pairs(weight, *rope_pairs)",
           "        if False:\n            weight = adjacent_rope_pairs(weight, *rope_pairs)",
           ("tests/test_decode.py::test_score_llama_gqa",),
           "q and k rows left in rotate-half order while RoPE rotates adjacent pairs (prefill and decode)"),
    Mutant("decode_silu_dropped", "ttspec/backends/ttnn/lower.py",
           'options[f"input_tensor_{side}_activations"] = List((name("ttnn.UnaryOpType.SILU"),))',
           'options[f"input_tensor_{side}_activations"] = List(())',
           ("tests/test_decode.py::test_score_llama_gqa", "tests/test_decode_lowering.py"),
           "decode moves SwiGLU's SiLU out of w1 and never applies it in the multiply"),
    Mutant("decode_frees_before_last_use", "ttspec/backends/common/emit.py",
           "if self.last_use.get(held) == now and held not in self.plan.inputs:",
           "if self.last_use.get(held, now) >= now and held not in self.plan.inputs:",
           ("tests/test_decode_lowering.py::test_a_value_is_freed_only_after_its_last_read",),
           "ttnn.deallocate of every value held after each statement, still-needed ones too"),
]


# Issue 18's second mutation audit: 19 planted bugs the suite let through, in the issue's order.
ISSUE_18_SURVIVORS = (
    "top_p_before_top_k", "temperature_after_top_p",
    "idle_rows_write_position_0", "cache_context_not_tile_padded", "cache_dram_check_ignores_batch",
    "import_head_dim_dropped", "import_phi_partial_rotary_default_dropped", "import_gpt2_tie_default_wins",
    "rotary_inv_freq_not_ignored",
    "block_float_layer_index_one_digit",
    "residual_counted_unsplit", "row_parallel_bias_sliced_in_memory", "flops_split_on_first_axis_only",
    "norm_statistics_priced_as_bf16", "layernorm_statistics_one_tile_wide", "decode_rows_not_tile_padded",
    "search_ties_prefer_more_chips", "largest_batch_ignores_replicas",
    "reduce_scatter_into_part_tiles",
)
BY_ISSUE = {18: ISSUE_18_SURVIVORS}


def copy_tree(folder: Path) -> None:
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)


def run_mutant(mutant: Mutant, full: bool) -> tuple[bool, float, str]:
    with tempfile.TemporaryDirectory(prefix=f"ttspec-mutant-{mutant.name}-") as tmp:
        folder = Path(tmp)
        copy_tree(folder)
        target = folder / mutant.path
        text = target.read_text(encoding="utf-8")
        if text.count(mutant.old) != 1:
            raise SystemExit(f"{mutant.name}: expected the text once in {mutant.path}, found it "
                             f"{text.count(mutant.old)} times; re-create the mutant against the current code")
        target.write_text(text.replace(mutant.old, mutant.new), encoding="utf-8")
        tests = ["tests"] if full else list(mutant.tests)
        env = dict(os.environ, PYTHONPATH=str(folder))
        env.pop("TTSPEC_REQUIRE_ALL", None)
        start = time.time()
        out = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-rfE", "-p", "no:cacheprovider",
                              "--ignore", "tests/test_generated.py",
                              *tests], cwd=folder, env=env, capture_output=True, text=True)
        failed = [line for line in out.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
        return out.returncode != 0, time.time() - start, failed[0] if failed else out.stdout.strip()[-200:]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="mutants to run (default: all)")
    parser.add_argument("--full", action="store_true", help="run the whole suite (less the snapshot test)")
    parser.add_argument("--issue", type=int, choices=sorted(BY_ISSUE), help="the mutants an issue's audit planted")
    args = parser.parse_args(argv)
    names = set(args.names) | set(BY_ISSUE.get(args.issue, ()))
    unknown = names - {m.name for m in MUTANTS}
    if unknown:
        parser.error(f"no such mutant: {', '.join(sorted(unknown))}")
    chosen = [m for m in MUTANTS if not names or m.name in names]
    killed, unexplained = 0, 0
    for mutant in chosen:
        dead, seconds, evidence = run_mutant(mutant, args.full)
        killed += dead
        verdict = "KILLED " if dead else "SURVIVED"
        if not dead and mutant.equivalent:
            verdict, evidence = "EQUIVAL.", mutant.equivalent
        unexplained += not dead and not mutant.equivalent
        print(f"{verdict} {mutant.name:32} {seconds:6.1f}s  {mutant.what}\n         {evidence}", flush=True)
    print(f"{killed}/{len(chosen)} mutants killed; {len(chosen) - killed - unexplained} survivors explained as "
          f"equivalent, {unexplained} unexplained")
    return 0 if unexplained == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
