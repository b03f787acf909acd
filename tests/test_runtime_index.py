"""The runtime index (ttspec/backends/runtime_index.json): what a compile reads instead of parsing the
runtime's modules is what make_index.py reads from them today; each definition's lines are that
definition, as Python's parser finds it in the file; and an index written from other files than those
installed (a runtime file edited, added or removed since) is refused, naming the tool to run."""

import ast
import json
import shutil
import textwrap

import pytest

from ttspec.backends.common import inline
from ttspec.backends.common.inline import (
    BACKENDS,
    INDEX_PATH,
    MAKE_INDEX,
    StaleIndex,
    all_runtime_dirs,
    check_index,
    module_paths,
    runtime_module,
)
from ttspec.backends.common.make_index import build_index, render


def test_the_shipped_index_is_what_the_runtime_gives_today():
    assert INDEX_PATH.read_text(encoding="utf-8") == render(build_index()), \
        f"a runtime file (backends/*/rt/) changed: run `{MAKE_INDEX}`"


def test_the_rendered_index_reads_back_as_built():
    built = build_index()
    assert json.loads(render(built)) == built


def _target(node: ast.stmt) -> str:
    if isinstance(node, ast.Assign):
        return node.targets[0].id
    return node.target.id if isinstance(node, ast.AnnAssign) else node.name


def test_each_definitions_lines_are_that_definition():
    """The lines the index gives a definition parse to that one statement (after the comments just above
    it, all of them), and each method's lines to that method: what the inliner copies is whole and
    nothing else."""
    definitions = 0
    for path in module_paths(all_runtime_dirs()):
        source = path.read_text(encoding="utf-8").splitlines()
        for definition in runtime_module(path).definitions:
            above = source[definition.first - 2] if definition.first > 1 else ""
            assert not above.lstrip().startswith("#"), f"{path.name}: the comment above {definition.name} is left"
            body = ast.parse("\n".join(definition.lines)).body
            assert len(body) == 1 and _target(body[0]) == definition.name, (path.name, definition.name)
            assert definition.lines[0].lstrip().startswith(("#", "@", "def ", "class ", definition.name))
            kind = {ast.FunctionDef: "function", ast.ClassDef: "class"}.get(type(body[0]), "constant")
            assert definition.kind == kind, definition.name
            for member in definition.members:
                method = ast.parse(textwrap.dedent(definition.method_text(member))).body
                assert [type(m) for m in method] == [ast.FunctionDef] and method[0].name == member.name
            definitions += 1
    assert definitions > 50


@pytest.fixture
def runtime_copy(tmp_path):
    """The runtime's packages copied beside the shipped index's reading of them."""
    for directory in all_runtime_dirs():
        shutil.copytree(directory, tmp_path / directory.parent.name / "rt",
                        ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path, json.loads(INDEX_PATH.read_text(encoding="utf-8"))


def refusal(index, backends) -> str:
    with pytest.raises(StaleIndex) as caught:
        check_index(index, backends)
    assert MAKE_INDEX in str(caught.value)
    return str(caught.value)


def test_the_index_is_checked_against_every_runtime_file(runtime_copy):
    backends, index = runtime_copy
    contents = check_index(index, backends)
    assert contents.keys() == index["files"].keys() and len(contents) >= 19 + 3
    assert contents["ttnn/rt/mesh.py"] == (BACKENDS / "ttnn" / "rt" / "mesh.py").read_bytes()


def test_an_edit_that_keeps_the_size_is_refused(runtime_copy):
    backends, index = runtime_copy
    path = backends / "ttnn" / "rt" / "kv_cache.py"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("def decode(", "def dekode(", 1), encoding="utf-8")
    assert len(path.read_bytes()) == len(text.encode())
    assert "backends/ttnn/rt/kv_cache.py changed" in refusal(index, backends)


def test_a_new_order_of_the_modules_is_refused(runtime_copy):
    backends, index = runtime_copy
    path = backends / "torch" / "rt" / "__init__.py"
    path.write_text(path.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    assert "torch/rt/__init__.py changed" in refusal(index, backends)


def test_an_added_or_removed_runtime_file_is_refused(runtime_copy):
    backends, index = runtime_copy
    (backends / "ttnn" / "rt" / ".#mesh.py").write_text("an editor's lock file\n", encoding="utf-8")
    assert check_index(index, backends).keys() == index["files"].keys()  # not a module of the runtime
    (backends / "common" / "rt" / "extra.py").write_text("HELPER = 1\n", encoding="utf-8")
    assert "common/rt/extra.py was added" in refusal(index, backends)
    (backends / "common" / "rt" / "extra.py").unlink()
    (backends / "common" / "rt" / "rope.py").unlink()
    assert "common/rt/rope.py was removed" in refusal(index, backends)


def test_a_compile_refuses_a_stale_shipped_index(tmp_path, monkeypatch):
    """What a compile loads (inline._runtime) goes through the check: an index whose stamp of a file is
    not the file's, as after an edit without the tool, stops it before anything is inlined."""
    index = json.loads(INDEX_PATH.read_text(encoding="utf-8"))
    index["files"]["common/rt/generate.py"][1] ^= 1
    stale = tmp_path / "runtime_index.json"
    stale.write_text(json.dumps(index), encoding="utf-8")
    monkeypatch.setattr(inline, "INDEX_PATH", stale)
    with pytest.raises(StaleIndex, match="generate.py changed since it was written; run `python -m ttspec"):
        inline._runtime.__wrapped__()
    monkeypatch.setattr(inline, "INDEX_PATH", tmp_path / "missing.json")
    with pytest.raises(StaleIndex, match="missing"):
        inline._runtime.__wrapped__()
