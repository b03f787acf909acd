"""`ttspec lsp` as a real client uses it (pytest-lsp: the server in a subprocess over stdio, one for the
module): diagnostics on unsaved buffers with exact ranges, notes as related locations (into the standard
library), an edit that fixes the error clearing them; the divisor quick fix; several errors at once; an
imported file's error on the import; the outline; the CodeLens on the `model` line.

Expected places come from the specs' own `expect-at` comments and from finding the text in the buffer,
counts from the published figure (nano-trickster: 5,180,672, the issue's acceptance) and closed forms.
Every request has a deadline, so no test can hang."""

import asyncio
import os
import sys

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from .conftest import ROOT

DEADLINE_S = 30.0
HEADS7 = (ROOT / "specs" / "bad" / "heads7.arch").read_text(encoding="utf-8")
NANO = (ROOT / "specs" / "nano-trickster.arch").read_text(encoding="utf-8")
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(
    server_command=[sys.executable, "-m", "ttspec.cli", "lsp"],
    server_env=dict(os.environ, PYTHONPATH=str(ROOT))))
async def client(lsp_client: LanguageClient):
    await asyncio.wait_for(lsp_client.initialize_session(types.InitializeParams(
        capabilities=types.ClientCapabilities(), root_uri=ROOT.as_uri())), DEADLINE_S)
    yield
    await asyncio.wait_for(lsp_client.shutdown_session(), DEADLINE_S)


async def open_buffer(client: LanguageClient, path, text: str) -> list[types.Diagnostic]:
    """didOpen `text` as the document at `path` (which need not exist on disk); its diagnostics."""
    uri = path.as_uri()
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        types.TextDocumentItem(uri=uri, language_id="arch", version=1, text=text)))
    return await diagnostics_for(client, uri)


async def change_buffer(client: LanguageClient, path, version: int, text: str) -> list[types.Diagnostic]:
    uri = path.as_uri()
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        types.VersionedTextDocumentIdentifier(uri=uri, version=version),
        [types.TextDocumentContentChangeWholeDocument(text=text)]))
    return await diagnostics_for(client, uri)


async def diagnostics_for(client: LanguageClient, uri: str) -> list[types.Diagnostic]:
    async def wait():
        while True:
            params = await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
            if params.uri == uri:
                return list(params.diagnostics)

    return await asyncio.wait_for(wait(), DEADLINE_S)


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.split("\n")) if needle in line)


def at(text: str, r: types.Range) -> str:
    assert r.start.line == r.end.line
    return text.split("\n")[r.start.line][r.start.character:r.end.character]


async def test_heads7_error_then_its_quick_fix_clears_it(client: LanguageClient, tmp_path):
    path = tmp_path / "heads7.arch"  # not on disk: the buffer is checked
    (d,) = await open_buffer(client, path, HEADS7)
    assert d.severity == types.DiagnosticSeverity.Error and d.source == "ttspec"
    assert d.message.startswith("heads=7 does not divide hidden=256")
    assert "hint: nearest divisors of 256: 4, 8" in d.message
    assert (d.range.start.line + 1, d.range.start.character + 1) == (16, 13)  # the spec's `expect-at: 16:13`
    assert at(HEADS7, d.range).startswith("attention(")
    related = {r.message: r.location for r in d.related_information}
    stdlib = related["inside standard block `attention`"]
    assert stdlib.uri == (ROOT / "ttspec" / "stdlib" / "prelude.arch").resolve().as_uri()
    prelude = (ROOT / "ttspec" / "stdlib" / "prelude.arch").read_text(encoding="utf-8")
    assert at(prelude, stdlib.range) == "hidden / heads"
    origin = related["`heads` = 7 comes from here"]
    assert origin.uri == path.as_uri() and origin.range.start.line == line_of(HEADS7, "let heads = 7")

    actions = await asyncio.wait_for(client.text_document_code_action_async(types.CodeActionParams(
        types.TextDocumentIdentifier(path.as_uri()), d.range, types.CodeActionContext([d]))), DEADLINE_S)
    assert [a.title for a in actions] == ["heads = 4", "heads = 8"]
    assert all(a.kind == types.CodeActionKind.QuickFix for a in actions)
    edits = [e for a in actions for uri, es in a.edit.changes.items() for e in es if uri == path.as_uri()]
    assert [e.new_text for e in edits] == ["4", "8"]
    assert {e.range.start.line for e in edits} == {line_of(HEADS7, "let heads = 7")}
    assert {at(HEADS7, e.range) for e in edits} == {"7"}
    # the cursor on the `7` itself offers them too
    on_seven = await asyncio.wait_for(client.text_document_code_action_async(types.CodeActionParams(
        types.TextDocumentIdentifier(path.as_uri()), edits[0].range, types.CodeActionContext([]))), DEADLINE_S)
    assert [a.title for a in on_seven] == ["heads = 4", "heads = 8"]

    line = edits[1].range.start.line
    fixed = HEADS7.split("\n")
    fixed[line] = fixed[line][:edits[1].range.start.character] + "8" + fixed[line][edits[1].range.end.character:]
    assert await change_buffer(client, path, 2, "\n".join(fixed)) == []
    assert await change_buffer(client, path, 3, HEADS7) != []  # and back


