"""`ttspec plan --search` and `ttspec compile --plan best`: the plans a target allows, kept when
they fit and meet the floors, ranked by the objective. Every returned plan is re-checked by
`ttspec plan`'s own report (analysis/plan_report.py: a full prepare at the plan's settings, the
memory model and the cost model), not by the search's shortcuts."""

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ttspec.driver import compile_source, load_model
from ttspec.errors import ArchError
from ttspec.reports.plan_report import plan_report
from ttspec.reports.plan_search import format_choices, search, sub_meshes
from ttspec.targets import get_target

from .conftest import ROOT, formats_of, mesh_of, target_of
from .numerics import HANG_GUARD_S

SPEC_8B = "specs/llama-3.1-8b.arch"
SPEC_70B = "specs/llama-3.1-70b.arch"
METRIC = {"latency": "tokens_per_s_per_user", "throughput": "tokens_per_s"}


@pytest.fixture(scope="module")
def llama_8b():
    return load_model(ROOT / SPEC_8B)


@pytest.fixture(scope="module")
def llama_70b():
    return load_model(ROOT / SPEC_70B)


def recheck(model, target: str, plan) -> dict:
    """`ttspec plan`'s report at the plan's settings: it fits, and its numbers are the plan's."""
    r = plan_report(model, target_of(target), plan.mesh, plan.weights_dtype, plan.batch,
                    plan.context, plan.dp,
                    plan.strategy_option)
    assert r["strategy"] == (plan.strategy if plan.mesh != (1, 1) else None)
    m = r["memory_per_chip"]
    assert r["fits"] and m["fits_at_seq"], plan
    assert m["total"] <= m["dram"]
    assert m["total"] == plan.memory_per_chip
    assert plan.batch <= m["max_batch"]
    assert -(-plan.batch // plan.replicas) <= 32  # a decode step holds one tile's rows of users per replica
    t = r["modelled_time"]
    assert t["tokens_per_s_per_user"] == pytest.approx(plan.tokens_per_s_per_user, rel=1e-9)
    assert t["tokens_per_s"] == pytest.approx(plan.tokens_per_s, rel=1e-9)
    assert t["ttft_ms"] == pytest.approx(plan.ttft_ms, rel=1e-9)
    return r


def test_sub_meshes():
    # T3K: a 1x8 mesh wired as 2x4; one shape per (tensor-parallel degree, replicas)
    assert sub_meshes(get_target("t3k")) == [((1, 1), False), ((1, 2), False), ((2, 2), True), ((1, 4), False),
                                             ((2, 4), True), ((1, 8), False)]
    # Galaxy 8x4: tensor parallelism over the longer axis (8 at most), replicas over the other
    assert sub_meshes(get_target("galaxy")) == [((1, 1), False), ((1, 2), False), ((2, 2), True), ((1, 4), False),
                                                ((2, 4), True), ((4, 4), True), ((8, 1), False), ((8, 2), True),
                                                ((8, 4), True)]
    assert sub_meshes(get_target("n150")) == [((1, 1), False)]


def test_format_choices(llama_8b):
    formats = [str(f) for f in format_choices(llama_8b)]
    assert len(formats) == 27  # attention, head, mlp: 3 dtypes each; embedding table and norms stay bf16
    assert formats[0] == "bf16" and "bfloat4_b" in formats and "attention=bfloat8_b,mlp=bfloat4_b" in formats


def _check_ranked(result, objective, target, model, sample=4):
    plans = result.plans
    assert plans
    values = [getattr(p, METRIC[objective]) for p in plans]
    assert values == sorted(values, reverse=True)
    for p in plans[:sample] + plans[-sample:]:
        recheck(model, target, p)


def counted_search(monkeypatch, model, target):
    """search(), with every sharding it plans recorded as (mesh, dp, strategy): what makes a search take
    seconds rather than minutes is planning each mesh once, and that is counted, not timed (a clock
    measures the machine's load as much as the work: 3.4 s for 8B on T3K beside other jobs)."""
    from ttspec.passes import shard

    shardings, real = [], shard.plan_sharding

    def counting(base, shape, *args, **kwargs):
        shardings.append((tuple(shape), kwargs.get("dp"), kwargs.get("strategy")))
        return real(base, shape, *args, **kwargs)

    monkeypatch.setattr(shard, "plan_sharding", counting)
    start = time.perf_counter()
    result = search(model, target_of(target))
    assert time.perf_counter() - start < HANG_GUARD_S  # a hang guard, not a timing: tests/numerics.py
    monkeypatch.undo()
    assert shardings and len(shardings) == len(set(shardings)), shardings  # one sharding per mesh
    return result


def test_search_8b_t3k(run_cli, llama_8b, monkeypatch):
    result = counted_search(monkeypatch, llama_8b, "t3k")
    _check_ranked(result, "latency", "t3k", llama_8b)
    assert result.plans[0].batch == 1
    out = run_cli("plan", SPEC_8B, "--target", "t3k", "--search")
    assert out.returncode == 0, out.stderr
    assert "plans ranked by latency" in out.stdout
    assert [line.split()[0] for line in out.stdout.splitlines() if line.strip()[:2] in ("1 ", "2 ", "3 ")][:3] \
        == ["1", "2", "3"]
    assert "excluded:" in out.stdout and "does not fit the DRAM" in out.stdout
    assert "ttspec compile specs/llama-3.1-8b.arch --target t3k --plan best" in out.stdout


def test_search_70b_galaxy_in_seconds(run_cli, llama_70b, monkeypatch):
    result = counted_search(monkeypatch, llama_70b, "galaxy")  # seconds, not minutes: one sharding per mesh
    _check_ranked(result, "latency", "galaxy", llama_70b)
    assert result.candidates > 1000
    out = run_cli("plan", SPEC_70B, "--target", "galaxy", "--search", "--json", "--top", "3")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["schema"] == "ttspec-plan-search/1"
    assert [p["rank"] for p in data["plans"]] == [1, 2, 3]
    assert data["kept"] == len(result.plans)
    assert data["space"]["candidates"] == result.candidates
    assert sum(data["excluded"].values()) + data["kept"] == data["space"]["candidates"]
    doc = (ROOT / "docs" / "plan-search-json.md").read_text()
    for key in list(data) + list(data["plans"][0]) + list(data["space"]):
        assert f"`{key}`" in doc, f"key {key} is not documented"
    # deterministic
    assert run_cli("plan", SPEC_70B, "--target", "galaxy", "--search", "--json", "--top", "3").stdout == out.stdout


@pytest.mark.parametrize(("spec", "target"), [(SPEC_8B, "t3k"), (SPEC_70B, "galaxy")])
def test_compile_plan_best(run_cli, tmp_path, spec, target):
    model = load_model(ROOT / spec)
    top = search(model, target_of(target)).plans[0]
    recheck(model, target, top)
    out = run_cli("compile", spec, "--target", target, "--plan", "best", "-o", tmp_path / "p.py", timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"plan (latency): {top.mesh_text} mesh" in out.stdout
    expected = compile_source(model, spec, target_of(target), top.weights_dtype, top.mesh,
                              top.dp, top.batch,
                              top.strategy_option)
    assert (tmp_path / "p.py").read_text() == expected


def test_compile_plan_best_throughput_uses_dp(run_cli, tmp_path, llama_70b):
    top = search(llama_70b, target_of("galaxy"), objective="throughput").plans[0]
    assert top.dp and top.replicas > 1
    out = run_cli("compile", SPEC_70B, "--target", "galaxy", "--plan", "best", "--objective", "throughput",
                  "-o", tmp_path / "p.py", timeout=120)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "p.py").read_text() == compile_source(llama_70b, SPEC_70B, target_of("galaxy"),
                                                             top.weights_dtype,
                                                             top.mesh, True, top.batch)


def test_latency_and_throughput_pick_different_plans(llama_8b):
    latency = search(llama_8b, target_of("t3k"), objective="latency").plans[0]
    throughput = search(llama_8b, target_of("t3k"), objective="throughput").plans[0]
    assert latency.batch == 1
    assert throughput.batch >= 32
    assert throughput.tokens_per_s > latency.tokens_per_s
    assert latency.tokens_per_s_per_user > throughput.tokens_per_s_per_user


def _key(p):
    return (p.mesh, p.dp, p.weights_dtype, p.batch)


def test_floors_exclude_what_they_should(llama_8b):
    free = search(llama_8b, target_of("t3k")).plans
    speeds = sorted(p.tokens_per_s_per_user for p in free)
    floor = speeds[len(speeds) // 2]
    floored = search(llama_8b, target_of("t3k"), min_tokens_per_s_per_user=floor)
    assert {_key(p) for p in floored.plans} == {_key(p) for p in free if p.tokens_per_s_per_user >= floor}
    assert any("below --min-tokens-per-s-per-user" in r for r in floored.excluded)
    ttfts = sorted(p.ttft_ms for p in free)
    cap = ttfts[len(ttfts) // 3]
    capped = search(llama_8b, target_of("t3k"), max_ttft_ms=cap)
    assert {_key(p) for p in capped.plans} == {_key(p) for p in free if p.ttft_ms <= cap}
    assert capped.plans and all(p.ttft_ms <= cap for p in capped.plans)


def test_impossible_floor(run_cli):
    out = run_cli("plan", SPEC_8B, "--target", "t3k", "--search", "--min-tokens-per-s-per-user", "100000")
    assert out.returncode == 1
    assert "no plan for llama_3_1_8b on t3k meets --min-tokens-per-s-per-user 100000" in out.stderr
    assert "without the floors the best reach" in out.stderr
    assert "Traceback" not in out.stderr
    out = run_cli("compile", SPEC_8B, "--target", "n150", "--plan", "best", "--max-ttft-ms", "0.001")
    assert out.returncode == 1 and "meets --max-ttft-ms 0.001" in out.stderr
    out = run_cli("plan", SPEC_8B, "--target", "t3k", "--search", "--max-ttft-ms", "-3")
    assert out.returncode == 2


def test_fixed_choices(llama_8b):
    result = search(llama_8b, target_of("t3k"), mesh=mesh_of("1x8"),
                    weights_dtype=formats_of("attention=bfloat8_b,mlp=bfloat4_b"), batch=8)
    assert {(p.mesh, str(p.weights_dtype), p.batch) for p in result.plans} == {
        ((1, 8), "attention=bfloat8_b,mlp=bfloat4_b", 8)}
    recheck(llama_8b, "t3k", result.plans[0])


def test_planner_refusal_is_counted(write_spec):
    # 12 heads do not split over 8 devices: the 1x8 mesh is excluded with the planner's reason
    path = write_spec(spec_text(vocab=1000, heads=12, kv=4, head_dim=64, layers=2, mlp=1024, tied=False, seq=512))
    model = load_model(path)
    result = search(model, target_of("t3k"))
    reasons = [r for r in result.excluded if "planner refuses 1x8" in r]
    assert reasons and "12" in reasons[0]
    one_axis = [p for p in result.plans if p.strategy == "1d"]
    assert all(p.tensor_parallel != 8 for p in one_axis)
    assert {p.tensor_parallel for p in one_axis} == {1, 2, 4}
    # 2-D on T3K's 2x4 wiring: the 12 heads split over the 2 rows, hidden 768 over the 4 columns (192 each)
    assert {p.mesh for p in result.plans if p.strategy == "2d"} == {(2, 2), (2, 4)}


def test_torch_has_no_plan(run_cli):
    out = run_cli("compile", SPEC_8B, "--target", "torch", "--plan", "best")
    assert out.returncode == 2 and "torch has nothing to plan" in out.stderr
    out = run_cli("compile", SPEC_8B, "--target", "n150", "--objective", "throughput")
    assert out.returncode == 2 and "--objective is an option of --plan best" in out.stderr
    out = run_cli("plan", SPEC_8B, "--target", "n150", "--max-ttft-ms", "50")
    assert out.returncode == 2 and "--max-ttft-ms is an option of --search" in out.stderr


def spec_text(vocab, heads, kv, head_dim, layers, mlp, tied, seq):
    d = heads * head_dim
    head = "lm_head(h, vocab, tied = embedding)" if tied else "lm_head(h, vocab)"
    return (f"model m\nfamily llama\nlet vocab = {vocab}, d = {d}, heads = {heads}, kv = {kv}, mlp = {mlp}\n"
            f"input tokens: int32[batch, seq] where seq <= {seq}\n"
            "block decoder(x: [batch, seq, d]) -> [batch, seq, d] {\n"
            "    x = x + attention(rmsnorm(x) as attn_norm, heads = heads, kv_heads = kv, rope = rope()) as attn\n"
            "    x = x + swiglu(rmsnorm(x) as mlp_norm, hidden = mlp) as mlp\n    return x\n}\n"
            f"h = token_embedding(tokens, vocab, d) as embedding\nh = repeat({layers}) decoder(h) as layers\n"
            f"h = rmsnorm(h) as norm\noutput logits = {head}\n")


@st.composite
def specs(draw):
    heads = draw(st.sampled_from([4, 8, 12, 16, 32, 64]))
    kv = draw(st.sampled_from([k for k in (1, 2, 4, 8) if heads % k == 0]))
    head_dim = draw(st.sampled_from([32, 64, 128]))
    return dict(vocab=draw(st.integers(256, 160_000)), heads=heads, kv=kv, head_dim=head_dim,
                layers=draw(st.integers(1, 96)), mlp=128 * draw(st.integers(1, 200)), tied=draw(st.booleans()),
                seq=draw(st.sampled_from([256, 4096, 131072])))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs(), st.sampled_from(["n150", "n300", "t3k", "galaxy", "p150"]), st.sampled_from(["latency", "throughput"]),
       st.sampled_from([None, 512, 4096]), st.sampled_from([None, 1.0, 20.0]), st.sampled_from([None, 200.0]))
def test_search_never_returns_a_plan_that_does_not_fit(write_spec, arch, target, objective, seq, min_tpsu, max_ttft):
    model = load_model(write_spec(spec_text(**arch)))
    try:
        result = search(model, target_of(target), objective=objective, seq=seq, min_tokens_per_s_per_user=min_tpsu,
                        max_ttft_ms=max_ttft)
    except ArchError as e:  # what no plan changes (the backend's support), never a plan's own failure
        pytest.fail(f"search raised {e.diagnostic.message}")
    values = [getattr(p, METRIC[objective]) for p in result.plans]
    assert values == sorted(values, reverse=True)
    assert sum(result.excluded.values()) + len(result.plans) == result.candidates
    for p in result.plans:
        assert min_tpsu is None or p.tokens_per_s_per_user >= min_tpsu
        assert max_ttft is None or p.ttft_ms <= max_ttft
    for p in result.plans[:3] + result.plans[-3:]:
        recheck(model, target, p)
