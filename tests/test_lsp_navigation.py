"""`ttspec lsp`'s navigation as an editor uses it (pytest-lsp: the real server in a subprocess): hover on a
component label shows its parameter count (nano-trickster's closed form: attention 4 d^2 per layer, d = 256)
and HF name, definition of a stdlib block lands in the prelude, completion offers blocks and the call's
keyword arguments, signature help names the active parameter, inlay hints show shapes; after an edit that
breaks the buffer, completion still works. One server for the module; every request has a deadline."""

import asyncio
import os
import sys

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from .conftest import ROOT, SPECS

NANO = SPECS / "nano-trickster.arch"
PRELUDE = ROOT / "ttspec" / "stdlib" / "prelude.arch"
TEXT = NANO.read_text(encoding="utf-8")
URI = NANO.resolve().as_uri()
DEADLINE_S = 30.0
pytestmark = pytest.mark.asyncio(loop_scope="module")


SERVER = ClientServerConfig(server_command=[sys.executable, "-m", "ttspec.cli", "lsp"],
                            server_env=dict(os.environ, PYTHONPATH=str(ROOT)))


@pytest_lsp.fixture(scope="module", config=SERVER)
async def client(lsp_client: LanguageClient):
    await asyncio.wait_for(lsp_client.initialize_session(types.InitializeParams(
        capabilities=types.ClientCapabilities(), root_uri=ROOT.as_uri())), DEADLINE_S)
    lsp_client.text_document_did_open(types.DidOpenTextDocumentParams(
        types.TextDocumentItem(URI, "arch", 1, TEXT)))
    yield
    await asyncio.wait_for(lsp_client.shutdown_session(), DEADLINE_S)


def at(text: str, line_has: str, word: str, offset: int = 0) -> types.Position:
    for i, line in enumerate(text.split("\n")):
        if line_has in line:
            return types.Position(i, line.index(word) + offset)
    raise AssertionError(line_has)


def doc(position: types.Position) -> types.TextDocumentPositionParams:
    return dict(text_document=types.TextDocumentIdentifier(URI), position=position)


async def test_hover_on_a_label_shows_its_count(client: LanguageClient):
    found = await asyncio.wait_for(client.text_document_hover_async(types.HoverParams(
        **doc(at(TEXT, "10000.0)) as attn", "as attn", offset=4)))), DEADLINE_S)
    assert f"{4 * 256 * 256:,}" in found.contents.value
    assert "model.layers.N.self_attn.q_proj.weight" in found.contents.value


async def test_definition_of_a_stdlib_block(client: LanguageClient):
    found = await asyncio.wait_for(client.text_document_definition_async(types.DefinitionParams(
        **doc(at(TEXT, "swiglu(", "swiglu")))), DEADLINE_S)
    assert found.uri == PRELUDE.resolve().as_uri()
    assert PRELUDE.read_text(encoding="utf-8").split("\n")[found.range.start.line].startswith("block swiglu(")


async def test_completion_and_signature_help(client: LanguageClient):
    pos = at(TEXT, "hidden = mlp) as mlp", "hidden")
    found = await asyncio.wait_for(client.text_document_completion_async(types.CompletionParams(**doc(pos))),
                                   DEADLINE_S)
    labels = {i.label: i for i in found.items}
    assert labels["attention"].kind == types.CompletionItemKind.Class and "heads: int" in labels["attention"].detail
    assert labels["linear"].kind == types.CompletionItemKind.Function
    assert labels["hidden ="].kind == types.CompletionItemKind.Property  # swiglu's, not yet given
    helped = await asyncio.wait_for(client.text_document_signature_help_async(types.SignatureHelpParams(
        **doc(at(TEXT, "hidden = mlp) as mlp", "mlp)", offset=1)))), DEADLINE_S)
    sig = helped.signatures[0]
    assert sig.label.startswith("swiglu(") and sig.parameters[helped.active_parameter].label is not None
    start, end = sig.parameters[helped.active_parameter].label
    assert sig.label[start:end] == "hidden: int"


async def test_inlay_hints(client: LanguageClient):
    end = len(TEXT.split("\n"))
    hints = await asyncio.wait_for(client.text_document_inlay_hint_async(types.InlayHintParams(
        text_document=types.TextDocumentIdentifier(URI),
        range=types.Range(types.Position(0, 0), types.Position(end, 0)))), DEADLINE_S)
    h = at(TEXT, "h = token_embedding", "h")
    assert any(x.position == types.Position(h.line, 1) and x.label == ": [batch, seq, 256]" for x in hints)


async def test_a_broken_buffer_still_completes(client: LanguageClient):
    broken = TEXT.replace("h = rmsnorm(h, eps = eps) as norm", "h = rmsnorm(h, ")
    change = types.TextDocumentContentChangeWholeDocument(broken)
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        types.VersionedTextDocumentIdentifier(version=2, uri=URI), [change]))
    pos = at(broken, "h = rmsnorm(h, ", "(h, ", offset=4)
    found = await asyncio.wait_for(client.text_document_completion_async(types.CompletionParams(**doc(pos))),
                                   DEADLINE_S)
    labels = [i.label for i in found.items]
    assert labels[:2] == ["eps =", "offset ="] and "swiglu" in labels
    loc = await asyncio.wait_for(client.text_document_definition_async(types.DefinitionParams(
        **doc(at(broken, "h = rmsnorm(h", "rmsnorm")))), DEADLINE_S)
    assert loc.uri == PRELUDE.resolve().as_uri()
