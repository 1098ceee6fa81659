// The package as a user gets it: `npm pack` (which builds dist/ through `prepare`), then, in a fresh
// temporary project WITHOUT tsx or TypeScript, `npm install` of the tarball and express:
//   - the tarball holds dist/, bin/, docs/, README, LICENSE and the optional native sealer's source
//     and build script (native/) — no tests, benches, TypeScript sources or keys;
//   - that build script, run by hand in the installed package, builds the sealer there;
//   - `npx setls --help` and `npx setls card init` run from the built code;
//   - a plain ESM JavaScript app serves Express over the card: curl gets 200 over TLS 1.3, and the
//     handler sees req.socket.getProtocol() and the cipher's IANA name; internals are not exported;
//   - a strict TypeScript consumer (strict, exactOptionalPropertyTypes, noUncheckedIndexedAccess,
//     skipLibCheck off) type-checks against the shipped .d.ts with the repo's tsc.
// The install uses --prefer-offline (npm's cache, filled by the repo's own install) and
// --ignore-scripts: setls's own install script only builds its optional native sealer (checked
// apart, below; without it records are sealed with node:crypto), and its native optional parts
// (better-sqlite3 for the operator, smartcard for PC/SC) are loaded only when used — building them
// from source here would take minutes and prove nothing about the package.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requirePeer } from '../interop/peers.js';
import { run } from '../interop/helpers.js';
import { within } from '../wait.js';

const repo = process.cwd();
const root = mkdtempSync(join(tmpdir(), 'setls-package-'));
const project = join(root, 'app');
after(() => rmSync(root, { recursive: true, force: true }));

/** The environment of a user's shell: nothing of this test runner (no tsx loader, no source mode). */
function userEnv(): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env };
  for (const k of ['SETLS_FROM_SOURCE', 'NODE_TEST_CONTEXT', 'NODE_OPTIONS', 'SETLS_PIN', 'SETLS_LOG_FORMAT']) delete e[k];
  return e;
}

interface Ran {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

/** Runs a command to completion (bounded: a hung npm fails the test, it does not hang CI). */
function sh(cmd: string, args: readonly string[], cwd: string, timeoutMs: number): Promise<Ran> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { cwd, env: userEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Math.round(performance.now() - t0) });
    });
  });
}

let tarball = '';
let files: string[] = [];
const timings: Record<string, number> = {};

before(async () => {
  const packed = await sh('npm', ['pack', '--json', '--pack-destination', root], repo, 240_000);
  timings['npm pack (prepare: tsc build)'] = packed.ms;
  assert.equal(packed.code, 0, packed.stderr);
  const json = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as { filename: string; files: { path: string }[]; size: number }[];
  tarball = join(root, json[0]!.filename);
  files = json[0]!.files.map((f) => f.path);
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'setls-consumer', private: true, type: 'module' }, null, 2));
  const express = (JSON.parse(readFileSync(join(repo, 'node_modules/express/package.json'), 'utf8')) as { version: string }).version;
  const installed = await sh('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--prefer-offline', tarball, `express@${express}`], project, 240_000);
  timings['npm install (tarball + express)'] = installed.ms;
  assert.equal(installed.code, 0, installed.stderr);
});

after(() => console.log(`# package test timings (ms): ${JSON.stringify(timings)}`));

test('the tarball holds the built package, docs, README and LICENSE — no tests, benches, sources or keys', async () => {
  assert.ok(files.length > 0);
  for (const need of ['package.json', 'README.md', 'LICENSE', 'bin/setls.mjs', 'dist/api/index.js', 'dist/api/index.d.ts', 'dist/cli/main.js', 'dist/host/index.d.ts', 'docs/api.md', 'dist/operator/console/static/index.html']) {
    assert.ok(files.includes(need), `${need} is in the tarball`);
  }
  for (const f of files) {
    // the operator console's page, script and style are served from dist (scripts/build.mjs copies them)
    assert.match(f, /^(dist\/.+\.(js|d\.ts|js\.map)|dist\/operator\/console\/static\/[\w.-]+\.(html|css)|bin\/setls\.mjs|docs\/[\w-]+\.md|native\/(binding\.gyp|setls_aead\.c|build\.mjs)|README\.md|LICENSE|package\.json)$/, `unexpected file in the tarball: ${f}`);
    assert.doesNotMatch(f, /(^|\/)(test|tests|bench|src|examples|fixtures|scripts)\//, f);
    assert.doesNotMatch(f, /\.(key|pem|pin|tsbuildinfo)$/, f);
  }
  // No key material inside any file either (extracted and scanned).
  const x = join(root, 'extracted');
  mkdirSync(x);
  const tar = await run('tar', ['-xzf', tarball, '-C', x]);
  assert.equal(tar.code, 0, tar.stderr);
  const walk = (d: string): string[] => readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : [join(d, n)]));
  for (const f of walk(x)) assert.doesNotMatch(readFileSync(f, 'latin1'), /-----BEGIN [A-Z ]*PRIVATE KEY-----/, f);
  // Installed without the development tools: no tsx, no TypeScript, no esbuild.
  for (const dev of ['tsx', 'typescript', 'esbuild']) assert.equal(existsSync(join(project, 'node_modules', dev)), false, `${dev} is not installed`);
});

test('the native sealer builds in the installed package (its install script, run by hand)', async () => {
  for (const need of ['native/binding.gyp', 'native/setls_aead.c', 'native/build.mjs']) assert.ok(files.includes(need), `${need} is in the tarball`);
  const pkg = join(project, 'node_modules', 'setls');
  assert.equal(existsSync(join(pkg, 'native', 'build')), false, '--ignore-scripts: not built by the install');
  const built = await sh(process.execPath, ['native/build.mjs', '--strict'], pkg, 240_000);
  timings['native sealer build'] = built.ms;
  assert.equal(built.code, 0, built.stderr);
  assert.ok(existsSync(join(pkg, 'native', 'build', 'Release', 'setls_aead.node')));
});

