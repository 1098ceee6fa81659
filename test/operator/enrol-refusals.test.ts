/**
 * Enrolments the operator refuses, through the whole executor path (real security domain, real
 * agent, real operator): a counterfeit card (same UID and keys, its own attestation key) — forged
 * attestation; a card whose firmware replays an attestation nonce already used — replayed nonce; a
 * card that presents a key already bound to another card; and a UID in no manifest. Each refused
 * with its own code, nothing issued, and the uncertified key deleted from the card.
 * The "rogue firmware" doubles wrap the security domain's own function handlers for one card only.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { toHex } from '../../src/bytes/index.js';
import { Field, Fn, SlotStatus } from '../../src/gp/admin/constants.js';
import { IDENTITY_FUNCTIONS } from '../../src/card/applets/isd/functions-identity.js';
import type { FunctionHandler } from '../../src/card/applets/isd/functions-common.js';
import { makeCa } from '../card/isd/test-ca.js';
import { makeBench, makeManufacturing, TestCard, type Bench, type Manufacturing } from './isd-fixture.js';

let m: Manufacturing;
let bench: Bench;
let hosts = 0;
before(async () => {
  m = await makeManufacturing();
  bench = await makeBench(m);
});
after(() => bench.close());

async function job(card: TestCard, kind: string): Promise<Record<string, any>> {
  return bench.wait((await bench.job(card.uidHex, kind)).id);
}

const certificates = async (card: TestCard): Promise<any[]> => (await bench.api('GET', `/v1/cards/${card.uidHex}`)).json().certificates;

/** Wraps one ISD function handler for the card whose platform is `platform` (others unchanged). */
function patch(fn: number, platform: object, wrap: (orig: FunctionHandler['run']) => FunctionHandler['run']): () => void {
  const h = IDENTITY_FUNCTIONS.get(fn)! as { run: FunctionHandler['run'] };
  const orig = h.run;
  const patched = wrap(orig);
  h.run = (ctx, f) => (ctx.platform === platform ? patched(ctx, f) : orig(ctx, f));
  return () => {
    h.run = orig;
  };
}

test('forged attestation: a counterfeit card (same UID and keys, its own attestation key) → ERR_OP_ATTESTATION_SIGNATURE, nothing issued', async () => {
  const genuine = await TestCard.create(m);
  await bench.importCards([genuine]);
  const rogue: Manufacturing = { ...m, ca: await makeCa('counterfeiter') };
  const fake = await TestCard.create(rogue, genuine.uid);
  await bench.startAgent([fake], `dev-${++hosts}`);
  const done = await job(fake, 'enrol');
  assert.equal(done.status, 'failed');
  assert.equal(done.errorCode, 'ERR_OP_ATTESTATION_SIGNATURE', JSON.stringify(done));
  assert.deepEqual(await certificates(genuine), []);
  assert.deepEqual(fake.platform.record().slots, [], 'the uncertified key was deleted');
});

test('replayed nonce: firmware that attests with a nonce already used → ERR_OP_NONCE_REPLAY, nothing issued', async () => {
  const card = await TestCard.create(m);
  await bench.importCards([card]);
  await bench.startAgent([card], `dev-${++hosts}`);
  let first: Uint8Array | undefined;
  const unpatch = patch(Fn.attestKey, card.platform, (orig) => (ctx, f) => {
    const nonce = f.get(Field.nonce)![0]!;
    first ??= nonce.slice();
    const fields = new Map(f);
    fields.set(Field.nonce, [first]);
    return orig(ctx, fields);
  });
  try {
    assert.equal((await job(card, 'enrol')).status, 'succeeded');
    const done = await job(card, 'rekey');
    assert.equal(done.status, 'failed');
    assert.equal(done.errorCode, 'ERR_OP_NONCE_REPLAY', JSON.stringify(done));
    assert.equal((await certificates(card)).length, 1, 'only the enrolment certificate');
    assert.equal(card.platform.record().slots.length, 1);
    assert.equal(card.platform.record().slots[0]!.status, SlotStatus.active, 'the old identity still serves');
  } finally {
    unpatch();
  }
});

test('a key already bound to another card → ERR_OP_KEY_BOUND_ELSEWHERE, nothing issued', async () => {
  const a = await TestCard.create(m);
  const b = await TestCard.create(m);
  await bench.importCards([a, b]);
  await bench.startAgent([a, b], `dev-${++hosts}`);
  assert.equal((await job(a, 'enrol')).status, 'succeeded');
  const slotA = a.platform.record().slots[0]!.slot;
  const keyA = a.platform.tls().identities[slotA]!;
  // Card B's firmware "generates" card A's key pair.
  const unpatch = patch(Fn.generateIdentityKey, b.platform, (orig) => (ctx, f) => {
    const out = orig(ctx, f);
    const slot = f.get(Field.slot)![0]![0]!;
    b.platform.tls().identities[slot] = { ...keyA };
    return out;
  });
  try {
    const done = await job(b, 'enrol');
    assert.equal(done.status, 'failed');
    assert.equal(done.errorCode, 'ERR_OP_KEY_BOUND_ELSEWHERE', JSON.stringify(done));
    assert.deepEqual(await certificates(b), []);
    assert.equal((await certificates(a)).length, 1);
  } finally {
    unpatch();
  }
});

test('a UID in no manifest: refused before any script (ERR_OP_UNKNOWN_CARD), nothing issued', async () => {
  const stranger = await TestCard.create(m);
  const r = await bench.api('POST', `/v1/cards/${stranger.uidHex}/enrol`, {});
  assert.equal(r.status, 404);
  assert.equal(r.json().error.code, 'ERR_OP_UNKNOWN_CARD');
  const listed = (await bench.api('GET', '/v1/cards?limit=1000')).json().items.map((c: any) => c.uid);
  assert.ok(!listed.includes(toHex(stranger.uid)));
  // And at the verification itself (a statement from a card in no manifest): ERR_OP_UNKNOWN_UID.
  await assert.rejects(bench.svc.operator.enrolment.issueNonce(stranger.uid), { code: 'ERR_OP_UNKNOWN_UID' });
});