async def test_buffer_not_disk(client: LanguageClient):
    """The buffer, not the file: nano-trickster's path with `heads = 7` in the editor errs; the file is fine."""
    path = ROOT / "specs" / "nano-trickster.arch"
    text = NANO.replace("let heads = 8", "let heads = 7")
    (d,) = await open_buffer(client, path, text)
    assert d.message.startswith("heads=7 does not divide hidden=256")
    assert await change_buffer(client, path, 2, NANO) == []


SEVERAL = """model m
input tokens: int32[batch, seq] where seq <= 64
let hidden = 64
let a = 7, b = a / 2
h = token_embedding(tokens, 256, hiden)
let heads = 3
let head_dim = 64 / heads
output logits = lm_head(h, 256)
"""


async def test_several_errors_and_the_rename_fix(client: LanguageClient, tmp_path):
    path = tmp_path / "several.arch"
    found = await open_buffer(client, path, SEVERAL)
    assert [d.range.start.line for d in found] == [3, 4, 6]
    assert [at(SEVERAL, d.range) for d in found][1] == "hiden"
    actions = await asyncio.wait_for(client.text_document_code_action_async(types.CodeActionParams(
        types.TextDocumentIdentifier(path.as_uri()), found[1].range, types.CodeActionContext([found[1]]))),
        DEADLINE_S)
    assert [(a.title, a.is_preferred) for a in actions] == [("change `hiden` to `hidden`", True)]
    # `a / 2` with a = 7: the divisor 2 is written in the division itself
    actions = await asyncio.wait_for(client.text_document_code_action_async(types.CodeActionParams(
        types.TextDocumentIdentifier(path.as_uri()), found[0].range, types.CodeActionContext([found[0]]))),
        DEADLINE_S)
    assert [a.title for a in actions] == ["change `2` to `1`", "change `2` to `7`"]


async def test_error_in_an_imported_file_sits_on_the_import(client: LanguageClient, tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "dims.arch").write_text("let width = 7\nlet bad = width / 2\n", encoding="utf-8")
    text = ('model m\nimport "lib/dims.arch"\ninput tokens: int32[batch, seq] where seq <= 64\n'
            "output logits = lm_head(token_embedding(tokens, 256, 64), 256)\n")
    (d,) = await open_buffer(client, tmp_path / "main.arch", text)
    assert at(text, d.range) == 'import "lib/dims.arch"' and "dims.arch" in d.message
    assert "does not divide" in d.message
    first = d.related_information[0].location
    assert first.uri == (tmp_path / "lib" / "dims.arch").resolve().as_uri() and first.range.start.line == 1
    # imports are read from disk: fixed and saved there, the importing buffer is checked again
    (tmp_path / "lib" / "dims.arch").write_text("let width = 8\nlet bad = width / 2\n", encoding="utf-8")
    client.text_document_did_save(types.DidSaveTextDocumentParams(
        types.TextDocumentIdentifier((tmp_path / "lib" / "dims.arch").as_uri())))
    assert await diagnostics_for(client, (tmp_path / "main.arch").as_uri()) == []


