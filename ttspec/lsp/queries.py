"""The language server's navigation queries as pure functions over a buffer's index (index.py): hover,
definition, completion, signature help and inlay hints. No pygls here: positions are `text.Position`s
(0-based line, UTF-16 character), results plain records (navigation.py turns them into LSP's).

    index = index_for(text, path)
    hover(index, Position(24, 60))        # -> Hover(markdown, range) or None

Each works on a buffer that does not elaborate (from its parse tree) and completion and the stdlib's
definitions on one that does not parse (from its tokens)."""

from __future__ import annotations

import re
from pathlib import Path

from ..elaborate.values import KEYWORDS, ModuleRef, Sym, Tensor, show
from ..frontend import ast
from ..records import FrozenRecord, Record, fresh
from . import components
from .index import Index, index_for, loc_key
from .signatures import Signature, markdown, primitive_names, primitive_signature, source_path
from .symbols import Ref, Symbols
from .text import CallContext, Position, Range, enclosing_call, is_repeat

__all__ = ["Completion", "Hover", "InlayHint", "Location", "Position", "Range", "SignatureHelp", "completion",
           "definition", "hover", "index_for", "inlay_hints", "signature_help"]

STATEMENT_WORDS = ("model", "let", "input", "output", "block", "import", "family", "target", "shard", "repeat",
                   "return", "if", "else", "kind", "where", "as", "true", "false", "none")


_BINDS = re.compile(r"^[ \t]*(?:let[ \t]+|input[ \t]+|output[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)[ \t]*[=:]", re.M)


class Hover(FrozenRecord):
    markdown: str
    range: Range | None = None


class Location(FrozenRecord):
    path: Path
    range: Range


class Completion(FrozenRecord):
    """One item: `kind` one of block, primitive, argument, variable, keyword, value."""

    label: str
    kind: str
    detail: str = ""
    doc: str = ""
    insert: str | None = None


class SignatureHelp(Record):
    signature: Signature
    active: int | None = None
    params: list[tuple[int, int]] = fresh(list)  # each parameter's [start, end) in the signature's label


class InlayHint(FrozenRecord):
    position: Position
    label: str


def _symbols(index: Index) -> Symbols | None:
    if index.module is None:
        return None
    syms = getattr(index, "_symbols", None)
    if syms is None:
        syms = index._symbols = Symbols(index.module, index.buf)
    return syms


def _ref_at(index: Index, pos: Position):
    """(token, Ref or None) at a position."""
    found = index.buf.token_at(index.buf.offset(pos))
    if found is None:
        return None, None
    _, tok = found
    syms = _symbols(index)
    return tok, (syms.refs.get(tok.start) if syms is not None else None)


def _callee(index: Index, name: str) -> Signature | None:
    return index.blocks.get(name) or primitive_signature(name)


def value_text(value) -> str:
    """A value as hover and inlay hints show it: a tensor's shape (with its dtype unless float)."""
    if isinstance(value, Tensor):
        shape = "[" + ", ".join(str(d) for d in value.type.shape) + "]"
        return shape if value.type.dtype == "float" else f"{value.type.dtype}{shape}"
    if isinstance(value, Sym):
        return "symbolic dim"
    if isinstance(value, ModuleRef):
        return f"module `{value.path}`"
    return show(value)


# ---------------------------------------------------------------- hover
def hover(index: Index, pos: Position) -> Hover | None:
    tok, ref = _ref_at(index, pos)
    if tok is None:
        return None
    rng = index.buf.span_range(tok.start, tok.end)
    text = _hover_ref(index, tok.text, ref) if ref is not None else None
    if text is None:
        after = _next_token(index, tok.end)
        if tok.text not in KEYWORDS and (after == "(" or ref is not None and ref.kind == "call"):
            sig = _callee(index, tok.text)
            text = markdown(sig) if sig is not None else None
    return Hover(text, rng) if text else None


def _next_token(index: Index, offset: int) -> str | None:
    return next((t.text for t in index.buf.tokens if t.start >= offset), None)


