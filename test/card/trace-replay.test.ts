/**
 * Replays the captured APDU trace (test/fixtures/card-trace, made by its generate.ts) against a
 * deterministic card opened from the recorded sealed state with the same `random`: every response
 * byte must match. A mismatch names the first differing APDU.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fromHex } from '../../src/bytes/index.js';
import { tempDir } from './helpers.js';
import { TRACE_FORMAT, describeMismatch, openFixtureCard, replay, type TraceFile } from './trace.js';

const FIXTURE = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'card-trace');
const trace = JSON.parse(readFileSync(join(FIXTURE, 'trace.json'), 'utf8')) as TraceFile;

test('the card-trace fixture is the host\'s flow: SELECT, VERIFY, the handshake (START, INFO, FOLD), DECRYPT (END)/ENCRYPT, close_notify and GET-STATE', () => {
  assert.equal(trace.format, TRACE_FORMAT);
  const steps = new Set(trace.exchanges.map((e) => e.step));
  for (const s of ['SELECT', 'VERIFY user PIN', 'handshake', 'DECRYPT request', 'ENCRYPT response', 'ENCRYPT close_notify', 'DECRYPT client close_notify', 'GET-STATE']) {
    assert.ok(steps.has(s), `step ${s} missing`);
  }
  const hs = trace.exchanges.filter((e) => e.step === 'handshake');
  assert.ok(hs.length >= 3, 'ClientHello, fragments/GET RESPONSE, Finished');
  assert.equal(hs[0]!.c.slice(0, 4), 'a080', 'PROCESS-EAP first (no RESET-STATE)');
  assert.equal(parseInt(hs[0]!.c.slice(4, 6), 16) & 0x16, 0x16, 'the first Response carries START, INFO and FOLD');
  for (const e of hs.filter((x) => x.c.startsWith('a080'))) assert.equal(parseInt(e.c.slice(4, 6), 16) & 0x14, 0x14, 'INFO and FOLD on every handshake Response');
  // FOLD: the answer to the Finished is the EAP-Request with the ticket, then the EAP-Success (with
  // the session info) beyond the Request's Length, SW 9000: no ACK exchange
  const last = fromHex(hs.at(-1)!.r);
  assert.equal(last[0], 0x01, 'an EAP-Request');
  const reqLen = (last[2]! << 8) | last[3]!;
  assert.equal(last[reqLen], 0x03, 'the EAP-Success after it');
  assert.ok(last.length - 2 > reqLen + 4, 'the EAP-Success carries the session info');
  assert.equal(hs.at(-1)!.r.slice(-4), '9000');
  for (const e of trace.exchanges.filter((x) => x.step.startsWith('DECRYPT'))) assert.equal(e.c.slice(4, 6), '08', 'END on every DECRYPT');
  assert.equal(trace.exchanges.at(-1)!.r, '029000', 'GET-STATE: the END close wiped the session (02, as after RESET-STATE)');
});

test('replaying every recorded command against the deterministic card gives every recorded response byte', () => {
  const { dir, cleanup } = tempDir();
  const card = openFixtureCard(FIXTURE, trace, dir);
  try {
    const m = replay(card, trace.exchanges);
    if (m) assert.fail(describeMismatch(m));
  } finally {
    card.close();
    cleanup();
  }
});

test('a replay twice in a row from fresh copies is identical (no hidden state outside the sealed store and the seed)', () => {
  for (let run = 0; run < 2; run++) {
    const { dir, cleanup } = tempDir();
    const card = openFixtureCard(FIXTURE, trace, dir);
    try {
      const m = replay(card, trace.exchanges);
      assert.equal(m, undefined, m && describeMismatch(m));
    } finally {
      card.close();
      cleanup();
    }
  }
});

test('a replay with another seed diverges at the ServerHello, and the report names that APDU', () => {
  const { dir, cleanup } = tempDir();
  const card = openFixtureCard(FIXTURE, { ...trace, seed: `${trace.seed} (other)` }, dir);
  try {
    const m = replay(card, trace.exchanges);
    assert.ok(m, 'a different RNG must change the responses');
    // the first handshake APDU that completes a command (the ClientHello may be chained: 9000 first)
    const firstHs = trace.exchanges.findIndex((e) => e.step === 'handshake' && e.r !== '9000');
    assert.equal(m.index, firstHs);
    assert.equal(m.step, 'handshake');
    // same code and Identifier; then the EAP Length may already differ (the ECDSA signature's DER
    // length varies), at the latest ServerHello.random (EAP 10 + record 5 + handshake 4 + version 2)
    assert.ok(m.offset >= 2 && m.offset <= 21, `offset ${m.offset}`);
    assert.match(describeMismatch(m), new RegExp(`^APDU #${firstHs} \\(handshake\\).*byte ${m.offset}\\n`));
    assert.ok(fromHex(m.actual).length > 0);
  } finally {
    card.close();
    cleanup();
  }
});