async def test_outline(client: LanguageClient):
    path = ROOT / "specs" / "nano-trickster.arch"
    await open_buffer(client, path, NANO)
    (root,) = await asyncio.wait_for(client.text_document_document_symbol_async(types.DocumentSymbolParams(
        types.TextDocumentIdentifier(path.as_uri()))), DEADLINE_S)
    assert (root.name, root.kind) == ("nano_trickster", types.SymbolKind.Module)
    children = {(c.name, c.kind): c for c in root.children}
    for name in ("vocab", "d", "layers", "heads", "mlp", "max_seq", "eps"):
        c = children[(name, types.SymbolKind.Constant)]
        assert at(NANO, c.selection_range) == name and c.selection_range.start.line == line_of(NANO, f"let {name} ")
    block = children[("decoder", types.SymbolKind.Function)]
    assert block.range.start.line == line_of(NANO, "block decoder")
    assert NANO.split("\n")[block.range.end.line].strip() == "}"
    inner = [(c.name, c.kind) for c in block.children]
    assert inner == [("x", types.SymbolKind.TypeParameter)] + [
        (name, types.SymbolKind.Object) for name in ("attn_norm", "attn", "mlp_norm", "mlp")]
    attn = block.children[2]
    assert at(NANO, attn.selection_range) == "attn" and attn.detail == "attention"
    labels = [c.name for c in root.children if c.kind == types.SymbolKind.Object]
    assert labels == ["embedding", "layers", "norm"]
    assert ("tokens", types.SymbolKind.Variable) in children and ("logits", types.SymbolKind.Event) in children


async def test_codelens_counts_and_fits(client: LanguageClient):
    path = ROOT / "specs" / "nano-trickster.arch"
    await open_buffer(client, path, NANO)
    lenses = await asyncio.wait_for(client.text_document_code_lens_async(types.CodeLensParams(
        types.TextDocumentIdentifier(path.as_uri()))), DEADLINE_S)
    assert {lens.range.start.line for lens in lenses} == {line_of(NANO, "model nano_trickster")}
    titles = [lens.command.title for lens in lenses]
    assert titles[0] == "5,180,672 parameters"  # the acceptance figure; dense: no separate active count
    assert "n150" in titles[1].split("·")[0]  # 5M parameters, 10 MB of bf16 weights on a 12 GB chip

    # Llama 3.1 8B: 8.03e9 parameters are 16 GB of bf16 weights: more than an n150's 12 GB, less than a
    # p150's 32 GB
    path = ROOT / "specs" / "llama-3.1-8b.arch"
    await open_buffer(client, path, path.read_text(encoding="utf-8"))
    lenses = await asyncio.wait_for(client.text_document_code_lens_async(types.CodeLensParams(
        types.TextDocumentIdentifier(path.as_uri()))), DEADLINE_S)
    fits, _, rest = lenses[1].command.title.partition(" · ")
    assert "p150" in fits.split(": ")[1].split(", ") and "n150" not in fits
    assert rest.startswith("too big for") and "n150" in rest
    total = int(lenses[0].command.title.split()[0].replace(",", ""))
    assert 8.0e9 < total < 8.1e9  # Meta's 8.03B


async def test_lens_and_outline_of_a_broken_buffer(client: LanguageClient, tmp_path):
    """A spec that does not elaborate has no lens (its errors say why) but keeps its outline; one that does not
    parse has neither, and the requests still answer."""
    path = tmp_path / "broken.arch"
    await open_buffer(client, path, HEADS7)
    doc = types.TextDocumentIdentifier(path.as_uri())
    assert not await asyncio.wait_for(client.text_document_code_lens_async(types.CodeLensParams(doc)), DEADLINE_S)
    (root,) = await asyncio.wait_for(client.text_document_document_symbol_async(types.DocumentSymbolParams(doc)),
                                     DEADLINE_S)
    assert root.name == "heads7"
    (d,) = await change_buffer(client, path, 2, HEADS7.replace("rope(theta = 10000.0))", "rope(theta = 10000.0)"))
    assert d.message.startswith("unclosed `(`")
    assert not await asyncio.wait_for(client.text_document_document_symbol_async(types.DocumentSymbolParams(doc)),
                                      DEADLINE_S)


async def test_refused_text_is_one_located_error(client: LanguageClient, tmp_path):
    """Text the reader refuses before parsing (a NUL byte) and text past the size limit: one error each, on
    the buffer's own lines, and the server goes on."""
    (d,) = await open_buffer(client, tmp_path / "nul.arch", "model m\nlet a = 1\x00\n")
    assert d.message.startswith("NUL byte in source") and (d.range.start.line, d.range.start.character) == (1, 9)
    (d,) = await open_buffer(client, tmp_path / "big.arch", "model m\n" + "# filler\n" * 10000)
    assert d.message.startswith("spec text too large")
    assert await open_buffer(client, tmp_path / "ok.arch", NANO) == []