test('npx setls --help and npx setls card init run from the built code (no tsx)', async () => {
  const help = await sh('npx', ['--no-install', 'setls', '--help'], project, 60_000);
  timings['npx setls --help'] = help.ms;
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /Usage: setls/);
  assert.match(help.stdout, /card/);
  const init = await sh('npx', ['--no-install', 'setls', 'card', 'init', '--card-dir', '.setls/card'], project, 60_000);
  assert.equal(init.code, 0, init.stderr);
  assert.match(init.stdout, /card created in/);
});

test('a plain ESM JavaScript app serves Express over the card: curl gets 200 over TLS 1.3', async (t) => {
  if (!requirePeer(t, 'curl')) return;
  writeFileSync(
    join(project, 'app.mjs'),
    `import express from 'express';
import { createServer } from 'setls';

const internals = await import('setls/dist/host/tandem.js').then(() => 'exported', (e) => e.code);
const app = express();
app.get('/', (req, res) => res.json({ protocol: req.socket.getProtocol(), cipher: req.socket.getCipher()?.name, secure: req.secure, internals }));
const server = createServer({ cardDir: '.setls/card' }, app);
server.on('error', (e) => { console.error(e.code, e.message); process.exit(1); });
server.listen(0, '127.0.0.1', () => console.log('listening on ' + server.address().port));
process.once('SIGTERM', () => server.close(() => process.exit(0)));
`,
  );
  const p: ChildProcess = spawn(process.execPath, ['app.mjs'], { cwd: project, env: userEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  try {
    const port = await within(
      new Promise<number>((resolve, reject) => {
        p.stdout!.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /listening on (\d+)/.exec(out);
          if (m) resolve(Number(m[1]));
        });
        p.on('exit', (code) => reject(new Error(`app exited ${code}: ${err}`)));
      }),
      'the app listening',
      60_000,
    );
    const r = await run('curl', ['-sv', '--cacert', join(project, '.setls/ca/ca.crt'), '-w', '\n%{http_code}', `https://localhost:${port}/`]);
    assert.equal(r.code, 0, r.stderr);
    const [body, status] = r.stdout.split('\n');
    assert.equal(status, '200');
    assert.match(r.stderr, /SSL connection using TLSv1\.3/);
    const json = JSON.parse(body!) as { protocol: string; cipher: string; secure: boolean; internals: string };
    assert.equal(json.protocol, 'TLSv1.3');
    assert.match(json.cipher, /^TLS_[A-Z0-9_]+$/);
    assert.ok(r.stderr.includes(json.cipher), 'curl names the same suite');
    assert.equal(json.secure, true);
    assert.equal(json.internals, 'ERR_PACKAGE_PATH_NOT_EXPORTED', 'internals are not part of the package');
  } finally {
    const exited = once(p, 'exit');
    p.kill('SIGTERM');
    await within(exited, 'app stopped');
  }
});

test('a strict TypeScript consumer type-checks against the shipped .d.ts (the repo\'s tsc, skipLibCheck off)', async () => {
  writeFileSync(
    join(project, 'consumer.ts'),
    `import { createServer, openCard, asSeTlsSocket, SetlsError, type ServerOptions, type SetlsServer } from 'setls';
import { TlsTandem, CardClient, type RecordLayer } from 'setls/host';
import { createServer as createCoapServer } from 'setls/coap';
import { initCard } from 'setls/card';
import { PcscTransport } from 'setls/pcsc';

const options: ServerOptions = { cardDir: '.setls/card', backlog: 10 };
const server: SetlsServer = createServer(options, (req, res) => {
  const s = asSeTlsSocket(req.socket);
  const protocol: string | null = s?.getProtocol() ?? null;
  const cipher: string | undefined = s?.getCipher()?.name;
  res.end(JSON.stringify({ protocol, cipher, reused: s?.isSessionReused() }));
});
server.on('error', (e: NodeJS.ErrnoException) => console.error(e.code));
server.listen(0, '127.0.0.1', () => server.close());
createCoapServer({ cardDir: '.setls/card' }, (req, res) => {
  res.code = '2.05';
  res.setOption('Content-Format', 'text/plain');
  res.end(\`\${req.method} \${req.url}\`);
});
export async function lower(pin: string): Promise<void> {
  const card = await openCard({ cardDir: '.setls/card' });
  const tandem = new TlsTandem({ transport: card.transport, pin, handshakeTimeoutMs: 10_000 });
  try {
    await tandem.start();
    const layer: RecordLayer | undefined = undefined;
    void layer;
    await new CardClient(card.transport).select();
  } catch (e) {
    if (e instanceof SetlsError) console.error(e.code);
  } finally {
    await tandem.close();
    await card.close();
  }
}
void initCard;
void PcscTransport;
// @ts-expect-error cardDir is a string
createServer({ cardDir: 42 });
// @ts-expect-error internals are not exported
void import('setls/dist/host/tandem.js');
`,
  );
  writeFileSync(
    join(project, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        module: 'nodenext',
        moduleResolution: 'nodenext',
        target: 'es2022',
        noEmit: true,
        noUncheckedIndexedAccess: true,
        exactOptionalPropertyTypes: true,
        skipLibCheck: false,
        types: ['node'],
        typeRoots: [join(repo, 'node_modules/@types')],
      },
      files: ['consumer.ts'],
    }),
  );
  const tsc = await sh(process.execPath, [join(repo, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], project, 120_000);
  timings['tsc on the consumer'] = tsc.ms;
  assert.equal(tsc.code, 0, tsc.stdout + tsc.stderr);
});
