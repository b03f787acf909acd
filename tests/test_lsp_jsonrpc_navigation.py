"""Issue 22's acceptance for navigation, with the plain JSON-RPC client of test_lsp_jsonrpc.py (no pygls on this
side): hover on a component label shows its parameter count (nano-trickster's attention, 4 d^2 per layer at
d = 256, over 6 layers), definition on a stdlib block lands in the stdlib on its `block` line, completion
inside a call offers blocks and the call's keyword arguments."""

import os

from .conftest import ROOT, SPECS
from .test_lsp_jsonrpc import DEADLINE_S, Client

NANO = SPECS / "nano-trickster.arch"
PRELUDE = ROOT / "ttspec" / "stdlib" / "prelude.arch"


def _at(text: str, needle: str, offset: int = 0) -> dict:
    line = next(i for i, s in enumerate(text.split("\n")) if needle in s)
    return {"line": line, "character": text.split("\n")[line].index(needle) + offset}


def test_plain_client_hover_definition_completion(tmp_path):
    text = NANO.read_text(encoding="utf-8")
    uri = (tmp_path / "nano.arch").as_uri()  # the buffer, not a file on disk
    client = Client()
    try:
        caps = client.request("initialize", {"processId": os.getpid(), "rootUri": tmp_path.as_uri(),
                                             "capabilities": {}})["capabilities"]
        assert caps["hoverProvider"] and caps["definitionProvider"] and "(" in caps["completionProvider"][
            "triggerCharacters"]
        client.notify("initialized", {})
        client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "arch", "version": 1,
                                                                "text": text}})
        doc = {"uri": uri}
        hover = client.request("textDocument/hover", {"textDocument": doc,
                                                      "position": _at(text, "10000.0)) as attn", 14)})
        assert f"{4 * 256 * 256:,}" in hover["contents"]["value"]  # per layer
        assert f"{6 * 4 * 256 * 256:,}" in hover["contents"]["value"]  # over the 6 layers
        found = client.request("textDocument/definition", {"textDocument": doc, "position": _at(text, "swiglu(")})
        found = found[0] if isinstance(found, list) else found
        assert found["uri"] == PRELUDE.resolve().as_uri()
        assert PRELUDE.read_text(encoding="utf-8").split("\n")[found["range"]["start"]["line"]].startswith(
            "block swiglu(")
        items = client.request("textDocument/completion", {"textDocument": doc, "position": _at(
            text, "heads = heads,", len("heads = heads, "))})
        labels = {i["label"] for i in (items["items"] if isinstance(items, dict) else items)}
        assert {"swiglu", "rmsnorm", "decoder", "linear"} <= labels  # stdlib and local blocks, a primitive
        assert {"kv_heads =", "rope ="} <= labels and "heads =" not in labels  # attention's, not yet given
        assert client.request("shutdown", None) is None
        client.notify("exit", None)
        assert client.proc.wait(timeout=DEADLINE_S) == 0
    finally:
        if client.proc.poll() is None:
            client.proc.kill()
            client.proc.wait()
