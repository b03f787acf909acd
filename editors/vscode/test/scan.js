// Tokenizes .arch files with the extension's grammar (vscode-textmate, the engine VS Code highlights with) and
// prints what a real spec should never show: a token scoped invalid.illegal, or a keyword outside comments and
// strings that did not get a keyword scope. Exit status 1 if anything was found. tests/test_vscode_extension.py
// runs it on specs/ and the standard library. Usage: node scan.js FILE...
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const vsctm = require('vscode-textmate');
const oniguruma = require('vscode-oniguruma');

const ROOT = path.resolve(__dirname, '..');
const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const [grammarInfo] = manifest.contributes.grammars;
const grammarText = fs.readFileSync(path.join(ROOT, grammarInfo.path), 'utf8');
const keywordRules = JSON.parse(grammarText).repository.keywords.patterns;
const KEYWORDS = new Set(keywordRules.flatMap((r) => r.match.replace(/^\\b\(\?:|\)\\b$/g, '').split('|')));
const KEYWORD_SCOPE = /^(keyword|storage\.type|constant\.language)\./;

async function grammar() {
  const wasm = fs.readFileSync(require.resolve('vscode-oniguruma/release/onig.wasm')).buffer;
  await oniguruma.loadWASM(wasm);
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
      createOnigString: (s) => new oniguruma.OnigString(s),
    }),
    loadGrammar: async () => vsctm.parseRawGrammar(grammarText, grammarInfo.path),
  });
  return registry.loadGrammar(grammarInfo.scopeName);
}

function scan(g, file) {
  const problems = [];
  let stack = vsctm.INITIAL;
  fs.readFileSync(file, 'utf8').split(/\r?\n/).forEach((line, i) => {
    const r = g.tokenizeLine(line, stack);
    for (const t of r.tokens) {
      const text = line.slice(t.startIndex, t.endIndex);
      const where = `${file}:${i + 1}:${t.startIndex + 1}: ${JSON.stringify(text)} ${t.scopes.join(' ')}`;
      if (t.scopes.some((s) => s.startsWith('invalid.'))) problems.push(`invalid: ${where}`);
      // a short-form key (`family: llama`) is a name, not the keyword
      const plain = !t.scopes.some((s) => /^(comment|string|support\.type\.property-name)\./.test(s));
      for (const word of text.match(/[A-Za-z_][A-Za-z0-9_]*/g) || []) {
        if (plain && KEYWORDS.has(word) && !t.scopes.some((s) => KEYWORD_SCOPE.test(s))) {
          problems.push(`keyword without a keyword scope: ${where}`);
        }
      }
    }
    stack = r.ruleStack;
  });
  return problems;
}

grammar().then((g) => {
  const files = process.argv.slice(2);
  const problems = files.flatMap((f) => scan(g, f));
  for (const p of problems) console.log(p);
  console.log(`scanned ${files.length} files: ${problems.length} problems`);
  process.exit(problems.length ? 1 : 0);
});
