// End to end through the real emulated card (src/card) and its TLS engine: personalisation through
// CardClient (operator PIN, GENERATE-KEY, GET-CSR signed by a throwaway CA, PUT-CHAIN), then
// TlsTandem.listen and Node's own TLS client. Tests may import card code; src/host may not.
import 'reflect-metadata';
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { createHash, randomBytes, webcrypto } from 'node:crypto';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import http from 'node:http';
import https from 'node:https';
import * as x509 from '@peculiar/x509';
import { EmulatedCard } from '../../src/card/index.js';
import { CardClient, TlsTandem, SeTlsSocket, type TlsTandemOptions } from '../../src/host/index.js';
import { InProcessTransport, TracingTransport } from '../../src/transport/index.js';
import { waitUntil } from '../wait.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const PIN = '123456';
const OPERATOR = '87654321';
let root: string;
let card: EmulatedCard;
let caPem: string;
const live: TlsTandem[] = [];

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'setls-host-e2e-'));
  card = EmulatedCard.create({ dir: join(root, 'card'), masterKey: randomBytes(32), userPin: PIN, operatorPin: OPERATOR, puk: '11223344' });
  const client = new CardClient(new InProcessTransport((a) => card.process(a)), { extended: false }); // short APDUs: chains exercised
  assert.equal(await client.select(), 'setls/1');
  await client.verifyPin(OPERATOR, 'operator');
  const spki = await client.generateKey('web');
  const csrDer = await client.getCsr({ label: 'web', commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const csr = new x509.Pkcs10CertificateRequest(new Uint8Array(csrDer) as Uint8Array<ArrayBuffer>);
  assert.ok(await csr.verify(), 'the CSR is signed by the card key');
  assert.deepEqual(Buffer.from(csr.publicKey.rawData), Buffer.from(spki));
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const caKeys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=setls host test CA',
    notBefore: new Date(Date.now() - 3600_000),
    notAfter: new Date(Date.now() + 86400_000),
    keys: caKeys,
    signingAlgorithm: alg,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
  });
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: '02',
    subject: csr.subject,
    issuer: ca.subject,
    notBefore: new Date(Date.now() - 3600_000),
    notAfter: new Date(Date.now() + 86400_000),
    publicKey: await csr.publicKey.export(),
    signingKey: caKeys.privateKey,
    signingAlgorithm: alg,
    extensions: [
      new x509.SubjectAlternativeNameExtension([
        { type: 'dns', value: 'localhost' },
        { type: 'ip', value: '127.0.0.1' },
      ]),
    ],
  });
  await client.putChain('web', [new Uint8Array(leaf.rawData), new Uint8Array(ca.rawData)]);
  const id = await client.identityInfo('web');
  assert.equal(id.keyType, 1);
  assert.equal(id.certificates.length, 2);
  const info = await client.cardInfo();
  assert.deepEqual(info.identities, ['web']);
  caPem = ca.toString('pem');
});

after(() => {
  card?.close();
  rmSync(root, { recursive: true, force: true });
});

afterEach(async () => {
  for (const t of live.splice(0)) await t.close();
});

async function startTandem(opts: Partial<TlsTandemOptions> = {}) {
  const tandem = new TlsTandem({ transport: new InProcessTransport((a) => card.process(a)), pin: PIN, identity: 'web', ...opts });
  live.push(tandem);
  await tandem.start();
  const errors: Error[] = [];
  tandem.on('sessionError', (e: Error) => errors.push(e));
  tandem.listen(0, '127.0.0.1');
  const [addr] = (await once(tandem, 'listening')) as [AddressInfo];
  return { tandem, port: addr.port, errors };
}

function connect(port: number, opts: tls.ConnectionOptions = {}): tls.TLSSocket {
  const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: caPem, ...opts });
  s.on('error', () => undefined);
  return s;
}

function readAll(s: net.Socket): Promise<Buffer> {
  const parts: Buffer[] = [];
  s.on('data', (d: Buffer) => parts.push(d));
  return new Promise((resolve) => s.once('close', () => resolve(Buffer.concat(parts))));
}

