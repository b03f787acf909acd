"""docs/language.md cannot drift from the language (issue 22): every registry op and every standard block has an
entry whose signature is the code's (names, kinds or types, defaults, result type and kind), no entry names
something that no longer exists, and every ```arch example passes `ttspec check --strict` (with the parameter
count it states, where it states one: those are closed forms worked by hand in the text beside them). Also: every
relative link in README.md and docs/*.md resolves, to a file and, with `#anchor`, to one of its headings.

The expected names come from the registry (ttspec/ops/) and the standard library's own source
(ttspec/stdlib/prelude.arch, parsed); the documented ones from the markdown."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from .conftest import ROOT

DOC = ROOT / "docs" / "language.md"
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```\s*$", re.S | re.M)
COUNT = re.compile(r"^# parameters: ([\d,]+)\s*$", re.M)
# the sections whose `### name` entries are checked, and which names each must hold
PRIMITIVES, STDLIB, INTERNAL, BUILTINS = ("Primitives", "Standard library", "Ops made by passes",
                                         "Configs and built-ins")


def sections(text: str) -> dict[str, dict[str, str]]:
    """{`## section`: {`### entry` name (backticks dropped): the entry's text}}."""
    out: dict[str, dict[str, str]] = {}
    for part in re.split(r"^## ", text, flags=re.M)[1:]:
        title, _, body = part.partition("\n")
        entries = {}
        for entry in re.split(r"^### ", body, flags=re.M)[1:]:
            name, _, rest = entry.partition("\n")
            entries[name.strip().strip("`")] = rest
        out[title.strip()] = entries
    return out


@pytest.fixture(scope="module")
def doc():
    text = DOC.read_text(encoding="utf-8")
    return text, sections(text)


def signature(entry: str, name: str):
    """The entry's ```sig line, parsed as the header of a block (the language's own parser): a BlockDef."""
    from ttspec.frontend import ast
    from ttspec.frontend.parser import parse_source

    sigs = [body for info, body in FENCE.findall(entry) if info.strip() == "sig"]
    assert len(sigs) == 1, f"`{name}`: expected one ```sig block, found {len(sigs)}"
    text = " ".join(sigs[0].split())
    assert text.startswith(name + "("), f"`{name}`: its signature names another: {text}"
    module = parse_source(f"block {text} {{ return x }}\n", f"<docs/language.md: {name}>", imported=True)
    (defn,) = [i for i in module.items if isinstance(i, ast.BlockDef)]
    return defn


def expr_text(e) -> str:
    from ttspec.frontend import ast

    if e is None:
        return ""
    if isinstance(e, ast.Literal):
        return {True: "true", False: "false", None: "none"}.get(e.value, repr(e.value)) \
            if e.value is None or isinstance(e.value, bool) else repr(e.value)
    if isinstance(e, ast.Name):
        return e.id
    if isinstance(e, ast.UnaryOp):
        return f"({e.op} {expr_text(e.operand)})"
    if isinstance(e, ast.BinOp):
        return f"({expr_text(e.left)} {e.op} {expr_text(e.right)})"
    raise AssertionError(f"unexpected default expression {e!r}")


def type_text(t) -> str:
    from ttspec.frontend import ast

    if t is None:
        return ""
    if isinstance(t, ast.ScalarTypeSpec):
        return t.name
    dims = ", ".join("*" if d.wildcard else (d.name if d.name is not None else str(d.value)) for d in t.dims)
    return f"{t.dtype or ''}[{dims}]"


def header(defn) -> list:
    return [[(p.name, type_text(p.type), expr_text(p.default)) for p in defn.params], type_text(defn.returns),
            defn.kind]


def registry_header(name: str, args) -> list:
    """What a primitive's (or config's) documented header must say: each argument's name, kind and default."""
    from ttspec.ops import REQUIRED

    def default(a):
        if a.default is REQUIRED:
            return ""
        if isinstance(a.default, bool) or a.default is None:
            return {True: "true", False: "false", None: "none"}[a.default]
        if isinstance(a.default, (int, float)) and a.default < 0:
            return f"(- {abs(a.default)!r})"
        return repr(a.default)

    return [[(a.name, {"ref": "module"}.get(a.kind, a.kind), default(a)) for a in args], "", None]


def stdlib_blocks() -> dict:
    from ttspec.frontend import ast
    from ttspec.frontend.parser import parse_stdlib
    from ttspec.frontend.source import STDLIB_DIR, STDLIB_PREFIX

    blocks = {}
    for path in sorted(STDLIB_DIR.glob("*.arch")):  # what every spec sees (the family templates: below)
        for item in parse_stdlib(path, STDLIB_PREFIX + path.name).items:
            if isinstance(item, ast.BlockDef):
                blocks[item.name] = item
    return blocks


def test_every_op_and_block_has_an_entry_and_no_entry_is_stale(doc):
    from ttspec.ops import CONFIGS, REGISTRY

    _, secs = doc
    expected = {
        PRIMITIVES: {n for n, o in REGISTRY.items() if o.in_spec},
        INTERNAL: {n for n, o in REGISTRY.items() if not o.in_spec},
        STDLIB: set(stdlib_blocks()),
        BUILTINS: set(CONFIGS) | {"activation"},  # activation(x, fn): the elaborator's one built-in call
    }
    assert len(expected[STDLIB]) >= 14 and len(expected[PRIMITIVES]) >= 20  # the sources were read
    for section, names in expected.items():
        documented = set(secs.get(section, {}))
        missing = sorted(names - documented)
        assert not missing, f"docs/language.md, `## {section}` lacks entries for {missing}"
        assert not documented - names, f"docs/language.md, `## {section}` documents what does not exist: " \
                                       f"{sorted(documented - names)}"


def test_signatures_match_the_registry_and_the_stdlib(doc):
    from ttspec.ops import CONFIGS as CONFIG_DEFS
    from ttspec.ops import REGISTRY

    _, secs = doc
    blocks = stdlib_blocks()
    checked = 0
    for section in (PRIMITIVES, INTERNAL, STDLIB, BUILTINS):
        for name, entry in secs[section].items():
            if name == "activation":
                want = [[("x", "tensor", ""), ("fn", "str", "")], "", None]
            elif section == STDLIB:
                want = header(blocks[name])
            elif section == BUILTINS:
                want = registry_header(name, CONFIG_DEFS[name].fields)
            else:
                want = registry_header(name, REGISTRY[name].args)
            got = header(signature(entry, name))
            assert got == want, f"docs/language.md: `{name}`'s signature differs from the code's:\n" \
                                f"  documented {got}\n  code       {want}"
            checked += 1
    assert checked >= 45


def test_every_spec_level_entry_has_an_example(doc):
    """Each primitive a spec may call and each standard block appears in some ```arch example of the page."""
    text, secs = doc
    examples = "\n".join(body for info, body in FENCE.findall(text) if info.split()[:1] == ["arch"])
    for section in (PRIMITIVES, STDLIB, BUILTINS):
        for name in secs[section]:
            assert re.search(rf"\b{name}\(", examples), f"docs/language.md: no ```arch example calls `{name}`"


def test_short_form_section_names_every_key_and_template(doc):
    from ttspec.families import SHORT_FORMS
    from ttspec.frontend import ast
    from ttspec.frontend.parser import parse_stdlib
    from ttspec.frontend.shortform import FAMILY_DIR, REQUIRED_KEYS

    text, _ = doc
    part = text.split("## The lesson's short form", 1)[1].split("\n## ", 1)[0]
    keys = set(REQUIRED_KEYS) | {k for sf in SHORT_FORMS.values() for k in sf.defaults} | {"family"}
    for key in sorted(keys):
        assert f"`{key}`" in part, f"docs/language.md's short form section does not name `{key}`"
    entries = sections(text)["The lesson's short form"]
    for family, sf in SHORT_FORMS.items():  # each template's blocks, under `### `TEMPLATE``
        assert sf.template in entries, f"docs/language.md: no entry for the {family} template {sf.template}"
        module = parse_stdlib(FAMILY_DIR / sf.template, f"<stdlib>/families/{sf.template}")
        blocks = [i for i in module.items if isinstance(i, ast.BlockDef)]
        assert blocks
        for block in blocks:
            assert header(signature(entries[sf.template], block.name)) == header(block), \
                f"docs/language.md: {sf.template}'s `{block.name}` differs from the template's"


@pytest.fixture(scope="module")
def examples(tmp_path_factory, doc):
    """The page's ```arch examples (and the README's), written out: ```arch file=NAME ones as the files others
    import."""
    text = doc[0] + "\n" + (ROOT / "README.md").read_text(encoding="utf-8")
    folder = tmp_path_factory.mktemp("language_examples")
    specs = []
    for info, body in FENCE.findall(text):
        words = info.split()
        if words[:1] != ["arch"]:
            continue
        target = dict(w.split("=", 1) for w in words[1:] if "=" in w).get("file")
        if target:
            (folder / target).write_text(body, encoding="utf-8")
            continue
        path = folder / f"example_{len(specs):02d}.arch"
        path.write_text(body, encoding="utf-8")
        specs.append((path, body))
    assert len(specs) >= 30
    return folder, specs


def test_examples_pass_ttspec_check_strict(examples):
    folder, specs = examples
    out = subprocess.run([sys.executable, "-m", "ttspec.cli", "check", "--strict", "--json",
                          *(p.name for p, _ in specs)], capture_output=True, text=True, cwd=folder, timeout=120)
    report = json.loads(out.stdout)
    bad = {(d["spec"], d["range"]["start"]["line"] + 1, d["message"]) for d in report["diagnostics"]}
    assert report["ok"] and not bad and out.returncode == 0, \
        "examples in docs/language.md fail `ttspec check --strict` (example_NN counts ```arch blocks from 0, " \
        f"imported files aside): {sorted(bad)}"
    assert [s["ok"] for s in report["specs"]] == [True] * len(specs)


def test_examples_have_the_parameter_counts_they_state(examples):
    import ttspec

    _, specs = examples
    stated = [(path, int(m.group(1).replace(",", ""))) for path, body in specs if (m := COUNT.search(body))]
    assert len(stated) >= 20
    for path, count in stated:
        assert ttspec.load(path).params.total == count, f"{path.name}: docs/language.md states {count:,}"


# ---------------------------------------------------------------- links
LINK = re.compile(r"(?<!\!)\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (but - and _), spaces to hyphens."""
    text = re.sub(r"`", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)
    return {slug(h) for h in re.findall(r"^#+ (.*)$", text, flags=re.M)}


def markdown_files():
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_relative_links_in_readme_and_docs_resolve():
    checked = 0
    for md in markdown_files():
        text = re.sub(r"^```.*?^```", "", md.read_text(encoding="utf-8"), flags=re.S | re.M)
        text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                continue
            file, _, anchor = target.partition("#")
            dest = (md.parent / file).resolve() if file else md
            assert dest.exists(), f"{md.relative_to(ROOT)}: link to {target}: no such file"
            if anchor and dest.suffix == ".md":
                assert anchor in anchors(dest), f"{md.relative_to(ROOT)}: link to {target}: no such heading"
            checked += 1
    assert checked >= 40


def test_link_checker_sees_a_broken_link_and_anchor(tmp_path):
    """The checker's own rules on a planted page: a missing file and a missing heading are found."""
    page = tmp_path / "page.md"
    page.write_text("# A `code` heading: here\n\n[ok](#a-code-heading-here) [bad](#nowhere) [f](missing.md)\n")
    assert "a-code-heading-here" in anchors(page) and "nowhere" not in anchors(page)
    assert LINK.findall(page.read_text()) == ["#a-code-heading-here", "#nowhere", "missing.md"]
    assert not (tmp_path / "missing.md").exists()
