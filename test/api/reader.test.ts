// createServer({ reader, cardDir }) (import 'setls'): the card in a PC/SC reader through a REAL pcscd
// (vsmartcard's vpcd, the emulated card served by `setls card serve` in pcscd's private network
// namespace: test/pcsc/harness.ts). cardDir only names the PIN file. curl over TLS 1.3 through
// pcscd, the handler's socket names the protocol and the suite; a reader that is not there is
// 'error' (ERR_TRANSPORT_…), never 'listening'. Skips locally without root/pcscd, fails under CI.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { createServer, asSeTlsSocket } from 'setls';
import { initCard } from 'setls/card';
import { inCI } from '../ci.js';
import { PcscLab, READER, pcscPrerequisites } from '../pcsc/harness.js';
import { run } from '../interop/helpers.js';
import { within } from '../wait.js';

const reason = await pcscPrerequisites();
if (reason && inCI()) throw new Error(`PC/SC tests cannot run in CI: ${reason}`);
const skip = reason ? `PC/SC path unavailable: ${reason}` : false;

const root = mkdtempSync(join(tmpdir(), 'setls-api-reader-'));
const cardDir = join(root, 'card');
let ca = '';
let lab: PcscLab | undefined;

before(async () => {
  if (skip) return;
  ca = (await initCard({ cardDir })).caCertPath;
  lab = new PcscLab(root, cardDir);
  await lab.start();
});

after(async () => {
  await lab?.stop();
  rmSync(root, { recursive: true, force: true });
});

test("createServer({ reader }): curl gets 200 over TLS 1.3 through pcscd; the handler sees 'TLSv1.3' and the suite's IANA name", { skip }, async () => {
  const server = createServer({ reader: READER, cardDir }, (req, res) => {
    const s = asSeTlsSocket(req.socket)!;
    res.end(`${s.getProtocol()} ${s.getCipher()?.name}`);
  });
  server.listen(0, '127.0.0.1');
  await within(once(server, 'listening'), 'listening through pcscd', 30_000);
  try {
    const port = (server.address() as AddressInfo).port;
    const r = await run('curl', ['-sS', '--max-time', '30', '--cacert', ca, '--tls13-ciphers', 'TLS_CHACHA20_POLY1305_SHA256', `https://localhost:${port}/`], { timeoutMs: 40_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'TLSv1.3 TLS_CHACHA20_POLY1305_SHA256');
  } finally {
    await within(new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve()))), 'close', 30_000);
  }
});

test("createServer({ reader }) naming a reader that is not there: 'error' with a transport code, not 'listening'", { skip }, async () => {
  const server = createServer({ reader: 'No Such Reader 99', cardDir }, (_req, res) => res.end());
  let listened = false;
  server.on('listening', () => (listened = true));
  server.listen(0, '127.0.0.1');
  const [err] = (await within(once(server, 'error'), "'error' for a missing reader", 30_000)) as [NodeJS.ErrnoException];
  assert.match(err.code ?? '', /^ERR_TRANSPORT_/, err.message);
  assert.equal(listened, false);
  assert.equal(server.address(), null);
});
