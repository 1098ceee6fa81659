// The card's TLS-SE applet (draft-urien-tls-se, src/card/applets/tls-se/) at the APDU level: selection by its
// own AID next to the setls applet, the draft's raw-ASCII PIN (shared with the setls user PIN), RESET,
// SET-KEY under the admin PIN, power-cycle semantics, and the rules of Urien's real applet
// (tls_se.java): a 512-byte receive buffer, one TLS record per RECV, answers with data and 9Fxx =
// more of the same output with an exact Le, and a whole handshake with Node's TLS client (OpenSSL,
// middlebox-compat CCS) driven record by record: ServerHello, EncryptedExtensions, Certificate,
// CertificateVerify and Finished as separate records, no CCS, the client CCS alone → 9000.
// Host-driver handshakes are in test/host/tls-se-driver.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Duplex } from 'node:stream';
import type net from 'node:net';
import tls from 'node:tls';
import { EmulatedCard } from '../../src/card/index.js';
import { initCard } from '../../src/cli/card-setup.js';

const PIN = '1234';
const OP = '87654321';

function newCard(): { card: EmulatedCard; tx: (hex: string) => string; done: () => void } {
  const root = mkdtempSync(join(tmpdir(), 'setls-tlsse-'));
  const card = EmulatedCard.create({ dir: join(root, 'card'), masterKey: randomBytes(32), userPin: PIN, operatorPin: OP, puk: '11223344' });
  const tx = (hex: string): string => Buffer.from(card.process(Uint8Array.from(Buffer.from(hex.replace(/ /g, ''), 'hex')))).toString('hex').toUpperCase();
  return { card, tx, done: () => rmSync(root, { recursive: true, force: true }) };
}
const ascii = (s: string): string => Buffer.from(s).toString('hex');
const lc = (hex: string): string => (hex.length / 2).toString(16).padStart(2, '0');

test('SELECT by AID 01 02 03 04 05 00; the setls applet stays reachable by its own AID', () => {
  const { tx, done } = newCard();
  try {
    assert.equal(tx('00A4040006010203040500'), '9000');
    assert.equal(tx('A019000001'), '6E00', 'setls commands do not reach the TLS-SE applet');
    assert.equal(tx('00A4040007F07365746C730100').slice(-4), '9000');
    assert.equal(tx('00D8000000'), '6D00', 'RECV is not a setls command');
    assert.equal(tx('00A4040006010203040500'), '9000');
    assert.equal(tx('00A4040005A000000001'), '6A82');
    assert.equal(tx('00A4040006010203040500'), '9000');
  } finally {
    done();
  }
});

test('PIN: raw ASCII VERIFY (shared user PIN and tries), RECV needs it, reset forgets it', () => {
  const { card, tx, done } = newCard();
  try {
    tx('00A4040006010203040500');
    assert.equal(tx('00D8FF0303AABBCC'), '6982', 'PIN required');
    assert.equal(tx('00200000' + lc(ascii('9999')) + ascii('9999')), '63C2');
    assert.equal(tx('00200000' + lc(ascii(PIN)) + ascii(PIN)), '9000');
    assert.equal(tx('0020000000'), '9000', 'Lc = 0: verified');
    assert.equal(tx('00D8000000'), '9000', 'RESET');
    card.reset();
    tx('00A4040006010203040500');
    assert.equal(tx('00D8FF0303AABBCC'), '6982', 'power cycle: verification lost');
    assert.equal(tx('00200000' + lc(ascii('12a4')) + ascii('12a4')), '6A80', 'not digits');
  } finally {
    done();
  }
});

test('RECV into a 512-byte buffer (6D02 past it); the answer is data, or a bare 9FF0 then 240-byte SEND blocks with 9Fxx = more of the same output, Le exact (6Cxx); tls_se.java send()/recv()', () => {
  const { tx, done } = newCard();
  try {
    tx('00A4040006010203040500');
    tx('00200000' + lc(ascii(PIN)) + ascii(PIN));
    // echo (P1 FF) of 100 bytes: the data comes with the RECV answer itself
    const small = Buffer.from(Buffer.alloc(100, 0).map((_, i) => i)).toString('hex').toUpperCase();
    assert.equal(tx('00D8FF0364' + small), small + '9000', 'data in the RECV answer, no 61xx');
    // echo of 500 bytes (240 + 240 + 20): longer than a block → a bare 9FF0
    const h = Buffer.from(Buffer.alloc(500, 0).map((_, i) => (i * 3) & 0xff)).toString('hex').toUpperCase();
    assert.equal(tx('00D8FF01F0' + h.slice(0, 480)), '9000');
    assert.equal(tx('00D8FF00F0' + h.slice(480, 960)), '9000');
    assert.equal(tx('00D8FF0214' + h.slice(960)), '9FF0', 'no data; 240 bytes to read');
    assert.equal(tx('00C0000000'), '6CF0', 'Le must be exactly F0 (00 = 256): 6CF0, nothing lost');
    let r = tx('00C00000F0');
    assert.equal(r.slice(-4), '9FF0', '240 bytes, then 240 more of the SAME output');
    let out = r.slice(0, -4);
    r = tx('00C00000F0');
    assert.equal(r.slice(-4), '9F14');
    out += r.slice(0, -4);
    assert.equal(tx('00C0000010'), '6C14');
    r = tx('00C0000014');
    assert.equal(r.slice(-4), '9000', 'the final status word after the last block');
    out += r.slice(0, -4);
    assert.equal(out, h);
    assert.equal(tx('00C0000000'), '9000', 'nothing pending: 9000 (tls_se.java recv(): SW_NO_ERROR)');
    // the buffer holds 512 bytes: 240 + 240 + 40 overflows → 6D02
    assert.equal(tx('00D8FF01F0' + h.slice(0, 480)), '9000');
    assert.equal(tx('00D8FF00F0' + h.slice(480, 960)), '9000');
    assert.equal(tx('00D8FF0228' + '00'.repeat(40)), '6D02', 'past RXSIZE = 512: SW_ERROR_WRITE');
    assert.equal(tx('00D8050301AA'), '6A86', 'unknown mode');
    assert.equal(tx('80D8000301AA'), '6E00');
    assert.equal(tx('00D8000000'), '9000', 'RESET');
  } finally {
    done();
  }
});

