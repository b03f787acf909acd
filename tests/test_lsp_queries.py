"""The language server's navigation queries (ttspec/lsp/queries.py), as pure functions over a buffer.

Expected counts are nano-trickster's closed form (d = 256, 8 heads, SwiGLU 768, 6 layers, vocab 256):
attention 4 d^2 per layer, SwiGLU 3 d * 768, an RMSNorm d; HF names are LlamaForCausalLM's own
(`model.layers.N.self_attn.q_proj.weight`, as transformers names them)."""

import os
import subprocess
import sys

import pytest

from ttspec.lsp.queries import Position, completion, definition, hover, index_for, inlay_hints, signature_help
from ttspec.lsp.text import Buffer

from .conftest import ROOT, SPECS

NANO = SPECS / "nano-trickster.arch"
PRELUDE = ROOT / "ttspec" / "stdlib" / "prelude.arch"
D, MLP, LAYERS, VOCAB = 256, 768, 6, 256
ATTN = 4 * D * D
SWIGLU = 3 * D * MLP
LAYER = ATTN + SWIGLU + 2 * D


def at(text: str, line_has: str, word: str, nth: int = 0, offset: int = 0) -> Position:
    """The position of the `nth` `word` on the first line containing `line_has`."""
    for i, line in enumerate(text.split("\n")):
        if line_has in line:
            col = -1
            for _ in range(nth + 1):
                col = line.index(word, col + 1)
            return Position(i, col + offset)
    raise AssertionError(f"no line with {line_has!r}")


@pytest.fixture(scope="module")
def nano():
    text = NANO.read_text(encoding="utf-8")
    return text, index_for(text, str(NANO))


def test_hover_on_labels_gives_params_counts_and_hf_names(nano):
    text, index = nano
    attn = hover(index, at(text, "10000.0)) as attn", "as attn", offset=4)).markdown
    assert f"{ATTN:,}" in attn and f"{ATTN * LAYERS:,}" in attn
    assert "model.layers.N.self_attn.q_proj.weight" in attn and "model.layers.N.self_attn.o_proj.weight" in attn
    layers = hover(index, at(text, "as layers", "layers", nth=1)).markdown
    assert f"{LAYER * LAYERS:,}" in layers and f"{LAYER:,}" in layers
    mlp = hover(index, at(text, "hidden = mlp) as mlp", "mlp", nth=2)).markdown
    assert f"{SWIGLU:,}" in mlp and "model.layers.N.mlp.gate_proj.weight" in mlp
    embedding = hover(index, at(text, "as embedding", "embedding", nth=1)).markdown
    assert f"{VOCAB * D:,}" in embedding and "model.embed_tokens.weight" in embedding


def test_hover_on_values_gives_shapes(nano):
    text, index = nano
    assert "h: [batch, seq, 256]" in hover(index, at(text, "h = rmsnorm(h", "h")).markdown
    assert "x: [batch, seq, 256]" in hover(index, at(text, "return x", "x")).markdown
    assert "mlp: 768" in hover(index, at(text, "let mlp", "mlp")).markdown  # 3 * d
    assert "tokens: int32[batch, seq]" in hover(index, at(text, "input tokens", "tokens")).markdown
    assert "<= 512" in hover(index, at(text, "input tokens", "seq", nth=1)).markdown  # where seq <= max_seq
    assert hover(index, at(text, "h = rmsnorm(h", "=")) is None  # not a name


def test_hover_on_calls_and_arguments(nano):
    text, index = nano
    assert "LlamaForCausalLM" in hover(index, at(text, "family llama", "llama")).markdown
    assert "Wormhole n150" in hover(index, at(text, "target n150", "n150")).markdown
    norm = hover(index, at(text, "h = rmsnorm(h", "rmsnorm")).markdown
    assert "rmsnorm(x: [*, d], eps: float" in norm and "-> [*, d]" in norm and "here: `[batch, seq, 256]`" in norm
    head = hover(index, at(text, "output logits = lm_head", "lm_head")).markdown  # unlabelled: named lm_head
    assert "**lm_head**" in head and "**0** parameters" in head and "tied to `embedding.weight`" in head
    gpt2 = SPECS / "gpt2.arch"
    text2 = gpt2.read_text(encoding="utf-8")
    fused = hover(index_for(text2, str(gpt2)), at(text2, ") as attn", "as attn", offset=4)).markdown
    assert "`transformer.h.N.attn.c_attn.weight` (part 1 of 3, transposed)" in fused  # GPT-2's Conv1D c_attn
    window = hover(index, at(text, "heads = heads", "heads")).markdown
    assert "heads: int" in window and "argument of `attention`" in window and "here: `8`" in window


def _line(path, line: int) -> str:
    return path.read_text(encoding="utf-8").split("\n")[line]