def _hover_ref(index: Index, name: str, ref: Ref) -> str | None:
    values = index.values
    if ref.kind == "label":
        return _hover_label(index, name, ref)
    if ref.kind == "call":
        sig = _callee(index, name)
        text = markdown(sig) if sig is not None else None
        value = values.get(id(ref.outer))
        if value is not None and text is not None:
            text += f"\n\nhere: `{value_text(value)}`"
        if text is not None and ref.call.label is None:  # an unlabelled component: named after its block
            text += "".join(f"\n\n---\n\n{part}" for part in _components(index, ref.call, None))
        return text
    if ref.kind == "kwarg":
        sig = _callee(index, ref.call.func)
        p = sig.param(name) if sig is not None else None
        if p is None:
            return None
        text = f"```arch\n{p.label}\n```\n\nargument of `{sig.name}`" + (f"\n\n{p.doc}" if p.doc else "")
        value = values.get(id(ref.node.value))
        return text + (f"\n\nhere: `{value_text(value)}`" if value is not None else "")
    if ref.kind in ("family", "target"):
        return _hover_setting(ref.kind, name)
    if ref.kind == "blockdef":
        return markdown(index.blocks.get(name) or Signature(name, "block"))
    if ref.kind == "name" and index.values.get(id(ref.node)) is None:
        syms = _symbols(index)
        b = syms.resolve(name, index.buf.loc_offset(ref.node.loc), ref.block)
        if b is not None and b.ref.kind == "dim":
            ref = b.ref
    if ref.kind == "dim":
        text = _dim_value(index, ref.node)
        return f"```arch\n{name}: {text}\n```" if text else None
    value = _value_of(index, ref)
    what = {"param": "parameter", "dim": "dim", "let": "let", "input": "input", "output": "output"}.get(ref.kind, "")
    if ref.kind == "param" and value is None:
        sig = index.blocks.get(ref.block.name) if ref.block is not None else None
        p = sig.param(name) if sig is not None else None
        return f"```arch\n{p.label}\n```\n\nparameter of block `{ref.block.name}`" if p is not None else None
    if value is None:
        return None
    return f"```arch\n{name}: {value_text(value)}\n```" + (f"\n\n{what}" if what else "")


def _hover_setting(kind: str, name: str) -> str | None:
    """`family NAME`: the transformers class it follows; `target NAME`: the hardware."""
    if kind == "family":
        from ..families import FAMILIES

        f = FAMILIES.get(name)
        return (f"**family {name}**: parameters load from and save to HF `{f.hf_class}` checkpoints (config.json "
                f"`model_type` \"{name}\"); hover a component label for its HF names") if f else None
    from ..targets import TARGETS

    t = TARGETS.get(name)
    if t is None:
        return None
    return (f"**target {name}**: {t.description} ({t.arch}, a {t.mesh[0]}x{t.mesh[1]} mesh); `ttspec check` "
            "and the CodeLens on `model` say whether the model fits it")


def _value_of(index: Index, ref: Ref):
    node = ref.node
    if ref.kind == "name":
        value = index.values.get(id(node))
        if value is None:  # a use never evaluated (a dim in a type): its binding's value
            syms = _symbols(index)
            b = syms.resolve(node.id, index.buf.loc_offset(node.loc), ref.block) if syms else None
            value = _value_of(index, b.ref) if b is not None and b.ref is not ref else None
        return value
    if ref.kind in ("assign", "output"):
        return index.values.get(id(node.value))
    if ref.kind == "let":
        return index.values.get(id(node.value))
    if ref.kind == "param":
        return index.values.get(id(node))
    if ref.kind == "input" and index.model is not None and node.name in index.model.graph.nodes:
        return Tensor(node.name, index.model.graph.nodes[node.name].type)
    return None


def _dim_value(index: Index, dim: ast.DimSpec):
    if index.model is not None and dim.name in index.model.symbols:
        bound = index.model.bounds.get(dim.name)
        return f"symbolic dim{f' <= {bound:,}' if bound else ''}"
    return None


def _components(index: Index, call: ast.Call, name: str | None) -> list[str]:
    """The components a call made (one per block instance that ran it, up to four), described."""
    report = index.report
    if report is None:
        return []
    family = index.model.family if index.model is not None else None
    parts = []
    for chain in index.labels.get(loc_key(call.loc), [])[:4]:
        text = components.describe(report, family, name or chain[-1].rpartition(".")[2], chain)
        if text is not None:
            parts.append(text)
    return parts


