// Host side of docs/apdu-protocol.md §2.3: the new commands' byte layouts, the parsers of the new
// TLVs and the EXPORT-SESSION blob, the trace redaction, and the host record layer (HostSession)
// against the engine's own record protection (tls/record) as the peer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  CardClient,
  HostSession,
  encodeIdentityPolicy,
  encodePolicy,
  encodePsk,
  encodeExporter,
  encodeTrustAnchor,
  parseExportedSession,
  parseSessionInfo,
  parseCardInfo,
  parseIdentityInfo,
  type ExportedSessionBlob,
} from '../../src/host/index.js';
import { encodeTlvs, parseTlvs, concat, toHex } from '../../src/bytes/index.js';
import { encodeResponse, parseCommand } from '../../src/apdu/index.js';
import { InProcessTransport, TracingTransport, commandName } from '../../src/transport/index.js';
import { RecordKey } from '../../src/tls/record/protection.js';
import { RecordKey12 } from '../../src/tls/record/protection12.js';
import { SUITES, hkdfExpandLabel } from '../../src/tls/crypto.js';
import { SUITES12 } from '../../src/tls/tls12/suites12.js';

const te = new TextEncoder();

test('PUT-IDENTITY-POLICY / PUT-TRUST-ANCHOR / PUT-PSK / EXPORTER data layouts', () => {
  assert.equal(
    toHex(encodeIdentityPolicy({ label: 'web', clientAuth: 'required', exportAllowed: true, exporterLabels: ['EXPORTER-a'] })),
    '8003' + toHex(te.encode('web')) + '400102' + '410101' + '420a' + toHex(te.encode('EXPORTER-a')),
  );
  assert.equal(toHex(encodeIdentityPolicy({ label: 'x' })), '800178');
  assert.throws(() => encodeIdentityPolicy({ label: 'x', clientAuth: 'maybe' as 'none' }), RangeError);
  assert.equal(toHex(encodeTrustAnchor('ab', Uint8Array.of(0x30, 1, 0))), '02' + '6162' + '300100');
  assert.equal(toHex(encodeTrustAnchor('ab')), '026162');
  const key = new Uint8Array(16).fill(7);
  assert.equal(toHex(encodePsk({ identity: 'dev', key, hash: 'sha384' })), '5003' + toHex(te.encode('dev')) + '5110' + '07'.repeat(16) + '520101');
  assert.throws(() => encodePsk({ identity: 'dev', key: new Uint8Array(8) }), { code: 'ERR_HOST_PSK' });
  assert.equal(toHex(encodeExporter('EXPORTER-x', undefined, 32)), '600a' + toHex(te.encode('EXPORTER-x')) + '62020020');
  assert.equal(toHex(encodeExporter('L1', new Uint8Array(0), 1)), '6002' + toHex(te.encode('L1')) + '6100' + '62020001');
  assert.throws(() => encodeExporter('L', undefined, 1025), RangeError);
  assert.equal(
    toHex(encodePolicy({ cipherSuites12: [0xc0ae, 0xc02b], versions: [0x0304, 0x0303], ticketLifetimeSeconds: 7200, sessionIdCache: false })),
    '3504c0aec02b' + '360403040303' + '370400001c20' + '380100',
  );
});

