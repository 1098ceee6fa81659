// The card boundary: a full handshake plus an HTTP exchange, every APDU byte captured in both
// directions, searched for the card's private key and for every secret of the key schedule
// (early, handshake, master, traffic, exporter secrets and keys) that the engine derived.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { get } from 'node:https';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmulatedCard } from '../../src/card/index.js';
import { SealedStore } from '../../src/card/os/sealed-store.js';
import { deserializeState } from '../../src/card/state.js';
import { createTlsServerWithOptions } from '../../src/tls/server/connection.js';
import { InProcessTransport, type CardTransport } from '../../src/transport/index.js';
import { TlsTandem } from '../../src/host/index.js';
import { serveHttps, createPlugHandler } from '../../src/servers/https/index.js';
import { initCard } from '../../src/cli/card-setup.js';
import { readMasterKey } from '../../src/cli/card-files.js';
import { toHex } from '../../src/bytes/index.js';

function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(hay.buffer, hay.byteOffset, hay.length).indexOf(Buffer.from(needle)) >= 0;
}

test('no private key and no key-schedule secret ever crosses the APDU boundary', async () => {
  const root = mkdtempSync(join(tmpdir(), 'setls-boundary-'));
  try {
    const init = await initCard({ cardDir: join(root, 'card') });
    const masterKey = readMasterKey(init.paths.keyFile);
    const secrets: { label: string; value: Uint8Array }[] = [];
    const card = EmulatedCard.open({
      dir: init.paths.dir,
      masterKey,
      tlsFactory: (cfg) => createTlsServerWithOptions(cfg, { onSecret: (label, value) => secrets.push({ label, value: value.slice() }) }),
    });
    const captured: Uint8Array[] = [];
    const inner = new InProcessTransport((apdu) => card.process(apdu));
    const transport: CardTransport = {
      extendedLength: inner.extendedLength,
      async transmit(apdu) {
        captured.push(apdu.slice());
        const res = await inner.transmit(apdu);
        captured.push(res.slice());
        return res;
      },
      close: () => inner.close(),
    };
    const tandem = new TlsTandem({ transport, pin: readFileSync(init.paths.pinFile, 'utf8').trim() });
    await tandem.start();
    const http = serveHttps(tandem, createPlugHandler());
    const server = tandem.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const port = (server.address() as import('node:net').AddressInfo).port;
    const keylog: Buffer[] = [];
    const body = await new Promise<string>((resolve, reject) => {
      const req = get({ host: '127.0.0.1', port, path: '/status', ca: readFileSync(init.caCertPath), servername: 'localhost', agent: false }, (res) => {
        let s = '';
        res.on('data', (c: Buffer) => (s += c.toString()));
        res.on('end', () => resolve(s));
      });
      req.on('socket', (s) => s.on('keylog', (line: Buffer) => keylog.push(line)));
      req.on('error', reject);
    });
    assert.match(body, /setls demo plug/);
    await tandem.close();
    http.close();

    const all = Buffer.concat(captured);
    // The scan sees real traffic: the HTTP response crossed in clear (ENCRYPT input) and the
    // certificate crossed encrypted, so the plaintext must be there and the certificate must not.
    assert.ok(contains(all, Buffer.from('"device":"setls demo plug"')), 'the scan does not see the plaintext that crossed');
    assert.ok(!contains(all, init.spki), 'the certificate travels encrypted in TLS 1.3');
    // Private key: raw scalar and PKCS#8.
    const state = deserializeState(new SealedStore(init.paths.dir, masterKey).read());
    const key = state.identities[0]!.privateKey;
    const d = Buffer.from(key.export({ format: 'jwk' }).d!, 'base64url');
    const pkcs8 = key.export({ format: 'der', type: 'pkcs8' });
    assert.equal(d.length, 32);
    assert.ok(!contains(all, d), 'private scalar found in the APDU trace');
    assert.ok(!contains(all, d.subarray(0, 16)) && !contains(all, d.subarray(16)), 'half of the private scalar found');
    assert.ok(!contains(all, pkcs8), 'PKCS#8 private key found in the APDU trace');
    // Every secret the key schedule derived (handshake secret, master secret, traffic secrets, keys, IVs).
    const labels = new Set(secrets.map((s) => s.label));
    assert.ok(secrets.length >= 8, `expected the engine to report its secrets, got ${[...labels].join(', ')}`);
    for (const want of [/handshake/i, /master/i]) {
      assert.ok([...labels].some((l) => want.test(l)), `no ${want} secret reported: ${[...labels].join(', ')}`);
    }
    for (const s of secrets) {
      if (s.value.length < 12) continue;
      assert.ok(!contains(all, s.value), `secret '${s.label}' (${toHex(s.value).slice(0, 16)}…) found in the APDU trace`);
    }
    // The client's own view of the secrets (NSS key log) must not appear either.
    const fromKeylog = keylog.map((l) => Buffer.from(l.toString().trim().split(' ')[2]!, 'hex'));
    assert.ok(fromKeylog.length >= 4);
    for (const s of fromKeylog) assert.ok(!contains(all, s), 'a keylog secret found in the APDU trace');
    // And the client's secrets are the card's: the scan compared the right values.
    assert.ok(fromKeylog.some((k) => secrets.some((s) => Buffer.from(s.value).equals(k))), 'keylog secrets do not match the engine secrets');
    await transport.close();
    card.close();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
