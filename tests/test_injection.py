"""No spec text reaches generated code except validated identifiers and numbers."""

import pytest

from ttspec.driver import compile_source, load_model
from ttspec.errors import ArchError

from .conftest import formats_of, target_of

BASE = "model m\nfamily llama\ninput tokens: int32[batch, seq]\n"


def compile_text(write_spec, text, name="spec.arch", target="n150"):
    path = write_spec(text, name)
    return compile_source(load_model(path), str(path), target_of(target), formats_of("bf16"))


@pytest.mark.parametrize("text,message", [
    ('model m"""\n', 'unexpected `""`'),
    ("model m\nh = rmsnorm(x) as __import__\n", "`__import__` cannot name a component"),
    ("model m\nlet __builtins__ = 1\n", "names starting with `__` are reserved"),
    ("model m\nblock __init__(x) {\n return x\n}\n", "names starting with `__` are reserved"),
    ("model n\u0430no\n", "unexpected character 'а'"),  # Cyrillic a, a look-alike
    ("model m\ninput t: int32[b, s]\nh = linear(token_embedding(t, 4, 4), 4) as forward\n",
     "`forward` cannot name a component"),
    ("model m\nlet s = \"a\\nb\"\n", "unexpected character"),
    ('model m\nlet r = rope(style = "half\\"; import os; \\"")\n', "unexpected character"),
    ('model m\nlet r = rope(style = "__import__(\'os\')")\n', "unknown rope style"),
    ("nаno-trickster:\n  vocab_size: 1\n", "is not usable as an identifier"),
])
def test_hostile_specs_rejected(write_spec, text, message):
    with pytest.raises(ArchError) as info:
        load_model(write_spec(text))
    assert message in info.value.render()
    assert info.value.loc is not None


def test_hostile_file_name_does_not_reach_code(tmp_path):
    spec = tmp_path / 'x"""; import os; """.arch'
    spec.write_text("model m\nfamily llama\ninput tokens: int32[b, s]\n"
                    "h = token_embedding(tokens, 64, 32) as embedding\noutput logits = lm_head(h, 64)\n")
    for target in ("torch", "n150"):
        source = compile_source(load_model(spec), str(spec), target_of(target), formats_of("bf16"))
        assert "import os" not in source
        assert '"""; ' not in source
        compile(source, "generated.py", "exec")  # still valid Python


def test_keyword_names_are_escaped(write_spec):
    source = compile_text(write_spec, "model m\nfamily llama\ninput lambda: int32[batch, seq]\n"
                          "class = token_embedding(lambda, 64, 32) as embedding\n"
                          "output logits = lm_head(class, 64)\n")
    compile(source, "generated.py", "exec")
    assert "lambda_" in source
