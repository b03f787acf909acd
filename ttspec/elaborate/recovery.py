"""Several errors in one spec: the spec's own top-level statements are the elaborator's recovery points.

A statement that fails is recorded and the next one runs. What it would have bound (its assigned names,
`let` names, an input's name and dims, its components' labels) is poisoned: a later statement that uses a
poisoned name and fails is not reported (its error is most likely the first one's consequence), nor is a
failing `shard` statement after an error (it matches components a failed statement may not have made),
nor the same error again (one bad block called twice), nor anything a family template's statements or any
statement's other exceptions raise after an error. A family template's first error, imports and block
definitions stop the elaboration as before."""

from __future__ import annotations

from ..errors import ArchError
from ..frontend import ast
from ..records import Record
from .values import is_stdlib


def exec_recovering(el, stmt: ast.Stmt, scope) -> None:
    """Run one of the spec's top-level statements, recording its error in `el.errors` instead of raising."""
    try:
        el.exec_stmt(stmt, scope, top_level=True)
    except Exception as e:
        own = isinstance(e, ArchError) and not is_stdlib(stmt.loc.file)
        if not el.errors and not own:
            raise  # a family template's error (relocated by elaborate) or a bug, as before
        used, bound = _names(stmt)
        consequence = el.errors and (not own or used & el.poisoned or isinstance(stmt, ast.Shard)
                                     or any(_same(e, seen) for seen in el.errors))
        el.poisoned |= bound
        if not consequence:
            el.errors.append(e)


def combined(errors: list[ArchError]) -> ArchError:
    """The first error, carrying the others' diagnostics in `more` (in source order)."""
    first = errors[0]
    first.more = [e.diagnostic for e in errors[1:]]
    return first


def _same(a: ArchError, b: ArchError) -> bool:
    return a.diagnostic.message == b.diagnostic.message and a.diagnostic.loc == b.diagnostic.loc


def _names(stmt: ast.Stmt) -> tuple[set[str], set[str]]:
    """The names a statement reads, and those it binds (assignments, lets, inputs and their dims, labels)."""
    used: set[str] = set()
    bound: set[str] = set()
    stack: list[object] = [stmt]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name):
            used.add(node.id)
        elif isinstance(node, (ast.Assign, ast.Input, ast.Output, ast.LetBinding)):
            bound.add(node.name)
        elif isinstance(node, ast.DimSpec) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.Call) and node.label:
            bound.add(node.label)
        if isinstance(node, Record):
            stack.extend(getattr(node, field) for field in node.FIELDS)
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
    return used, bound
