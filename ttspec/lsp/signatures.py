"""What a callable name means, for hover, completion and signature help: a block's parameters (types,
defaults) and result type with the comment written above it; a primitive's arguments from the op registry
with its doc; a config (`rope(...)`) and `activation(x, fn)`."""

from __future__ import annotations

import re
from pathlib import Path

from ..elaborate.values import REGISTRY
from ..frontend import ast
from ..frontend.source import STDLIB_DIR, STDLIB_PREFIX
from ..ops import ACTIVATIONS, CONFIGS, REQUIRED, ArgSpec
from ..records import Record, fresh


class ParamSig(Record):
    """One parameter: `name: type = default`, and what the doc says about it."""

    name: str
    type: str = ""
    default: str | None = None
    doc: str = ""

    @property
    def label(self) -> str:
        text = self.name + (f": {self.type}" if self.type else "")
        return text + (f" = {self.default}" if self.default is not None else "")


class Signature(Record):
    """A block, primitive, config or `activation`: its parameters, result and doc."""

    name: str
    what: str  # "block", "primitive", "config", "activation"
    params: list[ParamSig] = fresh(list)
    result: str = ""
    doc: str = ""
    file: str = ""  # a block: the file that defines it (a stdlib file as `<stdlib>/prelude.arch`)
    line: int = 0  # ... and its `block NAME` line (1-based)
    kind: str | None = None  # a block's `kind`

    @property
    def label(self) -> str:
        text = f"{self.name}({', '.join(p.label for p in self.params)})"
        return text + (f" -> {self.result}" if self.result else "")

    def param(self, name: str) -> ParamSig | None:
        return next((p for p in self.params if p.name == name), None)


def expr_source(e: ast.Expr | None) -> str:
    """Source-like text of an expression (defaults are short: names, literals, arithmetic, calls)."""
    from ..elaborate.values import show

    if e is None:
        return ""
    if isinstance(e, ast.Name):
        return e.id
    if isinstance(e, ast.Literal):
        return show(e.value)
    if isinstance(e, ast.BinOp):
        return f"{expr_source(e.left)} {e.op} {expr_source(e.right)}"
    if isinstance(e, ast.UnaryOp):
        return f"{e.op}{' ' if e.op == 'not' else ''}{expr_source(e.operand)}"
    if isinstance(e, ast.ListExpr):
        return "[" + ", ".join(expr_source(i) for i in e.items) + "]"
    if isinstance(e, ast.Call):
        return f"{e.func}(...)"
    return "..."


def type_text(t: ast.TensorTypeSpec | ast.ScalarTypeSpec | None) -> str:
    if t is None:
        return ""
    if isinstance(t, ast.ScalarTypeSpec):
        return t.name
    dims = ", ".join("*" if d.wildcard else (d.name if d.name is not None else str(d.value)) for d in t.dims)
    return f"{t.dtype or ''}[{dims}]"


def source_path(file: str) -> Path:
    """Where a module's file is on disk (the stdlib's `<stdlib>/...` names resolved)."""
    if file.startswith(STDLIB_PREFIX):
        return STDLIB_DIR / file[len(STDLIB_PREFIX):]
    return Path(file).resolve()


def comment_above(lines: list[str], line: int) -> str:
    """The `#` lines right above 1-based `line` (section rules `# ----` left out), as one paragraph."""
    out: list[str] = []
    i = line - 2
    while i >= 0 and lines[i].lstrip().startswith("#"):
        text = lines[i].strip().lstrip("#").strip()
        if text.startswith("---"):
            break
        out.insert(0, text)
        i -= 1
    return " ".join(out)


def block_signature(defn: ast.BlockDef, text: str | None = None) -> Signature:
    """A block's signature; `text`: its file's text, for the doc comment (read from disk if None)."""
    if text is None:
        try:
            text = source_path(defn.file).read_text(encoding="utf-8")
        except OSError:
            text = ""
    doc = comment_above(text.split("\n"), defn.loc.line)
    params = [ParamSig(p.name, type_text(p.type), expr_source(p.default) if p.default is not None else None,
                       param_doc(doc, p.name)) for p in defn.params]
    return Signature(defn.name, "block", params, type_text(defn.returns), doc, defn.file, defn.loc.line, defn.kind)


def param_doc(doc: str, name: str) -> str:
    """The clauses of a block's doc that mention parameter `name`."""
    if not doc:
        return ""
    clauses = re.split(r"(?<=[.;])\s+", doc)
    pattern = re.compile(rf"(?<![\w.]){re.escape(name)}(?!\w)")
    return " ".join(c for c in clauses if pattern.search(c))


def _arg(a: ArgSpec) -> ParamSig:
    kind = {"tensor": "tensor", "ref": "module"}.get(a.kind, a.kind)
    if a.default is REQUIRED:
        default = None
    else:
        from ..elaborate.values import show

        default = show(a.default)
    return ParamSig(a.name, kind, default)


def primitive_signature(name: str) -> Signature | None:
    if name in REGISTRY:
        op = REGISTRY[name]
        params = [_arg(a) for a in op.args]
        for p in params:
            p.doc = param_doc(op.doc, p.name)
        return Signature(name, "primitive", params, "tensor", op.doc)
    if name in CONFIGS:
        c = CONFIGS[name]
        params = [_arg(a) for a in c.fields]
        for p in params:
            p.doc = param_doc(c.doc, p.name)
        return Signature(name, "config", params, f"{name} config", c.doc)
    if name == "activation":
        fns = ", ".join(f'"{a}"' for a in ACTIVATIONS)
        return Signature("activation", "activation",
                         [ParamSig("x", "tensor"), ParamSig("fn", "str", None, f"one of {fns}")], "tensor",
                         f"An elementwise activation by name: {fns}.")
    return None


def primitive_names() -> list[str]:
    return [*REGISTRY, *CONFIGS, "activation"]


def markdown(sig: Signature) -> str:
    """A signature as hover text."""
    head = f"```arch\n{sig.label}\n```"
    what = sig.what + (f" · kind {sig.kind}" if sig.kind else "")
    if sig.what == "block":
        where = "standard library" if sig.file.startswith(STDLIB_PREFIX) else sig.file
        what += f" · {where}"
    parts = [head, f"*{what}*"]
    if sig.doc:
        parts.append(sig.doc)
    return "\n\n".join(parts)
