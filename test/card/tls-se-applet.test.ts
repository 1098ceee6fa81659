// The card's TLS-SE applet (draft-urien-tls-se, src/card/tls-se/) at the APDU level: selection by its
// own AID next to the setls applet, the draft's raw-ASCII PIN (shared with the setls user PIN), RESET,
// RECV fragment flags, SEND blocks of ≤ 240 bytes with 61xx/9Fxx, SET-KEY under the admin PIN, and
// power-cycle semantics. Handshakes are in test/host/tls-se-driver.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { EmulatedCard } from '../../src/card/index.js';

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

test('RECV fragments (P2 first/last), SEND ≤ 240-byte blocks with 61xx and the final SW; errors', () => {
  const { tx, done } = newCard();
  try {
    tx('00A4040006010203040500');
    tx('00200000' + lc(ascii(PIN)) + ascii(PIN));
    const data = Buffer.alloc(600, 0).map((_, i) => i & 0xff);
    const h = Buffer.from(data).toString('hex');
    assert.equal(tx('00D8FF01F0' + h.slice(0, 480)), '9000');
    assert.equal(tx('00D8FF00F0' + h.slice(480, 960)), '9000');
    assert.equal(tx('00D8FF0278' + h.slice(960)), '6100', '600 bytes ready (≥ 256)');
    let out = '';
    let r = tx('00C0000000');
    assert.equal(r.length / 2 - 2, 240, 'at most 240 bytes per SEND');
    out += r.slice(0, -4);
    assert.equal(r.slice(-4), '6100', '360 left');
    r = tx('00C0000000');
    out += r.slice(0, -4);
    assert.equal(r.slice(-4), '6178');
    r = tx('00C0000078');
    out += r.slice(0, -4);
    assert.equal(r.slice(-4), '9000');
    assert.equal(out, h.toUpperCase());
    assert.equal(tx('00C0000000'), '6985', 'nothing to send');
    assert.equal(tx('00D8050301AA'), '6A86', 'unknown mode');
    assert.equal(tx('00D8010301AA'), '6985', 'decrypt before the handshake');
    assert.equal(tx('00D8000301AA'), '9000', 'a partial record: the card needs more');
    assert.equal(tx('00D8000000'), '9000');
    assert.equal(tx('80D8000301AA'), '6E00');
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
