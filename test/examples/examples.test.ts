// examples/express.mjs, fastify.mjs and koa.mjs — each its own process (plain JavaScript importing
// 'setls', resolved to src/ here through the setls-source condition), on a fresh card, against curl:
// 200, the framework's JSON, TLS 1.3 as both curl and the handler's req.socket.getProtocol() saw it;
// SIGTERM stops each one cleanly (the card folder is let go).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initCard } from 'setls/card';
import { requirePeer } from '../interop/peers.js';
import { run } from '../interop/helpers.js';
import { within } from '../wait.js';

const root = mkdtempSync(join(tmpdir(), 'setls-examples-'));
const cardDir = join(root, 'card');
let ca = '';
before(async () => {
  ca = (await initCard({ cardDir })).caCertPath;
});
after(() => rmSync(root, { recursive: true, force: true }));

for (const name of ['express', 'fastify', 'koa'] as const) {
  test(`examples/${name}.mjs serves curl over TLS 1.3 through the card`, async (t) => {
    if (!requirePeer(t, 'curl')) return;
    const env: NodeJS.ProcessEnv = { ...process.env, SETLS_CARD_DIR: cardDir, PORT: '0' };
    delete env.SETLS_PIN;
    const p = spawn(process.execPath, ['--conditions=setls-source', '--import', 'tsx', `examples/${name}.mjs`], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    try {
      const port = await within(
        new Promise<number>((resolve, reject) => {
          p.stdout.on('data', (d: Buffer) => {
            out += d.toString();
            const m = new RegExp(`${name} on https://localhost:(\\d+)/`).exec(out);
            if (m) resolve(Number(m[1]));
          });
          p.on('exit', (code) => reject(new Error(`${name} exited ${code}: ${out}\n${err}`)));
        }),
        `${name} listening`,
        60_000,
      );
      const r = await run('curl', ['-sv', '--cacert', ca, '-w', '\n%{http_code}', `https://localhost:${port}/`]);
      assert.equal(r.code, 0, r.stderr);
      const [body, status] = r.stdout.split('\n');
      assert.equal(status, '200');
      assert.match(r.stderr, /SSL connection using TLSv1\.3/);
      const json = JSON.parse(body!) as { hello: string; protocol: string; cipher: string; secure?: boolean };
      assert.match(json.hello, new RegExp(`from ${name}`));
      assert.equal(json.protocol, 'TLSv1.3');
      assert.match(json.cipher, /^TLS_(AES_(128|256)_GCM_SHA(256|384)|CHACHA20_POLY1305_SHA256)$/);
      assert.ok(r.stderr.includes(json.cipher), `curl saw the suite the handler named (${json.cipher})`);
      if (name !== 'fastify') assert.equal(json.secure, true);
    } finally {
      const exited = once(p, 'exit');
      p.kill('SIGTERM');
      const [code] = (await within(exited, `${name} stopped`)) as [number | null];
      assert.equal(code, 0, err);
      assert.equal(existsSync(join(cardDir, 'lock')), false, 'the card folder is let go');
    }
  });
}
