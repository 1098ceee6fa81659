/**
 * INITIALIZE UPDATE / EXTERNAL AUTHENTICATE between Scp03Host and Scp03Card: every mode the
 * module offers, and every refusal (status words on the card, error codes off card).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { concat, fromHex, toHex } from '../../src/bytes/index.js';
import {
  Scp03Card,
  Scp03Host,
  cardCryptogram,
  deriveSessionKeys,
  encodeExternalAuthenticate,
  encodeInitializeUpdateResponse,
  pseudoRandomCardChallenge,
  externalAuthenticateMacInput,
  parseInitializeUpdateResponse,
  SecureMessaging,
  type SecurityLevel,
} from '../../src/gp/index.js';
import { openPair, SD_AID, testKeys } from './helpers.js';

const hex = (sw: number) => sw.toString(16).padStart(4, '0');

test('every security level opens with every key length, S8 and S16, pseudo-random and random challenges', () => {
  for (const keyLength of [16, 24, 32]) {
    for (const level of [0x01, 0x03, 0x11, 0x13, 0x33]) {
      for (const i of [0x70, 0x71, 0x60]) {
        const { host, card } = openPair({ keyLength, level, i });
        assert.equal(card.state, 'open');
        assert.equal(card.securityLevel, level);
        assert.equal(host.securityLevel, level);
        assert.equal(host.cardInfo!.cardChallenge.length, i & 1 ? 16 : 8);
        assert.equal(host.cardInfo!.sequenceCounter, i & 0x10 ? 7 : undefined);
      }
    }
  }
});

test('INITIALIZE UPDATE response: 29/32 bytes in S8, 45/48 in S16; KVN 00 means the default set', () => {
  const keys = testKeys();
  for (const [i, len] of [[0x70, 32], [0x60, 29], [0x71, 48], [0x61, 45]] as const) {
    const card = new Scp03Card({ sdAid: SD_AID, lookupKeys: (kvn) => (kvn === 0 ? keys : undefined), i });
    const s = i & 1 ? 16 : 8;
    const r = card.initializeUpdate(concat(fromHex('80500000'), Uint8Array.of(s), new Uint8Array(s), fromHex('00')), 1);
    assert.equal(r.sw, 0x9000);
    assert.equal(r.response.length, len + 2);
    assert.equal(parseInitializeUpdateResponse(r.response.subarray(0, len)).kvn, 0x30);
  }
});

test('the card refuses malformed INITIALIZE UPDATEs with the GP status words', () => {
  const keys = testKeys();
  const card = new Scp03Card({ sdAid: SD_AID, lookupKeys: (kvn) => (kvn === 0x30 ? keys : undefined) });
  const hc = '0102030405060708';
  const cases: [string, number][] = [
    ['8050310008' + hc + '00', 0x6a88], // unknown KVN
    ['8050300107' + hc.slice(2) + '00', 0x6a86], // P2 not 00
    ['8050300007' + hc.slice(2) + '00', 0x6700], // 7-byte challenge
    ['8450300008' + hc + '00', 0x6e00], // SM class
    ['A050300008' + hc + '00', 0x6e00], // not a GP class
    ['0050300008' + hc + '00', 0x6e00], // ISO class
    ['8052300008' + hc + '00', 0x6d00],
    ['80503000', 0x6700],
  ];
  for (const [apdu, sw] of cases) {
    const r = card.initializeUpdate(fromHex(apdu), 1);
    assert.equal(hex(r.sw), hex(sw), apdu);
    assert.equal(toHex(r.response), hex(sw));
    assert.equal(card.state, 'idle');
  }
});

test('the 24-bit sequence counter: FFFFFF is the last one, then the card refuses for good', () => {
  const keys = testKeys();
  const card = new Scp03Card({ sdAid: SD_AID, lookupKeys: () => keys });
  const host = new Scp03Host({ keys, sdAid: SD_AID });
  const r = card.initializeUpdate(host.initializeUpdate(), 0xffffff);
  assert.equal(r.sw, 0x9000);
  assert.equal(host.processInitializeUpdateResponse(r.response).sequenceCounter, 0xffffff);
  assert.equal(card.initializeUpdate(new Scp03Host({ keys }).initializeUpdate(), 0x1000000).sw, 0x6985);
});

test('EXTERNAL AUTHENTICATE refusals abort the session: no IU, bad level, level beyond i, bad MAC, bad cryptogram', () => {
  const keys = testKeys();
  const newCard = (i = 0x70) => new Scp03Card({ sdAid: SD_AID, lookupKeys: () => keys, i });

  // without INITIALIZE UPDATE
  const c0 = newCard();
  assert.equal(c0.externalAuthenticate(fromHex('848233001000000000000000000000000000000000')).sw, 0x6985);

  // levels outside 01/03/11/13/33, and R-MAC asked of a card without it (i = 10)
  for (const [level, i] of [[0x00, 0x70], [0x02, 0x70], [0x31, 0x70], [0x11, 0x10], [0x33, 0x30]] as const) {
    const c = newCard(i);
    const h = new Scp03Host({ keys, sdAid: SD_AID });
    h.processInitializeUpdateResponse(c.initializeUpdate(h.initializeUpdate(), 3).response);
    if (level === 0x11 || level === 0x33) {
      assert.throws(() => h.externalAuthenticate(level), { code: 'ERR_GP_LEVEL' });
    }
    // forge the EA bytes with the given level (the host refuses to build them)
    const ea = fromHex(`8482${level.toString(16).padStart(2, '0')}0010` + '00'.repeat(16));
    const r = c.externalAuthenticate(ea);
    assert.equal(hex(r.sw), '6a86', `level ${level} i ${i}`);
    assert.equal(c.state, 'aborted');
  }

  // a flipped MAC bit → 6982; a valid MAC over a wrong host cryptogram → 6300
  {
    const c = newCard();
    const h = new Scp03Host({ keys, sdAid: SD_AID });
    h.processInitializeUpdateResponse(c.initializeUpdate(h.initializeUpdate(), 4).response);
    const ea = h.externalAuthenticate(0x33);
    ea[ea.length - 1]! ^= 0x01;
    const r = c.externalAuthenticate(ea);
    assert.equal(hex(r.sw), '6982');
    assert.equal(r.authFailed, true);
    assert.equal(c.state, 'aborted');
  }
  {
    const c = newCard();
    const hc = fromHex('1122334455667788');
    const iu = c.initializeUpdate(concat(fromHex('8050300008'), hc, fromHex('00')), 5);
    const info = parseInitializeUpdateResponse(iu.response.subarray(0, iu.response.length - 2));
    const sk = deriveSessionKeys(keys, hc, info.cardChallenge);
    const wrongCryptogram = cardCryptogram(sk.sMac, hc, info.cardChallenge); // the card's, not the host's
    const sm = new SecureMessaging(sk, 0x33 as SecurityLevel, 8);
    const mac = sm.authenticate(externalAuthenticateMacInput(0x33, wrongCryptogram));
    const r = c.externalAuthenticate(encodeExternalAuthenticate(0x33, wrongCryptogram, mac, 8));
    assert.equal(hex(r.sw), '6300');
    assert.equal(c.state, 'aborted');
  }
});

test('1000 failed authentications, then a legitimate session opens (the module never locks)', () => {
  const keys = testKeys();
  const card = new Scp03Card({ sdAid: SD_AID, lookupKeys: () => keys });
  let counter = 0;
  for (let n = 0; n < 1000; n++) {
    card.initializeUpdate(new Scp03Host({ keys }).initializeUpdate(), counter++);
    assert.equal(card.externalAuthenticate(fromHex('848233001000000000000000000000000000000000')).authFailed, true);
  }
  const host = new Scp03Host({ keys, sdAid: SD_AID });
  host.processInitializeUpdateResponse(card.initializeUpdate(host.initializeUpdate(), counter++).response);
  assert.equal(card.externalAuthenticate(host.externalAuthenticate(0x33)).sw, 0x9000);
});

test('off-card refusals: SW, wrong keys (card cryptogram), wrong AID (card challenge), EA refused; each closes', () => {
  const keys = testKeys();
  const other = testKeys(0x30, 16);
  other.mac[0]! ^= 0xff;
  const card = () => new Scp03Card({ sdAid: SD_AID, lookupKeys: () => keys });

  const h1 = new Scp03Host({ keys });
  h1.initializeUpdate();
  assert.throws(() => h1.processInitializeUpdateResponse(fromHex('6a88')), { code: 'ERR_GP_INIT_UPDATE' });
  assert.equal(h1.state, 'closed');

  const h2 = new Scp03Host({ keys: other });
  const c2 = card();
  assert.throws(() => h2.processInitializeUpdateResponse(c2.initializeUpdate(h2.initializeUpdate(), 1).response), {
    code: 'ERR_GP_CARD_CRYPTOGRAM',
  });
  assert.equal(h2.state, 'closed');

  const h3 = new Scp03Host({ keys, sdAid: fromHex('A0000005591010FFFFFFFF8900000100') });
  assert.throws(() => h3.processInitializeUpdateResponse(card().initializeUpdate(h3.initializeUpdate(), 1).response), {
    code: 'ERR_GP_CARD_CHALLENGE',
  });

  const h4 = new Scp03Host({ keys, sdAid: SD_AID });
  h4.processInitializeUpdateResponse(card().initializeUpdate(h4.initializeUpdate(), 1).response);
  h4.externalAuthenticate(0x33);
  assert.throws(() => h4.processExternalAuthenticateResponse(fromHex('6300')), { code: 'ERR_GP_AUTH' });
  assert.throws(() => h4.wrap(fromHex('80CA006600')), { code: 'ERR_GP_STATE' });

  // a tampered card cryptogram
  const h5 = new Scp03Host({ keys, sdAid: SD_AID });
  const r5 = card().initializeUpdate(h5.initializeUpdate(), 1).response;
  r5[21]! ^= 0x80;
  assert.throws(() => h5.processInitializeUpdateResponse(r5), { code: 'ERR_GP_CARD_CRYPTOGRAM' });
});

test('out-of-order calls throw ERR_GP_STATE off card', () => {
  const h = new Scp03Host({ keys: testKeys() });
  assert.throws(() => h.externalAuthenticate(0x33), { code: 'ERR_GP_STATE' });
  assert.throws(() => h.wrap(fromHex('80CA006600')), { code: 'ERR_GP_STATE' });
  assert.throws(() => h.unwrap(fromHex('9000')), { code: 'ERR_GP_STATE' });
  h.initializeUpdate();
  assert.throws(() => h.initializeUpdate(), { code: 'ERR_GP_STATE' });
});

test('store and forward: knowing the next counter, the operator precomputes the whole session', () => {
  const keys = testKeys();
  const card = new Scp03Card({ sdAid: SD_AID, lookupKeys: () => keys });
  const hc = fromHex('a1a2a3a4a5a6a7a8');
  const counter = 42;
  // Off card, without the card: predict its INITIALIZE UPDATE response and wrap a script.
  const cc = pseudoRandomCardChallenge(keys.enc, counter, SD_AID, 8);
  const sk = deriveSessionKeys(keys, hc, cc);
  const predicted = concat(
    encodeInitializeUpdateResponse({
      keyDiversificationData: new Uint8Array(10),
      kvn: 0x30,
      i: 0x70,
      cardChallenge: cc,
      cardCryptogram: cardCryptogram(sk.sMac, hc, cc),
      sequenceCounter: counter,
    }),
    fromHex('9000'),
  );
  const host = new Scp03Host({ keys, sdAid: SD_AID });
  const script = [host.initializeUpdate(hc)];
  host.processInitializeUpdateResponse(predicted);
  script.push(host.externalAuthenticate(0x33), host.wrap(fromHex('80E2910003BF2000')), host.wrap(fromHex('80F22002')));
  // Later, through the relay: the card answers exactly as predicted and accepts everything.
  const iu = card.initializeUpdate(script[0]!, counter);
  assert.equal(toHex(iu.response), toHex(predicted));
  assert.equal(card.externalAuthenticate(script[1]!).sw, 0x9000);
  for (const w of script.slice(2)) {
    assert.ok(card.unwrapCommand(w).ok, 'card.unwrapCommand(w).ok');
    assert.equal(host.unwrap(card.wrapResponse(fromHex('01'), 0x9000)).sw, 0x9000);
  }
});

test('a replayed session meets a new counter: the old EXTERNAL AUTHENTICATE and commands are refused', () => {
  const a = openPair({ counter: 10 });
  const hostB = new Scp03Host({ keys: a.keys, sdAid: SD_AID });
  // record a session against counter 20
  const recCard = new Scp03Card({ sdAid: SD_AID, lookupKeys: () => a.keys });
  const iuCmd = hostB.initializeUpdate(fromHex('0102030405060708'));
  hostB.processInitializeUpdateResponse(recCard.initializeUpdate(iuCmd, 20).response);
  const ea = hostB.externalAuthenticate(0x33);
  const cmd = hostB.wrap(fromHex('80E2910003BF2000'));
  assert.equal(recCard.externalAuthenticate(ea).sw, 0x9000);
  assert.ok(recCard.unwrapCommand(cmd).ok, 'recCard.unwrapCommand(cmd).ok');
  // replay all of it against the card at counter 21 (same power cycle) and after a reset
  for (const reset of [false, true]) {
    if (reset) recCard.reset();
    assert.equal(recCard.initializeUpdate(iuCmd, reset ? 22 : 21).sw, 0x9000);
    assert.notEqual(recCard.externalAuthenticate(ea).sw, 0x9000);
    const u = recCard.unwrapCommand(cmd);
    assert.equal(u.ok, false);
    assert.equal(hex((u as { sw: number }).sw), '6985');
  }
});