test('one RECV = exactly one TLS record (len + 5 == bytes received), else 6D02; phase checks after it', () => {
  const { tx, done } = newCard();
  try {
    tx('00A4040006010203040500');
    tx('00200000' + lc(ascii(PIN)) + ascii(PIN));
    const ccs = '140303000101';
    const finHdr = '1703030035' + '00'.repeat(0x35);
    assert.equal(tx('00D80003' + lc(ccs + finHdr) + ccs + finHdr), '6D02', 'CCS and Finished in one RECV');
    assert.equal(tx('00D8000303AABBCC'), '6D02', 'fewer than 5 bytes: not a record');
    assert.equal(tx('00D80003081603030010AABBCC'), '6D02', 'header says 21 bytes, 8 received');
    assert.equal(tx('00D801030617030300010A'), '6985', 'a well-formed record to decrypt before the handshake: wrong phase');
    assert.equal(tx('00D8020303AABBCC'), '6D02', 'encrypt input before the session is open must be a record too');
    assert.equal(tx('00D8000000'), '9000');
  } finally {
    done();
  }
});

test('SET-KEY 00 85 00 0A 23 01 00 20 <PSK> needs the admin (operator) PIN', () => {
  const { tx, done } = newCard();
  try {
    tx('00A4040006010203040500');
    const psk = '11'.repeat(32);
    assert.equal(tx('0085000A23010020' + psk), '6982');
    assert.equal(tx('00200001' + lc(ascii(OP)) + ascii(OP)), '9000');
    assert.equal(tx('0085000A23010020' + psk), '9000');
    assert.equal(tx('0085000B23010020' + psk), '6A86');
    assert.equal(tx('0085000A03010020'), '6700');
  } finally {
    done();
  }
});

/** Whole TLS records out of a byte stream (the remainder stays). */
function takeRecords(buf: Buffer): { records: Buffer[]; rest: Buffer } {
  const records: Buffer[] = [];
  let o = 0;
  while (buf.length - o >= 5) {
    const n = 5 + buf.readUInt16BE(o + 3);
    if (buf.length - o < n) break;
    records.push(buf.subarray(o, o + n));
    o += n;
  }
  return { records, rest: buf.subarray(o) };
}

interface Answer {
  /** SW and data length of every APDU answer of the exchange, e.g. "9F1C+95". */
  readonly steps: string[];
  readonly output: Buffer;
  readonly sw: string;
}

/** One record through RECV (240-byte fragments, P1 = mode), then SEND with Le = xx while 9Fxx. */
function exchange(tx: (hex: string) => string, mode: number, record: Buffer): Answer {
  const steps: string[] = [];
  let r = '';
  for (let o = 0; o < record.length; o += 240) {
    const chunk = record.subarray(o, o + 240);
    const p2 = (o === 0 ? 1 : 0) | (o + 240 >= record.length ? 2 : 0);
    r = tx('00D8' + [mode, p2, chunk.length].map((b) => b.toString(16).padStart(2, '0')).join('') + chunk.toString('hex'));
  }
  const parts: Buffer[] = [];
  for (;;) {
    const sw = r.slice(-4);
    const data = Buffer.from(r.slice(0, -4), 'hex');
    steps.push(`${sw}${data.length ? `+${data.length}` : ''}`);
    parts.push(data);
    if (!sw.startsWith('9F')) return { steps, output: Buffer.concat(parts), sw };
    r = tx('00C00000' + sw.slice(2));
  }
}

