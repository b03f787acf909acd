"""Non-causal attention (encoder blocks, `attend(..., causal = false)`) in a TT-NN program.

Every query reads every key of the sequence: ttnn's scaled_dot_product_attention with
is_causal=False, over the heads one device holds (on a mesh the heads are split over the
tensor-parallel axis as for causal attention; the op sees only its device's heads). A sequence is
padded to whole tiles, so the keys past its real length are masked (an additive attn_mask, which the
op takes only without is_causal); with `softcap` the softcapped composition runs with the same mask.
A sliding window needs causal attention (the op refuses `window` with `causal = false` before any
backend sees it; ttnn's own non-causal sliding_window_size is a window centred on the query, not
HF's). Such a model has no decode step: it keeps no KV cache, and the program's allocate_cache,
prefill and decode refuse with CANNOT_DECODE (the torch program's message).
"""

from __future__ import annotations

from ...ir.graph import Model
from ...ops.attention import attention_scale
from ..common.pyast import Const, Expr
from .lower_sdpa import sdpa_prefill_configs


def attend_bidirectional(node, args, ctx) -> Expr:
    """The program's bidirectional_attention (rt/attention.py) on this device's q, k, v heads, with the prefill
    SDPA's configs (lower_sdpa.py) where it runs ttnn's SDPA."""
    scale = Const(attention_scale(node, ctx.graph))
    if node.attrs.softcap is not None:
        options = dict(softcap=Const(node.attrs.softcap))
    else:
        program, kernel = sdpa_prefill_configs(node, ctx)
        options = {"programs": program, "compute_kernel_config": kernel}
    return ctx.helper("bidirectional_attention")(*args, ctx.state(), ctx.device(), scale=scale, **options)


def cannot_decode(model: Model) -> str | None:
    """Why the model cannot decode, as the program quotes it (a Python string literal), or None: the torch
    program's check and words (imported here, not by lower.py, which `plan` and `check` load)."""
    from ..torch.backend import blocker_text, decode_blocker

    blocker = decode_blocker(model)
    return None if blocker is None else blocker_text(blocker)