def _hover_label(index: Index, name: str, ref: Ref) -> str | None:
    call: ast.Call = ref.call
    parts = _components(index, call, name)
    value = index.values.get(id(ref.outer))
    if not parts:
        parts.append(f"**{name}** · `{call.func}`" + ("" if index.complete else
                                                       " (no count: its statement did not elaborate)"))
    if value is not None:
        parts.append(f"result: `{value_text(value)}`")
    return "\n\n".join(parts)


# ---------------------------------------------------------------- definition
def definition(index: Index, pos: Position) -> Location | None:
    tok, ref = _ref_at(index, pos)
    line = index.buf.line_text(pos.line).strip()
    if line.startswith("import") and '"' in line:
        return _import_target(index, line)
    if tok is None:
        return None
    syms = _symbols(index)
    if ref is not None and ref.kind == "name" and syms is not None:
        b = syms.resolve(tok.text, tok.start, ref.block)
        if b is not None:
            return Location(index.path, index.buf.span_range(b.offset, b.offset + len(b.name)))
        found = index.imported_lets.get(tok.text)
        if found is None:
            return None
        path, loc = found
        start = Position(loc.line - 1, loc.col - 1)
        return Location(path, Range(start, Position(start.line, start.character + len(tok.text))))
    if ref is not None and ref.kind == "kwarg":
        return _param_location(index, ref.call.func, tok.text)
    if ref is None or ref.kind in ("call", "blockdef", "label"):
        name = ref.call.func if ref is not None and ref.kind == "label" else tok.text
        return _block_location(index, name)
    return None


def _block_location(index: Index, name: str) -> Location | None:
    sig = index.blocks.get(name)
    if sig is None or not sig.line:
        return _primitive_location(name)
    path = index.path if sig.file == index.file else source_path(sig.file)
    line = sig.line - 1
    try:
        text = index.buf.line_text(line) if path == index.path else path.read_text(encoding="utf-8").split("\n")[line]
    except (OSError, IndexError):
        text = ""
    col = max(text.find(name), 0)
    return Location(path, Range(Position(line, col), Position(line, col + len(name))))


def _primitive_location(name: str) -> Location | None:
    """A primitive or config: its `OpDef("name"` (`ConfigDef`) in the op registry's module that declares it."""
    import sys

    from ..elaborate.values import REGISTRY
    from ..ops import CONFIGS

    found = REGISTRY.get(name) or CONFIGS.get(name)
    if found is None:
        return None
    rule = found.shape if name in REGISTRY else found.check
    module = sys.modules.get(getattr(rule, "__module__", ""))
    path = Path(getattr(module, "__file__", "") or "")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    m = re.search(rf'(?:OpDef|ConfigDef)\(\s*"{re.escape(name)}"', text)
    if m is None:
        return None
    start = text.index('"', m.start()) + 1
    line = text.count("\n", 0, start)
    col = start - (text.rfind("\n", 0, start) + 1)
    return Location(path, Range(Position(line, col), Position(line, col + len(name))))


def _param_location(index: Index, func: str, param: str) -> Location | None:
    defn = index.defs.get(func)
    if defn is None:
        return _block_location(index, func)
    p = next((p for p in defn.params if p.name == param), None)
    if p is None:
        return _block_location(index, func)
    path = index.path if defn.file == index.file else source_path(defn.file)
    return Location(path, Range(Position(p.loc.line - 1, p.loc.col - 1),
                                Position(p.loc.line - 1, p.loc.col - 1 + len(param))))


def _import_target(index: Index, line: str) -> Location | None:
    rel = line.split('"')[1]
    target = (index.path.resolve().parent / rel).resolve()
    if not target.is_file():
        return None
    return Location(target, Range(Position(0, 0), Position(0, 0)))


# ---------------------------------------------------------------- completion
def completion(index: Index, pos: Position) -> list[Completion]:
    offset = index.buf.offset(pos)
    if _in_comment(index.buf.text[index.buf.starts[min(pos.line, len(index.buf.starts) - 1)]:offset]):
        return []
    before = index.buf.tokens_before(offset)
    if before and before[-1].end == offset and before[-1].is_name:
        before = before[:-1]  # the word being typed
    prev = before[-1].text if before else ""
    if prev == "as" or prev == "block" or prev == "model":
        return []
    if prev == "family":
        from ..families import FAMILIES

        return [Completion(f, "value", "checkpoint family") for f in FAMILIES]
    if prev == "target":
        from ..targets import TARGETS

        return [Completion(t, "value", "target") for t in TARGETS]
    if prev == ")" and is_repeat(before, len(before) - 1):  # `repeat(N) |`: only a block can follow
        return [c for c in _callables(index) if c.kind == "block"]
    if prev == "import" or index.buf.line_text(pos.line).lstrip().startswith("import"):
        quoted = '"' in index.buf.line_text(pos.line)[: pos.character]
        return _import_paths(index, quoted)
    items: list[Completion] = []
    ctx = enclosing_call(index.buf, offset)
    if ctx is not None:
        items += _arguments(index, ctx)
    items += _variables(index, offset)
    items += _callables(index)
    if ctx is None:
        items += [Completion(w, "keyword") for w in STATEMENT_WORDS]
    return items


