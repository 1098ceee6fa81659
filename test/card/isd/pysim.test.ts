/**
 * The nine pySim SCP03 sessions (test/fixtures/gp/scp03-pysim.json) reproduced by the security
 * domain through real APDUs — on the ISD applet alone ('fake') and through the real EmulatedCard
 * ('card': its card OS, 61xx, the real store): the ISD loaded with each vector's keys (KVN 30), its sequence
 * counter preset to the vector's, the eUICC ISD-R AID as the challenge KDF context (the vectors'),
 * a zero UID (key diversification data 00×10, as in the vectors). SELECT, then the vector's
 * INITIALIZE UPDATE must be answered with the vector's bytes, its EXTERNAL AUTHENTICATE accepted,
 * and every wrapped command of the vector (GET EID, cases 1–4) accepted by the C-MAC check with the
 * session still open; the answers verify on an off-card session that ran the same vector.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { concat, fromHex, toHex } from '../../../src/bytes/index.js';
import { ISD_AID } from '../../../src/gp/admin/constants.js';
import { Scp03Host } from '../../../src/gp/host.js';
import { staticKeys } from '../../../src/gp/keys.js';
import { blankRecord } from '../../../src/card/applets/isd/index.js';
import { CARD_KINDS, cardWithRecord } from './cards.js';

interface Vector {
  name: string;
  keyset: string;
  securityLevel: string;
  initializeUpdate: string;
  initializeUpdateResponse: string;
  externalAuthenticate: string;
  getEidCommand: string;
  case1: string;
  case2: string;
  case3: string;
  case4: string;
}
const V = JSON.parse(readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'fixtures', 'gp', 'scp03-pysim.json'), 'utf8')) as {
  keysets: Record<string, { kvn: string; enc: string; mac: string; dek: string }>;
  plain: Record<string, string>;
  tests: Vector[];
};
const ISD_R = fromHex('A0000005591010FFFFFFFF8900000100');

for (const kind of CARD_KINDS) for (const t of V.tests) {
  test(`${kind}: the security domain reproduces pySim ${t.name} through APDUs`, () => {
    const k = V.keysets[t.keyset]!;
    const keys = staticKeys(parseInt(k.kvn, 16), fromHex(k.enc), fromHex(k.mac), fromHex(k.dek));
    const counter = parseInt(t.initializeUpdateResponse.slice(-6), 16);
    const rec = blankRecord();
    rec.lifecycle = 0x0f;
    rec.uid = new Uint8Array(16);
    rec.keySets = [keys];
    rec.sequenceCounter = counter;
    const card = cardWithRecord(kind, rec, { challengeAid: ISD_R });
    const sel = card.transmit(concat(fromHex('00A4040008'), ISD_AID, fromHex('00')));
    assert.equal(toHex(sel.subarray(-2)), '9000');

    const iu = card.transmit(fromHex(t.initializeUpdate));
    assert.equal(toHex(iu), t.initializeUpdateResponse.toLowerCase() + '9000');
    assert.equal(card.record().sequenceCounter, counter + 1, 'the counter advanced and persisted');
    assert.equal(toHex(card.transmit(fromHex(t.externalAuthenticate))), '9000');
    assert.equal(card.sessionState(0), 'open');

    // the same session off card, to check the card's answers (R-MAC, R-ENC)
    const host = new Scp03Host({ keys, sdAid: ISD_R });
    host.initializeUpdate(fromHex(t.initializeUpdate).subarray(5, 13));
    host.processInitializeUpdateResponse(iu);
    assert.equal(toHex(host.externalAuthenticate(parseInt(t.securityLevel, 16))), t.externalAuthenticate.toLowerCase());
    host.processExternalAuthenticateResponse(fromHex('9000'));

    const level = parseInt(t.securityLevel, 16);
    const expected: Record<string, number> = {
      // STORE DATA and GET STATUS need level 33 (6982 below it); at 33: BF3E is no setls function (6A88),
      // case 1 has no search criteria and case 3's 5C length overruns its data (6A80), case 4 asks for the ISD
      getEidCommand: level === 0x33 ? 0x6a88 : 0x6982,
      case1: level === 0x33 ? 0x6a80 : 0x6982,
      case2: 0x9000,
      case3: level === 0x33 ? 0x6a80 : 0x6982,
      case4: level === 0x33 ? 0x9000 : 0x6982,
    };
    const plainOf: Record<string, string> = { getEidCommand: 'getEid', case1: 'case1', case2: 'case2', case3: 'case3', case4: 'case4' };
    for (const name of ['getEidCommand', 'case1', 'case2', 'case3', 'case4'] as const) {
      const wire = fromHex(t[name]);
      assert.equal(toHex(host.wrap(fromHex(V.plain[plainOf[name]!]!))), toHex(wire), `${name}: the host wraps as pySim`);
      const r = card.transmit(wire);
      assert.equal(card.sessionState(0), 'open', `${t.name} ${name}: C-MAC accepted, session still open`);
      const plain = host.unwrap(r);
      assert.equal(plain.sw, expected[name], `${t.name} ${name}`);
      if (name === 'case2') assert.match(toHex(plain.data), /^66..73..06072a864886fc6b01/, 'GET DATA 66: card recognition data');
      if (name === 'case4' && level === 0x33) assert.match(toHex(plain.data), /^e3..4f08a0000001510000009f70010f/);
    }
    card.dispose();
  });
}
