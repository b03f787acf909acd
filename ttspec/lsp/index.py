"""One buffer's index for the navigation queries: its parse tree (when it parses), what an elaboration of it
recorded (each expression's value, each component label's path) and every block it can call.

The elaboration is the elaborator's own (ttspec/elaborate/), subclassed only to remember: `eval` keeps the
first value of every expression of the buffer (by the AST node), `claim_label` the component path each
label makes (as a chain through the `repeat`s above it, which is how `ttspec params` nests them). The
spec's own statements recover from errors (elaborate/recovery.py), so a buffer with an error still has the
values of the statements that elaborated; one that does not parse keeps only the stdlib's blocks and the
`block NAME` lines a scan of its text finds."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from ..elaborate.elaborator import Elaborator
from ..elaborate.values import Scope, is_stdlib
from ..errors import ArchError, Loc
from ..frontend import ast
from ..frontend.parser import parse_source, parse_stdlib
from ..frontend.source import STDLIB_DIR, STDLIB_PREFIX
from ..ir.graph import Graph, Model
from .signatures import Signature, block_signature
from .text import Buffer

_BLOCK_LINE = re.compile(r"^[ \t]*block[ \t]+([A-Za-z_][A-Za-z0-9_]*)", re.M)


def loc_key(loc: Loc) -> tuple[str, int, int]:
    return loc.file, loc.line, loc.col


class _Recorder(Elaborator):
    """The elaborator, remembering values and labels of the buffer's own file."""

    def __init__(self, root_dir: Path, families, file: str) -> None:
        super().__init__(root_dir, families)
        self.file = file
        self.values: dict[int, object] = {}  # id(ast expr or param) -> its first value
        self.labels: dict[tuple, list[tuple[str, ...]]] = {}  # call loc -> component chains
        self.chain: list[list] = []  # the repeats being elaborated: [their call's loc, their path or None]

    def eval(self, expr: ast.Expr, scope: Scope):
        value = super().eval(expr, scope)
        if expr.loc.file == self.file:
            self.values.setdefault(id(expr), value)
        return value

    def check_param(self, p: ast.Param, value, loc: Loc, inner: Scope, defn: ast.BlockDef):
        value = super().check_param(p, value, loc, inner, defn)
        if defn.file == self.file:
            self.values.setdefault(id(p), value)
        return value

    def eval_repeat(self, expr: ast.RepeatCall, scope: Scope):
        self.chain.append([expr.call.loc, None])
        try:
            return super().eval_repeat(expr, scope)
        finally:
            self.chain.pop()

    def claim_label(self, scope: Scope, label: str, explicit: bool, loc: Loc) -> str:
        path = super().claim_label(scope, label, explicit, loc)
        top = self.chain[-1] if self.chain else None
        if top is not None and top[1] is None and top[0] is loc:
            top[1] = path
            chain = tuple(c[1] for c in self.chain)
        else:
            chain = tuple(c[1] for c in self.chain if c[1] is not None) + (path,)
        if not is_stdlib(loc.file):
            chains = self.labels.setdefault(loc_key(loc), [])
            if chain not in chains:
                chains.append(chain)
        return path


def stdlib_blocks() -> dict[str, Signature]:
    """The standard library's blocks: the prelude's, then the family templates' (which a short form brings)."""
    return _stdlib()[0]


@lru_cache(maxsize=1)
def _stdlib() -> tuple[dict[str, Signature], dict[str, ast.BlockDef]]:
    out: dict[str, Signature] = {}
    defs: dict[str, ast.BlockDef] = {}
    for path in sorted(STDLIB_DIR.glob("*.arch")) + sorted((STDLIB_DIR / "families").glob("*.arch")):
        name = STDLIB_PREFIX + str(path.relative_to(STDLIB_DIR))
        text = path.read_text(encoding="utf-8")
        try:
            module = parse_stdlib(path, name) if path.parent == STDLIB_DIR else parse_source(text, name, True)
        except ArchError:  # pragma: no cover - the stdlib parses (tests/test_parser_tables.py)
            continue
        for item in module.items:
            if isinstance(item, ast.BlockDef):
                item.file = name
                out.setdefault(item.name, block_signature(item, text))
                defs.setdefault(item.name, item)
    return out, defs


