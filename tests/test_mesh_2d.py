"""2-D tensor parallelism on Galaxy (issue 13): every weight matrix split over both mesh axes, as
tt-metal's Galaxy Llamas place them (docs/design-2d-tp.md). Golden 8x4 programs equal the single
chip (and HF transformers); each collective, on either cluster axis, is needed; Llama-3.1-70B's
per-chip shards and bytes are those of the published config's arithmetic; the planner weighs the
two strategies and refuses what 2-D cannot do with a reason."""

import ast
import json
import re
from collections import Counter
from dataclasses import dataclass

import pytest

from ttspec.driver import build, compile_program, compile_source, load_model, lower, prepare, resolve_options
from ttspec.errors import ArchError, UsageError
from ttspec.ir.layout import Placement
from ttspec.ops.collectives import ALL_GATHER, ALL_REDUCE, MESH_PARTITION, REDUCE_SCATTER
from ttspec.runtime.runner import random_hf_state_dict, run_golden
from ttspec.targets import get_target

from .conftest import SPECS

torch = pytest.importorskip("torch")
pytest.importorskip("ttnn")

from .conftest import formats_of, mesh_of, target_of  # noqa: E402
from .numerics import (  # noqa: E402
    BF16_P99,
    BF16_PCC,
    BF16_REL,
    assert_bf16_accurate,
    assert_same_up_to_rounding,
    error_stats,
    pcc,
    rel_err,
)
from .test_mesh import (  # noqa: E402  (after the importorskips)
    riscv_gcc,
    single_chip_runs,
)

GALAXY_DRAM = 12 * 1_072_693_184  # ttnn's allocator: 12 banks per Wormhole chip (shared/notes/ttnn-0.81.md)
ROWS, COLS = 8, 4  # galaxy's mesh: axis 0 the rows, axis 1 the columns


@pytest.fixture(scope="module")
def single_chip():
    return single_chip_runs("n150")


def axis_counting(monkeypatch):
    """Counts of (collective, cluster_axis) as the golden program runs them: every collective of the
    stand-in ttnn goes through golden._collective."""
    from ttspec.runtime import golden

    counts = Counter()
    real = golden._collective

    def counting(fn, name, tensor, *args, cluster_axis=None, **kwargs):
        counts[(name, cluster_axis)] += 1
        return real(fn, name, tensor, *args, cluster_axis=cluster_axis, **kwargs)

    monkeypatch.setattr(golden, "_collective", counting)
    return counts


def expected_2d_collectives(layers: int) -> Counter:
    """The design's collectives (docs/design-2d-tp.md §2, tt-metal's distributed norm), counted by
    hand. Per layer, on the columns (axis 1): an all_gather of each of the 2 norms' statistics (the
    norms are distributed: no activation gather and no mesh_partition), an all_reduce of the partial
    sums after wqkv, w1 and w3 (3); on the rows (axis 0): an all_reduce after wo and after w2 (2).
    Outside the layers, on axis 1: the final norm's statistics all_gather and the logits' all_reduce.
    No reduce_scatter, no mesh_partition. So: all_gather 2L + 1 and all_reduce 3L + 1 on axis 1, and
    all_reduce 2L on axis 0."""
    return Counter({(ALL_GATHER.name, 1): 2 * layers + 1, (ALL_REDUCE.name, 1): 3 * layers + 1,
                    (ALL_REDUCE.name, 0): 2 * layers})


def assert_2d_as_accurate_as_single_chip(logits, expected, fp32):
    """Two bf16 programs that round in different places (the 2-D one sums partial products in another
    order and normalises from per-slice statistics): both within the bf16 budget of the fp32
    reference, the 2-D one as accurate as the single chip on the mean and the 99th percentile, and
    the two within the budget of each other (tests/numerics.py). Measured against fp32, in u = 2^-8
    of mean |logit|: 2-D mean 4.1-5.0u, p99 13.5-16.7u; single chip 4.0-4.7u, 13.4-15.8u; 2-D vs
    single 4.3-5.2u, 14.7-17.0u. Replaces bounds on maxima (2-D max <= 1.15x the single chip's max),
    which a second machine's rounding broke: 0.0685 against 1.15 x 0.0574 (issue 18)."""
    assert_same_up_to_rounding(logits.float(), expected.float(), fp32.float(), "2-D")


