// Every code block of docs/api.md runs, in order, in one empty folder where the package is
// installed as a user has it (node_modules/setls → this checkout, its `setls` bin on PATH; express
// beside it): `sh` blocks with bash (set -e), `js` blocks as ESM programs under node — with the
// setls-source condition and tsx, so they run against src/ — each to a clean exit 0. An `output`
// block shows what the block before it prints: each of its lines must match a line of that output,
// in order (`…` stands for anything: ports, serials, paths). A block in any other language fails
// the test: the page may only show code that runs. No SETLS_PIN: the PIN comes from the files the
// first block makes.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { codeBlocks, outputProblems } from './markdown.js';
import { requirePeer } from '../interop/peers.js';

const repo = process.cwd();
const blocks = codeBlocks(readFileSync('docs/api.md', 'utf8'));
const work = mkdtempSync(join(tmpdir(), 'setls-apimd-'));
after(() => rmSync(work, { recursive: true, force: true }));

mkdirSync(join(work, 'node_modules/.bin'), { recursive: true });
symlinkSync(repo, join(work, 'node_modules/setls'), 'dir');
symlinkSync(join(repo, 'node_modules/express'), join(work, 'node_modules/express'), 'dir');
symlinkSync(join(repo, 'node_modules/tsx'), join(work, 'node_modules/tsx'), 'dir'); // the test's loader, not the page's
symlinkSync(join(repo, 'bin/setls.mjs'), join(work, 'node_modules/.bin/setls'));
chmodSync(join(repo, 'bin/setls.mjs'), 0o755);
writeFileSync(join(work, 'package.json'), JSON.stringify({ name: 'api-md', private: true, type: 'module' }));

function env(): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, SETLS_FROM_SOURCE: '1', PATH: `${join(work, 'node_modules/.bin')}:${process.env.PATH}` };
  for (const k of ['SETLS_PIN', 'NODE_TEST_CONTEXT', 'SETLS_LOG_FORMAT']) delete e[k];
  return e;
}

function runBlock(cmd: string, args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { cwd: work, env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 90_000); // a block that never ends fails, it does not hang CI
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

test('docs/api.md has code blocks, each in a language this test runs or checks', () => {
  assert.ok(blocks.length >= 10, `${blocks.length} blocks`);
  for (const [i, b] of blocks.entries()) {
    assert.ok(['sh', 'js', 'output'].includes(b.lang), `docs/api.md:${b.line}: a \`${b.lang || '(no language)'}\` block cannot be run; use sh or js (or output after one)`);
    if (b.lang === 'output') assert.ok(i > 0 && blocks[i - 1]!.lang !== 'output', `docs/api.md:${b.line}: an output block follows the block that prints it`);
  }
  assert.ok(blocks.filter((b) => b.lang === 'output').length >= 6, 'the page shows what its programs print');
});

for (const [i, b] of blocks.entries()) {
  if (b.lang === 'output') continue; // checked with the block before it
  const shown = blocks[i + 1]?.lang === 'output' ? blocks[i + 1] : undefined;
  test(`docs/api.md:${b.line} (${b.lang}) runs${shown ? ` and prints what docs/api.md:${shown.line} shows` : ''}`, async (t) => {
    if (/coap-client-openssl/.test(b.code) && !requirePeer(t, 'coap-client-openssl')) return;
    const file = join(work, `block-${i}.${b.lang === 'sh' ? 'sh' : 'mjs'}`);
    writeFileSync(file, b.code + '\n');
    const r =
      b.lang === 'sh'
        ? await runBlock('bash', ['-euo', 'pipefail', file])
        : await runBlock(process.execPath, ['--conditions=setls-source', '--import', 'tsx', file]);
    assert.equal(r.code, 0, `docs/api.md:${b.line} exited ${r.code}:\n${r.out}`);
    if (shown) assert.deepEqual(outputProblems(shown.code, r.out), [], `docs/api.md:${shown.line} vs what docs/api.md:${b.line} printed:\n${r.out}`);
    t.diagnostic(r.out.trim().split('\n').slice(0, 6).join(' | '));
  });
}
