"""What the generated programs' text shares: the spec path as they quote it, the class bodies and
HF name tables they write, their runtime inlined (inline.py), and the HF name rules they carry.

Each backend writes its program's text with plain Python (backends/*/program.py), not a template
engine: importing and compiling one cost more than the rest of `ttspec compile`."""

from __future__ import annotations

import re

from ...families import check_family_labels, generated_rules
from ...ir.graph import Model
from .inline import Roots, inline_runtime, runtime_dirs
from .pyast import reads


def code_roots(trees, header, names=()) -> Roots:
    """What a program's own code reads and states, from the code trees its writer printed (model
    classes, header statements: pyast nodes), the constants it states (`header`) and the names its
    hand-written lines read (`names`: a class's base `nn.Module` ...)."""
    code_names, attributes = reads(trees)
    return Roots(frozenset(code_names) | frozenset(names), frozenset(attributes), frozenset(header))


def with_runtime(text: str, roots: Roots, backend: str, api: tuple[str, ...],
                 mixins: dict[str, set[str]] | None = None) -> str:
    """A generated program: its text (header, model classes, data tables, with the marks of
    inline.py) with the runtime it uses, and `api` (what it offers its users, and helpers its
    lowerings asked for by name), inlined from backends/<backend>/rt and backends/common/rt.
    `roots`: what the text's own code reads and states, as its writer knows it (see inline.py);
    `mixins`: runtime classes whose methods a model class takes, each without some."""
    return inline_runtime(text, roots, runtime_dirs(backend, "common"), set(api), mixins)


def display_path(path: str) -> str:
    """The spec path as generated code quotes it: anything but plain path characters becomes `?`,
    so no file name can put text into a generated program; a long path keeps its last 100
    characters, so the lines quoting it stay within 120 columns."""
    text = re.sub(r"[^A-Za-z0-9_./+@-]", "?", str(path))
    return text if len(text) <= 100 else "..." + text[-97:]


def _indented(lines: list[str]) -> str:
    """Printed statements (each one or more lines) as a method body, indented 8."""
    return "".join(f"        {part}\n" for line in lines for part in line.splitlines())


def class_body(cls: dict) -> str:
    """A model class's __init__ statements (after its opening lines) and its forward method."""
    forward = cls["forward"]
    return (_indented(cls["init"]) + f"\n    def forward(self, {', '.join(forward['params'])}):\n"
            + _indented(forward["lines"]))


def hf_names_table(rules: list[tuple[str, str, str]]) -> str:
    """The program's HF_NAMES table (none without HF name rules)."""
    if not rules:
        return ""
    return ("\n\n# ttspec name -> (HF transformers name, transform); `(\\d+)` is the layer index.\nHF_NAMES = [\n"
            + "".join(f'    (r"{ours}", "{hf}", "{transform}"),\n' for ours, hf, transform in rules) + "]\n")


def hf_rules(model: Model) -> list[tuple[str, str, str]]:
    """The family's HF name rules that this model uses, with concrete transforms (fused HF
    tensors split at this model's sizes); every stored parameter must match one."""
    if model.family is None:
        return []
    check_family_labels(model)
    return generated_rules(model)