# ---------------------------------------------------------------- golden 8x4 equals the single chip
@pytest.mark.parametrize("spec,layers", [("nano-trickster.arch", 6), ("llama-gqa-tiny.arch", 4)])
def test_2d_galaxy_golden_equals_single_chip(single_chip, monkeypatch, spec, layers):
    """Seeded weights, tokens [4, 40]: the 8x4 program is the single chip's up to bf16 rounding (see
    assert_2d_as_accurate_as_single_chip), with the design's collectives on each axis."""
    model, state, tokens, expected = single_chip(spec)
    source, result = compile_program(model, f"specs/{spec}", target_of("galaxy"), formats_of("bf16"), strategy="2d")
    assert result.shard_plan.strategy == "2d" and result.shard_plan.mesh == (ROWS, COLS)
    assert "MESH_SHAPE = (8, 4)" in source
    counts = axis_counting(monkeypatch)
    logits, calls = run_golden(model, f"specs/{spec}", get_target("galaxy"), state, tokens, source=source)
    assert_2d_as_accurate_as_single_chip(logits, expected, single_chip.fp32(spec))
    assert model.graph.repeats()[0].attrs.count == layers
    assert counts == expected_2d_collectives(layers)
    assert calls.get(REDUCE_SCATTER.name, 0) == 0
    # the stand-in's own per-op tally agrees with the per-axis one
    for op in (ALL_GATHER.name, ALL_REDUCE.name):
        assert calls[op] == sum(n for (name, _), n in counts.items() if name == op)
    assert calls.get(MESH_PARTITION.name, 0) == 0


# ---------------------------------------------------------------- each collective is needed
@dataclass
class Site:
    start: int
    end: int
    op: str
    operand: str  # the call's first argument: what the program has without the collective
    axis: int

    def removed_from(self, source: str) -> str:
        return source[: self.start] + self.operand + source[self.end:]


COLLECTIVE_OPS = (ALL_GATHER, REDUCE_SCATTER, ALL_REDUCE, MESH_PARTITION)
CALL = re.compile(r"ttnn\.(" + "|".join(c.name for c in COLLECTIVE_OPS) + r")\(")


def _forward_spans(source: str) -> list[tuple[int, int]]:
    """Where the classes' prefill `forward` methods lie in the source (each class's `decode` step has its own
    collectives; the whole-sequence run that run_golden makes executes the forward ones)."""
    starts = [0]
    for line in source.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    return [(starts[f.lineno - 1], starts[f.end_lineno]) for f in ast.walk(ast.parse(source))
            if isinstance(f, ast.FunctionDef) and f.name == "forward"]


def collective_sites(source: str) -> list[Site]:
    """Every collective call in the prefill methods of a generated program. test_mesh.COLLECTIVE matches only
    calls on a plain name; 2-D programs also wrap calls (`ttnn.all_reduce(ttnn.linear(x, self.wqkv),
    cluster_axis=1)`, a mesh_partition inside an all_reduce), so the parentheses are matched here."""
    sites = []
    spans = _forward_spans(source)
    for m in CALL.finditer(source):
        if not any(start <= m.start() < end for start, end in spans):
            continue
        depth, i, comma = 1, m.end(), None
        while depth:
            ch = source[i]
            if ch in "([{":
                depth += 1
            elif ch in ")]}":
                depth -= 1
            elif ch == "," and depth == 1 and comma is None:
                comma = i
            i += 1
        axis = re.search(r"cluster_axis=(\d),?\s*\)$", source[m.start():i])
        assert axis and comma is not None, source[m.start():i]
        sites.append(Site(m.start(), i, m.group(1), source[m.end():comma].strip(), int(axis.group(1))))
    return sites


@pytest.fixture(scope="module")
def one_row():
    """nano-trickster on seeded weights with one row of tokens, and its n150 golden logits: the
    removal test runs the 32-chip program 13 times, and one row keeps each run short."""
    spec = "nano-trickster.arch"
    model = load_model(SPECS / spec)
    state = random_hf_state_dict(model, seed=1)
    tokens = torch.randint(0, 256, (1, 40), generator=torch.Generator().manual_seed(3))
    expected, _ = run_golden(model, f"specs/{spec}", get_target("n150"), state, tokens)
    return model, f"specs/{spec}", state, tokens, expected


