"""Language features and their error classes, each against hand-derived expectations."""

import pytest

from ttspec.analysis.interpreters import count_params
from ttspec.driver import load_model
from ttspec.errors import ArchError
from ttspec.ir.graph import iter_params

HEADER = "model m\ninput tokens: int32[batch, seq] where seq <= 64\n"


def load(write_spec, text, name="spec.arch"):
    return load_model(write_spec(text, name))


def error(write_spec, text, name="spec.arch"):
    with pytest.raises(ArchError) as info:
        load(write_spec, text, name)
    return info.value.diagnostic


def test_stable_hierarchical_names(write_spec):
    model = load_model("specs/llama-3.1-8b.arch")
    names = {name for name, _ in iter_params(model.graph)}
    assert "layers.3.attn.wq.weight" in names
    assert "layers.31.mlp.w2.weight" in names
    assert "layers.32.mlp.w2.weight" not in names
    assert {"embedding.weight", "norm.weight", "lm_head.weight"} <= names
    assert len(names) == 3 + 32 * 9


def test_mqa_and_explicit_head_dim(write_spec):
    model = load(write_spec, HEADER + "h = token_embedding(tokens, 100, 96) as e\n"
                 "h = h + attention(h, heads = 4, kv_heads = 1, head_dim = 32) as attn\n"
                 "output logits = lm_head(h, 100)\n")
    # wq 96->128, wk and wv 96->32, wo 128->96
    assert count_params(model.graph) == 100 * 96 + 96 * 128 + 2 * 96 * 32 + 128 * 96 + 100 * 96


def test_imports_share_blocks_and_lets(write_spec):
    write_spec("let width = 64\nblock ffn(x: [b, s, d]) -> [b, s, d] {\n"
               "    return mlp(x, hidden = 2 * d) as inner\n}\n", "lib/common.arch")
    model = load(write_spec, 'model m\nimport "lib/common.arch"\ninput tokens: int32[batch, seq]\n'
                 "h = token_embedding(tokens, 10, width) as e\nh = h + ffn(h)\noutput logits = lm_head(h, 10)\n")
    assert count_params(model.graph) == 10 * 64 + (64 * 128 + 128 + 128 * 64 + 64) + 10 * 64


def test_import_cycle(write_spec):
    write_spec('import "b.arch"\nlet a = 1\n', "a.arch")
    write_spec('import "a.arch"\nlet b = 1\n', "b.arch")
    d = error(write_spec, 'model m\nimport "a.arch"\n')
    assert "import cycle" in d.message


def test_import_missing(write_spec):
    d = error(write_spec, 'model m\nimport "nope.arch"\n')
    assert d.message == 'import "nope.arch": no such file'
    assert (d.loc.line, d.loc.col) == (2, 1)