test('a whole handshake with Node’s TLS client (OpenSSL, compat CCS), record by record: separate server records without CCS, client CCS alone → 9000, Finished → 9001, data both ways within the 512-byte buffer, close_notify', async () => {
  const root = mkdtempSync(join(tmpdir(), 'setls-tlsse-hs-'));
  const init = await initCard({ cardDir: join(root, 'card') });
  const card = EmulatedCard.open({ dir: init.paths.dir, masterKey: Uint8Array.from(Buffer.from(readFileSync(init.paths.keyFile, 'utf8').trim(), 'hex')) });
  const tx = (hex: string): string => Buffer.from(card.process(Uint8Array.from(Buffer.from(hex, 'hex')))).toString('hex').toUpperCase();
  const pin = readFileSync(init.paths.pinFile, 'utf8').trim();
  let fromClient = Buffer.alloc(0);
  let wake: (() => void) | undefined;
  const wire = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      fromClient = Buffer.concat([fromClient, chunk]);
      wake?.();
      cb();
    },
  });
  /** The client's next whole record (bounded wait on its writes). */
  const nextRecord = async (): Promise<Buffer> => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const { records, rest } = takeRecords(fromClient);
      if (records.length) {
        fromClient = Buffer.concat([...records.slice(1), rest]);
        return records[0]!;
      }
      if (Date.now() > deadline) throw new Error('the client sent no record');
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 200);
      });
    }
  };
  const client = tls.connect({ socket: wire as unknown as net.Socket, servername: 'localhost', ca: readFileSync(init.caCertPath), minVersion: 'TLSv1.3' });
  client.on('error', () => undefined);
  const secure = new Promise<void>((resolve, reject) => {
    client.once('secureConnect', () => resolve());
    client.once('error', reject);
  });
  try {
    tx('00A4040006010203040500');
    assert.equal(tx('00200000' + lc(ascii(pin)) + ascii(pin)), '9000');
    const ch = await nextRecord();
    assert.equal(ch[0], 0x16);
    assert.ok(ch.length <= 512, `a ClientHello of ${ch.length} bytes fits the buffer`);
    const hello = exchange(tx, 0, ch);
    assert.equal(hello.sw, '9000');
    assert.match(hello.steps[0]!, /^9F[0-9A-F]{2}\+\d+$/, `the RECV answers with the ServerHello as data and 9Fxx: ${hello.steps.join(' ')}`);
    const server = takeRecords(hello.output);
    assert.equal(server.rest.length, 0);
    const types = server.records.map((r) => r[0]);
    assert.deepEqual(types, [0x16, 0x17, 0x17, 0x17, 0x17], 'ServerHello, then EE, Certificate, CertificateVerify, Finished: five records, no CCS (14)');
    assert.equal(Number.parseInt(hello.steps[0]!.slice(5), 10), server.records[0]!.length, 'the first answer is exactly the ServerHello record');
    wire.push(hello.output);

    // The client's second flight: CCS (compat mode: OpenSSL sends it) and Finished, one RECV each.
    const ccs = await nextRecord();
    assert.deepEqual([...ccs], [0x14, 3, 3, 0, 1, 1], 'Node/OpenSSL sends the middlebox-compat CCS');
    assert.deepEqual(exchange(tx, 0, ccs).steps, ['9000']);
    const fin = await nextRecord();
    assert.deepEqual(exchange(tx, 0, fin).steps, ['9001'], 'session open');
    await secure;

    // client → card: 300 bytes of application data: a bare 9FF0, then 240 + 61 bytes (plaintext ‖ 17)
    client.write(Buffer.alloc(300, 0x41));
    const d = exchange(tx, 1, await nextRecord());
    assert.deepEqual(d.steps, ['9FF0', '9F3D+240', '9000+61'], 'then 240 bytes and 9F3D: 61 more of the same output');
    assert.deepEqual(d.output, Buffer.concat([Buffer.alloc(300, 0x41), Buffer.of(0x17)]));

    // card → client: 490 bytes ‖ 17 is the most the 512-byte buffer can protect; 491 ‖ 17 → 6F00
    const got: Buffer[] = [];
    client.on('data', (b: Buffer) => got.push(b));
    const e = exchange(tx, 2, Buffer.concat([Buffer.alloc(490, 0x42), Buffer.of(0x17)]));
    assert.equal(e.sw, '9000');
    assert.equal(e.output.length, 512, 'the record with its header is exactly 512 bytes');
    assert.deepEqual(exchange(tx, 2, Buffer.concat([Buffer.alloc(491, 0x42), Buffer.of(0x17)])).steps, ['6F00']);
    wire.push(e.output);
    const deadline = Date.now() + 10_000;
    while (Buffer.concat(got).length < 490 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(Buffer.concat(got), Buffer.alloc(490, 0x42), 'the client decrypts it');

    // the client's close_notify: our close_notify record ‖ 01 00 15, 9002
    client.end();
    const c = exchange(tx, 1, await nextRecord());
    assert.equal(c.sw, '9002');
    const closing = takeRecords(c.output.subarray(0, -3));
    assert.equal(closing.records.length, 1);
    assert.equal(closing.rest.length, 0);
    assert.deepEqual([...c.output.subarray(-3)], [0x01, 0x00, 0x15]);
  } finally {
    client.destroy();
    card.close();
    rmSync(root, { recursive: true, force: true });
  }
});