def test_removing_any_collective_of_the_2d_program_breaks_it(one_row):
    """Each all_gather and all_reduce of the 8x4 program (both cluster axes), taken out in turn: every
    one keeps shapes (the norms are distributed, so nothing gathers or partitions activations), and
    the logits leave the bf16 budget the intact program keeps against the single chip (intact: mean
    4.7u, p99 15u, PCC 0.99983, in u = 2^-8 of mean |logit|). Measured: without an all_reduce,
    partial sums of 4 columns or 8 rows go on, mean 226-346u, p99 708-1117u, PCC 0.04-0.50; without a
    norm's statistics gather, each column normalises by its own quarter of hidden, mean 20-47u, p99
    87-168u, PCC 0.982-0.996 (the final norm's, feeding the head directly, the smallest)."""
    model, spec, state, tokens, expected = one_row
    source, result = compile_program(model, spec, target_of("galaxy"), formats_of("bf16"), strategy="2d")
    sites = collective_sites(source)
    # one call site per planned collective (the per-layer ones in the layer class's code)
    assert Counter((s.op, s.axis) for s in sites) == Counter((c.op, c.axis) for c in result.shard_plan.collectives)
    assert {s.axis for s in sites} == {0, 1} and {s.op for s in sites} == {ALL_GATHER.name, ALL_REDUCE.name}
    intact, _ = run_golden(model, spec, get_target("galaxy"), state, tokens, source=source)
    assert_bf16_accurate(intact, expected, "intact 2-D vs single")
    outcomes = []
    for site in sites:
        try:
            logits, _ = run_golden(model, spec, get_target("galaxy"), state, tokens, source=site.removed_from(source))
        except RuntimeError as e:
            outcomes.append((site, "raised", str(e).splitlines()[0][:200]))
            continue
        outcomes.append((site, "numbers", error_stats(logits.float(), expected.float())))
    for site, kind, what in outcomes:
        print(f"without {site.op}(cluster_axis={site.axis}) of {site.operand}: {kind} {what}")
    assert all(kind == "numbers" for _, kind, _ in outcomes), outcomes  # shapes kept: the numbers must tell
    for site, _, stats in outcomes:
        # outside the bf16 budget the intact program is held to (tests/numerics.py), on PCC and on the
        # 99th percentile at once; the weakest, the final norm's statistics gather (it feeds the head
        # directly): PCC 0.9962 (1 - PCC 3.8x the budget's 0.001), p99 87u (1.8x the budget's 48u)
        assert stats.pcc < BF16_PCC and stats.p99 > BF16_P99, \
            f"removing {site.op} of {site.operand} on axis {site.axis} went unnoticed: {stats}"


# ---------------------------------------------------------------- against HF transformers
def test_2d_galaxy_from_an_hf_checkpoint_matches_hf(tmp_path):
    """nano-trickster as an HF LlamaForCausalLM with seeded random weights, saved with
    save_pretrained and read back through ttspec's checkpoint loader: the 8x4 2-D program in golden
    mode against HF's fp32 logits, with the bf16 bounds (tests/numerics.py: PCC >= 0.999, relative
    RMS error <= 16u = 0.0625). Measured: galaxy 2-D PCC 0.99928, rel 0.0380; n150 0.99934 / 0.0363."""
    transformers = pytest.importorskip("transformers")
    from ttspec.runtime.weights import load_weights_file

    from .test_torch_backend import HF, randomize

    spec = "nano-trickster.arch"
    hf = transformers.AutoModelForCausalLM.from_config(HF[spec]()).float().eval()
    randomize(hf, seed=1)
    hf.save_pretrained(tmp_path / "hf")
    tokens = torch.randint(0, 256, (2, 50), generator=torch.Generator().manual_seed(5))  # padded to 64
    with torch.no_grad():
        expected = hf(tokens).logits
    model = load_model(SPECS / spec)
    results = {}
    for target, strategy in (("n150", None), ("galaxy", "2d")):
        source = compile_source(model, str(SPECS / spec), target_of(target), formats_of("bf16"), strategy=strategy)
        state = load_weights_file(model, str(tmp_path / "hf"))
        got, _ = run_golden(model, str(SPECS / spec), get_target(target), state, tokens, source=source)
        results[target] = got.float()
        p, r = pcc(got, expected), rel_err(got.float(), expected)
        print(f"{target} {strategy or ''}: pcc {p:.6f} rel {r:.4f}")
        assert p >= 0.999 and r <= BF16_REL, (target, p, r)
    # the mesh is the single chip up to bf16 rounding in another order: as accurate against HF (mean
    # and 99th percentile) and within the bf16 budget of it (tests/numerics.py)
    assert_same_up_to_rounding(results["galaxy"], results["n150"], expected, "galaxy 2-D")