def _in_comment(line: str) -> bool:
    """Whether the end of `line` (a line up to the cursor) is inside a `#` comment."""
    quoted = False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        elif ch == "#" and not quoted:
            return True
    return False


def _import_paths(index: Index, quoted: bool) -> list[Completion]:
    """`import "|`: the .arch files beside the spec and below it (imports stay in the spec's tree)."""
    from itertools import islice

    base = index.path.resolve().parent
    out = []
    for path in sorted(islice(base.rglob("*.arch"), 200)):
        if path != index.path.resolve():
            rel = path.relative_to(base).as_posix()
            out.append(Completion(rel, "value", "file", insert=rel if quoted else f'"{rel}"'))
    return out


def _arguments(index: Index, ctx: CallContext) -> list[Completion]:
    sig = _callee(index, ctx.func)
    if sig is None:
        return []
    params = sig.params[ctx.positional:]
    out = []
    for p in params:
        if p.name in ctx.given:
            continue
        detail = (p.type or "") + (f" = {p.default}" if p.default is not None else "")
        out.append(Completion(f"{p.name} =", "argument", detail.strip(), p.doc, f"{p.name} = "))
    return out


def _variables(index: Index, offset: int) -> list[Completion]:
    syms = _symbols(index)
    if syms is None:  # a buffer that does not parse: the names its lines bind
        names = dict.fromkeys(m.group(1) for m in _BINDS.finditer(index.buf.text))
        return [Completion(n, "variable") for n in names]
    out = []
    for b in syms.visible(offset, syms.block_at(offset)):
        value = _value_of(index, b.ref)
        out.append(Completion(b.name, "variable", value_text(value) if value is not None else b.ref.kind))
    seen = {c.label for c in out}
    out += [Completion(name, "variable", f"let in {path.name}") for name, (path, _) in index.imported_lets.items()
            if name not in seen]
    return out


def _callables(index: Index) -> list[Completion]:
    out = [Completion(name, "block", sig.label, sig.doc) for name, sig in index.blocks.items()]
    for name in primitive_names():
        if name not in index.blocks:
            sig = primitive_signature(name)
            out.append(Completion(name, "primitive", sig.label, sig.doc))
    return out


# ---------------------------------------------------------------- signature help
def signature_help(index: Index, pos: Position) -> SignatureHelp | None:
    ctx = enclosing_call(index.buf, index.buf.offset(pos))
    if ctx is None:
        return None
    sig = _callee(index, ctx.func)
    if sig is None:
        return None
    spans, start = [], len(sig.name) + 1
    for p in sig.params:
        spans.append((start, start + len(p.label)))
        start += len(p.label) + 2
    names = [p.name for p in sig.params]
    if ctx.keyword is not None:
        active = names.index(ctx.keyword) if ctx.keyword in names else None
    else:
        active = ctx.active if ctx.active < len(names) else None
    return SignatureHelp(sig, active, spans)


# ---------------------------------------------------------------- inlay hints
def inlay_hints(index: Index, rng: Range | None = None) -> list[InlayHint]:
    """`: [batch, seq, 256]` after each name an assignment or an output binds to a tensor."""
    syms = _symbols(index)
    if syms is None:
        return []
    out = []
    for offset, ref in sorted(syms.refs.items()):
        if ref.kind not in ("assign", "output"):
            continue
        value = index.values.get(id(ref.node.value))
        if not isinstance(value, Tensor):
            continue
        p = index.buf.position(offset + len(ref.node.name))
        if rng is None or rng.start.line <= p.line <= rng.end.line:
            out.append(InlayHint(p, f": {value_text(value)}"))
    return out
