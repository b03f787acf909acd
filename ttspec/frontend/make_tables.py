"""Compile grammar/arch.lark with lark into the tables that lalr.py runs, shipped as arch_tables.json.

A cold `ttspec` start-up cannot afford lark itself (importing it and building its LALR tables and
contextual lexers cost ~45 ms of a 0.2 s budget), and must not read a per-user cache (TTSPEC_NO_CACHE=1),
so the tables are built here, ahead of time, by lark's own code: the parse table, each rule's tree-shaping
(lark's child filter, `?rule` inlining, `[x]` placeholders) and each parser state's lexer (terminals in
lark's match order, keywords that lark folds into NAME). tests/test_parser_tables.py checks that the
shipped file is what this writes and that lalr.py parses and fails exactly like lark.

    python -m ttspec.frontend.make_tables      # after editing grammar/arch.lark
"""

from __future__ import annotations

import json
from pathlib import Path

from .lalr import FORMAT, TABLES_PATH
from .source import GRAMMAR_PATH, STDLIB_DIR, STDLIB_PREFIX


def lark_parser():
    """The reference: the grammar as lark runs it (what lalr.py must match)."""
    from lark import Lark  # matches with `re` (lark's `regex=True` option is off), as lalr.py does

    return Lark(GRAMMAR_PATH.read_text(encoding="utf-8"), parser="lalr", lexer="contextual",
                propagate_positions=True, maybe_placeholders=True)


def build_tables() -> dict:
    from lark.lexer import PatternStr
    from lark.parse_tree_builder import maybe_create_child_filter
    from lark.parsers.lalr_analysis import Shift

    parser = lark_parser()
    frontend = parser.parser
    table = frontend.parser._parse_table
    contextual = frontend.lexer
    rules = list(parser.rules)
    rule_index = {rule: i for i, rule in enumerate(rules)}

    # lark numbers its states in an order that depends on string hashing; number them canonically
    # (breadth first from the start state, symbols in sorted order) so the shipped file is reproducible
    number: dict[int, int] = {}
    queue = [table.start_states["start"]]
    while queue:
        state = queue.pop(0)
        if state in number:
            continue
        number[state] = len(number)
        queue += [arg for sym in sorted(table.states[state]) for kind, arg in [table.states[state][sym]]
                  if kind is Shift and arg not in number]
    assert len(number) == len(table.states)
    order = sorted(table.states, key=number.__getitem__)

    def action(kind, arg) -> int:  # a shift's (or goto's) target state, or a reduction's rule as -(index + 1)
        return number[arg] if kind is Shift else -(rule_index[arg] + 1)

    def shaping(rule) -> list:
        child_filter = maybe_create_child_filter(rule.expansion, rule.options.keep_all_tokens, False,
                                                 rule.options.empty_indices)
        include = None
        append_none = 0
        if child_filter is not None:
            built = child_filter(None)
            # (index, expand, Nones before it); lark's variant without placeholders has no third item
            include = [[entry[0], bool(entry[1]), entry[2] if len(entry) > 2 else 0] for entry in built.to_include]
            append_none = getattr(built, "append_none", 0)
        callback = rule.alias or rule.options.template_source or rule.origin.name
        return [str(rule.origin.name), len(rule.expansion), str(callback),
                bool(rule.options.expand1 and not rule.alias), include, append_none]

    lexers: list = []
    lexer_index: dict[int, int] = {}

    def lexer_of(basic) -> int:
        if id(basic) not in lexer_index:
            scanner = basic._build_scanner()
            keywords = {}
            for name, unless in sorted(basic.callback.items()):
                words = unless.scanner.terminals
                assert all(isinstance(t.pattern, PatternStr) and not t.pattern.flags for t in words), name
                keywords[name] = {t.pattern.value: t.name for t in sorted(words, key=lambda t: t.name)}
            lexer_index[id(basic)] = len(lexers)
            lexers.append([[t.name for t in scanner.terminals], keywords])
        return lexer_index[id(basic)]

    state_lexer = [lexer_of(contextual.lexers[s]) for s in order]
    root = lexer_of(contextual.root_lexer)
    assert not frontend.lexer_conf.g_regex_flags and not frontend.lexer_conf.use_bytes
    return {
        "format": FORMAT,
        "start": number[table.start_states["start"]],
        "end": number[table.end_states["start"]],
        "terminals": {t.name: t.pattern.to_regexp() for t in sorted(parser.terminals, key=lambda t: t.name)},
        "ignore": sorted(frontend.lexer_conf.ignore),
        "lexers": lexers,
        "root_lexer": root,
        "state_lexer": state_lexer,
        "actions": [{sym: action(*table.states[s][sym]) for sym in sorted(table.states[s])} for s in order],
        "rules": [shaping(rule) for rule in rules],
    }


def render(tables: dict) -> str:
    return json.dumps(tables, separators=(",", ":"), sort_keys=False) + "\n"


def stdlib_asts() -> dict[Path, str]:
    """The ASTs shipped beside the standard library's files (parser.parse_stdlib reads them), by path."""
    from .parser import _CACHE_FORMAT, _encode, parse_source, shipped_ast_path

    out = {}
    for path in sorted(STDLIB_DIR.glob("*.arch")):
        text = path.read_text(encoding="utf-8")
        name = STDLIB_PREFIX + path.name
        data = {"format": _CACHE_FORMAT, "name": name, "source": text,
                "ast": _encode(parse_source(text, name, is_stdlib=True))}
        out[shipped_ast_path(path)] = json.dumps(data, separators=(",", ":")) + "\n"
    return out


if __name__ == "__main__":
    TABLES_PATH.write_text(render(build_tables()), encoding="utf-8")
    print(f"wrote {TABLES_PATH}")
    for path, text in stdlib_asts().items():  # parsed with the tables just written
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