test('e2e: Node TLS client, certificate verified, data both ways, session info', async () => {
  const { tandem, port, errors } = await startTandem();
  const infos: unknown[] = [];
  tandem.on('secureConnection', (s: SeTlsSocket) => {
    infos.push(s.getSessionInfo());
    s.on('data', (d: Buffer) => s.write(Buffer.concat([Buffer.from('echo:'), d])));
  });
  const c = connect(port, { ALPNProtocols: ['http/1.1'] });
  await once(c, 'secureConnect');
  assert.equal(c.authorized, true, String(c.authorizationError));
  assert.equal(c.getProtocol(), 'TLSv1.3');
  assert.equal(c.alpnProtocol, 'http/1.1');
  const got: Buffer[] = [];
  c.on('data', (d: Buffer) => got.push(d));
  const big = randomBytes(100_000);
  c.write(big);
  const want = 5 * Math.ceil(big.length / 16384) + big.length; // one echo per record the card decrypted
  while (Buffer.concat(got).length < want) await once(c, 'data');
  const all = Buffer.concat(got).toString('latin1');
  assert.equal(all.split('echo:').join(''), big.toString('latin1'));
  c.end();
  await once(c, 'close');
  assert.deepEqual(infos[0], { version: 0x0304, cipherSuite: (infos[0] as { cipherSuite: number }).cipherSuite, group: (infos[0] as { group: number }).group, signatureScheme: 0x0403, serverName: 'localhost', alpn: 'http/1.1', identity: 'web', resumption: 'full' });
  assert.deepEqual(errors, []);
});

test('e2e: a 10 MB body through the card record layer, byte for byte (http.createServer)', async () => {
  const { tandem, port } = await startTandem();
  const body = randomBytes(10 * 1024 * 1024);
  const server = http.createServer((req, res) => {
    res.setHeader('content-length', body.length);
    let o = 0;
    const pump = (): void => {
      while (o < body.length) {
        const chunk = body.subarray(o, o + 65536);
        o += chunk.length;
        if (!res.write(chunk)) {
          res.once('drain', pump);
          return;
        }
      }
      res.end();
    };
    pump();
  });
  tandem.on('secureConnection', (s: SeTlsSocket) => server.emit('connection', s));
  const lines: string[] = [];
  const got = await new Promise<Buffer>((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port, path: '/big', ca: caPem, servername: 'localhost', agent: false }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => resolve(Buffer.concat(parts)));
        res.on('error', reject);
      })
      .on('error', reject);
  });
  assert.equal(got.length, body.length);
  assert.equal(createHash('sha256').update(got).digest('hex'), createHash('sha256').update(body).digest('hex'));
  server.close();
  void lines;
});

test('e2e: backlog=2 → 1 active + 2 waiting served in order, the 4th answered "overloaded"', async () => {
  // no hold limit: the first session keeps the card until the test ends it
  const { tandem, port } = await startTandem({ backlog: 2, maxHoldMs: 0 });
  // the first session is held until all four connections have been seen by the tandem (one at a
  // time, so the order is the test's); then every session ends at once
  let n = 0;
  let release = false;
  const held: (() => void)[] = [];
  let refused = 0;
  tandem.on('refused', () => refused++);
  tandem.on('secureConnection', (s: SeTlsSocket) => {
    const me = n++;
    const end = () => s.end(`you are #${me}`);
    if (release) end();
    else held.push(end);
  });
  const results: Promise<Buffer>[] = [];
  const sockets: tls.TLSSocket[] = [];
  const seen = [() => held.length === 1, () => tandem.queued === 1, () => tandem.queued === 2, () => refused === 1];
  let fourth: string | undefined;
  for (let i = 0; i < 4; i++) {
    const s = connect(port);
    if (i === 3) s.on('error', (e: Error & { code?: string }) => (fourth = e.code));
    sockets.push(s);
    results.push(readAll(s));
    await waitUntil(seen[i]!, `connection ${i} taken by the tandem`);
  }
  release = true;
  for (const end of held.splice(0)) end();
  const texts = (await Promise.all(results)).map((b) => b.toString());
  assert.deepEqual(texts.slice(0, 3), ['you are #0', 'you are #1', 'you are #2']);
  assert.equal(texts[3], '', 'the 4th connection is refused');
  assert.equal(sockets[3]!.authorized, false);
  assert.equal(fourth, 'ERR_SSL_TLSV1_ALERT_INTERNAL_ERROR', 'with a TLS internal_error alert (the overload answer), not a reset');
});

