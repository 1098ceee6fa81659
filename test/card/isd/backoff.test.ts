/**
 * "Never brick the admin channel": failed authentications are limited per power cycle (after 16
 * INITIALIZE UPDATEs not followed by a good EXTERNAL AUTHENTICATE, INITIALIZE UPDATE answers 6985
 * until the next power-on), never counted for good; an exhausted sequence counter switches the
 * card to random challenges instead of refusing. On the ISD applet alone ('fake') and through the
 * real EmulatedCard ('card'), whose reset (a vpcd reconnect) is the power cycle.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { concat, fromHex, toHex } from '../../../src/bytes/index.js';
import { AdminClient, AdminRequest, COUNTER_EXHAUSTED, ISD_AID, IsdLimits, parseCardInfo } from '../../../src/gp/admin/index.js';
import { blankRecord } from '../../../src/card/applets/isd/index.js';
import { CARD_KINDS, cardWithRecord } from './cards.js';
import { adminSession, getFixture, sealedTestCard, sw } from './helpers.js';

const SELECT = concat(fromHex('00A4040008'), ISD_AID, fromHex('00'));
const iu = () => concat(fromHex('8050300008'), randomBytes(8), fromHex('00'));
const badEa = () => concat(fromHex('8482330010'), randomBytes(16));

for (const kind of CARD_KINDS) {
test(`${kind}: 1000 failed IU/EA in one power cycle: 6985 after 16, then after a power cycle the right keys open a session`, async () => {
  const { card, fx } = await sealedTestCard(kind);
  card.transmit(SELECT);
  const c0 = card.record().sequenceCounter;
  let answered = 0;
  for (let n = 0; n < 1000; n++) {
    const r = card.transmit(iu());
    if (sw(r) === 0x9000) {
      answered++;
      assert.notEqual(sw(card.transmit(badEa())), 0x9000);
    } else assert.equal(toHex(r), '6985');
  }
  assert.equal(answered, IsdLimits.failedAuthsPerPowerCycle);
  assert.equal(card.record().sequenceCounter, c0 + answered, 'refused IUs do not burn the counter');
  await assert.rejects(adminSession(card, fx.factoryKeys), /6985/, 'still in back-off in this power cycle');
  card.powerCycle();
  const s = await adminSession(card, fx.factoryKeys);
  assert.equal(parseCardInfo(await s.call(AdminRequest.getCardInfo())).failedAuths, 0);
  card.dispose();
});

test(`${kind}: 1000 failed EXTERNAL AUTHENTICATEs across power cycles, then a legitimate session at once`, async () => {
  const { card, fx } = await sealedTestCard(kind);
  const c0 = card.record().sequenceCounter;
  let failures = 0;
  let cycles = 0;
  card.transmit(SELECT);
  while (failures < 1000) {
    const r = card.transmit(iu());
    if (sw(r) === 0x6985) {
      card.powerCycle(); // the host may power-cycle the card as often as it likes
      cycles++;
      card.transmit(SELECT);
      continue;
    }
    assert.equal(sw(r), 0x9000);
    assert.notEqual(sw(card.transmit(badEa())), 0x9000);
    failures++;
  }
  assert.equal(cycles, Math.floor(999 / IsdLimits.failedAuthsPerPowerCycle));
  assert.equal(card.record().sequenceCounter, c0 + 1000);
  const s = await adminSession(card, fx.factoryKeys);
  const info = parseCardInfo(await s.call(AdminRequest.getCardInfo()));
  assert.equal(info.failedAuths, 1000 % IsdLimits.failedAuthsPerPowerCycle);
  assert.equal(info.nextCounter, c0 + 1001);
  card.dispose();
});

test(`${kind}: good sessions do not use up the budget; abandoned INITIALIZE UPDATEs do`, async () => {
  const { card, fx } = await sealedTestCard(kind);
  for (let n = 0; n < 40; n++) (await adminSession(card, fx.factoryKeys)).close();
  card.transmit(SELECT);
  for (let n = 0; n < IsdLimits.failedAuthsPerPowerCycle; n++) assert.equal(sw(card.transmit(iu())), 0x9000); // never authenticated
  assert.equal(sw(card.transmit(iu())), 0x6985);
  assert.equal(card.failedAuths, IsdLimits.failedAuthsPerPowerCycle);
  card.dispose();
});

test(`${kind}: an exhausted sequence counter: random card challenges (i = 60), sessions still open, the counter stays`, async () => {
  const fx = await getFixture(kind);
  const rec = blankRecord();
  rec.lifecycle = 0x0f;
  rec.uid = new Uint8Array(16).fill(7);
  rec.keySets = [fx.factoryKeys];
  rec.sequenceCounter = 0xfffffe;
  const card = cardWithRecord(kind, rec);
  const c = new AdminClient(card.transmit);
  await c.select();
  for (const expected of [0xfffffe, 0xffffff]) {
    await c.open(fx.factoryKeys);
    assert.equal(c.session!.cardInfo!.i, 0x70);
    assert.equal(c.session!.cardInfo!.sequenceCounter, expected);
  }
  assert.equal(card.record().sequenceCounter, COUNTER_EXHAUSTED);
  for (let n = 0; n < 3; n++) {
    await c.open(fx.factoryKeys);
    assert.equal(c.session!.cardInfo!.i, 0x60, 'random challenge, no counter');
    assert.equal(c.session!.cardInfo!.sequenceCounter, undefined);
    assert.equal(parseCardInfo(await c.call(AdminRequest.getCardInfo())).nextCounter, COUNTER_EXHAUSTED);
  }
  card.dispose();
});
}