class Index:
    """A buffer's parse tree, recorded values and labels, elaborated model and known blocks."""

    def __init__(self, text: str, path: str | Path):
        self.path = Path(path)
        self.file = str(path)
        self.buf = Buffer(text)
        self.module: ast.Module | None = None
        self.parse_error: ArchError | None = None
        self.values: dict[int, object] = {}
        self.labels: dict[tuple, list[tuple[str, ...]]] = {}
        self.model: Model | None = None
        self.complete = False  # elaborated without an error
        self.blocks: dict[str, Signature] = dict(stdlib_blocks())
        self.defs: dict[str, ast.BlockDef] = dict(_stdlib()[1])
        self._report: dict | None = None
        self._parse(text)
        if self.module is not None and self.module.name is not None:
            self._elaborate()
        self._local_blocks(text)

    def _parse(self, text: str) -> None:
        from ..families import SHORT_FORMS
        from ..frontend.source import source_text

        try:
            self.module = parse_source(source_text(text, self.file), self.file, short_forms=SHORT_FORMS)
        except ArchError as e:
            self.parse_error = e
        except RecursionError:  # pragma: no cover - the parser bounds nesting first
            self.parse_error = ArchError("nested too deeply")

    def _elaborate(self) -> None:
        from ..families import FAMILIES

        module = self.module
        el = _Recorder(self.path.resolve().parent, tuple(FAMILIES), self.file)
        graph = Graph()
        try:
            el.load_stdlib(graph)
            el.loading.append(str(self.path.resolve()))
            el.run_file(module, Scope(None, "", graph, module.file), top=True)
            self.complete = not el.errors
        except (ArchError, RecursionError):
            pass
        except Exception:  # noqa: BLE001 - a bug in the elaborator must not take the server's answers down
            pass
        self.values, self.labels = el.values, el.labels
        for name, entry in el.blocks.items():
            if not is_stdlib(entry.defn.file):
                self.defs[name] = entry.defn
                text = self.buf.text if entry.defn.file == self.file else None
                self.blocks[name] = block_signature(entry.defn, text)
        self.model = Model(module.name, graph, dict(el.bounds), list(el.symbols), module.file, [],
                           module.name_loc, el.target, el.family, el.shard_overrides)

    def _local_blocks(self, text: str) -> None:
        """The buffer's own blocks when the elaboration did not define them (a parse error, or an error
        before): from the parse tree, else from `block NAME` lines."""
        if self.module is not None:
            for item in self.module.items:
                if isinstance(item, ast.BlockDef) and item.file == self.file and (
                        item.name not in self.defs or is_stdlib(self.defs[item.name].file)):
                    self.defs[item.name] = item
                    self.blocks[item.name] = block_signature(item, text)
            return
        for m in _BLOCK_LINE.finditer(text):
            if m.group(1) not in self.defs or is_stdlib(self.defs[m.group(1)].file):
                pos = self.buf.position(m.start(1))
                self.blocks[m.group(1)] = Signature(m.group(1), "block", file=self.file, line=pos.line + 1)

    @property
    def imported_lets(self) -> dict[str, tuple[Path, Loc]]:
        """The `let` names the buffer's imports bind (through their own imports): file and place of each."""
        if getattr(self, "_lets", None) is None:
            self._lets: dict[str, tuple[Path, Loc]] = {}
            if self.module is not None:
                self._collect_lets(self.module, self.path.resolve().parent, set())
        return self._lets

    def _collect_lets(self, module: ast.Module, base: Path, seen: set) -> None:
        from ..frontend.parser import read_source

        for item in module.items:
            if not isinstance(item, ast.Import) or len(seen) > 32:
                continue
            target = (base / item.path).resolve()
            if target in seen or target.suffix != ".arch" or not target.is_file():
                continue
            seen.add(target)
            try:
                imported = parse_source(read_source(target), str(target), imported=True)
            except (ArchError, OSError):
                continue
            for stmt in imported.items:
                for b in stmt.bindings if isinstance(stmt, ast.Let) else ():
                    self._lets.setdefault(b.name, (target, b.loc))
            self._collect_lets(imported, target.parent, seen)

    @property
    def report(self) -> dict | None:
        """`ttspec params --json`'s report of the elaborated model (None when it cannot be made)."""
        if self._report is None and self.model is not None:
            from ..analysis.params_report import params_report

            try:
                self._report = params_report(self.model)
            except Exception:  # noqa: BLE001 - a partial graph: no counts
                self._report = None
        return self._report


_CACHE: dict[str, tuple[str, Index]] = {}


def index_for(text: str, path: str | Path) -> Index:
    """The index of `text` as the file `path`, rebuilt only when the text changed (one per path kept)."""
    key = str(path)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] == text:
        return hit[1]
    index = Index(text, path)
    if len(_CACHE) > 16:
        _CACHE.clear()
    _CACHE[key] = (text, index)
    return index
