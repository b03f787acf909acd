"""Property tests: random valid architectures have exactly the shapes, parameter counts,
bytes and FLOPs given by closed-form formulas written here, independently of ttspec's
registry; random invalid ones fail with the specific error.
"""

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ttspec.analysis.interpreters import count_params, forward_flops
from ttspec.analysis.params_report import params_report
from ttspec.driver import load_model
from ttspec.errors import ArchError

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@dataclass
class Arch:
    vocab: int
    heads: int
    kv_heads: int
    head_dim: int
    explicit_head_dim: int | None  # when set, attention projects to heads * this instead of d
    d: int
    layers: int
    mlp: int
    norm: str  # rms | ln | ln_nobias
    ffn: str  # relu | gelu | gelu_tanh | silu | swiglu | geglu
    ffn_bias: bool
    qkv_bias: bool
    out_bias: bool
    positions: str  # none | learned | sinusoidal | rope | rope_half
    residual: str  # pre | post | parallel
    tied: bool
    head_bias: bool
    max_seq: int

    # ---- the spec text, written the way a user would
    def norm_call(self, x: str, label: str) -> str:
        if self.norm == "rms":
            return f"rmsnorm({x}, eps = 1e-6) as {label}"
        bias = "true" if self.norm == "ln" else "false"
        return f"layernorm({x}, bias = {bias}) as {label}"

    def attn_call(self, x: str) -> str:
        args = [x, f"heads = {self.heads}", f"kv_heads = {self.kv_heads}",
                f"qkv_bias = {str(self.qkv_bias).lower()}", f"out_bias = {str(self.out_bias).lower()}"]
        if self.explicit_head_dim:
            args.append(f"head_dim = {self.explicit_head_dim}")
        if self.positions == "rope":
            args.append("rope = rope(theta = 10000.0)")
        if self.positions == "rope_half":
            args.append("rope = rope(theta = 500.0, fraction = 0.5)")
        return f"attention({', '.join(args)}) as attn"

    def ffn_call(self, x: str) -> str:
        bias = str(self.ffn_bias).lower()
        if self.ffn in ("swiglu", "geglu"):
            return f"{self.ffn}({x}, hidden = mlp, bias = {bias}) as ffn"
        return f'mlp({x}, hidden = mlp, act = "{self.ffn}", bias = {bias}) as ffn'

    def text(self) -> str:
        if self.residual == "pre":
            body = (f"    x = x + {self.attn_call(self.norm_call('x', 'n1'))}\n"
                    f"    x = x + {self.ffn_call(self.norm_call('x', 'n2'))}\n    return x\n")
        elif self.residual == "post":
            body = (f"    x = {self.norm_call('x + ' + self.attn_call('x'), 'n1')}\n"
                    f"    x = {self.norm_call('x + ' + self.ffn_call('x'), 'n2')}\n    return x\n")
        else:
            body = (f"    n = {self.norm_call('x', 'n1')}\n"
                    f"    return x + {self.attn_call('n')} + {self.ffn_call('n')}\n")
        pos = {"learned": "h = learned_positions(h, max_seq) as pos\n",
               "sinusoidal": "h = sinusoidal(h)\n"}.get(self.positions, "")
        head = f"lm_head(h, vocab, bias = {str(self.head_bias).lower()}"
        head += ", tied = embedding)" if self.tied else ")"
        return (f"model random_arch\n"
                f"let vocab = {self.vocab}, d = {self.d}, mlp = {self.mlp}, max_seq = {self.max_seq}\n"
                f"input tokens: int32[batch, seq] where seq <= max_seq\n"
                f"block layer(x: [batch, seq, d]) -> [batch, seq, d] kind decoder {{\n{body}}}\n"
                f"h = token_embedding(tokens, vocab, d) as embedding\n{pos}"
                f"h = repeat({self.layers}) layer(h) as layers\n"
                f"h = {self.norm_call('h', 'final_norm')}\n"
                f"output logits = {head}\n")

    # ---- closed forms
    @property
    def inner(self) -> int:
        return self.heads * self.head_dim

    def attention_params(self) -> int:
        kv = self.kv_heads * self.head_dim
        n = self.d * self.inner + 2 * self.d * kv + self.inner * self.d
        n += (self.inner + 2 * kv) if self.qkv_bias else 0
        n += self.d if self.out_bias else 0
        return n

    def ffn_params(self) -> int:
        if self.ffn in ("swiglu", "geglu"):
            return 3 * self.d * self.mlp + ((2 * self.mlp + self.d) if self.ffn_bias else 0)
        return 2 * self.d * self.mlp + ((self.mlp + self.d) if self.ffn_bias else 0)

    def norm_params(self) -> int:
        return 2 * self.d if self.norm == "ln" else self.d

    def layer_params(self) -> int:
        norms = 1 if self.residual == "parallel" else 2
        return self.attention_params() + self.ffn_params() + norms * self.norm_params()

    def total(self) -> int:
        n = self.vocab * self.d + self.layers * self.layer_params() + self.norm_params()
        n += self.max_seq * self.d if self.positions == "learned" else 0
        n += 0 if self.tied else self.vocab * self.d
        n += self.vocab if self.head_bias else 0
        return n

    def flops_per_token(self, seq: int) -> int:
        kv = self.kv_heads * self.head_dim
        ffn_mats = 3 if self.ffn in ("swiglu", "geglu") else 2
        layer_macs = self.d * self.inner * 2 + self.d * kv * 2 + ffn_mats * self.d * self.mlp
        attention = 2 * 2 * seq * self.inner  # q.k and p.v: seq keys, heads*head_dim each
        return self.layers * (2 * layer_macs + attention) + 2 * self.d * self.vocab


