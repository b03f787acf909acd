"""The prefill SDPA's program and compute-kernel configs (causal attention in lower.py, non-causal in
lower_encoder.py; the softcapped composition runs no SDPA and takes neither).

The prompt's length is known only when the program runs (padded to whole tiles), so the class states every
program the rule can choose, (from length, chunk, SDPAProgramConfig) in configs/prefill.py's SDPA_CHUNKS order
(tt_transformers' SDPA_PROGCFG: Q and K chunks of 256 rows from 2048 tokens on, 64 below, the largest dividing the
prompt), and the runtime's chunked_sdpa takes the first that fits the prompt it is given.
"""

from __future__ import annotations

from ..common.pyast import Const, Expr, Tuple
from .configs.prefill import prefill_sdpa_programs
from .configs.values import SDPA_PREFILL_KERNEL


def sdpa_prefill_configs(node, ctx) -> tuple[Expr, Expr]:
    """This class's members for the prefill SDPA: the programs by chunk and the compute kernel."""
    programs = prefill_sdpa_programs(ctx.backend.target)
    grid = "x".join(map(str, programs[0][2].grid))
    table = Tuple(tuple(Tuple((Const(least), Const(c), p.code())) for least, c, p in programs))
    program = ctx.config_member(node, "sdpa_prefill", table,
                                f"prefill: SDPA on {grid} cores, (from length, chunk, program); chunked_sdpa runs the "
                                "first whose length the prompt reaches and whose chunk divides it: tt_transformers' "
                                "SDPA_PROGCFG (Q and K chunks of 256 from 2048 tokens, 64 below)")
    kernel = ctx.config_member(node, "sdpa_prefill_kernel", SDPA_PREFILL_KERNEL.code(),
                               "prefill: SDPA at HiFi4 with fp32 accumulation, exact exp (tt_transformers' "
                               "compute_kernel_config_sdpa)")
    return program, kernel