test('CardClient sends the new commands with the contract headers; secrets are redacted in traces', async () => {
  const seen: Uint8Array[] = [];
  const lines: string[] = [];
  const blob = concat(Uint8Array.of(3, 4, 0x13, 1), new Uint8Array(8), new Uint8Array(8), Uint8Array.of(0), Uint8Array.of(0), Uint8Array.of(16), new Uint8Array(16).fill(0xaa), Uint8Array.of(12), new Uint8Array(12).fill(0xbb), Uint8Array.of(16), new Uint8Array(16).fill(0xcc), Uint8Array.of(12), new Uint8Array(12).fill(0xdd));
  const inner = new InProcessTransport((a) => {
    seen.push(a);
    const cmd = parseCommand(a);
    if (cmd.ins === 0xa8) return encodeResponse(blob, 0x9000);
    if (cmd.ins === 0xaa) return encodeResponse(new Uint8Array(32).fill(0xee), 0x9000);
    return encodeResponse(new Uint8Array(0), 0x9000);
  });
  const c = new CardClient(new TracingTransport(inner, (l) => lines.push(l)), { extended: false });
  await c.putIdentityPolicy({ label: 'default', exportAllowed: true });
  await c.putTrustAnchor('default', Uint8Array.of(0x30, 0x03, 1, 2, 3));
  await c.clearTrustAnchors('default');
  await c.putPsk({ identity: 'dev1', key: new Uint8Array(32).fill(0x5a) });
  await c.deletePsk('dev1');
  const ex = await c.exportSession();
  const km = await c.exporter('EXPORTER-test', undefined, 32);
  const heads = seen.map((a) => toHex(a.subarray(0, 4)));
  assert.deepEqual(heads, ['a0de0000', 'a0d20000', 'a0d20001', 'a0d40000', 'a0d40001', 'a0a80000', 'a0aa0000']);
  assert.deepEqual(
    seen.map((a) => commandName(a[0]!, a[1]!, a[2]!, a[3]!)),
    ['PUT-IDENTITY-POLICY', 'PUT-TRUST-ANCHOR', 'PUT-TRUST-ANCHOR(clear)', 'PUT-PSK', 'PUT-PSK(delete)', 'EXPORT-SESSION', 'EXPORTER'],
  );
  assert.equal(ex.version, 0x0304);
  assert.equal(ex.cipherSuite, 0x1301);
  assert.equal(toHex(ex.clientKey), 'aa'.repeat(16));
  assert.equal(km.length, 32);
  const trace = lines.join('\n');
  assert.ok(!/5A 5A 5A 5A/.test(trace), 'PSK key printed');
  assert.ok(!/AA AA AA AA|CC CC CC CC|EE EE EE EE/.test(trace), 'exported keys printed');
  assert.match(trace, /secret bytes redacted/);
});

test('EXPORT-SESSION blob: parsed, the raw response wiped; truncated or trailing bytes refused', () => {
  const raw = concat(Uint8Array.of(3, 3, 0xc0, 0x2b), Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 5), Uint8Array.of(0, 0, 0, 0, 0, 0, 1, 0), Uint8Array.of(0, 0, 16), new Uint8Array(16).fill(1), Uint8Array.of(4, 9, 9, 9, 9), Uint8Array.of(16), new Uint8Array(16).fill(2), Uint8Array.of(4, 8, 8, 8, 8));
  const copy = raw.slice();
  const b = parseExportedSession(raw);
  assert.equal(b.version, 0x0303);
  assert.equal(b.readSequence, 5n);
  assert.equal(b.writeSequence, 256n);
  assert.equal(b.clientTrafficSecret.length, 0);
  assert.equal(toHex(b.clientIv), '09090909');
  assert.ok(raw.every((x) => x === 0));
  assert.throws(() => parseExportedSession(copy.slice(0, copy.length - 1)), { code: 'ERR_CARD_RESPONSE' });
  assert.throws(() => parseExportedSession(concat(copy, Uint8Array.of(0))), { code: 'ERR_CARD_RESPONSE' });
});

test('session info 27–2B, identity info 40–43, card info 0A', () => {
  const fp = new Uint8Array(32).fill(0xab);
  const si = parseSessionInfo(
    encodeTlvs([
      { tag: 0x20, value: Uint8Array.of(3, 4) },
      { tag: 0x21, value: Uint8Array.of(0x13, 1) },
      { tag: 0x22, value: Uint8Array.of(0, 0x1d) },
      { tag: 0x23, value: Uint8Array.of(4, 3) },
      { tag: 0x27, value: te.encode('CN=device 7\nO=Acme') },
      { tag: 0x28, value: te.encode('DNS:dev7.example') },
      { tag: 0x28, value: te.encode('IP Address:10.0.0.7') },
      { tag: 0x29, value: fp },
      { tag: 0x2a, value: Uint8Array.of(1) },
    ]),
  );
  assert.deepEqual(si.peer, { subject: 'CN=device 7\nO=Acme', subjectAltNames: ['DNS:dev7.example', 'IP Address:10.0.0.7'], fingerprint256: Array(32).fill('AB').join(':') });
  assert.equal(si.resumption, 'ticket');
  // A PSK session: no group, no signature scheme.
  const psk = parseSessionInfo(encodeTlvs([{ tag: 0x20, value: Uint8Array.of(3, 3) }, { tag: 0x21, value: Uint8Array.of(0, 0xa8) }, { tag: 0x2a, value: Uint8Array.of(3) }, { tag: 0x2b, value: te.encode('dev1') }]));
  assert.equal(psk.group, 0);
  assert.equal(psk.resumption, 'psk');
  assert.equal(Buffer.from(psk.pskIdentity!).toString(), 'dev1');
  const id = parseIdentityInfo(
    encodeTlvs([
      { tag: 0x10, value: Uint8Array.of(1) },
      { tag: 0x11, value: Uint8Array.of(0x30, 0) },
      { tag: 0x40, value: Uint8Array.of(2) },
      { tag: 0x41, value: Uint8Array.of(1) },
      { tag: 0x42, value: te.encode('EXPORTER-a') },
      { tag: 0x43, value: Uint8Array.of(0x30, 1, 0) },
    ]),
  );
  assert.equal(id.clientAuth, 'required');
  assert.equal(id.exportAllowed, true);
  assert.deepEqual(id.exporterLabels, ['EXPORTER-a']);
  assert.equal(id.trustAnchors.length, 1);
  const ci = parseCardInfo(
    encodeTlvs([
      { tag: 0x01, value: te.encode('setls/1') },
      { tag: 0x09, value: encodeTlvs([{ tag: 0x30, value: Uint8Array.of(0x13, 1) }, { tag: 0x35, value: Uint8Array.of(0xc0, 0x2b) }, { tag: 0x36, value: Uint8Array.of(3, 4, 3, 3) }, { tag: 0x37, value: Uint8Array.of(0, 0, 0x1c, 0x20) }, { tag: 0x38, value: Uint8Array.of(1) }]) },
      { tag: 0x0a, value: te.encode('dev1') },
    ]),
  );
  assert.deepEqual(ci.policy, { cipherSuites: [0x1301], cipherSuites12: [0xc02b], versions: [0x0304, 0x0303], ticketLifetimeSeconds: 7200, sessionIdCache: true });
  assert.equal(ci.pskIdentities.length, 1);
  assert.ok(parseTlvs(encodeTlvs([])).length === 0);
});