@st.composite
def archs(draw, **overrides):
    heads = draw(st.integers(1, 8))
    kv_heads = draw(st.sampled_from([k for k in range(1, heads + 1) if heads % k == 0]))
    head_dim = draw(st.integers(1, 12)) * 2
    explicit = draw(st.booleans())
    d = draw(st.integers(2, 96)) if explicit else heads * head_dim
    fields = dict(
        vocab=draw(st.integers(2, 300)), heads=heads, kv_heads=kv_heads, head_dim=head_dim,
        explicit_head_dim=head_dim if explicit else None, d=d, layers=draw(st.integers(1, 12)),
        mlp=draw(st.integers(1, 200)), norm=draw(st.sampled_from(["rms", "ln", "ln_nobias"])),
        ffn=draw(st.sampled_from(["relu", "gelu", "gelu_tanh", "silu", "swiglu", "geglu"])),
        ffn_bias=draw(st.booleans()), qkv_bias=draw(st.booleans()), out_bias=draw(st.booleans()),
        positions=draw(st.sampled_from(["none", "learned", "sinusoidal", "rope", "rope_half"])),
        residual=draw(st.sampled_from(["pre", "post", "parallel"])), tied=draw(st.booleans()),
        head_bias=draw(st.booleans()), max_seq=draw(st.integers(1, 4096)))
    fields.update(overrides)
    arch = Arch(**fields)
    if arch.positions == "rope_half":
        assume(arch.head_dim % 4 == 0)
    if arch.positions == "sinusoidal":
        assume(arch.d % 2 == 0)
    return arch


def load(write_spec, arch: Arch):
    return load_model(write_spec(arch.text()))


@SETTINGS
@given(archs())
def test_param_count_matches_closed_form(write_spec, arch):
    model = load(write_spec, arch)
    assert count_params(model.graph) == arch.total()
    report = params_report(model)
    assert report["total"] == arch.total()
    (layers,) = [c for c in report["components"] if "repeat" in c]
    assert layers["per_layer"] == arch.layer_params()
    norms = 1 if arch.residual == "parallel" else 2
    assert layers["per_layer_by_kind"] == {"attention": arch.attention_params(), "mlp": arch.ffn_params(),
                                           "norm": norms * arch.norm_params()}


@SETTINGS
@given(archs())
def test_shapes_match_closed_form(write_spec, arch):
    model = load(write_spec, arch)
    g = model.graph
    (logits,) = g.outputs.values()
    assert g.node(logits).type.shape == ("batch", "seq", arch.vocab)
    body = g.repeats()[0].attrs.body
    assert body.node(body.outputs["out"]).type.shape == ("batch", "seq", arch.d)
    split = sorted(n.type.shape for n in body.topo() if n.op == "split_heads")
    expected = sorted([("batch", arch.heads, "seq", arch.head_dim)]
                      + 2 * [("batch", arch.kv_heads, "seq", arch.head_dim)])
    assert split == expected
    (attend,) = [n for n in body.topo() if n.op == "attend"]
    assert attend.type.shape == ("batch", arch.heads, "seq", arch.head_dim)
    weights = {p.name: p.shape for p in body.params.values()}
    assert weights["attn.wq.weight"] == (arch.inner, arch.d)
    assert weights["attn.wk.weight"] == (arch.kv_heads * arch.head_dim, arch.d)
    assert weights["attn.wo.weight"] == (arch.d, arch.inner)


