// The ttspec extension for VS Code: the `.arch` language (grammar and configuration come from package.json),
// the language client that starts `ttspec lsp` over stdio, and the compile/plan/report commands, which run the
// ttspec CLI on the open spec and show what it prints in the "ttspec" output channel.
// Plain CommonJS: no build step; `vscode` is provided by the editor at run time.
'use strict';

const cp = require('child_process');
const path = require('path');
const vscode = require('vscode');
const { LanguageClient } = require('vscode-languageclient/node');

const LANGUAGE = 'ttspec-arch';
// ttspec/targets.py: DEVICE_TARGETS, and COMPILE_TARGETS = torch + those (tests/test_vscode_extension.py checks)
const DEVICE_TARGETS = ['n150', 'p100', 'p150', 'n300', 't3k', 'galaxy', 'p150x4', 'p150x8'];
const COMPILE_TARGETS = ['torch', ...DEVICE_TARGETS];

// What each command runs: `ttspec <name> SPEC --target T`; `report` compares several targets (`--target a,b`).
const COMMANDS = {
  compile: { targets: COMPILE_TARGETS, many: false, what: 'write the program for' },
  plan: { targets: DEVICE_TARGETS, many: false, what: 'plan the placement on' },
  report: { targets: DEVICE_TARGETS, many: true, what: 'model the speed on' },
};

let client = null;
let output = null;

function settings() {
  const c = vscode.workspace.getConfiguration('ttspec');
  return {
    path: String(c.get('path') || 'ttspec').trim() || 'ttspec',
    target: String(c.get('target') || '').trim(),
    server: c.get('server.enabled') !== false,
  };
}

// The server is `ttspec lsp`, spoken to over its stdin/stdout. No `transport` field: with one, the client
// would append `--stdio` to the arguments.
// The client runs it in the first workspace folder.
function serverOptions(executable) {
  const run = { command: executable, args: ['lsp'] };
  return { run, debug: run };
}

function clientOptions() {
  return {
    documentSelector: [
      { scheme: 'file', language: LANGUAGE },
      { scheme: 'untitled', language: LANGUAGE },
    ],
    outputChannel: output,
  };
}

async function startServer() {
  const s = settings();
  if (!s.server) return null;
  client = new LanguageClient('ttspec', 'ttspec language server', serverOptions(s.path), clientOptions());
  try {
    await client.start();
  } catch (err) {
    const message = `ttspec: could not start the language server \`${s.path} lsp\`: ${errorText(err)}. ` +
      'Set `ttspec.path` to the ttspec executable (with the `lsp` extra installed), or turn ' +
      '`ttspec.server.enabled` off.';
    output.appendLine(message);
    vscode.window.showErrorMessage(message);
  }
  return client;
}

async function stopServer() {
  const running = client;
  client = null;
  if (running) {
    try {
      await running.stop();
    } catch (err) {
      output.appendLine(`ttspec: stopping the language server: ${errorText(err)}`);
    }
  }
}

async function restartServer() {
  await stopServer();
  return startServer();
}

function errorText(err) {
  return err && err.message ? err.message : String(err);
}

// The spec a command works on: the file it was given (explorer menu, or a URI from a CodeLens), else the
// active editor's. The CLI reads the file, so an unsaved editor is saved first.
async function specFor(resource) {
  if (typeof resource === 'string') resource = vscode.Uri.parse(resource);
  if (resource && resource.fsPath) {
    const open = vscode.workspace.textDocuments.find((d) => d.uri.fsPath === resource.fsPath);
    if (open && open.isDirty) await open.save();
    return resource.fsPath;
  }
  const editor = vscode.window.activeTextEditor;
  const doc = editor && editor.document;
  if (!doc || (doc.languageId !== LANGUAGE && !doc.fileName.endsWith('.arch'))) {
    vscode.window.showErrorMessage('ttspec: open a .arch spec first');
    return null;
  }
  if (doc.isUntitled) {
    vscode.window.showErrorMessage('ttspec: save the spec to a .arch file first (the CLI reads it from disk)');
    return null;
  }
  if (doc.isDirty && !(await doc.save())) {
    vscode.window.showErrorMessage('ttspec: could not save the spec');
    return null;
  }
  return doc.uri.fsPath;
}

