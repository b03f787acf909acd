// Run by tests/test_vscode_extension.py: the packaged extension's own language client (vscode-languageclient
// from the unpacked .vsix, the extension's server options) in a session with the real `ttspec lsp`: initialize,
// open a spec with heads = 7 (an error on the line of `let heads`'s use), fix it by an edit (the error
// clears), shut down. Prints one JSON line per step. Usage: node session.js UNPACKED_VSIX_DIR TTSPEC SPEC
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { pathToFileURL } = require('node:url');

require('./vscode-stub').install();

const [dir, ttspec, spec] = process.argv.slice(2);
const extensionDir = path.join(dir, 'extension');
const extension = require(path.join(extensionDir, 'extension.js'));
const { LanguageClient } = require(require.resolve('vscode-languageclient/node', { paths: [extensionDir] }));

const log = [];
const client = new LanguageClient('ttspec', 'ttspec language server', extension.serverOptions(ttspec),
  { documentSelector: [{ language: extension.LANGUAGE }],
    outputChannel: { append: (t) => log.push(t), appendLine: (t) => log.push(`${t}\n`) } });

const uri = pathToFileURL(spec).toString();
const good = fs.readFileSync(spec, 'utf8');
const bad = good.replace(/let heads = \d+/, 'let heads = 7');
assert.notEqual(bad, good, 'the spec needs a `let heads = N` line');

const waiting = [];
function nextDiagnostics() {
  return new Promise((resolve) => waiting.push(resolve));
}

async function session() {
  await client.start();
  const capabilities = client.initializeResult.capabilities;
  console.log(JSON.stringify({ step: 'initialized', capabilities: Object.keys(capabilities).sort() }));
  client.onNotification('textDocument/publishDiagnostics', (params) => {
    if (params.uri === uri && waiting.length) waiting.shift()(params.diagnostics);
  });
  let diagnostics = nextDiagnostics();
  await client.sendNotification('textDocument/didOpen',
    { textDocument: { uri, languageId: extension.LANGUAGE, version: 1, text: bad } });
  const opened = await diagnostics;
  console.log(JSON.stringify({ step: 'opened', diagnostics: opened.map((d) => ({ line: d.range.start.line, message: d.message })) }));
  diagnostics = nextDiagnostics();
  await client.sendNotification('textDocument/didChange',
    { textDocument: { uri, version: 2 }, contentChanges: [{ text: good }] });
  const fixed = await diagnostics;
  console.log(JSON.stringify({ step: 'fixed', diagnostics: fixed.map((d) => d.message) }));
  await client.stop();
  console.log(JSON.stringify({ step: 'stopped' }));
}

function fail(err) {
  console.error(`${err && err.stack ? err.stack : err}\nthe server's output:\n${log.join('')}`);
  process.exit(1);
}
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);

const timer = setTimeout(() => {
  console.error(`no answer from ${ttspec} lsp in 60 s; its output:\n${log.join('')}`);
  process.exit(2);
}, 60000);
session().then(() => {
  clearTimeout(timer);
  process.exit(0);
}, fail);
