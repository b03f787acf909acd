"""The decode step of the TT-NN program ttspec writes for a build, as the cost model reads it (analysis/program.py):
`report` and `plan` price it (reports sit above both the analysis and the backend that produces the records).
A model that cannot decode (non-causal attention) has no decode step: no_decode says why, and its forward pass
(`model(tokens)`, every position's logits) is priced where a prefill would be."""

from __future__ import annotations

from ..analysis.program import DecodeProgram


def no_decode(model) -> str | None:
    """Why `model` cannot decode (its spec's location, the refusal and its hint, as `generate` refuses), or None
    where it can (backends/torch/backend.decode_blocker: one rule for every backend)."""
    from ..backends.common.render import display_path
    from ..backends.torch.backend import decode_blocker

    blocker = decode_blocker(model)
    if blocker is None:
        return None
    d = blocker.diagnostic
    where = f"{display_path(d.loc.file)}:{d.loc.line}:{d.loc.col}: " if d.loc is not None else ""
    return where + d.message + (f"; {d.hint}" if d.hint else "")


def emitted_programs(build) -> tuple[DecodeProgram | None, DecodeProgram | None]:
    """The decode step and the prefill of the TT-NN program ttspec writes for `build`, as the cost model reads them
    (backends/ttnn/decode_facts.py, prefill_facts.py); (None, None) where the backend cannot write one (the report
    then prices the idealised program and says so); (None, its forward pass) for a model that cannot decode."""
    from ..backends.ttnn.backend import compile_ttnn
    from ..backends.ttnn.decode_facts import decode_program
    from ..backends.ttnn.prefill_facts import forward_program, prefill_program
    from ..errors import ArchError

    try:
        source = compile_ttnn(build, "<report>")
    except ArchError:  # the backend refuses this build
        return None, None
    if no_decode(build.model) is not None:
        return None, forward_program(source)
    return decode_program(source), prefill_program(source)


def emitted_decode(build) -> DecodeProgram | None:
    """The decode step of the TT-NN program ttspec writes for `build` (emitted_programs), or None."""
    return emitted_programs(build)[0]
