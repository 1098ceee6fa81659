#!/usr/bin/env node
/**
 * Builds the optional native AEAD sealer (native/setls_aead.c → native/build/Release/setls_aead.node)
 * with node-gyp, against Node's own headers and the OpenSSL inside the node binary. Run by
 * `npm install` / `npm ci` (the package's "install" script, also in an app that installs setls) and
 * by hand (`npm run build:native`).
 *
 * The sealer is an accelerator, never a requirement: when no compiler, no node-gyp or no headers are
 * at hand this prints why and exits 0, and setls seals records with node:crypto instead
 * (src/tls/record/native-seal.ts). `SETLS_NATIVE=0` skips the build; `--strict` makes a failed build
 * exit 1 (CI). Uses the node-gyp npm hands to its scripts (npm_config_node_gyp), else npm's own beside
 * this node, else one on PATH.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = dirname(fileURLToPath(import.meta.url));
const strict = process.argv.includes('--strict');
const say = (m) => console.error(`setls native sealer: ${m}`);

function give(reason) {
  if (strict) {
    say(`NOT built: ${reason}`);
    process.exit(1);
  }
  say(`not built (${reason}); records are sealed with node:crypto instead`);
  process.exit(0);
}

if (process.env.SETLS_NATIVE === '0') give('SETLS_NATIVE=0');
if (!existsSync(join(dir, 'binding.gyp'))) give('native/binding.gyp is missing');

// npm's own node-gyp: the one npm names to its scripts, else the one beside this node's npm
const gyp = [process.env.npm_config_node_gyp, join(process.execPath, '..', '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')].find((f) => f && existsSync(f));
const [cmd, pre] = gyp ? [process.execPath, [gyp]] : ['node-gyp', []];
// Node's headers where the distribution installs them (nodedir): no download needed
const args = [...pre, 'rebuild', '--release', '--loglevel=warn'];
if (!process.env.npm_config_nodedir && existsSync(join(process.execPath, '..', '..', 'include', 'node', 'node_api.h'))) {
  args.push(`--nodedir=${join(process.execPath, '..', '..')}`);
}
const r = spawnSync(cmd, args, { cwd: dir, stdio: ['ignore', 'inherit', 'inherit'], timeout: 300_000 });
if (r.error) give(`${cmd}: ${r.error.message}`);
if (r.status !== 0) give(`node-gyp exited ${r.status ?? r.signal}`);
if (!existsSync(join(dir, 'build', 'Release', 'setls_aead.node'))) give('node-gyp reported success but left no setls_aead.node');
say('built native/build/Release/setls_aead.node');
