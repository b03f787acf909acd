// Run by tests/test_vscode_extension.py on an unpacked .vsix: loads the packaged extension.js with the
// vscode-languageclient the .vsix carries (so the package is self-contained) and has that real client start
// its server process from the extension's server options, with test/fake-ttspec.js as `ttspec`, which logs
// the arguments it was started with. Usage: node packaged-client.js UNPACKED_VSIX_DIR LOG_FILE
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

require('./vscode-stub').install();

const [dir, log] = process.argv.slice(2);
const extensionDir = path.join(dir, 'extension');
const extension = require(path.join(extensionDir, 'extension.js'));
const clientPath = require.resolve('vscode-languageclient/node', { paths: [extensionDir] });
assert.ok(clientPath.startsWith(extensionDir + path.sep), `the client comes from outside the .vsix: ${clientPath}`);
const { LanguageClient } = require(clientPath);

const fake = path.join(__dirname, 'fake-ttspec.js');
process.env.FAKE_TTSPEC_LOG = log;
const client = new LanguageClient('ttspec', 'ttspec language server', extension.serverOptions(fake),
  { documentSelector: [{ language: extension.LANGUAGE }], outputChannel: { append() {}, appendLine() {} } });
client.createMessageTransports('utf-8').then(async () => {
  let args = null;
  for (let i = 0; i < 200 && args === null; i += 1) {
    try {
      args = JSON.parse(fs.readFileSync(log, 'utf8'));
    } catch {
      await new Promise((r) => setTimeout(r, 50));  // not started (or not written) yet
    }
  }
  assert.deepEqual(args, ['lsp']);
  console.log(`server started as: ttspec ${args.join(' ')}`);
  process.exit(0);
}, (err) => {
  console.error(err);
  process.exit(1);
});