def test_definition_of_stdlib_blocks_lands_on_their_block_line(nano):
    text, index = nano
    for line_has, name in (("h = rmsnorm(h", "rmsnorm"), ("swiglu(", "swiglu"), ("lm_head(", "lm_head")):
        loc = definition(index, at(text, line_has, name, offset=2))
        assert loc.path == PRELUDE
        assert _line(PRELUDE, loc.range.start.line).startswith(f"block {name}(")


def test_definition_of_local_blocks_names_and_arguments(nano):
    text, index = nano
    loc = definition(index, at(text, "repeat(layers) decoder", "decoder"))
    assert loc.path == NANO and text.split("\n")[loc.range.start.line].startswith("block decoder(")
    eps = definition(index, at(text, "rmsnorm(h, eps = eps)", "eps", nth=1))
    assert text.split("\n")[eps.range.start.line].startswith("let eps")
    x = definition(index, at(text, "attention(rmsnorm(x", "x", nth=2))  # the block's parameter
    assert text.split("\n")[x.range.start.line].startswith("block decoder(x")
    h = definition(index, at(text, "h = rmsnorm(h", "h", nth=1))  # the previous binding, not this one
    assert text.split("\n")[h.range.start.line].startswith("h = repeat")
    hidden = definition(index, at(text, "hidden = mlp", "hidden"))  # swiglu's parameter, in the prelude
    line = _line(PRELUDE, hidden.range.start.line)
    assert hidden.path == PRELUDE and line.startswith("block swiglu(")
    assert line[hidden.range.start.character:hidden.range.end.character] == "hidden"


def test_definition_into_imports(tmp_path):
    (tmp_path / "parts.arch").write_text("let width = 32\nblock twice(x: [b, s, d]) -> [b, s, d] {\n"
                                         "    return x + x\n}\n", encoding="utf-8")
    text = ('model m\nimport "parts.arch"\ninput tokens: int32[batch, seq]\n'
            "h = token_embedding(tokens, 64, width)\noutput logits = lm_head(twice(h), 64)\n")
    spec = tmp_path / "m.arch"
    index = index_for(text, str(spec))
    loc = definition(index, at(text, "twice(h)", "twice"))
    assert loc.path == (tmp_path / "parts.arch").resolve() and loc.range.start.line == 1
    width = definition(index, at(text, "tokens, 64, width", "width"))
    assert width.path == (tmp_path / "parts.arch").resolve() and width.range.start == Position(0, 4)
    assert "width: 32" in hover(index, at(text, "tokens, 64, width", "width")).markdown
    assert "width" in {c.label for c in completion(index, at(text, "output", "output"))}
    assert definition(index, at(text, "import", "parts")).path == (tmp_path / "parts.arch").resolve()
    assert "[batch, seq, 64]" in hover(index, at(text, "lm_head", "lm_head")).markdown


def test_completion_offers_blocks_primitives_and_arguments_not_given(nano):
    text, index = nano
    pos = at(text, "heads = heads,", "heads = heads,", offset=len("heads = heads, "))
    items = completion(index, pos)
    labels = {c.label: c for c in items}
    args = [c.label for c in items if c.kind == "argument"]
    assert "kv_heads =" in args and "rope =" in args and "window =" in args
    assert "heads =" not in args and "x =" not in args  # given by keyword, given by position
    assert labels["swiglu"].kind == "block" and "hidden: int" in labels["swiglu"].detail
    assert labels["decoder"].kind == "block" and labels["linear"].kind == "primitive"
    assert "eps" in labels and "heads" in labels  # the spec's own names
    top = {c.label for c in completion(index, Position(len(text.split("\n")) - 1, 0))}
    assert completion(index, at(text, "let d = 256", "hidden_dim")) == []  # in a comment
    assert {"let", "block", "rmsnorm", "attention"} <= top


def test_signature_help_tracks_the_active_parameter(nano):
    text, index = nano
    pos = at(text, "hidden = mlp) as mlp", "mlp)", offset=1)
    helped = signature_help(index, pos)
    assert helped.signature.name == "swiglu"
    assert helped.signature.params[helped.active].name == "hidden"
    start, end = helped.params[helped.active]
    assert helped.signature.label[start:end] == "hidden: int"
    first = signature_help(index, at(text, "swiglu(rmsnorm", "(", offset=1))
    assert first.signature.name == "swiglu" and first.active == 0


def test_inlay_hints_show_shapes_after_bindings(nano):
    text, index = nano
    hints = {(h.position.line, h.position.character): h.label for h in inlay_hints(index)}
    h = at(text, "h = token_embedding", "h")
    assert hints[(h.line, 1)] == ": [batch, seq, 256]"
    x = at(text, "x = x + swiglu", "x")
    assert hints[(x.line, x.character + 1)] == ": [batch, seq, 256]"
    out = at(text, "output logits", "logits")
    assert hints[(out.line, out.character + len("logits"))] == ": [batch, seq, 256]"


