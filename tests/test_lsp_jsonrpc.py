"""`ttspec lsp` driven by a plain JSON-RPC client, as any editor would: a subprocess, hand-written
Content-Length framing, no pygls on this side. A buffer with heads = 7 gets an error on the `attention` line
(the line `ttspec check` names); an edit that fixes it clears it; shutdown and exit end the process with 0.
Every read has a deadline, so the test cannot hang."""

import json
import os
import queue
import subprocess
import sys
import threading
import time

from .conftest import ROOT

SPEC = ROOT / "specs" / "bad" / "heads7.arch"
DEADLINE_S = 30.0  # per message awaited: the server's start-up (imports) and one check take well under this


class Client:
    """JSON-RPC 2.0 over the server's stdin/stdout with LSP's base protocol framing."""

    def __init__(self, **env_extra):
        env = dict(os.environ, PYTHONPATH=str(ROOT), **env_extra)
        env.pop("TTSPEC_NO_CACHE", None)
        self.proc = subprocess.Popen([sys.executable, "-m", "ttspec.cli", "lsp"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env)
        self.messages: queue.Queue = queue.Queue()
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        out = self.proc.stdout
        while True:
            headers = {}
            while True:
                line = out.readline()
                if not line:
                    self.messages.put(None)
                    return
                line = line.decode("ascii").strip()
                if not line:
                    break
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
            body = out.read(int(headers["content-length"]))
            self.messages.put(json.loads(body.decode("utf-8")))

    def send(self, message: dict) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def request(self, method: str, params) -> dict:
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        reply = self.wait(lambda m: m.get("id") == self.next_id and "method" not in m)
        assert "error" not in reply, reply
        return reply["result"]

    def notify(self, method: str, params) -> None:
        self.send({"method": method, "params": params})

    def wait(self, wanted) -> dict:
        """The next message `wanted` accepts (others, e.g. log messages, are passed over)."""
        end = time.monotonic() + DEADLINE_S
        while True:
            left = end - time.monotonic()
            assert left > 0, "the server did not answer in time"
            try:
                message = self.messages.get(timeout=left)
            except queue.Empty:
                raise AssertionError("the server did not answer in time") from None
            assert message is not None, "the server closed its output: " + self.proc.stderr.read().decode()[-2000:]
            if wanted(message):
                return message

    def diagnostics(self, uri: str, version: int) -> list[dict]:
        return self.wait(lambda m: m.get("method") == "textDocument/publishDiagnostics"
                         and m["params"]["uri"] == uri and m["params"].get("version") == version)["params"][
            "diagnostics"]


def _line_of(text: str, needle: str) -> int:
    """0-based line of the first line containing `needle` (found independently of the server)."""
    return next(i for i, line in enumerate(text.split("\n")) if needle in line)


def test_plain_client_sees_the_error_then_its_fix(tmp_path):
    text = SPEC.read_text(encoding="utf-8")
    uri = (tmp_path / "heads7.arch").as_uri()  # not on disk: the buffer is what is checked
    cache = tmp_path / "cache"  # the parse cache the CLI would write: the server must leave no file per buffer
    client = Client(TTSPEC_CACHE_DIR=str(cache))
    try:
        caps = client.request("initialize", {"processId": os.getpid(), "rootUri": tmp_path.as_uri(), "capabilities": {
            "general": {"positionEncodings": ["utf-8", "utf-32", "utf-16"]}}})["capabilities"]
        assert caps["textDocumentSync"]["openClose"] is True
        assert caps.get("positionEncoding", "utf-16") == "utf-16"  # ttspec's ranges count UTF-16 code units
        client.notify("initialized", {})
        client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "arch", "version": 1,
                                                                "text": text}})
        found = client.diagnostics(uri, 1)
        assert len(found) == 1
        d = found[0]
        assert d["severity"] == 1 and d["source"] == "ttspec"
        assert d["message"].startswith("heads=7 does not divide hidden=256")
        # the spec's own `expect-at: 16:13` (1-based): the attention call
        assert d["range"]["start"] == {"line": 15, "character": 12}
        assert d["range"]["start"]["line"] == _line_of(text, "attention(")
        # a full-text change (no range) replacing 7 by 8
        fixed = text.replace("let heads = 7", "let heads = 8")
        client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2},
                                                 "contentChanges": [{"text": fixed}]})
        assert client.diagnostics(uri, 2) == []
        # an incremental change putting the 7 back: the error returns
        line = _line_of(fixed, "let heads = 8")
        col = fixed.split("\n")[line].index("8")
        client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 3}, "contentChanges": [
            {"range": {"start": {"line": line, "character": col}, "end": {"line": line, "character": col + 1}},
             "text": "7"}]})
        assert [d["range"] for d in client.diagnostics(uri, 3)] == [d["range"]]
        # a character outside the BMP before the error counts two UTF-16 code units
        clef = "model m  # \U0001d11e\ninput tokens: int32[batch, seq] where seq <= 64\nlet hidden = 64\n" \
               "h = token_embedding(tokens, 256, 64) # \U0001d11e\nlet s = \"\U0001d11e\" == \"x\" or hiden\n" \
               "output logits = lm_head(h, 256)\n"
        other = (tmp_path / "clef.arch").as_uri()
        client.notify("textDocument/didOpen", {"textDocument": {"uri": other, "languageId": "arch", "version": 1,
                                                                "text": clef}})
        (found,) = client.diagnostics(other, 1)
        line = clef.split("\n")[4]
        start = len(line[:line.index("hiden")].encode("utf-16-le")) // 2
        assert found["range"] == {"start": {"line": 4, "character": start},
                                  "end": {"line": 4, "character": start + len("hiden")}}
        assert start == line.index("hiden") + 1
        assert client.request("shutdown", None) is None
        client.notify("exit", None)
        assert client.proc.wait(timeout=DEADLINE_S) == 0
        assert not [f for f in cache.rglob("*") if f.is_file()], "the server wrote parse-cache files"
    finally:
        if client.proc.poll() is None:
            client.proc.kill()
            client.proc.wait()


