"""jinja2 rendering of generated programs (their runtime inlined), and what they share (HF name rules)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from ...families import check_family_labels, generated_rules
from ...ir.graph import Model
from .inline import IMPORTS_MARK, METHODS_MARK, RUNTIME_MARK, inline_runtime, runtime_dirs

TEMPLATES = Path(__file__).resolve().parent / "templates"


@cache
def _env():
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)


def render(template: str, **context) -> str:
    if "spec" in context:
        context["spec"] = display_path(context["spec"])
    return _env().get_template(template).render(**context)


def render_program(template: str, backend: str, api: tuple[str, ...], mixins: dict[str, set[str]] | None = None,
                   **context) -> str:
    """A generated program: the template (header, model classes, data tables) with the runtime it
    uses, and `api` (what it offers its users, and helpers its lowerings asked for by name), inlined
    from backends/<backend>/rt and backends/common/rt. `mixins`: runtime classes whose methods a model
    class takes, each without some (see inline.py)."""
    marks = {f"methods_of_{name}": METHODS_MARK.format(name) for name in mixins or {}}
    text = render(template, imports_mark=IMPORTS_MARK, runtime_mark=RUNTIME_MARK, **marks, **context)
    return inline_runtime(text, runtime_dirs(backend, "common"), set(api), mixins)


def display_path(path: str) -> str:
    """The spec path as generated code quotes it: anything but plain path characters becomes `?`,
    so no file name can put text into a generated program; a long path keeps its last 100
    characters, so the lines quoting it stay within 120 columns."""
    text = re.sub(r"[^A-Za-z0-9_./+@-]", "?", str(path))
    return text if len(text) <= 100 else "..." + text[-97:]


def hf_rules(model: Model) -> list[tuple[str, str, str]]:
    """The family's HF name rules that this model uses, with concrete transforms (fused HF
    tensors split at this model's sizes); every stored parameter must match one."""
    if model.family is None:
        return []
    check_family_labels(model)
    return generated_rules(model)
