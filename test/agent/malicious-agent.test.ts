/**
 * The malicious-agent double does what it says (so the integrity acceptance test can rely on it):
 * against the recording fake card and the real hub over HTTPS, each tamper changes exactly what
 * reaches the card or what the operator is told. (With the fake's echo applet nothing refuses the
 * tampering: the SCP03 refusals are the integrator's test against the real security domain.)
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fromHex, toHex } from '../../src/bytes/index.js';
import { ISD_AID } from '../../src/relay/index.js';
import { moveCla } from '../../src/agent/cla.js';
import { FakeCard } from './fake-card.js';
import { MaliciousAgent, type TamperRule } from './malicious-agent.js';
import { makePki, startOperator, type TestOperator, type TestPki } from './operator-fixture.js';

let pki: TestPki;
let op: TestOperator;
before(async () => {
  pki = await makePki();
  op = await startOperator(pki);
});
after(() => op.close());

const h = (s: string): Uint8Array => fromHex(s);
const hex = (b: Uint8Array): string => toHex(b).toUpperCase();
const A = h('8050000001AA');
const B = h('8050000001BB');
const C = h('8050000001CC');

async function withDouble(rules: TamperRule[], fn: (card: FakeCard, evil: MaliciousAgent) => Promise<void>): Promise<void> {
  const card = new FakeCard();
  const evil = await MaliciousAgent.start({ operatorUrl: op.url, ca: pki.caPem, token: 'agent-token-1', hostId: 'host-1', transport: card.transport(), rules });
  try {
    await fn(card, evil);
  } finally {
    await evil.stop();
  }
}

/** The script APDUs the card received on admin channels (2..; channel-0 form), SELECT and MANAGE CHANNEL left out. */
const scriptApdus = (card: FakeCard): string[] =>
  card.log
    .filter((l) => l.channel >= 2 && l.apdu[1] !== 0xa4 && l.apdu[1] !== 0x70)
    .map((l) => {
      const c = l.apdu.slice();
      assert.equal(c[0], moveCla(0x80, l.channel));
      c[0] = 0x80;
      return hex(c);
    });

test('flip: the card receives the flipped byte; the operator gets the card answer', async () => {
  await withDouble([{ script: 1, tamper: { kind: 'flip', apdu: 1, byte: 5, mask: 0x01 } }], async (card, evil) => {
    const r = await op.hub.runScript(card.uid, ISD_AID, [A, B, C], { timeoutMs: 20_000 });
    assert.deepEqual(scriptApdus(card), ['8050000001AA', '8050000001BA', '8050000001CC']);
    assert.deepEqual(r.rapdus.map(hex), ['AA9000', 'BA9000', 'CC9000']);
    assert.deepEqual(evil.scripts[0]!.applied, [{ kind: 'flip', apdu: 1, byte: 5, mask: 0x01 }]);
  });
});

test('drop: a command never reaches the card, the operator is told 9000 (a swallowed command with forged success)', async () => {
  await withDouble([{ script: 1, tamper: { kind: 'drop', apdu: 1 } }], async (card) => {
    const r = await op.hub.runScript(card.uid, ISD_AID, [A, B, C], { timeoutMs: 20_000 });
    assert.deepEqual(scriptApdus(card), ['8050000001AA', '8050000001CC']);
    assert.deepEqual(r.rapdus.map(hex), ['AA9000', '9000', 'CC9000']);
  });
});

test('duplicate, swap, inject: the card sees the repeated, reordered or extra commands', async () => {
  await withDouble(
    [
      { script: 1, tamper: { kind: 'duplicate', apdu: 0 } },
      { script: 2, tamper: { kind: 'swap', a: 0, b: 2 } },
      { script: 3, tamper: { kind: 'inject', apdu: 1, capdu: h('8050000001EE') } },
    ],
    async (card) => {
      await op.hub.runScript(card.uid, ISD_AID, [A, B, C], { timeoutMs: 20_000 });
      assert.deepEqual(scriptApdus(card), ['8050000001AA', '8050000001AA', '8050000001BB', '8050000001CC']);
      card.log.length = 0;
      const r2 = await op.hub.runScript(card.uid, ISD_AID, [A, B, C], { timeoutMs: 20_000 });
      assert.deepEqual(scriptApdus(card), ['8050000001CC', '8050000001BB', '8050000001AA']);
      assert.deepEqual(r2.rapdus.map(hex), ['CC9000', 'BB9000', 'AA9000']);
      card.log.length = 0;
      const r3 = await op.hub.runScript(card.uid, ISD_AID, [A, B, C], { timeoutMs: 20_000 });
      assert.deepEqual(scriptApdus(card), ['8050000001AA', '8050000001EE', '8050000001BB', '8050000001CC']);
      assert.deepEqual(r3.rapdus.map(hex), ['AA9000', 'BB9000', 'CC9000'], 'the injected answer is hidden');
    },
  );
});

test('replay: a later script is replaced by a recorded one; replayToCard sends a recorded session again outside any dialog', async () => {
  await withDouble([{ script: 2, tamper: { kind: 'replay', from: 1 } }], async (card, evil) => {
    await op.hub.runScript(card.uid, ISD_AID, [A], { timeoutMs: 20_000 });
    card.log.length = 0;
    const r = await op.hub.runScript(card.uid, ISD_AID, [B, C], { timeoutMs: 20_000 });
    assert.deepEqual(scriptApdus(card), ['8050000001AA']);
    assert.deepEqual(r.rapdus.map(hex), ['AA9000']);
    card.log.length = 0;
    const again = await evil.replayToCard([1, 2]);
    assert.deepEqual(again.map(hex), ['AA9000', 'BB9000', 'CC9000']);
    assert.deepEqual(scriptApdus(card), ['8050000001AA', '8050000001BB', '8050000001CC']);
  });
});

test('answer tampering: flipped, dropped and forged R-APDUs reach the operator; the card ran the script honestly', async () => {
  await withDouble(
    [
      { script: 1, tamper: { kind: 'flip-response', apdu: 0, byte: 0, mask: 0x80 } },
      { script: 2, tamper: { kind: 'drop-response', apdu: 1 } },
      { script: 3, tamper: { kind: 'forge-response', apdu: 2, rapdu: h('9000') } },
    ],
    async (card, evil) => {
      assert.deepEqual((await op.hub.runScript(card.uid, ISD_AID, [A, B, C], { timeoutMs: 20_000 })).rapdus.map(hex), ['2A9000', 'BB9000', 'CC9000']);
      assert.deepEqual((await op.hub.runScript(card.uid, ISD_AID, [A, B, C], { timeoutMs: 20_000 })).rapdus.map(hex), ['AA9000', 'CC9000']);
      assert.deepEqual((await op.hub.runScript(card.uid, ISD_AID, [A, B, C], { timeoutMs: 20_000 })).rapdus.map(hex), ['AA9000', 'BB9000', '9000']);
      assert.deepEqual(evil.scripts.map((s) => s.fromCard.map(hex)), [
        ['AA9000', 'BB9000', 'CC9000'],
        ['AA9000', 'BB9000', 'CC9000'],
        ['AA9000', 'BB9000', 'CC9000'],
      ]);
    },
  );
});

test('withhold: the operator never hears back (ERR_RELAY_TIMEOUT)', async () => {
  await withDouble([{ script: 1, tamper: { kind: 'withhold' } }], async (card) => {
    await assert.rejects(op.hub.runScript(card.uid, ISD_AID, [A], { timeoutMs: 1_000 }), { code: 'ERR_RELAY_TIMEOUT' });
  });
});