def test_without_pygls_one_line_names_the_extra():
    """Where pygls is not installed, `ttspec lsp` says so in one line, naming the extra, and exits non-zero."""
    code = ("import sys\nsys.modules['pygls'] = None  # as if not installed\n"
            "from ttspec.cli.main import main\nsys.exit(main(['lsp']))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=DEADLINE_S,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), stdin=subprocess.DEVNULL)
    assert out.returncode != 0 and out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "pip install 'ttspec[lsp]'" in out.stderr and "pygls" in out.stderr


def test_server_imports_no_heavy_library():
    """The server's every feature (check, fixes, outline, lens) runs without torch, ttnn or numpy."""
    code = ("import sys\nfrom pathlib import Path\nfrom lsprotocol import types\n"
            "from ttspec.lsp.server import build_server\nfrom ttspec.lsp import actions, lens, outline\n"
            "from ttspec.lsp.documents import Documents\nbuild_server()\n"
            "path = Path(sys.argv[1])\nanalysis = Documents().update(path.as_uri(), path.read_text(), 1)\n"
            "assert analysis.diagnostics and lens.lenses(analysis) == [] and outline.symbols(analysis)\n"
            "everything = types.Range(types.Position(0, 0), types.Position(99, 0))\n"
            "assert actions.actions(analysis, everything)\n"
            "good = Path(sys.argv[2])\nassert lens.lenses(Documents().update(good.as_uri(), good.read_text(), 1))\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'ttnn', 'transformers', 'numpy'))\n"
            "assert not heavy, heavy\n")
    out = subprocess.run([sys.executable, "-c", code, str(SPEC), str(ROOT / "specs" / "mixtral-8x7b.arch")],
                         capture_output=True, text=True, cwd=ROOT, timeout=DEADLINE_S,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr


def test_lens_fits_are_plans_verdicts(run_cli):
    """The CodeLens's fit per target is `ttspec plan --json`'s `fits` at bf16, batch 1 (and a target plan
    refuses is one the lens says it cannot compile for)."""
    from ttspec.driver import load_model
    from ttspec.lsp.lens import facts

    cases = {"llama-3.1-8b": ("n150", "n300"), "mixtral-8x7b": ("n300", "p150x4"), "moe-tiny": ("t3k", "n150")}
    for spec, targets in cases.items():
        said = facts(load_model(ROOT / "specs" / f"{spec}.arch"))
        for target in targets:
            out = run_cli("plan", f"specs/{spec}.arch", "--target", target, "--json")
            if out.returncode:
                assert target in said.refused, (spec, target, out.stderr)
            else:
                assert (target in said.fits) is json.loads(out.stdout)["fits"], (spec, target)
                assert target in said.fits + said.not_fitting