// A target the command can take: the one given (a CodeLens argument), else the `ttspec.target` setting, else
// one picked from a list (several for `report`). Undefined when the user dismisses the list.
async function chooseTarget(name, given) {
  const cmd = COMMANDS[name];
  const fits = (t) => t && t.split(',').every((x) => cmd.targets.includes(x.trim())) && (cmd.many || !t.includes(','));
  if (fits(given)) return given;
  const configured = settings().target;
  if (fits(configured)) return configured;
  const items = cmd.targets.map((t) => ({ label: t }));
  const picked = await vscode.window.showQuickPick(items, {
    title: `ttspec ${name}`,
    placeHolder: `the target to ${cmd.what}` + (cmd.many ? ' (one, or several to compare)' : '') +
      ' (the `ttspec.target` setting skips this)',
    canPickMany: cmd.many,
  });
  if (!picked) return undefined;
  const labels = (Array.isArray(picked) ? picked : [picked]).map((p) => p.label);
  return labels.length ? labels.join(',') : undefined;
}

function quote(arg) {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, "'\\''")}'`;
}

// Runs `ttspec <args>` in `cwd`, its output streamed into the channel; resolves to the exit code (null when it
// could not start). No shell: the arguments reach ttspec as they are.
function runCli(executable, args, cwd) {
  output.show(true);
  output.appendLine(`$ ${[executable, ...args].map(quote).join(' ')}`);
  return new Promise((resolve) => {
    let done = false;
    const finish = (code) => {
      if (!done) {
        done = true;
        resolve(code);
      }
    };
    let child;
    try {
      child = cp.spawn(executable, args, { cwd, env: process.env });
    } catch (err) {
      report(executable, err);
      finish(null);
      return;
    }
    child.stdout.on('data', (data) => output.append(data.toString()));
    child.stderr.on('data', (data) => output.append(data.toString()));
    child.on('error', (err) => {
      report(executable, err);
      finish(null);
    });
    child.on('close', (code) => {
      if (done) return;
      output.appendLine(code === 0 ? '' : `[ttspec exited with code ${code}]`);
      if (code !== 0) vscode.window.showErrorMessage(`ttspec ${args[0]} failed (exit code ${code}): see the ttspec output`);
      finish(code);
    });
  });
}

function report(executable, err) {
  const message = `ttspec: cannot run \`${executable}\` (${errorText(err)}); set \`ttspec.path\` to the ttspec executable`;
  output.appendLine(message);
  vscode.window.showErrorMessage(message);
}

// `ttspec.compile` / `ttspec.plan` / `ttspec.report`: (resource?: Uri | string, target?: string).
async function runCommand(name, resource, target) {
  const spec = await specFor(resource);
  if (!spec) return undefined;
  const chosen = await chooseTarget(name, typeof target === 'string' ? target : undefined);
  if (!chosen) return undefined;
  const folder = vscode.workspace.getWorkspaceFolder(vscode.Uri.file(spec));
  const cwd = folder ? folder.uri.fsPath : path.dirname(spec);
  return runCli(settings().path, [name, spec, '--target', chosen], cwd);
}

function activate(context) {
  output = vscode.window.createOutputChannel('ttspec');
  context.subscriptions.push(output);
  for (const name of Object.keys(COMMANDS)) {
    context.subscriptions.push(vscode.commands.registerCommand(`ttspec.${name}`,
      (resource, target) => runCommand(name, resource, target)));
  }
  context.subscriptions.push(vscode.commands.registerCommand('ttspec.restartServer', restartServer));
  context.subscriptions.push(vscode.workspace.onDidChangeConfiguration((e) => {
    if (e.affectsConfiguration('ttspec.path') || e.affectsConfiguration('ttspec.server.enabled')) restartServer();
  }));
  context.subscriptions.push({ dispose: () => { stopServer(); } });
  // Not awaited: the commands work while the server starts (or when it cannot).
  startServer();
}

function deactivate() {
  return stopServer();
}

module.exports = { activate, deactivate, COMPILE_TARGETS, DEVICE_TARGETS, LANGUAGE, serverOptions };
