"""The decode step of the TT-NN program ttspec writes for a build, as the cost model reads it (analysis/program.py):
`report` and `plan` price it (reports sit above both the analysis and the backend that produces the records)."""

from __future__ import annotations

from ..analysis.program import DecodeProgram


def emitted_programs(build) -> tuple[DecodeProgram | None, DecodeProgram | None]:
    """The decode step and the prefill of the TT-NN program ttspec writes for `build`, as the cost model reads them
    (backends/ttnn/decode_facts.py, prefill_facts.py); (None, None) where the backend cannot write one (the report
    then prices the idealised program and says so)."""
    from ..backends.ttnn.backend import compile_ttnn
    from ..backends.ttnn.decode_facts import decode_program
    from ..backends.ttnn.prefill_facts import prefill_program
    from ..errors import ArchError

    try:
        source = compile_ttnn(build, "<report>")
    except ArchError:  # the backend refuses this build
        return None, None
    return decode_program(source), prefill_program(source)


def emitted_decode(build) -> DecodeProgram | None:
    """The decode step of the TT-NN program ttspec writes for `build` (emitted_programs), or None."""
    return emitted_programs(build)[0]
