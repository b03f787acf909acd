"""Typed IR attributes (issue 19): each op's attributes are one immutable NamedTuple registered with its
OpDef, whose fields are the op's non-tensor arguments (its ArgSpecs, the op's signature in a spec) and
then the fields lowering passes set; ttspec reads them by field, never through a string-keyed protocol."""

import ast

import pytest

from ttspec.ir.graph import InputAttrs, RepeatAttrs
from ttspec.ops import REGISTRY, REQUIRED

from .conftest import ROOT

# Methods of a dict: called on `<node>.attrs` they would be the old string protocol.
DICT_METHODS = {"get", "items", "keys", "values", "update", "setdefault", "pop"}


def _is_attrs(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "attrs"


def string_protocol(source: str) -> list[int]:
    """Lines of `source` that read or write `<x>.attrs` as a mapping: `attrs[...]`, `attrs.get(...)` and the
    other dict methods, `"key" in attrs`, `dict(attrs, ...)`, `{**attrs}`, `getattr(attrs, "key")`."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Subscript) and _is_attrs(node.value):
            lines.append(node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in DICT_METHODS and _is_attrs(node.func.value):
            lines.append(node.lineno)
        elif isinstance(node, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops) \
                and any(_is_attrs(c) for c in node.comparators):
            lines.append(node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args and _is_attrs(node.args[0]) \
                and (node.func.id == "dict" or node.func.id in ("getattr", "hasattr") and len(node.args) > 1
                     and isinstance(node.args[1], ast.Constant)):
            lines.append(node.lineno)
        elif isinstance(node, ast.Dict) and any(k is None and _is_attrs(v) for k, v in zip(node.keys, node.values)):
            lines.append(node.lineno)
    return lines


@pytest.mark.parametrize("snippet", [
    'n = node.attrs["heads"]', 'n = node.attrs.get("fused")', 'ok = "kv_heads" in node.attrs',
    "a = dict(node.attrs, activation='silu')", "a = {**node.attrs}", 'n = getattr(node.attrs, "heads")',
    "for k, v in node.attrs.items(): pass", "node.attrs['fused'] = None",
])
def test_the_scan_finds_the_string_protocol(snippet):
    assert string_protocol(snippet) == [1]


def test_the_scan_accepts_fields():
    assert string_protocol("n = node.attrs.heads\na = node.attrs._replace(activation='silu')\n"
                           "x = attrs['key']  # a plain dict named attrs is no node's") == []


def test_no_string_keyed_attrs_in_ttspec():
    found = [f"{path.relative_to(ROOT)}:{line}" for path in sorted((ROOT / "ttspec").rglob("*.py"))
             for line in string_protocol(path.read_text(encoding="utf-8"))]
    assert found == [], "read attrs by field (node.attrs.heads), set them with _replace: " + ", ".join(found)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_an_ops_attrs_class_is_its_signature(name):
    """The fields of an op's attrs class: its non-tensor arguments in order, with the same defaults (a
    required argument has none), then only fields with defaults (what passes set)."""
    opdef = REGISTRY[name]
    cls = opdef.attrs
    assert issubclass(cls, tuple) and hasattr(cls, "_fields") and hasattr(cls, "_replace"), "a NamedTuple"
    args = [a for a in opdef.args if a.kind != "tensor"]
    assert cls._fields[:len(args)] == tuple(a.name for a in args)
    for a in args:
        if a.default is REQUIRED:
            assert a.name not in cls._field_defaults
        else:
            assert cls._field_defaults[a.name] == a.default
    assert all(f in cls._field_defaults for f in cls._fields[len(args):])


def test_attrs_are_immutable():
    attrs = REGISTRY["linear"].attrs(out=64)
    with pytest.raises(AttributeError):
        attrs.activation = "silu"
    assert attrs._replace(activation="silu").activation == "silu" and attrs.activation is None


def test_structural_nodes_have_their_own_attrs():
    assert InputAttrs()._fields == ()
    assert RepeatAttrs._fields[:3] == ("count", "body", "block")
    assert all(cls not in {op.attrs for op in REGISTRY.values()} for cls in (InputAttrs, RepeatAttrs))


def structural_by_string(source: str) -> list[int]:
    """Lines comparing a node's `.op` with "input" or "repeat": structural kinds are asked through
    Node.is_input / is_repeat (NodeKind), never spelled as strings."""
    return [node.lineno for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Compare) and isinstance(node.left, ast.Attribute) and node.left.attr == "op"
            and any(isinstance(c, ast.Constant) and c.value in ("input", "repeat") for c in node.comparators)]


def test_the_structural_scan_finds_strings():
    assert structural_by_string('if node.op == "input": pass\nif n.op != "repeat": pass') == [1, 2]
    assert structural_by_string("if node.is_input or node.op == LINEAR.name: pass") == []


def test_structural_kinds_are_not_strings_in_ttspec():
    found = [f"{path.relative_to(ROOT)}:{line}" for path in sorted((ROOT / "ttspec").rglob("*.py"))
             for line in structural_by_string(path.read_text(encoding="utf-8"))]
    assert found == [], "ask node.is_input / node.is_repeat: " + ", ".join(found)
