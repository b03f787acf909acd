// A stand-in for VS Code's `vscode` module, as far as vscode-languageclient's LanguageClient reads it when it is
// made, started and stopped outside VS Code: named members hold plain values (what goes into the `initialize`
// request must serialize), any other member is a callable stub. Used by packaged-client.js and session.js.
'use strict';

const Module = require('node:module');

const handler = {
  get: (t, p) => (p in t ? t[p] : (t[p] = new Proxy(function () {}, handler))),
  construct: () => new Proxy({}, handler),
  apply: () => new Proxy(function () {}, handler),
};
const stub = (members) => new Proxy(members, handler);

const vscode = stub({
  version: '1.95.0',
  env: stub({ appName: 'vscode-stub', language: 'en', machineId: 'stub', sessionId: 'stub', uiKind: 1 }),
  workspace: stub({
    workspaceFolders: undefined,
    rootPath: undefined,
    name: undefined,
    workspaceFile: undefined,
    textDocuments: [],
    getConfiguration: () => stub({ get: (key, fallback) => fallback }),
  }),
  window: stub({ visibleTextEditors: [], activeTextEditor: undefined, state: { focused: true } }),
  extensions: stub({ all: [] }),
});

// Makes `require('vscode')` give the stand-in.
function install() {
  const load = Module._load;
  Module._load = function (request, ...rest) {
    return request === 'vscode' ? vscode : load.call(this, request, ...rest);
  };
}

module.exports = { install, vscode };
