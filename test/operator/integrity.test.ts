/**
 * A malicious device agent (test/agent/malicious-agent.ts: flips, drops, duplicates, reorders,
 * injects or replays command APDUs; flips, drops or forges answers) between the operator and the
 * real security domain: every job fails with reason `integrity` (ERR_OP_INTEGRITY), and no command
 * the agent altered, added, replayed or reordered changes anything in the card (SCP03: C-MAC chain,
 * fresh challenges, R-MAC). Answer tampering cannot stop the card from running the genuine commands;
 * it can only make the operator refuse the answers — the job still fails with `integrity`.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { toHex, fromHex } from '../../src/bytes/index.js';
import { MaliciousAgent, type TamperRule } from '../agent/malicious-agent.js';
import { makeBench, makeManufacturing, TestCard, type Bench, type Manufacturing } from './isd-fixture.js';
import { TLS_AID } from '../card/isd/fake-platform.js';

let m: Manufacturing;
let bench: Bench;
let n = 0;
before(async () => {
  m = await makeManufacturing();
  bench = await makeBench(m);
});
after(() => bench.close());

/** Everything the card keeps but its sequence counter and audit log (which sessions move). */
function adminState(card: TestCard): string {
  const { sequenceCounter: _c, audit: _a, ...r } = card.platform.record();
  const hex = (x: unknown): unknown => (x instanceof Uint8Array ? toHex(x) : Array.isArray(x) ? x.map(hex) : x && typeof x === 'object' ? Object.fromEntries(Object.entries(x).map(([k, v]) => [k, hex(v)])) : x);
  return JSON.stringify({ isd: hex(r), tls: card.platform.tls() });
}

async function job(card: TestCard, kind: string, body: Record<string, unknown> = {}): Promise<Record<string, any>> {
  return bench.wait((await bench.job(card.uidHex, kind, body)).id);
}

/** An enrolled card whose honest agent is gone, and a malicious agent in its place. */
async function behindEvil(rules: TamperRule[], opts: { enrol?: boolean } = {}): Promise<{ card: TestCard; evil: MaliciousAgent; host: string }> {
  const card = await TestCard.create(m);
  await bench.importCards([card]);
  const host = `evil-${++n}`;
  if (opts.enrol !== false) {
    const honest = await bench.startAgent([card], `${host}-honest`);
    assert.equal((await job(card, 'enrol')).status, 'succeeded');
    await honest.stop();
  }
  const evil = await MaliciousAgent.start({ operatorUrl: bench.url, ca: bench.tlsCaPem, token: await bench.agentToken(host), hostId: host, transport: card.transport, rules });
  return { card, evil, host };
}

async function failsWithIntegrity(card: TestCard, kind: string, body: Record<string, unknown> = {}): Promise<Record<string, any>> {
  const done = await job(card, kind, body);
  assert.equal(done.status, 'failed', JSON.stringify(done));
  assert.equal(done.reason, 'integrity', JSON.stringify(done));
  assert.equal(done.errorCode, 'ERR_OP_INTEGRITY');
  assert.equal(done.attempt, 1, 'no retry after an integrity failure');
  return done;
}

// The lock job is one precomputed script: [0 IU, 1 EA, 2 SET STATUS (lock), 3 GET STATUS].
const commandTampers: [string, TamperRule['tamper']][] = [
  ['flip a byte of the wrapped SET STATUS', { kind: 'flip', apdu: 2, byte: 6, mask: 0x01 }],
  ['drop SET STATUS and forge its 9000', { kind: 'drop', apdu: 2 }],
  ['duplicate EXTERNAL AUTHENTICATE', { kind: 'duplicate', apdu: 1 }],
  ['swap SET STATUS and GET STATUS', { kind: 'swap', a: 2, b: 3 }],
  ['inject a TERMINATE of its own before SET STATUS', { kind: 'inject', apdu: 2, capdu: fromHex('84F080FF08000102030405060700') }],
];