@SETTINGS
@given(archs(), st.integers(1, 4096))
def test_flops_match_closed_form(write_spec, arch, seq):
    model = load(write_spec, arch)
    flops = forward_flops(model, seq=seq)
    assert flops.total == seq * arch.flops_per_token(seq)


@SETTINGS
@given(archs())
def test_weight_bytes_match_closed_form(write_spec, arch):
    report = params_report(load(write_spec, arch))
    total = arch.total()
    assert report["bytes"]["fp32"] == 4 * total
    assert report["bytes"]["bf16"] == 2 * total
    # Block floats: each tensor is stored in whole blocks of 1024 values.
    stored = [(p["numel"], p["repeat"] or 1) for p in report["parameters"] if not p["tied_to"]]
    assert sum(n * r for n, r in stored) == total
    assert report["bytes"]["bfloat8_b"] == sum(r * -(-n // 1024) * 1088 for n, r in stored)
    assert report["bytes"]["bfloat4_b"] == sum(r * -(-n // 1024) * 576 for n, r in stored)


# ---------------------------------------------------------------- invalid architectures
@SETTINGS
@given(st.integers(1, 64), st.integers(2, 512))
def test_heads_not_dividing_hidden(write_spec, heads, d):
    assume(d % heads)
    text = (f"model m\ninput tokens: int32[batch, seq]\nh = token_embedding(tokens, 10, {d})\n"
            f"h = h + attention(h, heads = {heads})\noutput logits = lm_head(h, 10)\n")
    with pytest.raises(ArchError) as info:
        load_model(write_spec(text))
    d_ = info.value.diagnostic
    assert d_.message == f"heads={heads} does not divide hidden={d}"
    assert (d_.loc.line, d_.loc.col) == (4, 9)
    below = max(k for k in range(1, heads) if d % k == 0) if heads > 1 else None
    above = min((k for k in range(heads + 1, d + 1) if d % k == 0), default=None)
    assert d_.hint == f"nearest divisors of {d}: " + ", ".join(str(k) for k in (below, above) if k)


@SETTINGS
@given(st.integers(1, 32), st.integers(1, 32))
def test_kv_heads_not_dividing_heads(write_spec, heads, kv_heads):
    assume(heads % kv_heads)
    text = (f"model m\ninput tokens: int32[batch, seq]\nh = token_embedding(tokens, 10, {heads * 8})\n"
            f"h = h + attention(h, heads = {heads}, kv_heads = {kv_heads})\noutput logits = lm_head(h, 10)\n")
    with pytest.raises(ArchError) as info:
        load_model(write_spec(text))
    assert info.value.diagnostic.message == f"kv_heads={kv_heads} does not divide heads={heads}"


@SETTINGS
@given(archs(positions="learned"), st.integers(1, 100))
def test_position_table_too_short(write_spec, arch, short_by):
    assume(arch.max_seq > short_by)
    text = arch.text().replace("learned_positions(h, max_seq)", f"learned_positions(h, {arch.max_seq - short_by})")
    with pytest.raises(ArchError) as info:
        load_model(write_spec(text))
    assert info.value.diagnostic.message == (f"`seq` may reach {arch.max_seq} but the position table has only "
                                             f"{arch.max_seq - short_by} rows")


@SETTINGS
@given(archs(positions="none"), st.integers(1, 50))
def test_embedding_width_mismatch(write_spec, arch, extra):
    text = arch.text().replace("token_embedding(tokens, vocab, d)", f"token_embedding(tokens, vocab, d + {extra})")
    with pytest.raises(ArchError) as info:
        load_model(write_spec(text))
    # The layer's signature `x: [batch, seq, d]` catches the wider stream.
    assert info.value.diagnostic.message == (
        f"`x` of block `layer`: dim `d` is {arch.d} but the tensor has {arch.d + extra} "
        f"in float[batch, seq, {arch.d + extra}]")