function blob13(suiteId: number, readSeq: number, writeSeq: number): { blob: ExportedSessionBlob; c: Uint8Array; s: Uint8Array } {
  const suite = SUITES.get(suiteId)!;
  const c = new Uint8Array(randomBytes(suite.hashLength));
  const s = new Uint8Array(randomBytes(suite.hashLength));
  const k = (sec: Uint8Array, l: string, n: number): Uint8Array => hkdfExpandLabel(suite.hash, sec, l, new Uint8Array(0), n);
  return {
    c: c.slice(),
    s: s.slice(),
    blob: {
      version: 0x0304,
      cipherSuite: suiteId,
      readSequence: BigInt(readSeq),
      writeSequence: BigInt(writeSeq),
      clientTrafficSecret: c,
      serverTrafficSecret: s,
      clientKey: k(c, 'key', suite.keyLength),
      clientIv: k(c, 'iv', 12),
      serverKey: k(s, 'key', suite.keyLength),
      serverIv: k(s, 'iv', 12),
    },
  };
}

function engineKey(suiteId: number, secret: Uint8Array): RecordKey {
  const suite = SUITES.get(suiteId)!;
  return new RecordKey(suite, { key: hkdfExpandLabel(suite.hash, secret, 'key', new Uint8Array(0), suite.keyLength), iv: hkdfExpandLabel(suite.hash, secret, 'iv', new Uint8Array(0), 12) });
}

for (const suiteId of [0x1301, 0x1302, 0x1303, 0x1305]) {
  test(`HostSession TLS 1.3 suite 0x${suiteId.toString(16)}: records both ways at the exported sequence numbers, KeyUpdate, close_notify, wipe`, async () => {
    const suite = SUITES.get(suiteId)!;
    const { blob, c, s } = blob13(suiteId, 0, 2);
    const clientWrite = engineKey(suiteId, c);
    const host = new HostSession(blob);
    const r1 = await host.decrypt(clientWrite.seal(23, te.encode('GET / HTTP/1.1\r\n\r\n')));
    assert.equal(Buffer.from(r1.plaintext).toString(), 'GET / HTTP/1.1\r\n\r\n');
    const out = await host.encrypt(23, te.encode('HTTP/1.1 200 OK'));
    // The card already wrote 2 records (tickets): a reading key at sequence 2 (seal advances it).
    const reader = engineKey(suiteId, s);
    reader.seal(23, new Uint8Array(0));
    reader.seal(23, new Uint8Array(0));
    const opened = reader.open(out)!;
    assert.equal(opened.type, 23);
    assert.equal(Buffer.from(opened.content).toString(), 'HTTP/1.1 200 OK');
    // Client KeyUpdate(update_requested), then data under the client's next key.
    const ku = await host.decrypt(clientWrite.seal(22, Uint8Array.of(24, 0, 0, 1, 1)));
    assert.equal(ku.plaintext.length, 0);
    assert.equal(ku.failed, false);
    const c1 = hkdfExpandLabel(suite.hash, c, 'traffic upd', new Uint8Array(0), suite.hashLength);
    const clientWrite1 = engineKey(suiteId, c1);
    const r2 = await host.decrypt(clientWrite1.seal(23, te.encode('after update')));
    assert.equal(Buffer.from(r2.plaintext).toString(), 'after update');
    // Our next record is preceded by our own KeyUpdate (update_not_requested) under the old key.
    const out2 = await host.encrypt(23, te.encode('reply'));
    const first = out2.subarray(0, 5 + ((out2[3]! << 8) | out2[4]!));
    const second = out2.subarray(first.length);
    const k = reader.open(first)!;
    assert.equal(k.type, 22);
    assert.deepEqual([...k.content], [24, 0, 0, 1, 0]);
    const s1 = hkdfExpandLabel(suite.hash, s, 'traffic upd', new Uint8Array(0), suite.hashLength);
    const o2 = engineKey(suiteId, s1).open(second)!;
    assert.equal(Buffer.from(o2.content).toString(), 'reply');
    // Client close_notify: peerClosed, our close_notify (under the new key) comes back.
    const cn = await host.decrypt(clientWrite1.seal(21, Uint8Array.of(1, 0)));
    assert.equal(cn.peerClosed, true);
    const readerNew = engineKey(suiteId, s1);
    readerNew.seal(23, new Uint8Array(0));
    assert.deepEqual([...readerNew.open(cn.outRecords)!.content], [1, 0]);
    host.dispose();
    assert.ok(blob.serverKey.every((x) => x === 0) && blob.clientTrafficSecret.every((x) => x === 0), 'keys wiped');
  });
}

