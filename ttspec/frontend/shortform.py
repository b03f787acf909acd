"""The lesson's short form: a YAML-like block of sizes plus a family name.

    nano-trickster:
      vocab_size: 256
      hidden_dim: 256
      ...
      family: llama

It desugars to `let` bindings (carrying the user's line:col) followed by the family's
template, written in .arch in ttspec/stdlib/families/.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from ..errors import (
    ArchError,
    Loc,
    Note,
    did_you_mean,
    divisors,
    nearest_divisors,
    replacement_fixes,
    source_lines,
    spelling_fixes,
)
from . import ast
from .source import MAX_NAME

FAMILY_DIR = Path(__file__).resolve().parent.parent / "stdlib" / "families"
REQUIRED_KEYS = ("vocab_size", "hidden_dim", "num_layers", "num_heads", "mlp_dim", "max_seq_len")


class ShortForm(NamedTuple):
    """A family's short form: its template (ttspec/stdlib/families/TEMPLATE, written in .arch over the keys
    as `let` bindings) and the optional keys it takes, with their defaults (a key's name as the default:
    the value of that key, e.g. num_kv_heads defaults to num_heads). The family modules declare theirs
    (ttspec/families/); the parser is handed them, since the frontend sits below the families."""

    template: str
    doc: str
    defaults: dict[str, object]


KEY_KINDS = {"rope_theta": float, "norm_eps": float, "tie_embeddings": bool, "family": str, "target": str}


class _Line(NamedTuple):
    indent: str
    key: str
    key_col: int  # 0-based
    value: str
    value_col: int  # 0-based


def _split_line(raw: str) -> _Line | None:
    """`  key: value  # comment` -> its parts, in time linear in the line (no backtracking regex)."""
    code = raw.split("#", 1)[0]
    body = code.lstrip()
    indent = code[:len(code) - len(body)]
    colon = body.find(":")
    if colon <= 0:
        return None
    key = body[:colon].rstrip()
    rest = code[len(indent) + colon + 1:]
    value = rest.strip()
    value_col = len(indent) + colon + 1 + (len(rest) - len(rest.lstrip()))
    return _Line(indent, key, len(indent), value, value_col)


def parse_short_form(text: str, file: str, families: Mapping[str, ShortForm]) -> tuple[ast.Module, Path]:
    """The short form's `let` bindings, and the family template file that builds the model from them;
    `families`: the short forms the known families declare, by family name."""
    header: tuple[str, Loc] | None = None
    entries: dict[str, tuple[str, Loc, Loc]] = {}  # key -> (raw value, key loc, value loc)
    for lineno, raw in enumerate(source_lines(text), start=1):
        code = raw.split("#", 1)[0].rstrip()
        if not code.strip():
            continue
        m = _split_line(raw)
        if m is None:
            col = len(raw) - len(raw.lstrip()) + 1
            raise ArchError("expected `key: value`", Loc(file, lineno, col, max(1, len(code.strip()))),
                            hint="the short form is a name line (`my-model:`) and indented `key: value` lines")
        key, value = m.key, m.value
        key_loc = Loc(file, lineno, m.key_col + 1, len(key))
        value_loc = Loc(file, lineno, m.value_col + 1, max(1, len(value)))
        if header is None:
            if value:
                raise ArchError("expected the model's name line first, e.g. `nano-trickster:`", key_loc)
            header = (key, key_loc)
            continue
        if not m.indent:
            raise ArchError(f"`{key}` must be indented under `{header[0]}:`", key_loc,
                            hint="one model per file in the short form")
        if key in entries:
            raise ArchError(f"`{key}` given twice", key_loc, notes=[Note("first here", entries[key][1])])
        entries[key] = (value, key_loc, value_loc)
    assert header is not None
    name, name_loc = header
    if len(name) > MAX_NAME:
        raise ArchError(f"a model name of {len(name)} characters; names are limited to {MAX_NAME}",
                        Loc(name_loc.file, name_loc.line, name_loc.col, MAX_NAME),
                        hint="names become identifiers in generated programs; shorten it")
    ident = re.sub(r"[^A-Za-z0-9_]", "_", name)  # ASCII only: the name becomes a Python class name
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", ident) or ident != name.replace("-", "_").replace(".", "_"):
        raise ArchError(f"model name {name!r} is not usable as an identifier", name_loc,
                        hint="use ASCII letters, digits, `-` and `_`, starting with a letter")

    family_name = "llama"
    if "family" in entries:
        family_name = entries["family"][0].strip("\"'")
        if family_name not in families:
            raise ArchError(f"unknown family `{family_name}`", entries["family"][2],
                            hint=did_you_mean(family_name, families) or "families: " + ", ".join(families),
                            fixes=spelling_fixes(entries["family"][2], family_name, families))
    family = families[family_name]
    allowed = set(REQUIRED_KEYS) | set(family.defaults) | {"family", "target"}
    for key, (_, key_loc, _) in entries.items():
        if key not in allowed:
            raise ArchError(f"unknown key `{key}` for family {family_name}", key_loc,
                            hint=did_you_mean(key, allowed) or "keys: " + ", ".join(sorted(allowed)),
                            fixes=spelling_fixes(key_loc, key, allowed))
    missing = [k for k in REQUIRED_KEYS if k not in entries]
    if missing:
        raise ArchError(f"missing {', '.join(f'`{k}`' for k in missing)}", name_loc,
                        hint="the short form needs " + ", ".join(REQUIRED_KEYS))

    values: dict[str, object] = {}
    locs: dict[str, Loc] = {}
    items: list[ast.Stmt] = [ast.Family(name_loc, family_name)]
    if "target" in entries:
        raw, _, value_loc = entries["target"]
        items.append(ast.Target(value_loc, raw.strip("\"'")))
    for key, (raw, _, value_loc) in entries.items():
        if key in ("family", "target"):
            continue
        values[key] = _scalar(raw, KEY_KINDS.get(key, int), key, value_loc)
        locs[key] = value_loc
    for key, default in family.defaults.items():
        if key not in values:
            values[key] = values[default] if isinstance(default, str) else default
            locs[key] = locs.get(default, name_loc) if isinstance(default, str) else name_loc
    _check(values, locs)

    for key, value in values.items():
        loc = locs[key]
        items.append(ast.Let(loc, [ast.LetBinding(key, ast.Literal(loc, value), loc)]))
    # The caller (parser.py) appends the family's template, parsed like any stdlib file.
    return ast.Module(name=ident, name_loc=name_loc, items=items, file=file), FAMILY_DIR / family.template


def _scalar(raw: str, kind: type, key: str, loc: Loc):
    text = raw.replace(",", "").replace("_", "").strip()
    if kind is bool:
        if text.lower() in ("true", "yes"):
            return True
        if text.lower() in ("false", "no"):
            return False
        raise ArchError(f"`{key}` must be true or false, got `{raw}`", loc)
    try:
        value = float(text) if kind is float else int(text)
    except ValueError:
        raise ArchError(f"`{key}` must be {'a number' if kind is float else 'a whole number'}, got `{raw}`",
                        loc) from None
    if len(text) > 18 or value <= 0:
        raise ArchError(f"`{key}` must be a positive number of sensible size, got `{raw}`", loc)
    return value


def _check(values: dict, locs: dict) -> None:
    hidden, heads = values["hidden_dim"], values["num_heads"]
    if hidden % heads:
        near = [str(d) for d in nearest_divisors(hidden, heads)]
        raise ArchError(f"num_heads={heads} does not divide hidden_dim={hidden}", locs["num_heads"],
                        hint=f"nearest divisors of {hidden}: {', '.join(near)}",
                        fixes=replacement_fixes(locs["num_heads"], str(heads), near))
    kv = values.get("num_kv_heads")
    if kv is not None and heads % kv:
        valid = divisors(heads)
        valid = [str(d) for d in (valid if 0 < len(valid) <= 12 else nearest_divisors(heads, kv))]
        raise ArchError(f"num_kv_heads={kv} does not divide num_heads={heads}", locs["num_kv_heads"],
                        hint=f"valid num_kv_heads: {', '.join(valid)}",
                        fixes=replacement_fixes(locs["num_kv_heads"], str(kv),
                                                [str(d) for d in nearest_divisors(heads, kv)]))