test('e2e: a silent client never holds the card: the next one is served first; the deadline drops it later', async () => {
  const { tandem, port, errors } = await startTandem({ handshakeTimeoutMs: 4000 });
  tandem.on('secureConnection', (s: SeTlsSocket) => s.end('served'));
  // the order of the tandem's own events shows that the next client did not wait for the deadline
  const events: string[] = [];
  tandem.on('sessionError', (e: Error & { code?: string }) => events.push(e.code ?? e.message));
  tandem.on('secureConnection', () => events.push('next served'));
  const silent = net.connect(port, '127.0.0.1');
  silent.on('error', () => undefined);
  await once(silent, 'connect');
  await waitUntil(() => tandem.queued === 1, 'the silent client waits for its ClientHello');
  assert.equal(tandem.inUse, false, 'no card without a complete ClientHello');
  const next = connect(port);
  const text = await readAll(next);
  assert.equal(text.toString(), 'served');
  assert.deepEqual(events, ['next served'], 'the next client did not wait for the deadline');
  await new Promise((r) => (silent.destroyed ? r(null) : silent.once('close', r)));
  assert.deepEqual(events, ['next served', 'ERR_HOST_HANDSHAKE_TIMEOUT'], 'the deadline dropped the silent client afterwards');
  assert.equal(errors.length, 1);
});

test('e2e: an idle keep-alive connection is closed so a waiting one proceeds', async () => {
  const { tandem, port } = await startTandem({ idleTimeoutMs: 30_000, busyIdleTimeoutMs: 300 });
  const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => res.end(`hi ${req.url}`));
  tandem.on('secureConnection', (s: SeTlsSocket) => server.emit('connection', s));
  const agentA = new https.Agent({ keepAlive: true, ca: caPem, servername: 'localhost' } as https.AgentOptions);
  const get = (agent: https.Agent | false, path: string) =>
    new Promise<string>((resolve, reject) => {
      https
        .get({ host: '127.0.0.1', port, path, ca: caPem, servername: 'localhost', agent }, (res) => {
          let s = '';
          res.on('data', (d: Buffer) => (s += d.toString()));
          res.on('end', () => resolve(s));
        })
        .on('error', reject);
    });
  // order of the tandem's events: A's session ends (closed for idleness) before B's starts
  const events: string[] = [];
  let nth = 0;
  tandem.on('secureConnection', (s: SeTlsSocket) => {
    const me = nth++ === 0 ? 'A' : 'B';
    events.push(`${me} open`);
    s.once('close', () => events.push(`${me} closed`));
  });
  assert.equal(await get(agentA, '/a'), 'hi /a');
  assert.deepEqual(events, ['A open'], 'A is kept alive (keep-alive agent), nobody waits');
  assert.equal(await get(false, '/b'), 'hi /b'); // waits until A's idle connection is closed
  assert.deepEqual(events.slice(0, 3), ['A open', 'A closed', 'B open'], 'B waited for A to be closed');
  agentA.destroy();
  server.close();
});

test('e2e: TLS garbage gets an alert and the next client works', async () => {
  const { tandem, port, errors } = await startTandem();
  tandem.on('secureConnection', (s: SeTlsSocket) => s.end('fine'));
  // not TLS at all: the host answers a plaintext unexpected_message
  const g = net.connect(port, '127.0.0.1');
  g.on('error', () => undefined);
  g.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.deepEqual([...(await readAll(g))], [0x15, 3, 3, 0, 2, 2, 10]);
  // a ClientHello holding junk: the card answers with its own alert (SW 7001)
  const j = net.connect(port, '127.0.0.1');
  j.on('error', () => undefined);
  j.write(Buffer.from([0x16, 3, 1, 0, 8, 1, 0, 0, 4, 0xde, 0xad, 0xbe, 0xef]));
  const alert = await readAll(j);
  assert.equal(alert[0], 0x15, `an alert record, got ${alert.toString('hex')}`);
  assert.equal(alert[5], 2, 'fatal');
  // a real client afterwards
  const c = connect(port);
  assert.equal((await readAll(c)).toString(), 'fine');
  const codes = errors.map((e) => (e as { code?: string }).code);
  assert.deepEqual(codes.slice(0, 2), ['ERR_HOST_NOT_CLIENT_HELLO', 'ERR_TLS_HANDSHAKE_FAILED']);
});