def test_a_broken_buffer_still_completes_and_finds_the_stdlib(nano):
    text, _ = nano
    broken = text.replace("h = rmsnorm(h, eps = eps) as norm", "h = rmsnorm(h, ")
    index = index_for(broken, str(NANO))
    assert index.module is None  # does not parse
    pos = at(broken, "h = rmsnorm(h, ", "(h, ", offset=4)
    items = completion(index, pos)
    assert [c.label for c in items if c.kind == "argument"] == ["eps =", "offset ="]
    assert {"swiglu", "decoder", "linear", "vocab"} <= {c.label for c in items}
    assert signature_help(index, pos).signature.name == "rmsnorm"
    loc = definition(index, at(broken, "h = rmsnorm(h", "rmsnorm"))
    assert loc.path == PRELUDE and _line(PRELUDE, loc.range.start.line).startswith("block rmsnorm(")
    assert "eps: float" in hover(index, at(broken, "h = rmsnorm(h", "rmsnorm")).markdown


def test_a_buffer_that_does_not_elaborate_keeps_what_did(nano):
    text, _ = nano
    bad = text.replace("let heads = 8", "let heads = 7")  # 256 / 7: the repeat fails, the rest elaborates
    index = index_for(bad, str(NANO))
    assert index.module is not None and not index.complete
    assert "[batch, seq, 256]" in hover(index, at(bad, "h = token_embedding", "h")).markdown
    attn = hover(index, at(bad, "10000.0)) as attn", "as attn", offset=4)).markdown
    assert "attention" in attn and "did not elaborate" in attn
    assert f"{VOCAB * D:,}" in hover(index, at(bad, "as embedding", "embedding", nth=1)).markdown
    assert definition(index, at(bad, "swiglu(", "swiglu")).path == PRELUDE


def test_utf16_positions():
    buf = Buffer("let a = 1  # \U0001F600 x\nh = a\n")
    assert buf.position(buf.text.index("x")) == Position(0, 16)  # the emoji is two UTF-16 units
    assert buf.offset(Position(0, 16)) == buf.text.index("x")
    assert buf.offset(Position(1, 4)) == buf.text.index("a\n")


def test_completion_after_repeat_offers_blocks_and_import_offers_files(tmp_path, nano):
    text, index = nano
    pos = at(text, "repeat(layers) decoder", "decoder")
    labels = {c.label: c.kind for c in completion(index, pos)}
    assert labels["decoder"] == "block" and labels["attention"] == "block"
    assert "linear" not in labels and "h" not in labels  # a primitive or a value cannot be repeated
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "parts.arch").write_text("let n = 2\n", encoding="utf-8")
    spec = tmp_path / "m.arch"
    buffer = 'model m\nimport "'
    files = completion(index_for(buffer, str(spec)), Position(1, 8))
    assert [(c.label, c.insert) for c in files] == [("lib/parts.arch", "lib/parts.arch")]


def test_definition_of_a_primitive_lands_on_its_registry_entry(nano):
    text, index = nano
    found = definition(index, at(text, "output logits = lm_head", "lm_head"))  # a block: the prelude
    assert found.path == PRELUDE
    norm_block = PRELUDE.read_text(encoding="utf-8")
    prelude = index_for(norm_block, str(PRELUDE))  # in the prelude, rms_norm is a primitive
    loc = definition(prelude, at(norm_block, "return rms_norm(", "rms_norm"))
    line = loc.path.read_text(encoding="utf-8").split("\n")[loc.range.start.line]
    assert loc.path.name == "norms.py" and line[loc.range.start.character:loc.range.end.character] == "rms_norm"
    assert line.lstrip().startswith('"rms_norm",')  # the OpDef's name, first in its arguments


def test_the_queries_need_neither_pygls_nor_torch():
    code = ("import sys, ttspec.lsp.queries as q; q.hover(q.index_for(open(sys.argv[1]).read(), sys.argv[1]), "
            "q.Position(0, 0)); print(sorted(m for m in ('pygls', 'lsprotocol', 'torch', 'ttnn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(NANO)], capture_output=True, text=True, cwd=ROOT,
                         timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_crlf_buffers(nano):
    text, _ = nano
    crlf = text.replace("\n", "\r\n")  # an editor on Windows: ttspec reads it as LF, positions stay the buffer's
    index = index_for(crlf, str(NANO))
    assert "h: [batch, seq, 256]" in hover(index, at(text, "h = rmsnorm(h", "h")).markdown
    out = at(text, "output logits", "logits")
    assert (out.line, out.character + len("logits")) in {(h.position.line, h.position.character)
                                                         for h in inlay_hints(index)}
