"""One case per error class of the language: the message and where it points, as a user
would read them. (specs/bad/ covers the same through the CLI for the common mistakes.)"""

import pytest

from ttspec.driver import load_model
from ttspec.errors import ArchError

H = "model m\ninput t: int32[batch, seq]\ne = token_embedding(t, 16, 64) as emb\n"  # lines 1-3

CASES = [
    # (id, spec text, message, "line:col", hint substring or None)
    ("unexpected-char", H + "let a = 'x'\n", "unexpected character \"'\"", "4:9", "double quotes"),
    ("unexpected-eof", H + "h = linear(e,\n", "unexpected end of file", "4:14", "expected"),
    ("unexpected-token", H + "let = 3\n", "unexpected `=`", "4:5", "a name"),
    # an unclosed bracket is the mistake, not the next line where the parser gives up (issue 22)
    ("unclosed-paren", H + "h = linear(e, 8\noutput y = h\n", "unclosed `(`", "4:11", "close it with `)`"),
    ("unclosed-paren-eof", H + "h = linear(e, 8  # (\n\n", "unclosed `(`", "4:11", "close it with `)`"),
    ("unclosed-list", H + "let a = [1, 2\noutput y = e\n", "unclosed `[`", "4:9", "close it with `]`"),
    ("unclosed-block", H + "block b(x: [batch, seq, 64]) -> [batch, seq, 64] {\n    return x\noutput y = e\n",
     "unclosed `{`", "4:50", "close it with `}`"),
    ("error-inside-block", H + "block b(x: [batch, seq, 64]) -> [batch, seq, 64] {\n    y = = x\n}\n",
     "unexpected `=`", "5:9", None),
    ("missing-model", "let a = 1\n", "a spec starts with `model NAME`", "1:1", "model nano_trickster"),
    ("scalar-type", H + 'h = attention(e, heads = "8")\n', "`heads` of block `attention` expects int, got string",
     "4:26", None),
    ("tensor-expected", H + "h = rmsnorm(3)\n", "`x` of block `rmsnorm` expects a tensor, got int", "4:13", None),
    ("rank", H + "h = attention(t, heads = 2)\n",
     "`x` of block `attention` expects 3 dims [b, s, hidden], got int32[batch, seq]", "4:15", None),
    ("if-not-bool", H + "if 1 {\n    let a = 2\n}\n", "`if` needs a bool, got int", "4:4", None),
    ("reassign-let", H + "let a = 1\na = 2\n", "cannot reassign `a`: parameters are immutable", "5:1", None),
    ("let-tensor", H + "let a = e\n", "`let a` holds a tensor; `let` is for parameters", "4:9", "a = ..."),
    ("top-level-return", H + "return e\n", "`return` outside a block", "4:1", "output NAME"),
    ("output-not-tensor", H + "output o = 3\n", "output `o` must be a tensor, got int", "4:12", None),
    ("duplicate-output", H + "output o = e\noutput o = e\n", "output `o` declared twice", "5:8", None),
    ("duplicate-block", H + "block f(x) {\n return x\n}\nblock f(x) {\n return x\n}\n",
     "block `f` is defined twice", "7:7", None),
    ("block-named-primitive", H + "block linear(x) {\n return x\n}\n",
     "`linear` is a primitive; a block cannot take its name", "4:7", "my_linear"),
    ("duplicate-parameter", H + "block f(x, x) {\n return x\n}\n", "parameter `x` appears twice in block `f`",
     "4:12", None),
    ("unknown-dtype", "model m\ninput t: int8[b]\n", "unknown dtype `int8`", "2:10", "int32"),
    ("wildcard-input", "model m\ninput t: int32[*]\n", "an input needs named or numbered dims, not `*`", "2:16", None),
    ("repeat-count", H + "h = repeat(0) f(e)\n", "repeat count must be between 1 and 100,000, got 0", "4:12", None),
    ("repeat-primitive", H + "h = repeat(2) linear(e, 64)\n", "repeat needs a block, `linear` is not one", "4:15",
     "wrap it in a block"),
    ("repeat-no-tensor", H + "block f(x) {\n return x\n}\nh = repeat(2) f(3)\n",
     "the first argument of a repeated block must be a tensor, got int", "7:17", None),
    ("repeat-self", H + "block f(x) {\n return x\n}\nh = repeat(2) f(e) as self\n",
     "a repeat needs its own name, not `as self`", "7:15", None),
    ("tie-across-repeat", H + "block f(x: [b, s, d]) {\n return x + lm_head(x, 16, tied = emb)\n}\n"
     "h = repeat(2) f(e)\n", "cannot tie across a repeat boundary to `emb`", "5:13", None),
    ("tie-to-tensor", H + "h = lm_head(e, 16, tied = t)\n",
     "`tied` of block `lm_head` expects a module name such as `embedding`, got tensor int32[batch, seq]", "4:27", None),
    ("bool-op", H + "let a = 1 and true\n", "`and` needs bools, got int", "4:9", None),
    ("division-by-zero", H + "let a = 4 // 0\n", "division by zero in `4 // 0`", "4:9", None),
    ("negative-exponent", H + "let a = 2 ** -1\n", "negative integer exponent", "4:9", None),
    ("compare-tensors", H + "let a = e == e\n", "tensors cannot be compared", "4:9", None),
    ("tensor-arith", H + "h = 2 / e\n", "cannot apply `/` to int and tensor float[batch, seq, 64]", "4:5", "`+`"),
    ("scalar-str-arith", H + 'let a = "x" + 1\n', "cannot apply `+` to string and int", "4:9", None),
    ("positional-after-kw", H + "h = linear(x = e, 64)\n", "positional argument after a keyword argument", "4:19",
     None),
    ("given-twice", H + "h = linear(e, 64, out = 3)\n", "`out` given twice", "4:19", None),
    ("eps-range", H + "h = rmsnorm(e, eps = 2.0)\n", "eps must be in (0, 1), got 2.0", "4:5", None),
    ("label-keyword", H + "h = linear(e, 4) as model\n", "`model` is a keyword", "4:5", None),
    ("return-type", H + "block f(x: [b, s, d]) -> [b, s, 5] {\n return x\n}\nh = f(e)\n",
     "the result of `f`: expected dim 5, got 64", "5:9", None),
    ("unbound-return-dim", H + "block f(x: [b, s, d]) -> [b, s, z] {\n return x\n}\nh = f(e)\n",
     "dim `z` in the return type is not bound", "4:33", None),
    ("call-a-variable", H + "let a = 3\nh = a(e)\n", "unknown component `a`", "5:5", "is a int, not a component"),
    ("module-as-value", H + "let a = rmsnorm\n", "undefined name `rmsnorm`", "4:9", "call it"),
    ("symbolic-arith", H + "let a = seq + 1\n", "`seq` is a symbolic dim", "4:9", None),
    ("bound-not-int", "model m\ninput t: int32[b, s] where s <= 2.5\n", "a bound must be a positive int, got 2.5",
     "2:33", None),
    ("rope-theta", H + "let r = rope(theta = -1)\n", "theta must be positive, got -1.0", "4:22", None),
    ("rope-arg", H + "let r = rope(base = 10)\n", "rope(...) has no parameter `base`", "4:14", None),
    ("rope-as-label", H + "let r = rope() as q\n", "`as q` names a component; rope(...) is a config", "4:9", None),
    ("activation-args", H + "h = activation(e)\n", "activation(x, fn) needs both arguments", "4:5", None),
    ("merge-rank", H + "h = merge_heads(e)\n", "merge_heads needs [batch, heads, seq, head_dim], got", "4:5", None),
    ("reserved-name", H + "let __x = 1\n", "names starting with `__` are reserved: `__x`", "4:5", None),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_error_class(write_spec, case):
    _, text, message, at, hint = case
    with pytest.raises(ArchError) as info:
        load_model(write_spec(text))
    d = info.value.diagnostic
    assert message in d.message, d.message
    assert f"{d.loc.line}:{d.loc.col}" == at, info.value.render()
    if hint:
        assert d.hint and hint in d.hint, d.hint
    rendered = info.value.render()
    assert rendered.startswith(f"{d.loc}: error: ")


def test_unclosed_bracket_notes_where_the_parser_gave_up(write_spec):
    with pytest.raises(ArchError) as info:
        load_model(write_spec(H + "h = linear(e, 8\noutput y = h\n"))
    (note,) = info.value.diagnostic.notes
    assert (note.loc.line, note.loc.col) == (5, 1) and "`output`" in note.message and "expected" in note.message
