// The extension's JavaScript below VS Code: `vscode` and the language client are stand-ins that record what
// the extension asks of them (a real VS Code cannot run here: it is a download). The CLI commands run a real
// process, a stand-in `ttspec` (test/fake-ttspec.js) that prints the arguments it was given.
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const Module = require('node:module');
const os = require('node:os');
const path = require('node:path');
const { after, test } = require('node:test');

const ROOT = path.resolve(__dirname, '..');
const MANIFEST = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const FAKE_TTSPEC = path.join(__dirname, 'fake-ttspec.js');

// ---------------------------------------------------------------- stand-ins for `vscode` and the client
function fakeVscode(config, editor) {
  const calls = { commands: {}, errors: [], infos: [], picks: [], outputs: [], configListeners: [] };
  const channel = (name) => {
    const ch = { name, text: '', shown: 0, append: (t) => { ch.text += t; }, appendLine: (t) => { ch.text += `${t}\n`; },
      show: () => { ch.shown += 1; }, dispose: () => {} };
    calls.outputs.push(ch);
    return ch;
  };
  const uri = (p) => ({ fsPath: p, scheme: 'file', toString: () => `file://${p}` });
  const vscode = {
    Uri: { file: uri, parse: (s) => uri(s.replace(/^file:\/\//, '')) },
    window: {
      activeTextEditor: editor,
      createOutputChannel: channel,
      showErrorMessage: (m) => { calls.errors.push(m); return Promise.resolve(); },
      showInformationMessage: (m) => { calls.infos.push(m); return Promise.resolve(); },
      showQuickPick: (items, options) => {
        calls.picks.push({ items: items.map((i) => i.label), options });
        const answer = calls.answer;
        return Promise.resolve(answer === undefined ? undefined : answer(items, options));
      },
    },
    commands: {
      registerCommand: (id, fn) => {
        assert.ok(!(id in calls.commands), `${id} registered twice`);
        calls.commands[id] = fn;
        return { dispose: () => {} };
      },
    },
    workspace: {
      workspaceFolders: undefined,
      textDocuments: [],
      getConfiguration: (section) => {
        assert.equal(section, 'ttspec');
        return { get: (key) => config[key] };
      },
      getWorkspaceFolder: () => undefined,
      onDidChangeConfiguration: (fn) => { calls.configListeners.push(fn); return { dispose: () => {} }; },
    },
  };
  return { vscode, calls };
}

function fakeClientModule() {
  const made = [];
  class LanguageClient {
    constructor(id, name, serverOptions, clientOptions) {
      Object.assign(this, { id, name, serverOptions, clientOptions, started: 0, stopped: 0 });
      made.push(this);
    }

    start() { this.started += 1; return Promise.resolve(); }

    stop() { this.stopped += 1; return Promise.resolve(); }
  }
  return { module: { LanguageClient }, made };
}

// Loads extension.js afresh with the stand-ins in place of `vscode` and `vscode-languageclient/node`.
function load(config = {}, editor = undefined) {
  const { vscode, calls } = fakeVscode(config, editor);
  const client = fakeClientModule();
  const original = Module._load;
  Module._load = function (request, ...rest) {
    if (request === 'vscode') return vscode;
    if (request === 'vscode-languageclient/node') return client.module;
    return original.call(this, request, ...rest);
  };
  const file = require.resolve(path.join(ROOT, MANIFEST.main));
  delete require.cache[file];
  try {
    const extension = require(file);
    return { extension, calls, clients: client.made, vscode };
  } finally {
    Module._load = original;
  }
}

function activated(config, editor) {
  const loaded = load(config, editor);
  const context = { subscriptions: [] };
  loaded.extension.activate(context);
  return { ...loaded, context };
}

function specEditor(file, { dirty = false, untitled = false } = {}) {
  const document = {
    uri: { fsPath: file, scheme: untitled ? 'untitled' : 'file' },
    fileName: file,
    languageId: 'ttspec-arch',
    isDirty: dirty,
    isUntitled: untitled,
    saved: 0,
    save() { this.saved += 1; this.isDirty = false; return Promise.resolve(true); },
  };
  return { document };
}

const tmpDirs = [];
after(() => tmpDirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

function tmpSpec() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ttspec-vscode-'));
  tmpDirs.push(dir);
  const file = path.join(dir, 'my spec.arch');
  fs.writeFileSync(file, 'model m\n');
  return file;
}

// ---------------------------------------------------------------- the language client
test('activate starts `ttspec lsp` over stdio for .arch documents', () => {
  const { clients, context } = activated({});
  assert.equal(clients.length, 1);
  const [client] = clients;
  assert.equal(client.id, 'ttspec');
  for (const how of ['run', 'debug']) {
    assert.equal(client.serverOptions[how].command, 'ttspec');
    assert.deepEqual(client.serverOptions[how].args, ['lsp']);
    // a `transport` would make vscode-languageclient append `--stdio`; none: the command line is `ttspec lsp`
    assert.equal(client.serverOptions[how].transport, undefined);
  }
  assert.deepEqual(client.clientOptions.documentSelector.map((s) => s.language), ['ttspec-arch', 'ttspec-arch']);
  assert.deepEqual(client.clientOptions.documentSelector.map((s) => s.scheme), ['file', 'untitled']);
  assert.equal(client.started, 1);
  assert.ok(context.subscriptions.length >= 5);
});

test('ttspec.path names the server executable', () => {
  const { clients } = activated({ path: '/opt/venv/bin/ttspec' });
  assert.equal(clients[0].serverOptions.run.command, '/opt/venv/bin/ttspec');
  assert.deepEqual(clients[0].serverOptions.run.args, ['lsp']);
});

test('ttspec.server.enabled = false starts no server; the commands are still there', () => {
  const { clients, calls } = activated({ 'server.enabled': false });
  assert.equal(clients.length, 0);
  assert.ok('ttspec.compile' in calls.commands);
});

test('changing ttspec.path restarts the server with the new executable', async () => {
  const config = {};
  const { clients, calls } = activated(config);
  config.path = '/other/ttspec';
  calls.configListeners[0]({ affectsConfiguration: (k) => k === 'ttspec.path' });
  await new Promise((r) => setImmediate(r));
  assert.equal(clients.length, 2);
  assert.equal(clients[0].stopped, 1);
  assert.equal(clients[1].serverOptions.run.command, '/other/ttspec');
});

// ---------------------------------------------------------------- commands and the manifest
test('activate registers the commands package.json declares, all prefixed ttspec.', () => {
  const { calls } = activated({});
  const declared = MANIFEST.contributes.commands.map((c) => c.command).sort();
  assert.deepEqual(Object.keys(calls.commands).sort(), declared);
  for (const id of ['ttspec.compile', 'ttspec.plan', 'ttspec.report']) assert.ok(declared.includes(id), id);
  for (const c of MANIFEST.contributes.commands) {
    assert.match(c.command, /^ttspec\./);
    assert.equal(c.category, 'ttspec');
  }
});

test('the manifest: language, grammar, settings and entry point agree', () => {
  const [lang] = MANIFEST.contributes.languages;
  const [grammar] = MANIFEST.contributes.grammars;
  const { extension } = load();
  assert.equal(lang.id, extension.LANGUAGE);
  assert.deepEqual(lang.extensions, ['.arch']);
  assert.equal(grammar.language, lang.id);
  const tm = JSON.parse(fs.readFileSync(path.join(ROOT, grammar.path), 'utf8'));
  assert.equal(tm.scopeName, grammar.scopeName);
  JSON.parse(fs.readFileSync(path.join(ROOT, lang.configuration), 'utf8'));
  assert.deepEqual(MANIFEST.activationEvents, [`onLanguage:${lang.id}`]);
  const props = MANIFEST.contributes.configuration.properties;
  assert.equal(props['ttspec.path'].default, 'ttspec');
  assert.equal(props['ttspec.target'].default, '');
  assert.ok(Object.keys(props).every((k) => k.startsWith('ttspec.')));
  assert.ok(MANIFEST.dependencies['vscode-languageclient']);
});

test('compile runs `ttspec compile SPEC --target T` with the configured target', async () => {
  const spec = tmpSpec();
  const editor = specEditor(spec, { dirty: true });
  const { calls } = activated({ path: FAKE_TTSPEC, target: 'n150' }, editor);
  const code = await calls.commands['ttspec.compile']();
  assert.equal(code, 0);
  assert.equal(editor.document.saved, 1, 'an unsaved spec is saved before the CLI reads it');
  assert.equal(calls.picks.length, 0);
  const out = calls.outputs[0].text;
  assert.ok(out.includes(`fake-ttspec argv: ${JSON.stringify(['compile', spec, '--target', 'n150'])}`), out);
  assert.ok(out.includes(`fake-ttspec cwd: ${path.dirname(spec)}`), out);
  assert.deepEqual(calls.errors, []);
});

test('without a target setting the command asks; plan offers device targets only', async () => {
  const spec = tmpSpec();
  const { calls } = activated({ path: FAKE_TTSPEC, target: 'torch' }, specEditor(spec));
  calls.answer = (items) => items.find((i) => i.label === 't3k');
  assert.equal(await calls.commands['ttspec.plan'](), 0);
  assert.equal(calls.picks.length, 1);
  assert.deepEqual(calls.picks[0].items, ['n150', 'p100', 'p150', 'n300', 't3k', 'galaxy', 'p150x4', 'p150x8']);
  assert.ok(calls.outputs[0].text.includes(JSON.stringify(['plan', spec, '--target', 't3k'])));

  calls.answer = (items) => items[0];
  assert.equal(await calls.commands['ttspec.compile'](), 0, 'torch is a compile target: no question');
  assert.equal(calls.picks.length, 1);
  assert.ok(calls.outputs[0].text.includes(JSON.stringify(['compile', spec, '--target', 'torch'])));
});

test('report takes several targets; a dismissed list runs nothing', async () => {
  const spec = tmpSpec();
  const { calls } = activated({ path: FAKE_TTSPEC }, specEditor(spec));
  calls.answer = (items, options) => {
    assert.equal(options.canPickMany, true);
    return items.filter((i) => ['n150', 'n300'].includes(i.label));
  };
  assert.equal(await calls.commands['ttspec.report'](), 0);
  assert.ok(calls.outputs[0].text.includes(JSON.stringify(['report', spec, '--target', 'n150,n300'])));
  calls.answer = undefined;
  const before = calls.outputs[0].text;
  assert.equal(await calls.commands['ttspec.compile'](), undefined);
  assert.equal(calls.outputs[0].text, before);
});

test('a command given a file and a target (explorer menu, CodeLens) runs on that file', async () => {
  const spec = tmpSpec();
  const { calls, vscode } = activated({ path: FAKE_TTSPEC });
  assert.equal(await calls.commands['ttspec.report'](vscode.Uri.file(spec), 'p150,galaxy'), 0);
  assert.ok(calls.outputs[0].text.includes(JSON.stringify(['report', spec, '--target', 'p150,galaxy'])));
  assert.equal(calls.picks.length, 0);
});

test('a failing CLI and a missing executable are reported', async () => {
  const spec = tmpSpec();
  const failing = activated({ path: FAKE_TTSPEC, target: 'n150' }, specEditor(spec.replace('my spec', 'fail')));
  assert.equal(await failing.calls.commands['ttspec.compile'](), 3);
  assert.match(failing.calls.errors[0], /ttspec compile failed \(exit code 3\)/);
  assert.ok(failing.calls.outputs[0].text.includes('error: told to fail'));

  const missing = activated({ path: '/nonexistent/ttspec', target: 'n150', 'server.enabled': false }, specEditor(spec));
  assert.equal(await missing.calls.commands['ttspec.compile'](), null);
  assert.match(missing.calls.errors[0], /cannot run `\/nonexistent\/ttspec`.*ENOENT.*ttspec\.path/);
});

test('no spec open, or an unsaved new buffer: an error, nothing runs', async () => {
  const none = activated({ path: FAKE_TTSPEC, target: 'n150' });
  assert.equal(await none.calls.commands['ttspec.plan'](), undefined);
  assert.match(none.calls.errors[0], /open a \.arch spec/);
  const untitled = activated({ path: FAKE_TTSPEC, target: 'n150' }, specEditor('Untitled-1', { untitled: true }));
  assert.equal(await untitled.calls.commands['ttspec.plan'](), undefined);
  assert.match(untitled.calls.errors[0], /save the spec/);
});