test('e2e: tracing shows the EAP shuttle with named commands', async () => {
  const lines: string[] = [];
  const tandem = new TlsTandem({ transport: new TracingTransport(new InProcessTransport((a) => card.process(a)), (l) => lines.push(l)), pin: PIN, identity: 'web' });
  live.push(tandem);
  await tandem.start();
  tandem.listen(0, '127.0.0.1');
  const [addr] = (await once(tandem, 'listening')) as [AddressInfo];
  tandem.on('secureConnection', (s: SeTlsSocket) => s.end('t'));
  assert.equal((await readAll(connect(addr.port))).toString(), 't');
  const text = lines.join('\n');
  for (const name of ['SELECT', 'VERIFY-PIN(user)', 'SET-IDENTITY', 'PROCESS-EAP(START)', 'PROCESS-EAP', 'PROCESS-EAP-ENCRYPT', 'PROCESS-EAP-ENCRYPT(alert)', 'RESET-STATE']) {
    assert.ok(text.includes(`  ${name} [`), `trace lacks ${name}`);
  }
  // RESET-STATE, the session-info read and the ACK of the tickets are folded into PROCESS-EAP:
  // RESET-STATE only after the session (teardown), GET-EXPORTED-PARAMETER never, no ACK Response; the
  // answer to the client's Finished carries the ticket, the EAP-Success and the info TLV (FOLD, INFO).
  assert.ok(!text.includes('  GET-EXPORTED-PARAMETER ['), 'a separate session-info read');
  const handshake = text.slice(0, text.indexOf('  PROCESS-EAP-ENCRYPT ['));
  assert.ok(!handshake.slice(handshake.indexOf('  PROCESS-EAP(START) [')).includes('  RESET-STATE ['), 'RESET-STATE inside the handshake');
  assert.equal(handshake.split('  PROCESS-EAP(START) [').length - 1, 1, 'START on the first Response only');
  assert.ok(!text.includes(Buffer.from(PIN).toString('hex').toUpperCase().replace(/(..)/g, '$1 ').trim()), 'PIN bytes in the trace');
  assert.equal(handshake.split('  PROCESS-EAP').length - 1, 2, 'ClientHello, then Finished: two exchanges');
  assert.ok(!/>> A0 80 .. 00 00 00 06 02 .. 00 06 0D 00 /.test(text), 'an ACK Response in the trace');
  assert.match(handshake, />> A0 80 14 00 /, 'INFO + FOLD on the Finished');
});

test('e2e: a card reset between sessions (selection and PIN lost): the first PROCESS-EAP(START) gets 6985/6982, the tandem SELECTs, VERIFYs and serves the client', async () => {
  const lines: string[] = [];
  const tandem = new TlsTandem({ transport: new TracingTransport(new InProcessTransport((a) => card.process(a)), (l) => lines.push(l)), pin: PIN, identity: 'web' });
  live.push(tandem);
  const errors: unknown[] = [];
  tandem.on('sessionError', (e) => errors.push(e));
  await tandem.start();
  tandem.listen(0, '127.0.0.1');
  const [addr] = (await once(tandem, 'listening')) as [AddressInfo];
  tandem.on('secureConnection', (s: SeTlsSocket) => s.end(`n=${s.getSessionInfo()?.identity ?? '?'}`));
  assert.equal((await readAll(connect(addr.port))).toString(), 'n=web');
  await waitUntil(() => !tandem.inUse, 'the teardown RESET-STATE of the first session');
  card.reset(); // power cycle: no applet selected, no PIN verified
  const before = lines.length;
  assert.equal((await readAll(connect(addr.port))).toString(), 'n=web');
  const trace = lines.slice(before).join('\n');
  const order = ['  PROCESS-EAP(START) [', '  SELECT [', '  VERIFY-PIN(user) [', '  PROCESS-EAP(START) ['];
  let at = 0;
  for (const name of order) {
    const i = trace.indexOf(name, at);
    assert.ok(i >= 0, `${name.trim()} missing after ${at}: ${trace}`);
    at = i + name.length;
  }
  assert.deepEqual(errors, []);
});
