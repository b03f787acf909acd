#!/usr/bin/env node
// A stand-in for the `ttspec` executable (test/extension.test.js, test/packaged-client.js): prints its arguments
// and working directory (and writes the arguments to $FAKE_TTSPEC_LOG when set);
// a spec named fail.arch makes it print an error and exit 3, as the CLI does on a bad spec.
'use strict';
const path = require('path');
const args = process.argv.slice(2);
if (process.env.FAKE_TTSPEC_LOG) require('fs').writeFileSync(process.env.FAKE_TTSPEC_LOG, JSON.stringify(args));
console.log(`fake-ttspec argv: ${JSON.stringify(args)}`);
console.log(`fake-ttspec cwd: ${process.cwd()}`);
if (args[1] && path.basename(args[1]) === 'fail.arch') {
  console.error('fail.arch:1:1: error: told to fail');
  process.exit(3);
}