test('HostSession TLS 1.3: a forged record gets bad_record_mac (sent, encrypted) and the keys are wiped', async () => {
  const { blob, c } = blob13(0x1301, 0, 0);
  const host = new HostSession(blob);
  const rec = engineKey(0x1301, c).seal(23, te.encode('x'));
  rec[rec.length - 1]! ^= 1;
  const r = await host.decrypt(rec);
  assert.equal(r.failed, true);
  assert.equal(r.alert, 20);
  assert.ok(r.outRecords.length > 5);
  assert.equal(host.phase, 'failed');
  assert.ok(blob.serverKey.every((x) => x === 0));
});

for (const suiteId of [0xc02b, 0xc02c, 0xcca9, 0xc0ae, 0xc02f, 0xcca8, 0xc0a8, 0x00a8]) {
  test(`HostSession TLS 1.2 suite 0x${suiteId.toString(16).padStart(4, '0')}: explicit nonces / sequence numbers continue from the export`, async () => {
    const s12 = SUITES12.get(suiteId)!;
    const ck = new Uint8Array(randomBytes(s12.keyLength));
    const civ = new Uint8Array(randomBytes(s12.fixedIvLength));
    const sk = new Uint8Array(randomBytes(s12.keyLength));
    const siv = new Uint8Array(randomBytes(s12.fixedIvLength));
    // The handshake used sequence 0 both ways (Finished); the card also sent one record.
    const clientWrite = new RecordKey12(s12, ck.slice(), civ.slice(), 1);
    const clientRead = new RecordKey12(s12, sk.slice(), siv.slice(), 2);
    const host = new HostSession({
      version: 0x0303,
      cipherSuite: suiteId,
      readSequence: 1n,
      writeSequence: 2n,
      clientTrafficSecret: new Uint8Array(0),
      serverTrafficSecret: new Uint8Array(0),
      clientKey: ck,
      clientIv: civ,
      serverKey: sk,
      serverIv: siv,
    });
    const r = await host.decrypt(clientWrite.seal(23, te.encode('ping')));
    assert.equal(Buffer.from(r.plaintext).toString(), 'ping');
    const big = new Uint8Array(16384).fill(0x41);
    const out = await host.encrypt(23, big);
    const o = clientRead.open(out)!;
    assert.equal(o.content.length, 16384);
    // Renegotiation attempt: a warning no_renegotiation, the session goes on.
    const rn = await host.decrypt(clientWrite.seal(22, Uint8Array.of(1, 0, 0, 0)));
    assert.equal(rn.failed, false);
    assert.deepEqual([...clientRead.open(rn.outRecords)!.content], [1, 100]);
    const cn = await host.decrypt(clientWrite.seal(21, Uint8Array.of(1, 0)));
    assert.equal(cn.peerClosed, true);
    assert.deepEqual([...clientRead.open(cn.outRecords)!.content], [1, 0]);
    host.dispose();
    assert.ok(sk.every((x) => x === 0) && ck.every((x) => x === 0));
  });
}