def test_import_escape_by_symlink(write_spec, tmp_path):
    outside = tmp_path.parent / f"{tmp_path.name}_outside.arch"
    outside.write_text("let a = 1\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "link.arch").symlink_to(outside)
    d = error(write_spec, 'model m\nimport "link.arch"\n', "sub/spec.arch")
    assert "leaves the spec's directory" in d.message


def test_imported_file_may_not_build_a_model(write_spec):
    write_spec("input t: int32[b, s]\n", "lib.arch")
    d = error(write_spec, 'model m\nimport "lib.arch"\n')
    assert "only `let`, `import` and `block`" in d.message


def test_block_missing_argument(write_spec):
    d = error(write_spec, HEADER + "h = attention(token_embedding(tokens, 10, 64))\n")
    assert d.message == "block `attention` needs `heads`"
    assert "signature: attention(x, heads, kv_heads = ..." in d.hint


def test_too_many_positional_arguments(write_spec):
    d = error(write_spec, HEADER + "h = token_embedding(tokens, 10, 64, 5)\n")
    assert d.message == "block `token_embedding` takes 3 arguments, got 4"


def test_block_without_return(write_spec):
    d = error(write_spec, HEADER + "block f(x: [b, s, d]) {\n    y = x\n}\n"
              "h = f(token_embedding(tokens, 10, 64))\n")
    assert d.message == "block `f` ends without `return`"


def test_return_type_checked(write_spec):
    d = error(write_spec, HEADER + "block f(x: [b, s, d]) -> [b, s, d] {\n    return linear(x, 2 * d) as p\n}\n"
              "h = f(token_embedding(tokens, 10, 64))\n")
    assert d.message == "the result of `f`: dim `d` is 64 but the tensor has 128 in float[batch, seq, 128]"


def test_duplicate_label(write_spec):
    d = error(write_spec, HEADER + "h = token_embedding(tokens, 10, 64) as e\n"
              "h = linear(h, 64) as p\nh = linear(h, 64) as p\n")
    assert d.message == "name `p` is already used in this block"
    assert d.notes and d.notes[0].loc.line == 4


def test_default_labels_are_numbered(write_spec):
    model = load(write_spec, HEADER + "h = token_embedding(tokens, 10, 64)\nh = linear(h, 64)\n"
                 "h = linear(h, 64)\noutput o = h\n")
    assert sorted(model.graph.params) == ["linear.weight", "linear_1.weight", "token_embedding.weight"]


def test_as_self_at_top_level(write_spec):
    d = error(write_spec, HEADER + "h = token_embedding(tokens, 10, 64) as self\n")
    assert "`as self` is only meaningful inside a block" in d.message


def test_symbolic_dims_have_no_value(write_spec):
    d = error(write_spec, HEADER + "let a = seq * 2\n")
    assert "`seq` is a symbolic dim" in d.message


def test_unsupported_constraint(write_spec):
    d = error(write_spec, "model m\ninput tokens: int32[batch, seq] where seq > 3\n")
    assert d.message == "unsupported constraint"


def test_if_else_and_configs(write_spec):
    text = HEADER + ("let use_rope = false\nh = token_embedding(tokens, 10, 64) as e\n"
                     "if use_rope {\n    r = rope(theta = 1e4)\n} else {\n    r = none\n}\n"
                     "h = h + attention(h, heads = 2, rope = r)\noutput o = lm_head(h, 10)\n")
    model = load(write_spec, text)
    assert not any(n.op == "apply_rope" for n in model.graph.topo())
    model = load(write_spec, text.replace("use_rope = false", "use_rope = true"), "b.arch")
    assert sum(n.op == "apply_rope" for n in model.graph.topo()) == 2


def test_rope_options_validated(write_spec):
    d = error(write_spec, HEADER + 'let r = rope(style = "sideways")\n')
    assert d.message == "unknown rope style 'sideways'"
    assert (d.loc.line, d.loc.col) == (3, 22)


def test_unknown_activation(write_spec):
    d = error(write_spec, HEADER + 'h = mlp(token_embedding(tokens, 10, 64), hidden = 8, act = "gelu_exact")\n')
    assert d.message == 'unknown activation "gelu_exact"'
    assert d.hint == "did you mean `gelu_tanh`?"


def test_token_ids_must_be_embedded(write_spec):
    d = error(write_spec, HEADER + "h = linear(tokens, 64)\n")
    assert d.message == "linear needs a float tensor, got int32[batch, seq]"


def test_unused_value_warns(write_spec):
    model = load(write_spec, HEADER + "h = token_embedding(tokens, 10, 64) as e\n"
                 "y = attention(h, heads = 2)\noutput o = lm_head(h, 10)\n")
    assert [(w.message, w.loc.line) for w in model.warnings] == [("`y` is computed but never used", 4)]


def test_tied_weights_counted_once(write_spec):
    model = load(write_spec, HEADER + "h = token_embedding(tokens, 1000, 64) as e\n"
                 "output o = lm_head(h, 1000, tied = e, bias = true)\n")
    assert count_params(model.graph) == 1000 * 64 + 1000


def test_short_form_families(write_spec):
    text = ("my-model:\n  vocab_size: 256\n  hidden_dim: 256\n  num_layers: 6\n  num_heads: 8\n"
            "  mlp_dim: 768\n  max_seq_len: 512\n  family: gpt2\n")
    assert count_params(load(write_spec, text).graph) == 4_147_712  # the GPT-2-style nano-trickster
    untied = text + "  tie_embeddings: false\n"
    assert count_params(load(write_spec, untied, "b.arch").graph) == 4_147_712 + 256 * 256


def test_short_form_errors(write_spec):
    base = "m:\n  vocab_size: 256\n  hidden_dim: 256\n  num_layers: 6\n  num_heads: 8\n  mlp_dim: 768\n"
    d = error(write_spec, base + "  max_seq_len: 512\n  famliy: llama\n")
    assert d.message == "unknown key `famliy` for family llama"
    assert d.hint == "did you mean `family`?"
    d = error(write_spec, base, "b.arch")
    assert d.message == "missing `max_seq_len`"
    d = error(write_spec, base + "  max_seq_len: lots\n", "c.arch")
    assert d.message == "`max_seq_len` must be a whole number, got `lots`"
    assert (d.loc.line, d.loc.col) == (7, 16)
    d = error(write_spec, base + "  max_seq_len: 512\n  family: mamba\n", "d.arch")
    assert d.message == "unknown family `mamba`"
    d = error(write_spec, base + "  max_seq_len: 512\n  num_kv_heads: 3\n", "e.arch")
    assert d.message == "num_kv_heads=3 does not divide num_heads=8"


def test_target_statement(write_spec):
    model = load(write_spec, "model m\ntarget p150\ninput t: int32[b, s]\noutput o = token_embedding(t, 4, 4)\n")
    assert model.target[0] == "p150"
    d = error(write_spec, "model m\ntarget n15\n", "b.arch")
    assert d.message == "unknown target `n15`"
    assert d.hint == "did you mean `n150`?"