for (const [what, tamper] of commandTampers) {
  test(`malicious agent: ${what} → lock fails with integrity, the card unchanged`, async () => {
    const { card, evil } = await behindEvil([{ script: 1, tamper }]);
    try {
      const before = adminState(card);
      await failsWithIntegrity(card, 'lock');
      assert.equal(adminState(card), before, 'nothing changed in the card');
      assert.deepEqual(card.platform.record().lockedApplets, []);
      assert.equal(evil.scripts[0]!.applied.length, 1, 'the tamper was applied');
      const view = (await bench.api('GET', `/v1/cards/${card.uidHex}`)).json();
      assert.equal(view.state, 'active', 'the registry did not record a lock either');
    } finally {
      await evil.stop();
    }
  });
}

test('malicious agent: a recorded session replayed in place of a new one, and replayed to the card outside any dialog → refused, the card unchanged', async () => {
  const { card, evil } = await behindEvil([{ script: 3, tamper: { kind: 'replay', from: 1 } }]);
  try {
    assert.equal((await job(card, 'lock')).status, 'succeeded'); // script 1, recorded
    assert.equal((await job(card, 'unlock')).status, 'succeeded'); // script 2
    const before = adminState(card);
    await failsWithIntegrity(card, 'push-deny-list', { serials: ['0a'] }); // script 3: the old lock instead
    assert.equal(adminState(card), before);
    assert.deepEqual(card.platform.record().lockedApplets, [], 'the replayed lock did not lock the card');
    const answers = await evil.replayToCard([1], { continueAfterErrors: true });
    assert.ok(answers.slice(1).every((a) => toHex(a.subarray(-2)) !== '9000'), `EA and every command refused: ${answers.map((a) => toHex(a.subarray(-2))).join(' ')}`);
    assert.equal(adminState(card), before);
  } finally {
    await evil.stop();
  }
});

test('malicious agent: tampering during enrolment (PUT KEY flipped) → integrity, no certificate, the factory keys still in place', async () => {
  // A fresh card: script 1 is INITIALIZE UPDATE alone, script 2 [EA, GetCardInfo, PUT KEY, Generate, Attest, CSR].
  const { card, evil } = await behindEvil([{ script: 2, tamper: { kind: 'flip', apdu: 2, byte: 7, mask: 0x80 } }], { enrol: false });
  try {
    const before = adminState(card);
    await failsWithIntegrity(card, 'enrol');
    assert.equal(adminState(card), before);
    assert.deepEqual(card.platform.record().keySets.map((k) => k.kvn), [0x30]);
    const view = (await bench.api('GET', `/v1/cards/${card.uidHex}`)).json();
    assert.deepEqual([view.state, view.kvn, view.certificates.length], ['manifest', '30', 0]);
  } finally {
    await evil.stop();
  }
});

const answerTampers: [string, TamperRule['tamper']][] = [
  ['flip a byte of the GET STATUS answer', { kind: 'flip-response', apdu: 3, byte: 2, mask: 0x10 }],
  ['drop the GET STATUS answer', { kind: 'drop-response', apdu: 3 }],
  ['forge a bare 9000 for SET STATUS', { kind: 'forge-response', apdu: 2, rapdu: fromHex('9000') }],
  ['flip the INITIALIZE UPDATE answer', { kind: 'flip-response', apdu: 0, byte: 20, mask: 0x01 }],
];

for (const [what, tamper] of answerTampers) {
  test(`malicious agent: ${what} → integrity; the card ran only the genuine commands`, async () => {
    const { card, evil } = await behindEvil([{ script: 1, tamper }]);
    try {
      await failsWithIntegrity(card, 'lock');
      const locked = card.platform.record().lockedApplets.map((a) => toHex(a));
      assert.ok(locked.length === 0 || (locked.length === 1 && locked[0] === toHex(TLS_AID)), 'at most the lock the operator sent');
    } finally {
      await evil.stop();
    }
  });
}