# ---------------------------------------------------------------- Llama-3.1-70B: shards and collectives
# The published config (meta-llama/Llama-3.1-70B, the same numbers as test_hf_crosscheck.py's):
D70, MLP70, LAYERS70, HEADS70, KV70, HEAD_DIM70, VOCAB70 = 8192, 28672, 80, 64, 8, 128, 128256
HEAD70 = -(-VOCAB70 // (ROWS * COLS * 32)) * ROWS * COLS * 32  # the 2-D head's rows: whole tiles per row and column


def test_70b_2d_placements_and_shards():
    """Per chip on 8x4, [out, in] as ttspec stores weights: the wide dim over the 8 rows, the hidden
    dim (8192 / 4 = 2048) over the 4 columns (tt-metal's Galaxy placement, design §1)."""
    from ttspec.ir.sharding import local_shape
    from ttspec.passes.shard import plan_sharding

    model = load_model(SPECS / "llama-3.1-70b.arch")
    _, plan = plan_sharding(lower(model), (ROWS, COLS), strategy="2d")
    assert plan.strategy == "2d" and [(a.axis, a.devices) for a in plan.axes] == [(0, ROWS), (1, COLS)]
    shapes = {}

    def visit(graph, prefix=""):
        for name, p in graph.params.items():
            shapes[prefix + name] = local_shape(p.shape, plan, prefix + name, param=True)
        for node in graph.repeats():
            visit(node.attrs.body, f"{prefix}{node.module}.*.")

    visit(model.graph)
    hidden = D70 // COLS  # 2048
    q, kv = HEADS70 * HEAD_DIM70 // ROWS, KV70 * HEAD_DIM70 // ROWS  # 8 query heads (1024), 1 KV head (128) per row
    layer = "layers.*."
    # wq | wk | wv: 1024 + 128 + 128 = 1280 = 10240 / 8 rows of the fused wqkv, 8192 / 4 = 2048 columns
    assert [shapes[layer + f"attn.{w}.weight"] for w in ("wq", "wk", "wv")] == [(q, hidden), (kv, hidden),
                                                                              (kv, hidden)]
    assert q + 2 * kv == 1280 == (HEADS70 + 2 * KV70) * HEAD_DIM70 // ROWS
    assert shapes[layer + "attn.wo.weight"] == (D70 // COLS, HEADS70 * HEAD_DIM70 // ROWS) == (2048, 1024)
    assert shapes[layer + "mlp.w1.weight"] == shapes[layer + "mlp.w3.weight"] == (MLP70 // ROWS, hidden) == (3584, 2048)
    assert shapes[layer + "mlp.w2.weight"] == (hidden, MLP70 // ROWS) == (2048, 3584)
    # the vocabulary over the rows, padded so that each row's slice is whole tiles over the 4 columns that
    # all-reduce the head's partial sums: 128256 = 501 tiles per row, not a multiple of 4; 129024 = 126 x 1024
    # (8 rows x 4 columns x 32) gives 504 (ttnn's all_reduce of 501 tiles over 4 devices is AllBroadcast + Concat +
    # MorehSum on the mock, of 504 ReduceScatter + AllGather)
    assert VOCAB70 % (ROWS * 32) == 0 and (VOCAB70 // ROWS // 32) % COLS
    assert shapes["lm_head.weight"] == (HEAD70 // ROWS, hidden) == (16128, 2048)
    assert shapes["embedding.weight"] == (VOCAB70, hidden) == (128256, 2048)  # replicated over the rows
    assert shapes["norm.weight"] == shapes[layer + "attn_norm.weight"] == (hidden,)  # distributed norms
    placed = {name: plan.placement(name) for name in shapes}
    column_row, row_column = (Placement.COLUMN, Placement.ROW), (Placement.ROW, Placement.COLUMN)
    for w in ("attn.wq", "attn.wk", "attn.wv", "mlp.w1", "mlp.w3"):
        assert placed[f"{layer}{w}.weight"] == column_row, w
    for w in ("attn.wo", "mlp.w2"):
        assert placed[f"{layer}{w}.weight"] == row_column, w
    assert placed["embedding.weight"] == (Placement.REPLICATE, Placement.HIDDEN)
    assert placed["lm_head.weight"][0] in (Placement.COLUMN, Placement.VOCAB)  # VOCAB when it pads rows
    assert placed["lm_head.weight"][1] == Placement.ROW
    assert placed["norm.weight"] == (Placement.REPLICATE, Placement.HIDDEN)
    assert not plan.axes[0].kv_copies  # 8 KV heads on 8 rows: one each, no copies
    assert plan.axes[0].padded_rows["lm_head.weight"] == HEAD70 == 129024

    def per_axis(collectives):
        return {axis: [(c.op, c.source.split(".")[-2] if c.op == ALL_REDUCE.name else "") for c in collectives
                       if c.axis == axis] for axis in (0, 1)}

    inside = per_axis([c for c in plan.collectives if c.node.startswith(layer)])
    outside = per_axis([c for c in plan.collectives if not c.node.startswith(layer)])
    ag, ar = ALL_GATHER.name, ALL_REDUCE.name
    # rows: the row-parallel projections' partial sums; columns: the distributed norms' statistics and
    # the partial sums of the projections out of the residual (their inner dim is hidden, split 4 ways)
    assert inside == {0: [(ar, "wo"), (ar, "w2")], 1: [(ag, ""), (ar, "wqkv"), (ag, ""), (ar, "w1"), (ar, "w3")]}
    assert outside == {0: [], 1: [(ag, ""), (ar, "lm_head")]}
    assert all("statistics" in c.reason for c in plan.collectives if c.op == ag)


def test_gqa_kv_heads_are_copied_over_the_rows():
    """llama-gqa-tiny: 2 KV heads on 8 rows, each KV head on 4 rows; over the columns K and V split
    their input (hidden 256 / 4)."""
    from ttspec.ir.sharding import local_shape
    from ttspec.passes.shard import plan_sharding

    model = load_model(SPECS / "llama-gqa-tiny.arch")
    _, plan = plan_sharding(lower(model), (ROWS, COLS), strategy="2d")
    name = "layers.*.attn.wk.weight"
    assert plan.placement(name) == (Placement.KV_COPIES, Placement.ROW)
    assert plan.axes[0].kv_copies[name] == ROWS // 2
    assert local_shape((64, 256), plan, name, param=True) == (32, 64)  # one KV head of 32, a quarter of hidden
    assert local_shape((256, 256), plan, "layers.*.attn.wq.weight", param=True) == (32, 64)  # one query head per row


# ---------------------------------------------------------------- memory per chip
TILE_BYTES = {"bf16": 2048, "bfloat8_b": 1088, "bfloat4_b": 576}  # one 32x32 tile on the device


def booked(pages: int, page_bytes: int, banks: int = 12) -> int:
    """What ttnn's allocator books for an interleaved tensor of `pages` pages over a Wormhole chip's 12 DRAM banks:
    every bank as many pages as the fullest (analysis/dram_pages.py)."""
    return banks * -(-pages // banks) * page_bytes


def galaxy_weight_bytes(d, mlp, layers, heads, kv_heads, head_dim, vocab, dtype, strategy):
    """Weights per chip by design §4's closed form: matrices in TILE layout in `dtype`, the embedding
    table bf16 ROW_MAJOR (2 B a value, a page per row), norms bf16 TILE (a [d] gamma is one 32-row tile strip);
    each interleaved tensor booked whole pages in every bank (`booked`).
    2-D: every layer matrix and the head 1/32 (8 rows x 4 columns), the embedding and the (distributed)
    norms split on hidden over the columns only; q, k and v one fused tensor. 1-D: tensor parallelism over the
    8 rows (axis 0, the longer one), each matrix, the head and the table's hidden 1/8, replicated over the
    columns; norms replicated."""
    per_layer = (heads + 2 * kv_heads) * head_dim * d + d * heads * head_dim + 3 * mlp * d
    split = ROWS * COLS if strategy == "2d" else ROWS
    per = ROWS * 32 * (COLS if strategy == "2d" else 1)  # whole tiles per row (2-D: and per column, which reduce it)
    head_rows = -(-vocab // per) * per  # the vocabulary padded to that
    for values in (per_layer, head_rows * d):
        assert values % (split * 1024) == 0  # every shard is whole tiles (checked per dim in the test above)
    tile = TILE_BYTES[dtype]
    q, kv = heads * head_dim // ROWS, kv_heads * head_dim // ROWS
    h = d // COLS
    layer = booked((q + 2 * kv) * h // 1024, tile) + booked(q * h // 1024, tile) + 3 * booked(mlp // ROWS * h // 1024,
                                                                                                tile)
    matrices = layers * layer + booked(head_rows // ROWS * h // 1024, tile)
    if strategy == "1d":  # the layer matrices DRAM-sharded: each of 12 banks a whole shard of ceil(N / 384) tiles
        def banked(n):
            return -(-n // (32 * 12)) * 32 * 12
        layer = d * banked(q + 2 * kv) + q * banked(d) + 2 * d * banked(mlp // ROWS) + mlp // ROWS * banked(d)
        # the head's slice one DRAM-sharded column chunk (it fits L1), whole shards per bank too
        matrices = (layers * layer + d * banked(head_rows // split)) // 1024 * tile
    table = booked(vocab, d // (COLS if strategy == "2d" else ROWS) * 2)
    norms = (2 * layers + 1) * booked((d // COLS if strategy == "2d" else d) // 32, 2048)
    return matrices + table + norms


LLAMA_70B = dict(d=D70, mlp=MLP70, layers=LAYERS70, heads=HEADS70, kv_heads=KV70, head_dim=HEAD_DIM70, vocab=VOCAB70)
# meta-llama/Llama-3.1-405B: hidden 16384, MLP 53248, 126 layers, 128 / 8 heads of 128, vocab 128256
LLAMA_405B = dict(d=16384, mlp=53248, layers=126, heads=128, kv_heads=8, head_dim=128, vocab=128256)


def test_70b_bfloat8_b_on_galaxy_chooses_2d_under_3_gb():
    """Design §4: 2,272,788,480 B of layers' tiles (80 x 26,112 tiles x 1088), 525,336,576 B of embedding
    (128256 x 2048 x 2), 35,094,528 B of head (32,256 tiles: the vocabulary padded to 129024, see
    test_70b_2d_placements_and_shards), 21,102,592 B of norms (161 x 32 x 2048 x 2): 2,854,322,176 B per chip;
    2,860,093,440 B as the allocator books them (whole pages in each of the 12 banks: the fused QKV's 2,560
    tiles as 2,568, wo's 2,048 as 2,052, each MLP matrix's 7,168 as 7,176, a norm's 16 as 24), against
    10,216,292,352 B with 1-D."""
    model = load_model(SPECS / "llama-3.1-70b.arch")
    expected = galaxy_weight_bytes(**LLAMA_70B, dtype="bfloat8_b", strategy="2d")
    assert expected == 2_860_093_440
    chosen = prepare(model, resolve_options(target_of("galaxy"), formats_of("bfloat8_b")))
    assert chosen.shard_plan.strategy == "2d"
    assert chosen.weight_bytes == expected < 3e9
    assert chosen.memory.weights["embedding"] == booked(VOCAB70, D70 // COLS * 2)  # a page per row
    assert chosen.memory.weights["head"] == booked(HEAD70 * D70 // 32 // 1024, 1088)
    assert chosen.shard_plan.notes[0].startswith("the planner chose 2D tensor parallelism over 1D")
    one_d = prepare(model, resolve_options(target_of("galaxy"), formats_of("bfloat8_b"), strategy="1d"))
    assert one_d.shard_plan.strategy == "1d"
    # 1-D: 9,577,775,104 B of tiles, 10,212,818,944 B with the DRAM-sharded layer matrices' whole shards per bank
    assert one_d.weight_bytes == galaxy_weight_bytes(**LLAMA_70B, dtype="bfloat8_b", strategy="1d") == 10_216_292_352
    assert build(model, resolve_options(target_of("galaxy"), formats_of("bfloat8_b"))).fits


def test_plan_command_shows_the_2d_choice_for_70b(run_cli):
    out = run_cli("plan", "specs/llama-3.1-70b.arch", "--target", "galaxy", "--weights-dtype", "bfloat8_b", "--json",
                  timeout=120)
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["mesh"] == [ROWS, COLS] and plan["fits"]
    assert plan["memory_per_chip"]["weights_total"] == 2_860_093_440
    assert plan["memory_per_chip"]["dram"] == GALAXY_DRAM
    assert any(n.startswith("the planner chose 2D") for n in plan["notes"]), plan["notes"]
    # 1 KV head of 128 per chip (8 KV heads over the rows), K and V, bf16, 80 layers, 131072 positions
    assert plan["memory_per_chip"]["kv_cache"] == 2 * 1 * 128 * 2 * LAYERS70 * 131072


def test_405b_on_galaxy_bfloat8_b_does_not_fit_and_says_why():
    """14,523,105,280 B per chip in 2-D bfloat8_b (126 x 97,280 tiles x 1088 of layers, 1,050,673,152
    of embedding, 70,189,056 of head (vocabulary padded to 129024), 66,322,432 of norms) > 12,872,318,208 B of
    DRAM; bfloat4_b (576 B a tile) needs 8,214,347,776 B and fits."""
    model = load_model(SPECS / "llama-3.1-405b.arch")
    bf8 = galaxy_weight_bytes(**LLAMA_405B, dtype="bfloat8_b", strategy="2d")
    assert bf8 == 14_527_371_264 > GALAXY_DRAM
    with pytest.raises(ArchError) as info:
        build(model, resolve_options(target_of("galaxy"), formats_of("bfloat8_b")))
    message = info.value.diagnostic.message
    assert message == (f"llama_3_1_405b needs {bf8:,} bytes of DRAM per chip for bfloat8_b weights; galaxy has "
                       f"{GALAXY_DRAM:,} per chip")
    assert "bfloat4_b" in (info.value.diagnostic.hint or "")
    bf4 = galaxy_weight_bytes(**LLAMA_405B, dtype="bfloat4_b", strategy="2d")
    assert bf4 == 8_217_581_568
    result = build(model, resolve_options(target_of("galaxy"), formats_of("bfloat4_b")))
    assert result.shard_plan.strategy == "2d" and result.weight_bytes == bf4 and result.fits


@pytest.mark.skipif(riscv_gcc is None or riscv_gcc() is None, reason="Debian gcc-riscv64-unknown-elf missing")
def test_mock_galaxy_allocates_the_70b_2d_plan():
    """ttnn's mock Galaxy (8x4) allocates Llama-3.1-70B's 2-D bfloat8_b shards and runs one forward;
    its allocator agrees with the closed form within 5%. Measured: 2,864,025,600 B allocated against
    2,860,093,440 planned (+0.14%; 2,854,322,176 without the allocator's whole pages per bank)."""
    from ttspec.runtime.device import run_worker

    model = load_model(SPECS / "llama-3.1-70b.arch")
    source = compile_source(model, "specs/llama-3.1-70b.arch", target_of("galaxy"), formats_of("bfloat8_b"),
                            strategy="2d")
    result = run_worker(model, source, "mock", "galaxy", state=None, tokens=torch.zeros(1, 64, dtype=torch.int64))
    assert tuple(result["logits"].shape) == (1, 64, VOCAB70)
    predicted = galaxy_weight_bytes(**LLAMA_70B, dtype="bfloat8_b", strategy="2d")
    allocated = result["dram_bytes_allocated"]
    print(f"mock galaxy allocated {allocated:,} B per chip; planned {predicted:,}")
    assert abs(allocated - predicted) <= 0.05 * predicted


# ---------------------------------------------------------------- choosing a strategy
def test_nano_trickster_on_galaxy_notes_the_choice_and_each_can_be_forced():
    model = load_model(SPECS / "nano-trickster.arch")
    auto = prepare(model, resolve_options(target_of("galaxy")))
    assert auto.shard_plan.notes[0].startswith(f"the planner chose {auto.shard_plan.strategy.upper()} tensor "
                                               "parallelism over "), auto.shard_plan.notes
    for strategy in ("1d", "2d"):
        forced = prepare(model, resolve_options(target_of("galaxy"), strategy=strategy))
        assert forced.shard_plan.strategy == strategy
        assert not any(n.startswith("the planner chose") for n in forced.shard_plan.notes)
    assert auto.weight_bytes in (prepare(model, resolve_options(target_of("galaxy"),
                                                                strategy=s)).weight_bytes for s in ("1d",
                                                                                                           "2d"))


@pytest.mark.parametrize("spec,dtype", [("nano-trickster.arch", "bf16"), ("llama-3.1-70b.arch", "bfloat8_b")])
def test_t3k_one_row_is_never_2d(spec, dtype):
    """T3K is 1x8: no second axis to split over, so 2-D is not weighed (even for 70B, where it wins on galaxy)."""
    result = prepare(load_model(SPECS / spec), resolve_options(target_of("t3k"), formats_of(dtype)))
    assert result.shard_plan.strategy == "1d" and result.shard_plan.mesh == (1, 8)
    assert not any(n.startswith("the planner chose") for n in result.shard_plan.notes)


@pytest.mark.parametrize("target,mesh,shape", [("t3k", None, "1x8"), ("n300", None, "1x2"), ("galaxy", "1x8", "1x8")])
def test_2d_on_a_one_row_mesh_is_a_usage_error(target, mesh, shape):
    with pytest.raises(UsageError) as info:
        resolve_options(target_of(target), mesh=mesh_of(mesh), strategy="2d")
    d = info.value.diagnostic
    assert d.message.startswith("--strategy 2d needs a mesh with two axes of 2 or more chips; ")
    assert d.message.endswith(f" is {shape}") and "--strategy 1d" in (d.hint or "")


def test_dp_with_2d_is_an_error():
    with pytest.raises(UsageError) as info:
        resolve_options(target_of("galaxy"), dp=True, strategy="2d")
    assert "--dp and --strategy 2d both claim the second mesh axis" in info.value.diagnostic.message
    from ttspec.passes.shard import plan_sharding

    with pytest.raises(ArchError) as info:  # the planner refuses it too, for callers past resolve_options
        plan_sharding(lower(load_model(SPECS / "nano-trickster.arch")), (ROWS, COLS), dp=True, strategy="2d")
    assert "--dp" in info.value.diagnostic.message


def test_hidden_that_does_not_split_over_the_columns(write_spec):
    """hidden 96 = 3 tiles: not a multiple of 4 columns x 32, so 2-D on 8x4 is refused, with the
    meshes that would split it (8x3: 32 per column) in the hint; the planner's own choice falls back
    to 1-D, and the hinted mesh compiles."""
    text = (SPECS / "llama-gqa-tiny.arch").read_text().replace("let d = 256", "let d = 96")
    text = text.replace("heads = heads, kv_heads = kv_heads,", "heads = heads, kv_heads = kv_heads, head_dim = 32,")
    model = load_model(write_spec(text))
    with pytest.raises(ArchError) as info:
        prepare(model, resolve_options(target_of("galaxy"), strategy="2d"))
    d = info.value.diagnostic
    assert d.message == ("2-D tensor parallelism splits hidden=96 over the 4 mesh columns, and 96 is not a multiple "
                         "of 4 x 32")
    assert d.hint == "use --strategy 1d or --mesh 8x3"
    assert prepare(model, resolve_options(target_of("galaxy"))).shard_plan.strategy == "1d"
    hinted = prepare(model, resolve_options(target_of("galaxy"), mesh=mesh_of("8x3"), strategy="2d"))
    assert hinted.shard_plan.strategy == "2d" and hinted.shard_plan.mesh == (8, 3)


def test_2d_refusal_on_the_command_line(run_cli, write_spec, tmp_path):
    """The same refusal from `compile --strategy 2d`: one located error with its hint, exit 1, no
    traceback, no program written."""
    text = (SPECS / "llama-gqa-tiny.arch").read_text().replace("let d = 256", "let d = 96")
    text = text.replace("heads = heads, kv_heads = kv_heads,", "heads = heads, kv_heads = kv_heads, head_dim = 32,")
    path = write_spec(text)
    model_line = next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith("model "))
    out = run_cli("compile", path, "--target", "galaxy", "--strategy", "2d", "-o", tmp_path / "out.py", timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr and not (tmp_path / "out.py").exists()
    assert out.stderr.startswith(f"{path}:{model_line}:7: error: 2-D tensor parallelism splits hidden=96")
    assert out.stderr.count("error:") == 1 and "hint: use --strategy 1d or --mesh 8x3" in out.stderr


# ---------------------------------------------------------------- the spec's shard statements under 2-D
@pytest.mark.parametrize("lines", [
    'shard "lm_head" replicate\nshard "layers.*.mlp.w*" replicate',
    'shard "layers.*.attn.wo" replicate',
    'shard "embedding" replicate',
    'shard "layers.*.mlp.w2" column',  # the rows' split; the columns keep the hidden-side rule
    'shard "layers.*.attn.wqkv" replicate',
])
def test_shard_statements_keep_2d_programs_right(write_spec, single_chip, lines):
    """A spec's `shard` statements under 2-D: `replicate` keeps the weight whole on both axes, column/row
    place the rows' split; whatever the layouts become, the collectives inserted for them keep the
    logits the single chip's (measured against fp32: max 0.064-0.071, the single chip's 0.073)."""
    from .test_mesh import override_spec

    _, state, tokens, expected = single_chip("nano-trickster.arch")
    model = override_spec(write_spec, lines)
    source = compile_source(model, "spec.arch", target_of("galaxy"), formats_of("bf16"), strategy="2d")
    logits, _ = run_golden(model, "spec.arch", get_target("galaxy"), state, tokens, source=source)
    assert_2d_as_accurate_as_single_chip(logits, expected, single_chip.fp32("nano-trickster.arch"))
