"""An error inside a standard block names the argument the user wrote (issue 22's trial): `moe(..., experts = 0)`
said "out must be positive" (linear's argument, inside moe_router, which the user never wrote)."""

import pytest

import ttspec

from .conftest import SPECS

MOE = (SPECS / "moe-tiny.arch").read_text(encoding="utf-8")
HEAD = "model m\ninput tokens: int32[batch, seq] where seq <= 64\nh = token_embedding(tokens, 256, 64)\n"


@pytest.mark.parametrize(("text", "message"), [
    (MOE.replace("let experts = 8", "let experts = 0"), "experts must be positive, got 0"),
    (MOE.replace("experts = experts,", "experts = -1,"), "experts must be positive, got -1"),
    (MOE.replace("top_k = top_k,", "top_k = 0,"), "top_k must be positive, got 0"),
    (HEAD + "output logits = lm_head(h, 0)\n", "vocab must be positive, got 0"),
])
def test_a_standard_blocks_error_names_the_users_argument(text, message):
    (d,) = ttspec.check(text)
    assert d.message == message and d.loc.file == "<string>"
    assert d.notes[0].message.startswith("inside standard block")  # placed on the user's call, the block noted


def test_a_users_own_block_keeps_the_primitives_argument():
    # in the user's own block the place is the argument itself (`n`), so the primitive's name for it stays
    text = HEAD.replace("h = token", "block proj(x: [b, s, d], n: int) -> [b, s, n] {\n    return linear(x, n)\n}\n"
                                     "h = token") + "output logits = proj(h, 0)\n"
    (d,) = ttspec.check(text)
    assert d.message == "out must be positive, got 0" and (d.loc.line, d.loc.col) == (4, 22)
