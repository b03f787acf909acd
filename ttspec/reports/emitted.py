"""The decode step of the TT-NN program ttspec writes for a build, as the cost model reads it (analysis/program.py):
`report` and `plan` price it (reports sit above both the analysis and the backend that produces the records)."""

from __future__ import annotations

from ..analysis.program import DecodeProgram


def emitted_decode(build) -> DecodeProgram | None:
    """The decode step of the TT-NN program ttspec writes for `build`, as the cost model reads it; None where the
    backend cannot write one (the report then prices the idealised program and says so)."""
    from ..backends.ttnn.backend import compile_ttnn
    from ..backends.ttnn.decode_facts import decode_program
    from ..errors import ArchError

    try:
        return decode_program(compile_ttnn(build, "<report>"))
    except ArchError:  # the backend refuses this build (the report says it priced the idealised program)
        return None
