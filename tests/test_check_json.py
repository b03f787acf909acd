"""`ttspec check --json` (docs/check-json.md): the same places as the text output, for every spec in specs/bad,
notes included; the document validates against the schema the doc states; unreadable specs give one
diagnostic, never a traceback."""

import json
import os
import re
from itertools import groupby

import pytest

from .conftest import ROOT
from .test_bad_specs import BAD, check_args

DOC = ROOT / "docs" / "check-json.md"
# `FILE:LINE:COL: error|warning: ` at a line's start: a diagnostic; `  note: FILE:LINE:COL: `: one of its notes
PRIMARY = re.compile(r"^(?:(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): )?(?P<severity>error|warning): ")
NOTE = re.compile(r"^  note: (?:(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): )?")


def doc_schema() -> dict:
    block = re.search(r"^```json\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.S | re.M)
    return json.loads(block.group(1))


def validate(value, schema: dict, root: dict, where: str = "$") -> None:
    """The JSON Schema subset the doc uses: $ref, const, enum, type (one or a list), oneOf, required,
    properties, items, minimum."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        return validate(value, root["$defs"][name], root, where)
    if "const" in schema:
        assert value == schema["const"], f"{where}: {value!r} is not {schema['const']!r}"
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    if "oneOf" in schema:
        passing = 0
        for option in schema["oneOf"]:
            try:
                validate(value, option, root, where)
                passing += 1
            except AssertionError:
                pass
        assert passing == 1, f"{where}: {value!r} matches {passing} of oneOf"
    if "type" in schema:
        kinds = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        assert any(isinstance(value, int) and not isinstance(value, bool) if t == "integer" else
                   isinstance(value, kinds[t]) for t in types), f"{where}: {value!r} is not {types}"
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            assert key in value, f"{where}: missing {key!r}"
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                validate(value[key], sub, root, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            validate(item, schema["items"], root, f"{where}[{i}]")
    if "minimum" in schema:
        assert value >= schema["minimum"], f"{where}: {value} < {schema['minimum']}"


def text_places(stderr: str) -> list[tuple]:
    """(severity, file, line, col, [(file, line, col) per note]) per diagnostic of the text output."""
    found = []
    for line in stderr.splitlines():
        if m := PRIMARY.match(line):
            place = (m["file"], int(m["line"]), int(m["col"])) if m["file"] else None
            found.append((m["severity"], place, []))
        elif (m := NOTE.match(line)) and found:
            found[-1][2].append((m["file"], int(m["line"]), int(m["col"])) if m["file"] else None)
    return found


def json_places(doc: dict) -> list[tuple]:
    def place(item):
        if item["range"] is None or item.get("located") is False:
            return None
        start = item["range"]["start"]
        return item["file"], start["line"] + 1, start["character"] + 1  # these specs' lines are ASCII

    return [(d["severity"], place(d), [place(n) for n in d["notes"]]) for d in doc["diagnostics"]]


def check_both(run_cli, args, specs):
    text = run_cli("check", *args, *specs)
    out = run_cli("check", "--json", *args, *specs)
    assert "Traceback" not in out.stderr and out.stderr == "", out.stderr
    assert out.returncode == text.returncode
    return text, out, json.loads(out.stdout)


# every bad spec, grouped by its `# check-args:` so that a few processes check them all
GROUPS = [(args.split(), [p.relative_to(ROOT) for p in paths])
          for args, paths in groupby(sorted(BAD, key=lambda p: " ".join(check_args(p))),
                                     key=lambda p: " ".join(check_args(p)))]


@pytest.mark.parametrize("args,specs", GROUPS, ids=lambda g: " ".join(map(str, g)) if isinstance(g, list) else "")
def test_bad_specs_same_places_as_text(run_cli, args, specs):
    text, out, doc = check_both(run_cli, args, specs)
    validate(doc, doc_schema(), doc_schema())
    places = json_places(doc)
    assert places == text_places(text.stderr)
    assert len(places) >= len(specs) - 1  # every spec has a diagnostic (everything-big: only with --training)
    assert all(p[1] is not None for p in places)  # every bad spec's diagnostic is located
    assert [s["spec"] for s in doc["specs"]] == [str(s) for s in specs]
    assert doc["ok"] is (out.returncode == 0)
    for d in doc["diagnostics"]:
        assert d["spec"] in map(str, specs) and d["source"] == "ttspec"
        assert d["message"] in text.stderr and all(h in text.stderr for h in d["hints"])
        assert d["uri"].startswith("file:///") and d["uri"].endswith(d["file"].split("/")[-1])


def test_ranges_cover_the_underlined_text(run_cli):
    """The range spans what the text output underlines: the whole call, the name, the literal."""
    _, _, doc = check_both(run_cli, [], ["specs/bad/heads7.arch", "specs/bad/undefined-name.arch"])
    heads, undefined = doc["diagnostics"]
    lines = (ROOT / "specs/bad/heads7.arch").read_text(encoding="utf-8").split("\n")

    def text_of(item, lines):
        r = item["range"]
        assert r["start"]["line"] == r["end"]["line"]
        return lines[r["start"]["line"]][r["start"]["character"]:r["end"]["character"]]

    assert text_of(heads, lines) == "attention(rmsnorm(x), heads = heads, rope = rope(theta = 10000.0)) as attn"
    by_message = {n["message"]: n for n in heads["notes"]}
    assert text_of(by_message["`heads` = 7 comes from here"], lines) == "7"
    stdlib = by_message["inside standard block `attention`"]
    prelude = (ROOT / "ttspec/stdlib/prelude.arch").read_text(encoding="utf-8").split("\n")
    assert stdlib["file"] == "<stdlib>/prelude.arch"
    assert stdlib["uri"] == (ROOT / "ttspec/stdlib/prelude.arch").resolve().as_uri()
    assert text_of(stdlib, prelude) == "hidden / heads"
    undefined_lines = (ROOT / "specs/bad/undefined-name.arch").read_text(encoding="utf-8").split("\n")
    assert text_of(undefined, undefined_lines) == "hiden"


def test_clean_spec(run_cli):
    out = run_cli("check", "--json", "specs/nano-trickster.arch", "specs/gpt2.arch")
    assert out.returncode == 0 and out.stderr == ""
    doc = json.loads(out.stdout)
    validate(doc, doc_schema(), doc_schema())
    assert doc["diagnostics"] == [] and doc["ok"] is True
    assert [(s["spec"], s["ok"], s["errors"], s["warnings"]) for s in doc["specs"]] == [
        ("specs/nano-trickster.arch", True, 0, 0), ("specs/gpt2.arch", True, 0, 0)]
    assert all(s["model"] for s in doc["specs"])


def test_warnings_and_strict(run_cli):
    big = "specs/bad/everything-big.arch"
    for strict, code in ((False, 0), (True, 1)):
        out = run_cli("check", "--json", "--training", *(["--strict"] if strict else []), big)
        doc = json.loads(out.stdout)
        assert out.returncode == code and doc["ok"] is (code == 0)
        assert [d["severity"] for d in doc["diagnostics"]] == ["warning"]
        assert doc["specs"][0]["warnings"] == 1 and doc["specs"][0]["model"] == "bad_design"


def test_utf16_characters(run_cli, write_spec):
    """LSP counts UTF-16 code units: a character outside the BMP before the error counts two."""
    path = write_spec("model m  # \U0001d11e\ninput tokens: int32[batch, seq] where seq <= 64\n"
                      "h = token_embedding(tokens, 256, 64)\nlet s = \"\U0001d11e\" == \"x\" or hiden\n"
                      "output logits = lm_head(h, 256)\n")
    text = run_cli("check", path)
    out = run_cli("check", "--json", path)
    doc = json.loads(out.stdout)
    ((_, (file, line, col), _),) = text_places(text.stderr)
    (d,) = doc["diagnostics"]
    assert d["range"]["start"]["line"] == line - 1 == 3
    source_line = path.read_text(encoding="utf-8").split("\n")[3]
    assert source_line[col - 1:].startswith("hiden")
    # col counts code points; character counts UTF-16 code units: the clef is two
    assert d["range"]["start"]["character"] == col - 1 + 1
    assert d["range"]["end"]["character"] - d["range"]["start"]["character"] == len("hiden")


def test_unreadable_specs_give_one_diagnostic(run_cli, tmp_path):
    (tmp_path / "dir.arch").mkdir()
    (tmp_path / "dangling.arch").symlink_to(tmp_path / "nowhere.arch")
    (tmp_path / "binary.arch").write_bytes(b"model m\n\xff\xfe\x00\n")
    locked = tmp_path / "locked.arch"
    locked.write_bytes(b"\x00\x01 not a spec")  # refused either way: unreadable, or (as root) a NUL byte
    locked.chmod(0)
    specs = [tmp_path / "missing.arch", tmp_path / "dir.arch", tmp_path / "dangling.arch",
             tmp_path / "binary.arch", locked]
    try:
        out = run_cli("check", "--json", *specs)
    finally:
        locked.chmod(0o600)
    assert out.returncode == 1 and out.stderr == "" and "Traceback" not in out.stdout
    doc = json.loads(out.stdout)
    validate(doc, doc_schema(), doc_schema())
    assert [d["spec"] for d in doc["diagnostics"]] == [str(s) for s in specs]  # one each
    assert all(d["severity"] == "error" and d["file"] == d["spec"] for d in doc["diagnostics"])
    missing, directory, dangling, binary, _ = doc["diagnostics"]
    assert "no such file" in missing["message"] and missing["located"] is False
    assert missing["range"] == {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}}
    assert "directory" in directory["message"] and directory["located"] is False
    assert dangling["located"] is False
    assert binary["located"] is True and binary["range"]["start"] == {"line": 1, "character": 0}
    if os.geteuid() != 0:
        assert doc["diagnostics"][4]["located"] is False


def test_import_error_points_into_the_imported_file(run_cli, write_spec):
    write_spec("let width = 7\nlet bad = width / 2\n", "lib/dims.arch")
    spec = write_spec('model m\nimport "lib/dims.arch"\ninput tokens: int32[batch, seq] where seq <= 64\n'
                      "output logits = lm_head(token_embedding(tokens, 256, 64), 256)\n")
    text = run_cli("check", spec)
    doc = json.loads(run_cli("check", "--json", spec).stdout)
    assert json_places(doc) == text_places(text.stderr)
    (d,) = doc["diagnostics"]
    assert d["file"].endswith("dims.arch") and d["spec"] == str(spec)


SEVERAL = """model m
input tokens: int32[batch, seq] where seq <= 64
let a = 7, b = a / 2
h = token_embedding(tokens, 256, hiden)
h = rmsnrom(h)
let c = b * 2
let heads = 3
let head_dim = 64 / heads
output logits = lm_head(h, 256)
"""


def test_several_independent_errors(run_cli, write_spec):
    """The spec's top-level statements are recovery points: independent errors are all reported, in order;
    a statement using a name a failed one would have bound (`h`, `b`) is not (its error is a consequence)."""
    spec = write_spec(SEVERAL)
    text, out, doc = check_both(run_cli, [], [spec])
    assert json_places(doc) == text_places(text.stderr)
    found = [(d["range"]["start"]["line"] + 1, d["message"]) for d in doc["diagnostics"]]
    assert [line for line, _ in found] == [3, 4, 8], found
    assert "does not divide a=7" in found[0][1] and found[1][1] == "undefined name `hiden`"
    assert found[2][1].startswith("heads=3 does not divide 64")
    assert doc["specs"][0]["errors"] == 3 and "rmsnrom" not in out.stdout
    # every command reports them all (not only check)
    params = run_cli("params", spec)
    assert params.returncode == 1 and params.stderr.count(": error: ") == 3


def _apply(text: str, fix: dict) -> str:
    """A fix's edit applied to ASCII text (LSP range, 0-based)."""
    r = fix["range"]
    assert r["start"]["line"] == r["end"]["line"]
    lines = text.split("\n")
    line = lines[r["start"]["line"]]
    lines[r["start"]["line"]] = line[:r["start"]["character"]] + fix["newText"] + line[r["end"]["character"]:]
    return "\n".join(lines)


def test_fixes_are_the_hints_edits_and_they_work(run_cli, tmp_path):
    """`fixes`: each replaces the offending text (the misspelt name, the non-dividing number where it was
    written) by a value the hint names; applied to the spec, the error is gone (checked again by the CLI)."""
    specs = ["specs/bad/heads7.arch", "specs/bad/heads7-short.arch", "specs/bad/inexact-division.arch",
             "specs/bad/undefined-name.arch", "specs/bad/unknown-argument.arch", "specs/bad/unknown-component.arch"]
    _, _, doc = check_both(run_cli, [], specs)
    validate(doc, doc_schema(), doc_schema())
    by_spec = {d["spec"]: d for d in doc["diagnostics"]}
    expected = {"specs/bad/heads7.arch": ("7", ["4", "8"]), "specs/bad/heads7-short.arch": ("7", ["4", "8"]),
                "specs/bad/inexact-division.arch": ("12", ["10", "20"]),
                "specs/bad/undefined-name.arch": ("hiden", ["hidden"]),
                "specs/bad/unknown-argument.arch": ("kv_head", ["kv_heads", "heads"]),
                "specs/bad/unknown-component.arch": ("rmsnrom", ["rmsnorm", "rms_norm"])}
    for spec, (old, new) in expected.items():
        d = by_spec[spec]
        text = (ROOT / spec).read_text(encoding="utf-8")
        assert [f["newText"] for f in d["fixes"]] == new, spec
        for fix in d["fixes"]:
            assert fix["file"] == spec and fix["uri"] == (ROOT / spec).resolve().as_uri()
            r = fix["range"]
            assert text.split("\n")[r["start"]["line"]][r["start"]["character"]:r["end"]["character"]] == old
            assert fix["newText"] in d["hints"][0]
    # applying the first fix of each: the spec's error is gone (the other fixes: the same edit, another value)
    fixed = []
    for spec in expected:
        path = tmp_path / spec.split("/")[-1]
        path.write_text(_apply((ROOT / spec).read_text(encoding="utf-8"), by_spec[spec]["fixes"][0]),
                        encoding="utf-8")
        fixed.append(path)
    again = json.loads(run_cli("check", "--json", *fixed).stdout)
    # inexact-division.arch is only `let`s: with its division fixed, what remains is that it has no output
    assert [(d["file"], d["message"]) for d in again["diagnostics"]] == [
        (str(tmp_path / "inexact-division.arch"), "the spec declares no output")]


def test_no_fix_where_the_value_is_computed(run_cli, write_spec):
    """A divisor computed by an expression (`let heads = 2 + 5`) has no mechanical edit: no fix, the hint
    stays; nor is a fix ever an edit of the standard library."""
    spec = write_spec("model m\nlet heads = 2 + 5\ninput tokens: int32[batch, seq] where seq <= 64\n"
                      "h = token_embedding(tokens, 256, 256)\nh = attention(h, heads = heads)\n"
                      "output logits = lm_head(h, 256)\n")
    doc = json.loads(run_cli("check", "--json", spec).stdout)
    (d,) = doc["diagnostics"]
    assert d["hints"] == ["nearest divisors of 256: 4, 8"] and d["fixes"] == []


def test_fixes_for_target_family_and_short_form_key_names(run_cli, tmp_path):
    nano = (ROOT / "specs" / "nano-trickster.arch").read_text(encoding="utf-8")
    short = (ROOT / "specs" / "nano-trickster-short.arch").read_text(encoding="utf-8")
    full = tmp_path / "full.arch"
    full.write_text(nano.replace("family llama ", "family lama  ").replace("target n150 ", "target n15  "),
                    encoding="utf-8")
    key = tmp_path / "short.arch"
    key.write_text(short.replace("mlp_dim", "mlp_dm"), encoding="utf-8")
    doc = json.loads(run_cli("check", "--json", full, key).stdout)
    validate(doc, doc_schema(), doc_schema())
    found = [(d["message"], [(f["newText"], f["range"]["start"]["line"]) for f in d["fixes"]])
             for d in doc["diagnostics"]]
    assert found == [("unknown checkpoint family `lama`", [("llama", line_of(nano, "family llama"))]),
                     ("unknown target `n15`", [("n150", line_of(nano, "target n150"))]),
                     ("unknown key `mlp_dm` for family llama", [("mlp_dim", line_of(short, "mlp_dim"))])]
    for spec, d in ((full, doc["diagnostics"][0]), (full, doc["diagnostics"][1]), (key, doc["diagnostics"][2])):
        spec.write_text(_apply(spec.read_text(encoding="utf-8"), d["fixes"][0]), encoding="utf-8")
    assert json.loads(run_cli("check", "--json", full, key).stdout)["diagnostics"] == []


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.split("\n")) if needle in line)
